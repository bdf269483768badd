// OpenELM: a decoder-only transformer whose layers differ in width ("layer-wise scaling").
// Every layer l has its own number of query heads, kv heads and FFN width (see config.ts).
// All arithmetic is float32; weights may be stored as f32, f16 or bf16 and are widened by the kernels.
import type { Arena } from "./arena.js";
import type { OpenELMConfig } from "./config.js";
import { BYTES } from "./dtype.js";
import type { Kernels } from "./kernels/types.js";
import type { Weights } from "./weights.js";

const F = 4; // bytes per float32

/** Keys and values of every layer for positions 0..length-1 of one sequence. */
export class KVCache {
  length = 0;
  constructor(
    readonly capacity: number,
    readonly k: number[], // per layer: [capacity, kvHeads[l], headDim]
    readonly v: number[], // per layer: [capacity, kvHeads[l], headDim]
  ) {}
}

export class ContextError extends RangeError {
  override name = "ContextError";
}

export interface ForwardOptions {
  /** Logits for every position (for `openelm logits`); by default only for the last one. */
  allPositions?: boolean;
}

/**
 * RoPE tables as CoreNet computes them, all in float32: inv_freq = 1 / base^(2i/headDim),
 * theta = position · inv_freq, and cos/sin of theta. Shape [positions, headDim/2] each.
 */
export function ropeTables(positions: number, headDim: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2, f = Math.fround;
  const invFreq = Array.from({ length: half }, (_, i) => f(1 / f(base ** f((2 * i) / headDim))));
  const cos = new Float32Array(positions * half), sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      const theta = f(p * invFreq[i]!);
      cos[p * half + i] = Math.cos(theta);
      sin[p * half + i] = Math.sin(theta);
    }
  return { cos, sin };
}

export class OpenELM {
  /** Work buffers in the arena, sized for `maxRows` positions at a time. */
  private readonly buf: {
    x: number; // [rows, modelDim]   the residual stream
    h: number; // [rows, modelDim]   normed input / projection output
    qkv: number; // [rows, (q + 2kv)·headDim]  fused projection
    q: number; // [rows, q·headDim]  queries, one head after another
    attn: number; // [rows, q·headDim]  attention output before out_proj
    ffn: number; // [rows, 2·ffnDim]  proj_1 output: gate | up
    act: number; // [rows, ffnDim]    act(gate)·up
    logits: number; // [rows, vocab]
    cos: number; // [capacity, headDim/2]
    sin: number; // [capacity, headDim/2]
  };

  constructor(
    readonly config: OpenELMConfig,
    readonly weights: Weights,
    readonly arena: Arena,
    readonly kernels: Kernels,
    /** Longest sequence a cache can hold (at most max_context_length). */
    readonly contextLength = config.maxContextLength,
    /** Positions processed together in one matrix pass; longer prompts go in chunks. */
    readonly maxRows = 64,
  ) {
    const c = config, R = maxRows;
    const maxQ = Math.max(...c.numQueryHeads) * c.headDim;
    const maxQkv = Math.max(...c.numQueryHeads.map((q, l) => q + 2 * c.numKvHeads[l]!)) * c.headDim;
    const maxFfn = Math.max(...c.ffnDims);
    const a = (floats: number, what: string) => arena.alloc(floats * F, what);
    this.buf = {
      x: a(R * c.modelDim, "activations"),
      h: a(R * c.modelDim, "activations"),
      qkv: a(R * maxQkv, "activations"),
      q: a(R * maxQ, "activations"),
      attn: a(R * maxQ, "activations"),
      ffn: a(R * 2 * maxFfn, "activations"),
      act: a(R * maxFfn, "activations"),
      logits: a(R * c.vocabSize, "logits"),
      cos: a((contextLength * c.headDim) / 2, "rope table"),
      sin: a((contextLength * c.headDim) / 2, "rope table"),
    };
    const { cos, sin } = ropeTables(contextLength, c.headDim, c.ropeFreqConstant);
    arena.floats(this.buf.cos, cos.length).set(cos);
    arena.floats(this.buf.sin, sin.length).set(sin);
  }

  /** Stop the kernels' worker threads (in Node they never keep the process alive; close frees them sooner). */
  close(): Promise<void> {
    return this.kernels.close();
  }

  /** A KV cache for one sequence of up to `capacity` positions. */
  newCache(capacity = this.contextLength): KVCache {
    if (capacity > this.contextLength) throw new ContextError(`cache of ${capacity} positions exceeds the context length ${this.contextLength}`);
    const c = this.config;
    const per = (l: number) => capacity * c.numKvHeads[l]! * c.headDim * F;
    return new KVCache(
      capacity,
      c.numKvHeads.map((_, l) => this.arena.alloc(per(l), "KV cache")),
      c.numKvHeads.map((_, l) => this.arena.alloc(per(l), "KV cache")),
    );
  }

