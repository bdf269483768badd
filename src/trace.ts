// Per-layer traces for other ports: the named intermediates (taps) of one forward pass, and a comparison
// of two traces that finds the first tap where they part. The taps, in forward order (T = tokens,
// D = model_dim, q/kv = the layer's query/kv heads, hd = head_dim, F = the layer's FFN width, V = vocab):
//
// | name | shape | what |
// | --- | --- | --- |
// | embed | [T, D] | token embeddings |
// | layers.N.attn_norm | [T, D] | RMSNorm before attention |
// | layers.N.q, .k, .v | [T, q|kv, hd] | the fused projection split per head; q and k after QK-norm, before RoPE |
// | layers.N.q_rope, .k_rope | [T, q|kv, hd] | after rotary embedding |
// | layers.N.attn | [T, q·hd] | attention output, before the out projection |
// | layers.N.attn_out | [T, D] | after the out projection |
// | layers.N.resid_attn | [T, D] | residual stream after attention |
// | layers.N.ffn_norm | [T, D] | RMSNorm before the FFN |
// | layers.N.ffn_gate, .ffn_up | [T, F] | the halves of proj_1 (gate first); without GLU only ffn_up (all of proj_1) |
// | layers.N.ffn_act | [T, F] | act(gate)·up (act(proj_1) without GLU) |
// | layers.N.ffn_out | [T, D] | after proj_2 |
// | layers.N.resid_ffn | [T, D] | residual stream after the FFN (the layer's output) |
// | norm | [T, D] | final RMSNorm |
// | logits | [T, V] | output head |
import type { OpenELM } from "./model.js";
import type { ByteSource } from "./files.js";
import { convert } from "./dtype.js";
import { encodeSafetensors, readHeader } from "./safetensors.js";

export const LAYER_TAPS = ["attn_norm", "q", "k", "v", "q_rope", "k_rope", "attn", "attn_out", "resid_attn", "ffn_norm", "ffn_gate", "ffn_up", "ffn_act", "ffn_out", "resid_ffn"];

export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

export type Trace = Record<string, Tensor32>;

/** Rank of a tap name in forward order (unknown names last). */
export function forwardRank(name: string): number {
  if (name === "embed") return 0;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) return 1 + Number(m[1]) * 100 + LAYER_TAPS.indexOf(m[2]!) + (LAYER_TAPS.includes(m[2]!) ? 0 : 99);
  return name === "norm" ? 1e9 : name === "logits" ? 1e9 + 1 : 2e9;
}

/** Does `name` match the pattern: comma-separated globs where * matches anything (e.g. "layers.*.q_rope,logits")? */
export function matchesTaps(pattern: string | undefined, name: string): boolean {
  if (!pattern) return true;
  return pattern.split(",").some((glob) => new RegExp(`^${glob.trim().replace(/[.+?^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*")}$`).test(name));
}

/** Run `ids` through the model once (a fresh cache) and collect the taps that match `pattern`. */
export function trace(model: OpenELM, ids: number[], pattern?: string): Trace {
  const parts = new Map<string, Tensor32[]>();
  model.onTap = (name, layer, data, shape) => {
    const key = layer === undefined ? name : `layers.${layer}.${name}`;
    if (matchesTaps(pattern, key)) parts.set(key, [...(parts.get(key) ?? []), { shape, data }]);
  };
  const cache = model.newCache();
  try {
    model.forward(cache, ids, { allPositions: true });
  } finally {
    model.onTap = undefined;
    model.releaseCache(cache);
  }
  // a prompt longer than one matrix pass arrives in chunks of rows: join them
  const out: Trace = {};
  for (const [key, chunks] of [...parts].sort((a, b) => forwardRank(a[0]) - forwardRank(b[0]))) {
    const data = new Float32Array(chunks.reduce((a, c) => a + c.data.length, 0));
    chunks.reduce((at, c) => (data.set(c.data, at), at + c.data.length), 0);
    out[key] = { shape: [chunks.reduce((a, c) => a + c.shape[0]!, 0), ...chunks[0]!.shape.slice(1)], data };
  }
  return out;
}

export interface TapComparison {
  name: string;
  shape: number[];
  maxAbs: number; // max |a - b|
  rel: number; // max |a - b| / max |b|
  cosine: number; // cosine similarity of a and b as vectors
  ok: boolean; // rel ≤ rtol
}

export class TraceMismatch extends Error {
  override name = "TraceMismatch";
}

/** Compare trace `a` to the reference `b`, tap by tap in forward order. Names and shapes must agree. */
export function compareTraces(a: Trace, b: Trace, rtol: number): { rows: TapComparison[]; firstDivergence?: string } {
  const names = Object.keys(b).sort((x, y) => forwardRank(x) - forwardRank(y));
  const onlyA = Object.keys(a).filter((n) => !(n in b)), onlyB = names.filter((n) => !(n in a));
  if (onlyA.length || onlyB.length)
    throw new TraceMismatch(`the traces hold different taps: ${[...onlyA.map((n) => `${n} only in the first`), ...onlyB.map((n) => `${n} only in the second`)].slice(0, 4).join(", ")}`);
  const rows = names.map((name): TapComparison => {
    const x = a[name]!, y = b[name]!;
    if (x.shape.join() !== y.shape.join()) throw new TraceMismatch(`tap ${name} has shape [${x.shape}] in the first trace and [${y.shape}] in the second`);
    let maxAbs = 0, scale = 0, dot = 0, nx = 0, ny = 0;
    for (let i = 0; i < y.data.length; i++) {
      const u = x.data[i]!, v = y.data[i]!;
      maxAbs = Math.max(maxAbs, Math.abs(u - v));
      scale = Math.max(scale, Math.abs(v));
      dot += u * v;
      nx += u * u;
      ny += v * v;
    }
    const rel = scale > 0 ? maxAbs / scale : maxAbs;
    const cosine = nx > 0 && ny > 0 ? dot / Math.sqrt(nx * ny) : nx === ny ? 1 : 0;
    return { name, shape: y.shape, maxAbs, rel, cosine, ok: rel <= rtol && !Number.isNaN(rel) };
  });
  return { rows, firstDivergence: rows.find((r) => !r.ok)?.name };
}

/** A trace as F32 safetensors (tensors in forward order). */
export function encodeTrace(t: Trace, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(Object.entries(t).map(([name, x]) => ({ name, dtype: "f32" as const, shape: x.shape, data: new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength) })), metadata);
}

/** Read a trace from safetensors (F32, or F16/BF16 widened). */
export async function readTrace(src: ByteSource): Promise<Trace> {
  const out: Trace = {};
  for (const e of await readHeader(src)) {
    const raw = new Uint8Array(e.bytes);
    await src.read(e.offset, raw);
    const count = e.shape.reduce((a, b) => a * b, 1), data = new Float32Array(count);
    convert(raw, e.dtype, new Uint8Array(data.buffer), "f32", count);
    out[e.name] = { shape: e.shape, data };
  }
  return out;
}
