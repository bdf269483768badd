// The SIMD kernel set: the AssemblyScript module in kernels/ compiled to WebAssembly and instantiated
// on the arena's memory, with matrix products, attention and the training kernels split across a thread pool when there is one.
import type { Activation } from "../config.js";
import { DTYPE_CODE, isQuantized, type DType, type FloatType } from "../dtype.js";
import { Op, attentionBackwardScratch, chunksPerThread, slice, type ThreadPool } from "./pool.js";
import { GRAD_SCRATCH, PANEL_BYTES, PANEL_ROWS, attentionScratch, packedWorkspace, panelWorkspace, quantWorkspace, type Kernels } from "./types.js";
import { readRows } from "./reference.js";

/** The exports of kernels/index.ts. */
export interface WasmExports {
  matmul(out: number, x: number, w: number, dtype: number, m: number, n: number, k: number, j0: number, j1: number, panel: number): void;
  matmulGradInput(dx: number, dy: number, w: number, m: number, n: number, k: number, c0: number, c1: number, scratch: number): void;
  matmulGradWeight(dw: number, dy: number, x: number, m: number, n: number, k: number, j0: number, j1: number, scratch: number): void;
  crossEntropy(dlogits: number, logits: number, targets: number, losses: number, rows: number, vocab: number, scale: number, r0: number, r1: number): void;
  attentionBackward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number, T: number, qHeads: number, kvHeads: number, headDim: number, g0: number, g1: number, scratch: number): void;
  pairActivations(out: number, x: number, k: number, dtype: number): void;
  packRows(out: number, x: number, m: number, k: number, dtype: number): void;
  attention(out: number, q: number, kCache: number, vCache: number, rows: number, pos0: number, qHeads: number, kvHeads: number, headDim: number, h0: number, h1: number, scratch: number): void;
  rmsNorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void;
  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, pos0: number): void;
  activate(out: number, x: number, rows: number, width: number, act: number, gated: number): void;
  add(out: number, x: number, n: number): void;
  widen(out: number, src: number, dtype: number, n: number): void;
  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void;
  readBytes(ptr: number, bytes: number): number;
  fmaPeak(ptr: number, n: number): number;
  quantizeRows(xq: number, x: number, m: number, k: number, dtype: number): void;
  packQuantized(out: number, xq: number, m: number, k: number, dtype: number): void;
  dequantizeRows(out: number, w: number, dtype: number, k: number, rows: number): void;
  firstNonFinite(ptr: number, dtype: number, n: number): number;
}

/** The four builds of kernels/: relaxed SIMD (fused multiply-add) or plain SIMD, shared memory (threads) or not. */
export type KernelBuild = "simd" | "relaxed" | "simd-shared" | "relaxed-shared";

const ACT: Record<Activation, number> = { swish: 0, gelu: 1, relu: 2 };

/** The SIMD WebAssembly kernels on one memory, with calls split over a thread pool when there is one. */
export class WasmKernels implements Kernels {
  readonly name: string;
  private readonly k: WasmExports;

