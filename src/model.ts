// OpenELM: a decoder-only transformer whose layers differ in width ("layer-wise scaling").
// Every layer l has its own number of query heads, kv heads and FFN width (see config.ts).
// All arithmetic is float32; weights may be stored as f32, f16, bf16 or in ggml's quantized blocks, which
// the kernels read as they compute.
import type { Arena } from "./arena.js";
import type { OpenELMConfig } from "./config.js";
import { rowBytes } from "./dtype.js";
import { kernelWorkspace, type Kernels } from "./kernels/types.js";
import type { Weights } from "./weights.js";

const F = 4; // bytes per float32

/** Keys and values of every layer for positions 0..length-1 of one sequence. */
export class KVCache {
  length = 0;
  constructor(
    /** Most positions it may hold: a cap (--context), or Infinity to grow as long as memory lasts. */
    readonly capacity: number,
    /** Positions allocated so far; the model doubles this as the sequence grows, up to capacity. */
    public allocated: number,
    readonly k: number[], // per layer: [allocated, kvHeads[l], headDim]
    readonly v: number[], // per layer: [allocated, kvHeads[l], headDim]
  ) {}
}

/** Positions a new cache allocates at first (a short chat should not hold a whole context of memory). */
const FIRST_POSITIONS = 256;

/** A sequence that would pass the context length set by `ModelOptions.contextLength` (`--context`). */
export class ContextError extends RangeError {
  override name = "ContextError";
}

/** Logits that are not finite: the activations overflowed float32. Nothing may be sampled from them. */
export class NumericError extends RangeError {
  override name = "NumericError";
}

/** Some new tokens of one sequence, continuing its cache. */
interface Segment {
  cache: KVCache;
  ids: number[];
}

/**
 * A named intermediate of the forward pass (for tracing; see TAPS in src/trace.ts): its name, its layer
 * (undefined for embed, norm, logits), and a copy of its values with their shape.
 */
export type TapFn = (name: string, layer: number | undefined, data: Float32Array, shape: number[]) => void;

/** Options of one forward pass. */
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

type BufferName = "x" | "h" | "qkv" | "q" | "attn" | "ffn" | "act" | "logits" | "cos" | "sin";

/** Floats in each work buffer, sized for `rows` positions at a time and RoPE tables of `positions`. */
function bufferFloats(c: OpenELMConfig, positions: number, rows: number): Record<BufferName, number> {
  const maxQ = Math.max(...c.numQueryHeads) * c.headDim;
  const maxQkv = Math.max(...c.numQueryHeads.map((q, l) => q + 2 * c.numKvHeads[l]!)) * c.headDim;
  const maxFfn = Math.max(...c.ffnDims);
  return {
    x: rows * c.modelDim, // [rows, modelDim]   the residual stream
    h: rows * c.modelDim, // [rows, modelDim]   normed input / projection output
    qkv: rows * maxQkv, // [rows, (q + 2kv)·headDim]  fused projection
    q: rows * maxQ, // [rows, q·headDim]  queries, one head after another
    attn: rows * maxQ, // [rows, q·headDim]  attention output before out_proj
    ffn: rows * 2 * maxFfn, // [rows, 2·ffnDim]  proj_1 output: gate | up
    act: rows * maxFfn, // [rows, ffnDim]    act(gate)·up
    logits: rows * c.vocabSize, // [rows, vocab]
    cos: (positions * c.headDim) / 2, // [positions, headDim/2]
    sin: (positions * c.headDim) / 2, // [positions, headDim/2]
  };
}

/** An OpenELM model in memory: `forward` runs tokens through every layer with a KV cache and returns logits. */
export class OpenELM {
  /** Work buffers in the arena (see bufferFloats for their shapes). */
  private readonly buf: Record<BufferName, number>;
  /** Positions the RoPE tables cover; they grow with the longest cache. */
  private ropePositions: number;
  private warnedPastTraining = false;
  /** When set, receives every named intermediate of the forward pass. */
  onTap?: TapFn;
  /** Receives notices, e.g. that a sequence passed the trained context (default: console.warn). */
  onWarning: (message: string) => void = (m) => console.warn(`openelm: ${m}`);