  /**
   * Run `ids` through the model after the positions already in `cache`, appending their keys and values.
   * Returns logits [1, vocab] for the last position, or [ids.length, vocab] with `allPositions`.
   */
  forward(cache: KVCache, ids: ArrayLike<number>, opts: ForwardOptions = {}): Float32Array {
    const V = this.config.vocabSize;
    if (ids.length === 0) throw new RangeError("forward: no token ids");
    for (let i = 0; i < ids.length; i++)
      if (!Number.isInteger(ids[i]) || ids[i]! < 0 || ids[i]! >= V) throw new RangeError(`token id ${ids[i]} at index ${i} is out of range [0, ${V})`);
    if (cache.length + ids.length > cache.capacity)
      throw new ContextError(`context too long: ${cache.length} cached + ${ids.length} new tokens exceed the context length ${cache.capacity}`);
    const all = Array.from(ids), out = new Float32Array((opts.allPositions ? ids.length : 1) * V);
    for (let start = 0; start < all.length; start += this.maxRows) {
      const chunk = all.slice(start, start + this.maxRows);
      const last = start + chunk.length === ids.length;
      const rows = opts.allPositions ? chunk.length : last ? 1 : 0;
      this.step(cache, chunk, rows);
      if (rows) out.set(this.arena.floats(this.buf.logits, rows * V), opts.allPositions ? start * V : 0);
    }
    return out;
  }

  /** One matrix pass over T ≤ maxRows positions; leaves logits of the last `logitRows` positions in buf.logits. */
  private step(cache: KVCache, ids: number[], logitRows: number): void {
    const { config: c, weights: w, kernels: k, buf: b } = this;
    const T = ids.length, pos0 = cache.length, D = c.modelDim, hd = c.headDim, eps = c.normEps;

    // token embeddings → x [T, D]
    const emb = w.tokenEmbeddings, rowBytes = D * BYTES[emb.dtype];
    ids.forEach((id, t) => k.widen(b.x + t * D * F, emb.ptr + id * rowBytes, emb.dtype, D));

    for (let l = 0; l < c.numLayers; l++) {
      const L = w.layers[l]!, nq = c.numQueryHeads[l]!, nkv = c.numKvHeads[l]!, ffn = c.ffnDims[l]!;
      const qkvWidth = (nq + 2 * nkv) * hd;
      const kNew = cache.k[l]! + pos0 * nkv * hd * F; // [T, nkv, hd] rows of the cache for these positions
      const vNew = cache.v[l]! + pos0 * nkv * hd * F;

      // attention pre-norm → h [T, D]
      k.rmsNorm(b.h, b.x, L.attnNorm.ptr, T, D, eps);
      // fused projection → qkv [T, (nq + 2·nkv)·hd]
      k.matmul(b.qkv, b.h, L.qkvProj.ptr, L.qkvProj.dtype, T, qkvWidth, D);
      // split heads: q → [T, nq, hd]; k and v go straight into the cache
      k.copyRows(b.q, nq * hd, b.qkv, qkvWidth, T, nq * hd);
      k.copyRows(kNew, nkv * hd, b.qkv + nq * hd * F, qkvWidth, T, nkv * hd);
      k.copyRows(vNew, nkv * hd, b.qkv + (nq + nkv) * hd * F, qkvWidth, T, nkv * hd);
      // QK-norm: RMSNorm over each head's vector
      if (L.qNorm && L.kNorm) {
        k.rmsNorm(b.q, b.q, L.qNorm.ptr, T * nq, hd, eps);
        k.rmsNorm(kNew, kNew, L.kNorm.ptr, T * nkv, hd, eps);
      }
      // rotary position embedding of q and k at positions pos0..pos0+T-1
      k.rope(b.q, b.cos, b.sin, T, nq, hd, pos0);
      k.rope(kNew, b.cos, b.sin, T, nkv, hd, pos0);
      // causal grouped-query attention over the cache → attn [T, nq·hd]
      k.attention(b.attn, b.q, cache.k[l]!, cache.v[l]!, T, pos0, nq, nkv, hd);
      // out projection → h [T, D], then the residual
      k.matmul(b.h, b.attn, L.outProj.ptr, L.outProj.dtype, T, D, nq * hd);
      k.add(b.x, b.h, T * D);

      // FFN pre-norm → h [T, D]
      k.rmsNorm(b.h, b.x, L.ffnNorm.ptr, T, D, eps);
      // proj_1 → ffn [T, 2·ffn] (gate | up) with GLU, else [T, ffn]
      k.matmul(b.ffn, b.h, L.proj1.ptr, L.proj1.dtype, T, L.proj1.shape[0]!, D);
      // act(gate) · up → act [T, ffn]
      k.activate(b.act, b.ffn, T, ffn, c.activation, c.ffnWithGlu);
      // proj_2 → h [T, D], then the residual
      k.matmul(b.h, b.act, L.proj2.ptr, L.proj2.dtype, T, D, ffn);
      k.add(b.x, b.h, T * D);
    }
    cache.length += T;
    if (logitRows === 0) return;

    // final norm of the rows we need logits for → h [logitRows, D]
    const from = b.x + (T - logitRows) * D * F;
    k.rmsNorm(b.h, from, w.norm.ptr, logitRows, D, eps);
    // output head (the embedding matrix when shared) → logits [logitRows, vocab]
    k.matmul(b.logits, b.h, w.lmHead.ptr, w.lmHead.dtype, logitRows, c.vocabSize, D);
  }
}