  /**
   * `minParallelWork`: multiply-adds below which a call stays on this thread (waking the others costs
   * a few microseconds).
   */
  constructor(module: WebAssembly.Module, private readonly memory: WebAssembly.Memory, readonly build: KernelBuild, private readonly pool?: ThreadPool, private readonly minParallelWork = 1 << 15, private readonly memoryIndex = 0) {
    this.k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as WasmExports;
    this.name = `wasm-${build}${pool ? ` ×${pool.threads} threads` : ""}`;
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  private scratch = { ptr: 0, bytes: 0 };

  workspace(ptr: number, bytes: number): void {
    this.scratch = { ptr, bytes };
  }

  private needWorkspace(bytes: number, what: string): void {
    if (bytes > this.scratch.bytes) throw new RangeError(`${what} needs ${bytes} bytes of workspace; the kernels have ${this.scratch.bytes}`);
  }

  matmul(out: number, x: number, w: number, wType: DType, m: number, n: number, k: number): void {
    const dtype = DTYPE_CODE[wType], threads = !this.pool || m * n * k < this.minParallelWork ? 1 : this.pool.threads;
    let panel = 0;
    if ((isQuantized(wType) || wType === "f16") && m >= PANEL_ROWS) {
      // many rows: x packed in blocks of 4 rows (quantized and decoded again for quantized W); W decoded
      // two rows at a time into each thread's panel, which reuses the quantized rows' space once packed
      const packed = packedWorkspace(m, k);
      this.needWorkspace(panelWorkspace(m, k, threads), `a ${wType} product of ${m}×${k} activations on ${threads} thread(s)`);
      if (wType === "f16") this.k.packRows(this.scratch.ptr, x, m, k, DTYPE_CODE.f32);
      else {
        this.k.quantizeRows(this.scratch.ptr + packed, x, m, k, dtype);
        this.k.packQuantized(this.scratch.ptr, this.scratch.ptr + packed, m, k, dtype);
      }
      x = this.scratch.ptr;
      panel = this.scratch.ptr + packed;
    } else if (isQuantized(wType)) {
      // the activations, quantized once on this thread, are what every thread's slice reads
      this.needWorkspace(quantWorkspace(m, k), `a ${wType} product of ${m}×${k} activations`);
      this.k.quantizeRows(this.scratch.ptr, x, m, k, dtype);
      x = this.scratch.ptr;
    } else if (m === 1 && wType !== "f32") {
      // one row against 16-bit weights: x reordered once to match how they are widened
      this.needWorkspace(4 * k, `a ${wType} product of ${k} activations`);
      this.k.pairActivations(this.scratch.ptr, x, k, dtype);
      x = this.scratch.ptr;
    } else if (m > 1) {
      // several rows: packed once, in blocks of 4 rows, in the order the blocked product reads them
      this.needWorkspace(packedWorkspace(m, k), `a ${wType} product of ${m}×${k} activations`);
      this.k.packRows(this.scratch.ptr, x, m, k, dtype);
      x = this.scratch.ptr;
    }
    if (threads === 1) return this.k.matmul(out, x, w, dtype, m, n, k, 0, n, panel);
    // the threads take chunks of W's rows as they go (see takeChunks)
    const pool = this.pool!;
    pool.run(Op.Matmul, this.memoryIndex, [out, x, w, dtype, m, n, k, panel, PANEL_BYTES(k)], () => pool.chunks(n, chunksPerThread(m), (j0, j1) => this.k.matmul(out, x, w, dtype, m, n, k, j0, j1, panel)));
  }

  matmulGradInput(dx: number, dy: number, w: number, m: number, n: number, k: number): void {
    // threads split the columns of dx: each reads all of dy and its own columns of W
    const threads = this.gradThreads(m * n * k), s = this.scratch.ptr;
    if (threads === 1) return this.k.matmulGradInput(dx, dy, w, m, n, k, 0, k, s);
    const [c0, c1] = slice(k, threads, 0, 8);
    this.pool!.run(Op.GradInput, this.memoryIndex, [dx, dy, w, m, n, k, s], () => this.k.matmulGradInput(dx, dy, w, m, n, k, c0, c1, s));
  }

  matmulGradWeight(dw: number, dy: number, x: number, m: number, n: number, k: number): void {
    // threads split the rows of dW: each reads all of x and its own columns of dy
    const threads = this.gradThreads(m * n * k), s = this.scratch.ptr;
    if (threads === 1) return this.k.matmulGradWeight(dw, dy, x, m, n, k, 0, n, s);
    const [j0, j1] = slice(n, threads, 0);
    this.pool!.run(Op.GradWeight, this.memoryIndex, [dw, dy, x, m, n, k, s], () => this.k.matmulGradWeight(dw, dy, x, m, n, k, j0, j1, s));
  }

  /** Threads a backward product of `work` multiply-adds runs on; each needs GRAD_SCRATCH bytes of workspace. */
  private gradThreads(work: number): number {
    const threads = !this.pool || work < this.minParallelWork ? 1 : this.pool.threads;
    this.needWorkspace(threads * GRAD_SCRATCH, `a backward product on ${threads} thread(s)`);
    return threads;
  }

  attention(out: number, q: number, kCache: number, vCache: number, rows: number, pos0: number, qHeads: number, kvHeads: number, headDim: number): void {
    // each thread keeps a chunk's scores and its heads' running maxima and sums in its own scratch
    const work = rows * (pos0 + rows) * qHeads * headDim, s = this.scratch.ptr;
    const threads = !this.pool || qHeads < 2 || work < this.minParallelWork ? 1 : this.pool.threads;
    if (attentionScratch(qHeads / kvHeads) > GRAD_SCRATCH) throw new RangeError(`attention with ${qHeads / kvHeads} query heads per key/value head needs more than ${GRAD_SCRATCH} bytes of scratch per thread`);
    this.needWorkspace(threads * GRAD_SCRATCH, `attention on ${threads} thread(s)`);
    if (threads === 1) return this.k.attention(out, q, kCache, vCache, rows, pos0, qHeads, kvHeads, headDim, 0, qHeads, s);
    const [h0, h1] = slice(qHeads, threads, 0, 1);
    this.pool!.run(Op.Attention, this.memoryIndex, [out, q, kCache, vCache, rows, pos0, qHeads, kvHeads, headDim, s], () =>
      this.k.attention(out, q, kCache, vCache, rows, pos0, qHeads, kvHeads, headDim, h0, h1, s));
  }

  crossEntropy(dlogits: number, logits: number, targets: number, losses: number, rows: number, vocab: number, scale: number): void {
    // threads split the rows
    if (!this.pool || rows < 2 || rows * vocab < this.minParallelWork) return this.k.crossEntropy(dlogits, logits, targets, losses, rows, vocab, scale, 0, rows);
    const [r0, r1] = slice(rows, this.pool.threads, 0, 1);
    this.pool.run(Op.CrossEntropy, this.memoryIndex, [dlogits, logits, targets, losses, rows, vocab, scale], () =>
      this.k.crossEntropy(dlogits, logits, targets, losses, rows, vocab, scale, r0, r1));
  }

  attentionBackward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number, T: number, qHeads: number, kvHeads: number, headDim: number): void {
    // threads split the kv heads: each owns its heads' rows of dk and dv and their query heads' rows of dq
    const threads = !this.pool || kvHeads < 2 || T * T * qHeads * headDim < this.minParallelWork ? 1 : this.pool.threads;
    const stride = attentionBackwardScratch(T), s = this.scratch.ptr;
    this.needWorkspace(threads * stride, `attention's backward pass over ${T} positions (${stride} bytes of P and dP per thread) on ${threads} thread(s)`);
    if (threads === 1) return this.k.attentionBackward(dq, dk, dv, dout, q, k, v, T, qHeads, kvHeads, headDim, 0, kvHeads, s);
    const [g0, g1] = slice(kvHeads, threads, 0, 1);
    this.pool!.run(Op.AttentionBackward, this.memoryIndex, [dq, dk, dv, dout, q, k, v, T, qHeads, kvHeads, headDim, s, stride], () =>
      this.k.attentionBackward(dq, dk, dv, dout, q, k, v, T, qHeads, kvHeads, headDim, g0, g1, s));
  }

