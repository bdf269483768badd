// The loss curve of a training run as a small self-contained SVG: training loss per step, held-out loss
// where it was measured, axes with a few ticks. No plotting library: a picture of two polylines.

/** One point of a run: its step, the training loss, and the held-out loss when evaluated at that step. */
export interface LossPoint {
  step: number;
  train: number;
  heldOut?: number;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** An SVG of the losses (width × height pixels) with `title` above. */
export function lossCurveSvg(points: LossPoint[], title: string, width = 640, height = 360): string {
  const left = 56, right = 16, top = 36, bottom = 40, w = width - left - right, h = height - top - bottom;
  const steps = points.map((p) => p.step), losses = points.flatMap((p) => (p.heldOut === undefined ? [p.train] : [p.train, p.heldOut]));
  const x0 = Math.min(...steps, 0), x1 = Math.max(...steps, 1), y0 = Math.min(...losses, 0), y1 = Math.max(...losses, 1);
  const x = (s: number) => left + ((s - x0) / (x1 - x0 || 1)) * w, y = (v: number) => top + h - ((v - y0) / (y1 - y0 || 1)) * h;
  const line = (ps: [number, number][], color: string) =>
    ps.length ? `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${ps.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>` : "";
  const ticks = (a: number, b: number) => Array.from({ length: 5 }, (_, i) => a + ((b - a) * i) / 4);
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="13">${esc(title)}</text>`,
    `<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`,
    ...ticks(x0, x1).map((s) => `<text x="${x(s).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${Math.round(s)}</text>`),
    ...ticks(y0, y1).map((v) => `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`),
    `<text x="${left + w / 2}" y="${height - 6}" text-anchor="middle">step</text>`,
    `<text x="14" y="${top + h / 2}" transform="rotate(-90 14 ${top + h / 2})" text-anchor="middle">loss (nats per token)</text>`,
    line(points.map((p) => [p.step, p.train]), "#1f77b4"),
    line(points.filter((p) => p.heldOut !== undefined).map((p) => [p.step, p.heldOut!]), "#d62728"),
    `<text x="${left + w - 4}" y="${top + 14}" text-anchor="end" fill="#1f77b4">training</text>`,
    `<text x="${left + w - 4}" y="${top + 28}" text-anchor="end" fill="#d62728">held out</text>`,
    "</svg>",
  ].join("\n");
}