  constructor(
    readonly config: OpenELMConfig,
    readonly weights: Weights,
    readonly arena: Arena,
    readonly kernels: Kernels,
    /**
     * Longest sequence a cache may hold. By default there is no cap: like Apple's code, the model runs
     * past max_context_length (rotary embeddings exist for every position) and caches grow as needed.
     */
    readonly contextLength = Infinity,
    /** Positions processed together in one matrix pass; longer prompts go in chunks. */
    readonly maxRows = 64,
  ) {
    if (!(contextLength >= 1)) throw new RangeError(`the context length must be at least 1, got ${contextLength}`);
    this.ropePositions = OpenELM.plannedPositions(config, contextLength);
    const floats = Object.entries(bufferFloats(config, this.ropePositions, maxRows)) as [BufferName, number][];
    this.buf = Object.fromEntries(floats.map(([name, n]) => [name, arena.alloc(n * F, name)])) as Record<BufferName, number>;
    this.writeRope();
    const ws = OpenELM.workspaceBytes(config, maxRows, (kernels as { threads?: number }).threads ?? 1);
    kernels.workspace(arena.alloc(ws, "kernel workspace"), ws);
  }

  /** Positions memory is planned for: the cap, or without one the trained context. */
  static plannedPositions(c: OpenELMConfig, contextLength: number): number {
    return Number.isFinite(contextLength) ? contextLength : c.maxContextLength;
  }

  /** Bytes of the work buffers for a context length and row count (to plan memory before loading). */
  static bufferBytes(c: OpenELMConfig, contextLength: number, maxRows = 64): number {
    const buffers = Object.values(bufferFloats(c, OpenELM.plannedPositions(c, contextLength), maxRows)).reduce((a, n) => a + n * F + 64, 0);
    return buffers + OpenELM.workspaceBytes(c, maxRows) + 64;
  }

  /** The kernels' workspace: activations are quantized or reordered into it before a product (the longest rows are the FFN's or attention's). */
  private static workspaceBytes(c: OpenELMConfig, maxRows: number, threads = 1): number {
    return kernelWorkspace(maxRows, Math.max(c.modelDim, ...c.ffnDims, ...c.numQueryHeads.map((q) => q * c.headDim)), threads);
  }

  private writeRope(): void {
    const { cos, sin } = ropeTables(this.ropePositions, this.config.headDim, this.config.ropeFreqConstant);
    this.arena.write(this.buf.cos, cos);
    this.arena.write(this.buf.sin, sin);
  }

  /** Bytes of one layer's KV cache of `capacity` positions. */
  static kvBytes(c: OpenELMConfig, layer: number, capacity: number): number {
    return 2 * capacity * c.numKvHeads[layer]! * c.headDim * F;
  }

  /** Stop the kernels' worker threads (in Node they never keep the process alive; close frees them sooner). */
  close(): Promise<void> {
    return this.kernels.close();
  }

  /** Caches given back with releaseCache, ready for reuse (arena memory is never freed). */
  private readonly spare: KVCache[] = [];

  /** A KV cache for one sequence of up to `capacity` positions (a released one when there is one). */
  newCache(capacity = this.contextLength): KVCache {
    if (capacity > this.contextLength) throw new ContextError(`cache of ${capacity} positions exceeds the context length ${this.contextLength}`);
    const reuse = this.spare.findIndex((c) => c.capacity === capacity);
    if (reuse >= 0) {
      const cache = this.spare.splice(reuse, 1)[0]!;
      cache.length = 0;
      return cache;
    }
    const positions = Math.min(capacity, FIRST_POSITIONS), layers = this.weights.layers;
    // each layer's keys and values sit beside its weights (in the same memory, for models over 4 GiB)
    const alloc = (l: number) => this.arena.allocBeside(layers[l]!.qkvProj.ptr, OpenELM.kvBytes(this.config, l, positions) / 2, "KV cache");
    return new KVCache(capacity, positions, layers.map((_, l) => alloc(l)), layers.map((_, l) => alloc(l)));
  }

