// The kernel interface: everything model.ts computes goes through these calls. Arguments are byte
// offsets into the arena's memory (`out`, `x`, `w`, ...) and sizes; kernels never allocate.
import type { DType, FloatType } from "../dtype.js";

/** Workspace bytes quantized activations of `rows` × `k` take: int8 values (int16 for Q8_0 weights), an f32 scale per 32, an f32 sum per 16. */
export const quantWorkspace = (rows: number, k: number) => rows * (2 * k + (k / 32) * 4 + (k / 16) * 4);
/** Workspace bytes of `rows` × `k` activations packed in f32 blocks of 4 rows (products of several rows). */
export const packedWorkspace = (rows: number, k: number) => 16 * Math.ceil(rows / 4) * k;
/** Rows from which a product with quantized or f16 weights decodes them to f32 first (kernels/matmul.ts matmulPanel): measured faster from 16 rows; bf16, a shift to widen, gains nothing. */
export const PANEL_ROWS = 16;
/** Workspace bytes of each thread's panel in such a product: two weight rows of k values in f32. */
export const PANEL_BYTES = (k: number) => 8 * k;
/** Workspace bytes such a product needs: the packed activations, then their quantized rows, whose space the threads' panels reuse. */
export const panelWorkspace = (rows: number, k: number, threads: number) => packedWorkspace(rows, k) + Math.max(quantWorkspace(rows, k), threads * PANEL_BYTES(k));
/** Workspace bytes any product of `rows` × `k` activations needs on `threads` threads. */
export const matmulWorkspace = (rows: number, k: number, threads = 1) => panelWorkspace(rows, k, threads);
/** Workspace bytes of each thread's own: matmulGradInput and matmulGradWeight copy a strip of an operand there (kernels/backward.ts), attention keeps a chunk's scores for two heads there. */
export const GRAD_SCRATCH = 8192;
/** Scratch bytes a thread's slice of attention needs (kernels/attention.ts): 256 scores for each of two heads, and a running maximum and sum for each of `group` query heads. */
export const attentionScratch = (group: number) => 2 * 256 * 4 + 8 * group;
/** Workspace bytes a model needs: its products' (rows × k activations) and, per thread, attention's and training's backward products'. */
export const kernelWorkspace = (rows: number, k: number, threads: number) => Math.max(matmulWorkspace(rows, k, threads), GRAD_SCRATCH * threads);
import type { Activation } from "../config.js";

/** The operations the model runs, on byte offsets into the arena; implemented in TypeScript (reference) and WebAssembly. */
export interface Kernels {
  readonly name: string;
  /**
   * Scratch memory in the arena for activations prepared once per product (matmulWorkspace(m, k) bytes):
   * quantized for quantized weights, reordered for float weights. The model allocates it; code calling
   * the kernels directly must too.
   */
  workspace(ptr: number, bytes: number): void;
  /**
   * out[m×n] = x[m×k] · W[n×k]ᵀ, with W stored as `wType`: floats widened to f32; quantized blocks
   * multiplied with x quantized to int8 per 32 values, as llama.cpp does (needs quantWorkspace(m, k) bytes of workspace).
   */
  matmul(out: number, x: number, w: number, wType: DType, m: number, n: number, k: number): void;
  /** dx[m×k] += dy[m×n] · W[n×k], all f32: the gradient of matmul's x (training; 8 KiB of workspace per thread). */
  matmulGradInput(dx: number, dy: number, w: number, m: number, n: number, k: number): void;
  /** dW[n×k] += dy[m×n]ᵀ · x[m×k], all f32: the gradient of matmul's W (training; 8 KiB of workspace per thread). */
  matmulGradWeight(dw: number, dy: number, x: number, m: number, n: number, k: number): void;
  /**
   * Softmax cross-entropy per row of logits [rows×vocab] with target ids targets[rows] (i32): dlogits[r] =
   * softmax(logits[r])·scale, minus scale at the target (the gradient of scale × the row's loss), and
   * losses[rows] = logsumexp(logits[r]) − logits[r, target]. dlogits may equal logits (in place). Training.
   */
  crossEntropy(dlogits: number, logits: number, targets: number, losses: number, rows: number, vocab: number, scale: number): void;
  /**
   * The backward pass of `attention` over a whole sequence (pos0 = 0): q, dout, dq [T×qHeads×headDim];
   * k, v, dk, dv [T×kvHeads×headDim]. Probabilities P = softmax(q·kᵀ/√headDim) are recomputed; dv += Pᵀ·dout,
   * dS = P ⊙ (dP − Σ P·dP) with dP = dout·vᵀ, dq += dS·k/√headDim, dk += dSᵀ·q/√headDim (all accumulate).
   * Training; needs 8·T bytes of workspace per thread (two rows of T floats: within the backward products'
   * 8 KiB up to T = 1024).
   */
  attentionBackward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number, T: number, qHeads: number, kvHeads: number, headDim: number): void;
  /** out[n] = src[n] widened (or dequantized) from `srcType` to f32 (an embedding row). */
  widen(out: number, src: number, srcType: DType, n: number): void;
  /** Per row of `dim`: out = x / sqrt(mean(x²) + eps) * weight. `out` may equal `x`. */
  rmsNorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void;
  /** Copy `rows` rows of `width` floats between buffers with row strides (in floats). */
  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void;
  /**
   * Rotate-half RoPE in place on x[rows × heads × headDim], row r at position pos0 + r.
   * cos, sin: tables [positions × headDim/2].
   */
  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, pos0: number): void;
  /**
   * Causal grouped-query attention for `rows` queries at positions pos0.. over a KV cache that holds
   * positions 0..pos0+rows-1. q: [rows × qHeads × headDim]; kCache, vCache: [positions × kvHeads × headDim];
   * out: [rows × qHeads × headDim]. Query head h reads kv head floor(h / (qHeads / kvHeads)).
   */
  attention(out: number, q: number, kCache: number, vCache: number, rows: number, pos0: number, qHeads: number, kvHeads: number, headDim: number): void;
  /** out[rows×width] = act(gate) * up with x rows [gate | up] of 2·width when gated, else act(x). */
  activate(out: number, x: number, rows: number, width: number, act: Activation, gated: boolean): void;
  /** out[n] += x[n] (the residual connection). */
  add(out: number, x: number, n: number): void;
  /** Index of the first of `n` values of type `dtype` at `ptr` that is NaN or ±infinity, or -1 (checks of weights and logits). */
  firstNonFinite(ptr: number, dtype: FloatType, n: number): number;
  /** Copy `rows` rows of `width` floats, `stride` apart, out of the arena (for tracing). */
  read(ptr: number, rows: number, width: number, stride: number): Float32Array;
  /** Stop worker threads, if any. */
  close(): Promise<void>;
}
