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
import { convert, isQuantized } from "./dtype.js";
import { encodeSafetensors, readHeader, type TensorEntry } from "./formats/safetensors.js";

/** The taps of each layer, in forward order (README: "For port authors"). */
export const LAYER_TAPS = ["attn_norm", "q", "k", "v", "q_rope", "k_rope", "attn", "attn_out", "resid_attn", "ffn_norm", "ffn_gate", "ffn_up", "ffn_act", "ffn_out", "resid_ffn"];

/** A tap's values as float32, with its shape. */
export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

/** Taps by name (`embed`, `layers.N.NAME`, `norm`, `logits`). */
export type Trace = Record<string, Tensor32>;

/** Rank of a tap name in forward order (unknown names last). */
export function forwardRank(name: string): number {
  if (name === "embed") return 0;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) return 1 + Number(m[1]) * 100 + LAYER_TAPS.indexOf(m[2]!) + (LAYER_TAPS.includes(m[2]!) ? 0 : 99);
  return name === "norm" ? 1e9 : name === "logits" ? 1e9 + 1 : 2e9;
}

/** Run `ids` through the model once (a fresh cache) and collect the taps whose names pass `filter` (default: all). */
export function trace(model: OpenELM, ids: number[], filter: (name: string) => boolean = () => true): Trace {
  const parts = new Map<string, Tensor32[]>();
  model.onTap = (name, layer, data, shape) => {
    const key = layer === undefined ? name : `layers.${layer}.${name}`;
    if (filter(key)) parts.set(key, [...(parts.get(key) ?? []), { shape, data }]);
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

/** How one tap of a trace compares with the reference's. */
export interface TapComparison {
  name: string;
  shape: number[];
  maxAbs: number; // max |a - b|
  rel: number; // max |a - b| / max |b|
  cosine: number; // cosine similarity of a and b as vectors
  ok: boolean; // rel ≤ rtol
}

/** Two traces that cannot be compared: different tap names or shapes. */
export class TraceMismatch extends Error {
  override name = "TraceMismatch";
}

/** Tap names and shapes of both traces, in forward order; names and shapes must agree. */
function pairTaps(a: Map<string, number[]>, b: Map<string, number[]>): [string, number[]][] {
  const names = [...b.keys()].sort((x, y) => forwardRank(x) - forwardRank(y));
  const onlyA = [...a.keys()].filter((n) => !b.has(n)), onlyB = names.filter((n) => !a.has(n));
  if (onlyA.length || onlyB.length)
    throw new TraceMismatch(`the traces hold different taps: ${[...onlyA.map((n) => `${n} only in the first`), ...onlyB.map((n) => `${n} only in the second`)].slice(0, 4).join(", ")}`);
  for (const name of names)
    if (a.get(name)!.join() !== b.get(name)!.join()) throw new TraceMismatch(`tap ${name} has shape [${a.get(name)}] in the first trace and [${b.get(name)}] in the second`);
  return names.map((name) => [name, b.get(name)!]);
}

/** One tap of `x` against the reference `y`. */
function compareTap(name: string, shape: number[], x: Float32Array, y: Float32Array, rtol: number): TapComparison {
  let maxAbs = 0, scale = 0, dot = 0, nx = 0, ny = 0;
  for (let i = 0; i < y.length; i++) {
    const u = x[i]!, v = y[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(u - v));
    scale = Math.max(scale, Math.abs(v));
    dot += u * v;
    nx += u * u;
    ny += v * v;
  }
  const rel = scale > 0 ? maxAbs / scale : maxAbs;
  const cosine = nx > 0 && ny > 0 ? dot / Math.sqrt(nx * ny) : nx === ny ? 1 : 0;
  return { name, shape, maxAbs, rel, cosine, ok: rel <= rtol && !Number.isNaN(rel) };
}

const shapesOf = (t: Trace) => new Map(Object.entries(t).map(([n, x]) => [n, x.shape]));
const result = (rows: TapComparison[]) => ({ rows, firstDivergence: rows.find((r) => !r.ok)?.name });

/** Compare trace `a` to the reference `b`, tap by tap in forward order. Names and shapes must agree. */
export function compareTraces(a: Trace, b: Trace, rtol: number): { rows: TapComparison[]; firstDivergence?: string } {
  return result(pairTaps(shapesOf(a), shapesOf(b)).map(([name, shape]) => compareTap(name, shape, a[name]!.data, b[name]!.data, rtol)));
}

/** compareTraces for two trace files, read one tap at a time so that memory holds two taps, not two traces. */
export async function compareTraceFiles(a: ByteSource, b: ByteSource, rtol: number): Promise<{ rows: TapComparison[]; firstDivergence?: string }> {
  const [ea, eb] = [await readHeader(a), await readHeader(b)].map((es) => new Map(es.map((e) => [e.name, e])));
  const shapes = (es: Map<string, TensorEntry>) => new Map([...es].map(([n, e]) => [n, e.shape]));
  const rows: TapComparison[] = [];
  for (const [name, shape] of pairTaps(shapes(ea!), shapes(eb!)))
    rows.push(compareTap(name, shape, await readTensor(ea!.get(name)!), await readTensor(eb!.get(name)!), rtol));
  return result(rows);
}

/** One tensor of a safetensors file as float32 (F16/BF16 widened). */
async function readTensor(e: TensorEntry): Promise<Float32Array> {
  if (isQuantized(e.dtype)) throw new TraceMismatch(`tap ${e.name} is ${e.dtype}; traces are F32, F16 or BF16`);
  const raw = new Uint8Array(e.bytes);
  await e.read(0, raw);
  const count = e.shape.reduce((x, y) => x * y, 1), data = new Float32Array(count);
  convert(raw, e.dtype, new Uint8Array(data.buffer), "f32", count);
  return data;
}

/** A trace as F32 safetensors (tensors in forward order). */
export function encodeTrace(t: Trace, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(Object.entries(t).map(([name, x]) => ({ name, dtype: "f32" as const, shape: x.shape, data: new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength) })), metadata);
}

/** Read a trace from safetensors (F32, or F16/BF16 widened). */
export async function readTrace(src: ByteSource): Promise<Trace> {
  const out: Trace = {};
  for (const e of await readHeader(src)) out[e.name] = { shape: e.shape, data: await readTensor(e) };
  return out;
}