  /**
   * Make room in `cache` for `positions` positions: the cache doubles (copying what it holds) and the
   * RoPE tables grow with it. Past max_context_length the model warns once and goes on, as Apple's does.
   */
  reserve(cache: KVCache, positions: number): void {
    if (positions > cache.capacity)
      throw new ContextError(`context too long: ${positions} positions exceed the context length ${cache.capacity} (--context)`);
    if (positions > cache.allocated) {
      const grown = Math.min(cache.capacity, Math.max(positions, 2 * cache.allocated));
      const move = (ptr: number, l: number) => {
        const rowBytes = OpenELM.kvBytes(this.config, l, 1) / 2;
        const moved = this.arena.allocBeside(ptr, grown * rowBytes, "KV cache");
        this.arena.bytes(moved, cache.length * rowBytes).set(this.arena.bytes(ptr, cache.length * rowBytes));
        this.arena.free(ptr, cache.allocated * rowBytes);
        return moved;
      };
      cache.k.forEach((ptr, l) => (cache.k[l] = move(ptr, l)));
      cache.v.forEach((ptr, l) => (cache.v[l] = move(ptr, l)));
      cache.allocated = grown;
    }
    if (positions > this.ropePositions) {
      const bytes = (this.ropePositions * this.config.headDim / 2) * F;
      this.arena.free(this.buf.cos, bytes);
      this.arena.free(this.buf.sin, bytes);
      this.ropePositions = Math.max(positions, cache.allocated);
      this.buf.cos = this.arena.alloc((this.ropePositions * this.config.headDim / 2) * F, "cos");
      this.buf.sin = this.arena.alloc((this.ropePositions * this.config.headDim / 2) * F, "sin");
      this.writeRope();
    }
    if (positions > this.config.maxContextLength && !this.warnedPastTraining) {
      this.warnedPastTraining = true;
      this.onWarning(`a sequence passed the trained context of ${this.config.maxContextLength} tokens (max_context_length); the model goes on as Apple's code does, but it was not trained that far (--context N caps it)`);
    }
  }

  /** Report a named intermediate: `shape` rows (shape[0]) of prod(shape[1:]) floats, `stride` floats apart. */
  private tap(name: string, layer: number | undefined, ptr: number, shape: number[], stride?: number): void {
    if (!this.onTap) return;
    const width = shape.slice(1).reduce((a, b) => a * b, 1);
    this.onTap(name, layer, this.kernels.read(ptr, shape[0]!, width, stride ?? width), shape);
  }

  /** Give a cache back for a later newCache to reuse. */
  releaseCache(cache: KVCache): void {
    if (!this.spare.includes(cache)) this.spare.push(cache);
  }

  /**
   * Run `ids` through the model after the positions already in `cache`, appending their keys and values.
   * Returns logits [1, vocab] for the last position, or [ids.length, vocab] with `allPositions`.
   */
  forward(cache: KVCache, ids: ArrayLike<number>, opts: ForwardOptions = {}): Float32Array {
    const V = this.config.vocabSize, all = Array.from(ids);
    this.check(cache, all);
    const out = new Float32Array((opts.allPositions ? all.length : 1) * V);
    for (let start = 0; start < all.length; start += this.maxRows) {
      const chunk = all.slice(start, start + this.maxRows);
      const last = start + chunk.length === all.length;
      const rows = opts.allPositions ? chunk.map((_, i) => i) : last ? [chunk.length - 1] : [];
      this.step([{ cache, ids: chunk }], rows);
      if (rows.length) out.set(this.arena.floats(this.buf.logits, rows.length * V), opts.allPositions ? start * V : 0);
    }
    return out;
  }

