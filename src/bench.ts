// Measuring the model: prefill and decode speed, memory bandwidth, and a per-kernel profile of a step.
// Used by `openelm bench` and by bench/; works in any host.
import type { Kernels } from "./kernels/types.js";
import { seededRandom } from "./generation/sampler.js";
import type { OpenELM } from "./model.js";
import type { Weights } from "./weights.js";
import { tensorBytes, type DType } from "./dtype.js";

/** Bytes of weights one decode step reads: every matrix once (the embedding table once, as the output head). */
export function weightBytesPerToken(w: Weights): number {
  const bytes = (t: { dtype: DType; shape: number[] }) => tensorBytes(t.dtype, t.shape);
  return w.layers.reduce((s, l) => s + bytes(l.qkvProj) + bytes(l.outProj) + bytes(l.proj1) + bytes(l.proj2), 0) + bytes(w.lmHead);
}

/** The weight matrices in the first memory as one byte range (they are allocated back to back). */
function weightRange(w: Weights, arena: OpenELM["arena"]): [number, number] {
  const all = [w.tokenEmbeddings, w.lmHead, ...w.layers.flatMap((l) => [l.qkvProj, l.outProj, l.proj1, l.proj2])]
    .filter((t) => arena.memoryOf(t.ptr) === arena.memoryOf(w.tokenEmbeddings.ptr));
  const start = Math.min(...all.map((t) => t.ptr));
  const end = Math.max(...all.map((t) => t.ptr + tensorBytes(t.dtype, t.shape)));
  return [start, end];
}

/** Read bandwidth in GB/s, measured by the kernels' streaming-read probe over the model's own weights. */
export function measureBandwidth(model: OpenELM, repeats = 10): number | undefined {
  const k = model.kernels as Kernels & { readBytes?: (ptr: number, bytes: number) => void };
  if (!k.readBytes) return undefined;
  const [start, end] = weightRange(model.weights, model.arena);
  const bytes = Math.floor((end - start) / 64) * 64;
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    k.readBytes(start, bytes);
    best = Math.min(best, performance.now() - t0);
  }
  return bytes / (best / 1000) / 1e9;
}

/** What `measureSpeed` times: a prefill of `prefill` tokens, then `decode` decode steps. */
export interface SpeedOptions {
  prefill: number; // prompt tokens processed as one prefill
  decode: number; // decode steps timed
  context?: number; // decode after this many cached positions (default: right after the prefill)
  seed?: number;
  /** Called when the timed decode steps begin (e.g. to reset a profile). */
  beforeDecode?: () => void;
}

/** Tokens and tokens/s of the prefill and the decode steps (the fields of `openelm bench --json`). */
export interface SpeedResult {
  prefill_tokens: number;
  prefill_tok_s: number;
  decode_tokens: number;
  decode_context: number;
  decode_tok_s: number;
}

/**
 * Time one prefill of `prefill` random tokens, then `decode` single-token steps. With `context`, the steps
 * start at that cache length; the cache then holds placeholder keys and values for the positions not
 * computed, which costs the same as real ones (speed does not depend on values).
 */
export function measureSpeed(model: OpenELM, opts: SpeedOptions): SpeedResult {
  const random = seededRandom(opts.seed ?? 1), V = model.config.vocabSize;
  const token = () => Math.floor(random() * V);
  const cache = model.newCache();
  const t0 = performance.now();
  if (opts.prefill > 0) model.forward(cache, Array.from({ length: opts.prefill }, token));
  const t1 = performance.now();
  if (opts.context !== undefined) {
    if (opts.context + opts.decode > cache.capacity) throw new RangeError(`context ${opts.context} + ${opts.decode} decode steps exceed the context length ${cache.capacity}`);
    model.reserve(cache, opts.context + opts.decode);
    cache.length = Math.max(cache.length, opts.context);
  }
  const decodeContext = cache.length;
  opts.beforeDecode?.();
  const t2 = performance.now();
  for (let i = 0; i < opts.decode; i++) model.forward(cache, [token()]);
  const t3 = performance.now();
  model.releaseCache(cache);
  return {
    prefill_tokens: opts.prefill,
    prefill_tok_s: opts.prefill / ((t1 - t0) / 1000),
    decode_tokens: opts.decode,
    decode_context: decodeContext,
    decode_tok_s: opts.decode / ((t3 - t2) / 1000),
  };
}

/**
 * Wraps a kernel set and adds up the time spent in each kernel: matrix products by role and weight type,
 * so that a mix such as q4_k_m shows what each block format costs.
 */
export class KernelProfile {
  readonly totals = new Map<string, { ms: number; calls: number }>();
  readonly kernels: Kernels;

  constructor(inner: Kernels, vocabSize: number) {
    const totals = this.totals;
    this.kernels = new Proxy(inner, {
      get(target, prop, receiver) {
        const f = Reflect.get(target, prop, receiver);
        if (typeof f !== "function" || prop === "constructor") return f;
        return (...args: number[]) => {
          // matmul(out, x, w, wType, m, n, k)
          const name = prop === "matmul" ? `matmul (${args[5] === vocabSize ? "output head" : "layers"}, ${args[3]})` : String(prop);
          const t0 = performance.now();
          const result = f.apply(target, args);
          const e = totals.get(name) ?? { ms: 0, calls: 0 };
          e.ms += performance.now() - t0;
          e.calls++;
          totals.set(name, e);
          return result;
        };
      },
    });
  }
}
