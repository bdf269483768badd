// The look-inside drawings: layer-wise scaling as an SVG bar chart, an attention map on a canvas, and
// the logit lens as a table. Each keeps its numbers in data attributes, so they can be read back exactly.
import type { Inspection, LayerShape } from "./protocol.js";

const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  parent?.append(el);
  return el;
}

/**
 * Heads and FFN width per layer: query heads (light) with their kv heads (dark) above, FFN width below,
 * each panel scaled to its own maximum. One <g class="layer"> per layer.
 */
export function drawLayerChart(host: HTMLElement, layers: LayerShape[]): void {
  const W = 640, panel = 110, gap = 34, H = 2 * panel + gap + 30, left = 44, barW = (W - left - 8) / layers.length;
  const maxHeads = Math.max(...layers.map((l) => l.queryHeads)), maxFfn = Math.max(...layers.map((l) => l.ffnDim));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "heads and FFN width per layer" });
  const label = (text: string, x: number, y: number, anchor = "start") => (svg("text", { x, y, "text-anchor": anchor, class: "axis" }, root).textContent = text);
  label(`heads (max ${maxHeads})`, 0, 12);
  label(`FFN width (max ${maxFfn})`, 0, panel + gap + 12);
  layers.forEach((l, i) => {
    const g = svg("g", { class: "layer", "data-layer": i, "data-q": l.queryHeads, "data-kv": l.kvHeads, "data-ffn": l.ffnDim }, root);
    svg("title", {}, g).textContent = `layer ${i}: ${l.queryHeads} query heads, ${l.kvHeads} kv heads, FFN ${l.ffnDim}`;
    const x = left + i * barW + barW * 0.1, w = barW * 0.8, bar = (h: number, base: number, cls: string) => svg("rect", { x, y: base - h, width: w, height: h, class: cls }, g);
    bar((l.queryHeads / maxHeads) * (panel - 20), panel, "q");
    bar((l.kvHeads / maxHeads) * (panel - 20), panel, "kv");
    bar((l.ffnDim / maxFfn) * (panel - 20), 2 * panel + gap, "ffn");
    if (layers.length <= 40 || i % 4 === 0) label(String(i), x + w / 2, 2 * panel + gap + 16, "middle");
  });
  label("layer", W / 2, H - 2, "middle");
  host.replaceChildren(root);
}

/** The attention weights as a heat map: row = query position, column = key position, darker = more weight. */
export function drawAttention(canvas: HTMLCanvasElement, x: Inspection): void {
  const T = x.tokens.length, cell = Math.max(3, Math.min(16, Math.floor(480 / T)));
  // the tokens label the rows when there is room for their text
  const labels = cell >= 10, left = labels ? 96 : 0;
  canvas.width = left + T * cell;
  canvas.height = T * cell;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = `${Math.min(12, cell - 1)}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  x.attention.forEach((row, i) => {
    if (labels) {
      ctx.fillStyle = "#374151";
      ctx.fillText(x.tokens[i]!.slice(0, 12), left - 4, (i + 0.5) * cell);
    }
    row.forEach((w, j) => {
      if (j > i) return;
      ctx.fillStyle = `rgba(37, 99, 235, ${Math.sqrt(w)})`; // sqrt so that small weights still show
      ctx.fillRect(left + j * cell, i * cell, cell, cell);
    });
  });
  canvas.dataset.weights = JSON.stringify(x.attention);
  canvas.dataset.layer = String(x.layer);
  canvas.dataset.head = String(x.head);
  canvas.onmousemove = (e) => {
    const i = Math.floor(e.offsetY / cell), j = Math.floor((e.offsetX - left) / cell);
    canvas.title = i < T && j >= 0 && j <= i ? `${JSON.stringify(x.tokens[i])} → ${JSON.stringify(x.tokens[j])}: ${x.attention[i]![j]!.toFixed(3)}` : "";
  };
}

/** One row per layer: the tokens its output predicts at the last position, with probabilities. */
export function drawLens(table: HTMLTableElement, x: Inspection): void {
  const head = document.createElement("tr");
  head.innerHTML = `<th>layer</th>${x.lens[0]!.map((_, k) => `<th>#${k + 1}</th>`).join("")}`;
  const rows = x.lens.map((top, l) => {
    const tr = document.createElement("tr");
    tr.dataset.layer = String(l);
    tr.dataset.ids = top.map((t) => t.id).join(",");
    const th = document.createElement("th");
    th.textContent = String(l);
    tr.append(th, ...top.map((t) => {
      const td = document.createElement("td"), token = document.createElement("bdi"); // right-to-left tokens stay in their cell's order
      token.textContent = JSON.stringify(t.token);
      td.append(token, ` ${(t.p * 100).toFixed(1)}%`);
      td.style.background = `rgba(22, 163, 74, ${Math.min(1, t.p * 2)})`;
      return td;
    }));
    return tr;
  });
  const thead = document.createElement("thead"), tbody = document.createElement("tbody");
  thead.append(head);
  tbody.append(...rows);
  table.replaceChildren(thead, tbody);
}