  /**
   * Run several sequences at once, each after its own cache: the matrix products see all their rows
   * together, so the weights are read once per step for the whole batch. Returns each sequence's logits
   * [vocab] at its last position.
   */
  forwardBatch(caches: KVCache[], ids: number[][]): Float32Array[] {
    const V = this.config.vocabSize;
    if (caches.length !== ids.length) throw new RangeError(`forwardBatch: ${caches.length} caches for ${ids.length} sequences`);
    if (new Set(caches).size !== caches.length) throw new RangeError("forwardBatch: a cache appears twice in one batch");
    ids.forEach((seq, i) => this.check(caches[i]!, seq));
    const out = ids.map(() => new Float32Array(V));
    const done = ids.map(() => 0); // tokens of each sequence already run
    while (done.some((d, i) => d < ids[i]!.length)) {
      // pack pieces of the sequences into one step of at most maxRows rows
      const segments: Segment[] = [], rows: number[] = [], owners: number[] = [];
      let used = 0;
      for (let i = 0; i < ids.length && used < this.maxRows; i++) {
        const piece = ids[i]!.slice(done[i], done[i]! + this.maxRows - used);
        if (piece.length === 0) continue;
        segments.push({ cache: caches[i]!, ids: piece });
        done[i]! += piece.length;
        used += piece.length;
        if (done[i] === ids[i]!.length) {
          rows.push(used - 1);
          owners.push(i);
        }
      }
      this.step(segments, rows);
      const logits = this.arena.floats(this.buf.logits, rows.length * V);
      owners.forEach((seq, r) => out[seq]!.set(logits.subarray(r * V, (r + 1) * V)));
    }
    return out;
  }