  widen(out: number, src: number, srcType: DType, n: number): void {
    // a quantized embedding row: the decoder the products of many rows use (kernels/quant.ts dequantizeRows)
    if (isQuantized(srcType)) return this.k.dequantizeRows(out, src, DTYPE_CODE[srcType], n, 1);
    this.k.widen(out, src, DTYPE_CODE[srcType], n);
  }

  rmsNorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void {
    this.k.rmsNorm(out, x, weight, rows, dim, eps);
  }

  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void {
    this.k.copyRows(dst, dstStride, src, srcStride, rows, width);
  }

  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, pos0: number): void {
    this.k.rope(x, cos, sin, rows, heads, headDim, pos0);
  }

  activate(out: number, x: number, rows: number, width: number, act: Activation, gated: boolean): void {
    this.k.activate(out, x, rows, width, ACT[act], gated ? 1 : 0);
  }

  add(out: number, x: number, n: number): void {
    this.k.add(out, x, n);
  }

  firstNonFinite(ptr: number, dtype: FloatType, n: number): number {
    return this.k.firstNonFinite(ptr, DTYPE_CODE[dtype], n);
  }

  read(ptr: number, rows: number, width: number, stride: number): Float32Array {
    return readRows(new Float32Array(this.memory.buffer), ptr, rows, width, stride);
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  /** `n` steps of ten f32x4 multiply-adds on this thread (the compute probe; 32 bytes at `ptr` of scratch), and lane 0 of their sum; not part of the model's kernel interface. */
  fmaPeak(ptr: number, n: number): number {
    return this.k.fmaPeak(ptr, n);
  }

  /** Read `bytes` at `ptr` on every thread (the bandwidth probe); not part of the model's kernel interface. */
  readBytes(ptr: number, bytes: number): void {
    if (!this.pool) return void this.k.readBytes(ptr, bytes);
    const [b0, b1] = slice(bytes, this.pool.threads, 0, 64);
    this.pool.run(Op.Read, this.memoryIndex, [ptr, bytes], () => this.k.readBytes(ptr + b0, b1 - b0));
  }
}