  /** Token ids in range and room in the cache, or a clear error. */
  private check(cache: KVCache, ids: number[]): void {
    const V = this.config.vocabSize;
    if (ids.length === 0) throw new RangeError("forward: no token ids");
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} at index ${i} is out of range [0, ${V})`);
    });
    if (cache.length + ids.length > cache.capacity)
      throw new ContextError(`context too long: ${cache.length} cached + ${ids.length} new tokens exceed the context length ${cache.capacity} (--context)`);
    this.reserve(cache, cache.length + ids.length);
  }

  /**
   * One matrix pass over the rows of every segment (at most maxRows in all), each segment a sequence
   * continuing its own cache; leaves the logits of the rows listed in `logitRows` in buf.logits.
   */
  private step(segments: Segment[], logitRows: number[]): void {
    const { config: c, weights: w, kernels: k, buf: b } = this;
    const rows = segments.flatMap((s) => s.ids), T = rows.length, D = c.modelDim, hd = c.headDim, eps = c.normEps;

    // token embeddings → x [T, D]
    const emb = w.tokenEmbeddings, embRow = rowBytes(emb.dtype, D)!;
    rows.forEach((id, t) => k.widen(b.x + t * D * F, emb.ptr + id * embRow, emb.dtype, D));
    this.tap("embed", undefined, b.x, [T, D]);

    for (let l = 0; l < c.numLayers; l++) {
      const L = w.layers[l]!, nq = c.numQueryHeads[l]!, nkv = c.numKvHeads[l]!, ffn = c.ffnDims[l]!;
      const qkvWidth = (nq + 2 * nkv) * hd;

      // attention pre-norm → h [T, D]
      k.rmsNorm(b.h, b.x, L.attnNorm.ptr, T, D, eps);
      this.tap("attn_norm", l, b.h, [T, D]);
      // fused projection → qkv [T, (nq + 2·nkv)·hd]
      k.matmul(b.qkv, b.h, L.qkvProj.ptr, L.qkvProj.dtype, T, qkvWidth, D);
      let r = 0; // first row of the segment
      for (const { cache, ids } of segments) {
        const n = ids.length, pos0 = cache.length;
        const qkv = b.qkv + r * qkvWidth * F, q = b.q + r * nq * hd * F;
        const kNew = cache.k[l]! + pos0 * nkv * hd * F; // [n, nkv, hd] rows of the cache for these positions
        const vNew = cache.v[l]! + pos0 * nkv * hd * F;
        // split heads: q → [n, nq, hd]; k and v go straight into this sequence's cache
        k.copyRows(q, nq * hd, qkv, qkvWidth, n, nq * hd);
        k.copyRows(kNew, nkv * hd, qkv + nq * hd * F, qkvWidth, n, nkv * hd);
        k.copyRows(vNew, nkv * hd, qkv + (nq + nkv) * hd * F, qkvWidth, n, nkv * hd);
        // QK-norm: RMSNorm over each head's vector
        if (L.qNorm && L.kNorm) {
          k.rmsNorm(q, q, L.qNorm.ptr, n * nq, hd, eps);
          k.rmsNorm(kNew, kNew, L.kNorm.ptr, n * nkv, hd, eps);
        }
        this.tap("q", l, q, [n, nq, hd]);
        this.tap("k", l, kNew, [n, nkv, hd]);
        this.tap("v", l, vNew, [n, nkv, hd]);
        // rotary position embedding of q and k at positions pos0..pos0+n-1
        k.rope(q, b.cos, b.sin, n, nq, hd, pos0);
        k.rope(kNew, b.cos, b.sin, n, nkv, hd, pos0);
        this.tap("q_rope", l, q, [n, nq, hd]);
        this.tap("k_rope", l, kNew, [n, nkv, hd]);
        // causal grouped-query attention over the cache → attn [n, nq·hd]
        k.attention(b.attn + r * nq * hd * F, q, cache.k[l]!, cache.v[l]!, n, pos0, nq, nkv, hd);
        this.tap("attn", l, b.attn + r * nq * hd * F, [n, nq * hd]);
        r += n;
      }
      // out projection → h [T, D], then the residual
      k.matmul(b.h, b.attn, L.outProj.ptr, L.outProj.dtype, T, D, nq * hd);
      this.tap("attn_out", l, b.h, [T, D]);
      k.add(b.x, b.h, T * D);
      this.tap("resid_attn", l, b.x, [T, D]);

      // FFN pre-norm → h [T, D]
      k.rmsNorm(b.h, b.x, L.ffnNorm.ptr, T, D, eps);
      this.tap("ffn_norm", l, b.h, [T, D]);
      // proj_1 → ffn [T, 2·ffn] (gate | up) with GLU, else [T, ffn]
      k.matmul(b.ffn, b.h, L.proj1.ptr, L.proj1.dtype, T, L.proj1.shape[0]!, D);
      if (c.ffnWithGlu) this.tap("ffn_gate", l, b.ffn, [T, ffn], 2 * ffn);
      this.tap("ffn_up", l, b.ffn + (c.ffnWithGlu ? ffn * F : 0), [T, ffn], L.proj1.shape[0]!);
      // act(gate) · up → act [T, ffn]
      k.activate(b.act, b.ffn, T, ffn, c.activation, c.ffnWithGlu);
      this.tap("ffn_act", l, b.act, [T, ffn]);
      // proj_2 → h [T, D], then the residual
      k.matmul(b.h, b.act, L.proj2.ptr, L.proj2.dtype, T, D, ffn);
      this.tap("ffn_out", l, b.h, [T, D]);
      k.add(b.x, b.h, T * D);
      this.tap("resid_ffn", l, b.x, [T, D]);
    }
    for (const s of segments) s.cache.length += s.ids.length;
    if (logitRows.length === 0) return;

    // the rows we need logits for → h [n, D], final norm
    logitRows.forEach((row, i) => k.copyRows(b.h + i * D * F, D, b.x + row * D * F, D, 1, D));
    k.rmsNorm(b.h, b.h, w.norm.ptr, logitRows.length, D, eps);
    this.tap("norm", undefined, b.h, [logitRows.length, D]);
    // output head (the embedding matrix when shared) → logits [n, vocab]
    k.matmul(b.logits, b.h, w.lmHead.ptr, w.lmHead.dtype, logitRows.length, c.vocabSize, D);
    this.tap("logits", undefined, b.logits, [logitRows.length, c.vocabSize]);
    // NaN or infinity here means float32 overflowed somewhere in the layers
    const bad = k.firstNonFinite(b.logits, "f32", logitRows.length * c.vocabSize);
    if (bad >= 0) throw new NumericError(`the logits are not finite (NaN or infinity at token ${bad % c.vocabSize} of row ${Math.floor(bad / c.vocabSize)}): the activations overflowed`);
  }
}
