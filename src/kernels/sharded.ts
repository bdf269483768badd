// Kernels over a model spread across several memories (see src/arena.ts): each call runs in the memory
// its tagged pointers name, on that memory's kernel set. Mirrored activation buffers written in one memory
// are copied to the next when the calls move on, so model.ts never sees the split.
import type { Arena } from "../arena.js";
import type { Activation } from "../config.js";
import type { DType, FloatType } from "../dtype.js";
import type { Kernels } from "./types.js";

type Range = [number, number]; // bytes [start, end) of a mirrored buffer

/** The kernel interface over a model spread across several memories: each call runs in the memory holding its layer. */
export class ShardedKernels implements Kernels {
  readonly name: string;
  private current = 0;
  private dirty: Range[] = []; // mirrored bytes written in `current` since the last move

  constructor(private readonly arena: Arena, private readonly sets: (Kernels & { readBytes?(ptr: number, bytes: number): void })[]) {
    this.name = `${sets[0]!.name} over ${sets.length} memories`;
  }

  get threads(): number {
    return (this.sets[0] as { threads?: number }).threads ?? 1;
  }

  /** Move to the memory named by the tagged pointers among `ptrs` (mirrored ones fit anywhere); returns its kernels. */
  private at(...ptrs: number[]): Kernels & { readBytes?(ptr: number, bytes: number): void } {
    const tagged = ptrs.find((p) => p >= 2 ** 32);
    const target = tagged === undefined ? this.current : this.arena.memoryOf(tagged);
    if (target !== this.current) {
      const from = this.arena.memories[this.current]!.buffer, to = this.arena.memories[target]!.buffer;
      for (const [s, e] of this.dirty) new Uint8Array(to, s, e - s).set(new Uint8Array(from, s, e - s));
      this.dirty = [];
      this.current = target;
    }
    return this.sets[target]!;
  }

  private wrote(ptr: number, bytes: number): void {
    if (ptr < 2 ** 32) this.dirty.push([ptr, ptr + bytes]);
  }

  private o = (ptr: number) => this.arena.offsetOf(ptr);

  workspace(ptr: number, bytes: number): void {
    for (const s of this.sets) s.workspace(this.o(ptr), bytes); // mirrored: the same offset in every memory
  }

  matmul(out: number, x: number, w: number, wType: DType, m: number, n: number, k: number): void {
    this.at(out, x, w).matmul(this.o(out), this.o(x), this.o(w), wType, m, n, k);
    this.wrote(out, m * n * 4);
  }

  matmulGradInput(dx: number, dy: number, w: number, m: number, n: number, k: number): void {
    this.at(dx, dy, w).matmulGradInput(this.o(dx), this.o(dy), this.o(w), m, n, k);
    this.wrote(dx, m * k * 4);
  }

  matmulGradWeight(dw: number, dy: number, x: number, m: number, n: number, k: number): void {
    this.at(dw, dy, x).matmulGradWeight(this.o(dw), this.o(dy), this.o(x), m, n, k);
    this.wrote(dw, n * k * 4);
  }

  crossEntropy(dlogits: number, logits: number, targets: number, losses: number, rows: number, vocab: number, scale: number): void {
    this.at(dlogits, logits, targets, losses).crossEntropy(this.o(dlogits), this.o(logits), this.o(targets), this.o(losses), rows, vocab, scale);
    this.wrote(dlogits, rows * vocab * 4);
    this.wrote(losses, rows * 4);
  }

  attentionBackward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number, T: number, qHeads: number, kvHeads: number, headDim: number): void {
    this.at(dq, dk, dv, dout, q, k, v).attentionBackward(this.o(dq), this.o(dk), this.o(dv), this.o(dout), this.o(q), this.o(k), this.o(v), T, qHeads, kvHeads, headDim);
    this.wrote(dq, T * qHeads * headDim * 4);
    this.wrote(dk, T * kvHeads * headDim * 4);
    this.wrote(dv, T * kvHeads * headDim * 4);
  }

  widen(out: number, src: number, srcType: DType, n: number): void {
    this.at(out, src).widen(this.o(out), this.o(src), srcType, n);
    this.wrote(out, n * 4);
  }

  rmsNorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void {
    this.at(out, x, weight).rmsNorm(this.o(out), this.o(x), this.o(weight), rows, dim, eps);
    this.wrote(out, rows * dim * 4);
  }

  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void {
    this.at(dst, src).copyRows(this.o(dst), dstStride, this.o(src), srcStride, rows, width);
    this.wrote(dst, ((rows - 1) * dstStride + width) * 4);
  }

  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, pos0: number): void {
    this.at(x, cos, sin).rope(this.o(x), this.o(cos), this.o(sin), rows, heads, headDim, pos0);
    this.wrote(x, rows * heads * headDim * 4);
  }

  attention(out: number, q: number, kCache: number, vCache: number, rows: number, pos0: number, qHeads: number, kvHeads: number, headDim: number): void {
    this.at(out, q, kCache, vCache).attention(this.o(out), this.o(q), this.o(kCache), this.o(vCache), rows, pos0, qHeads, kvHeads, headDim);
    this.wrote(out, rows * qHeads * headDim * 4);
  }

  activate(out: number, x: number, rows: number, width: number, act: Activation, gated: boolean): void {
    this.at(out, x).activate(this.o(out), this.o(x), rows, width, act, gated);
    this.wrote(out, rows * width * 4);
  }

  add(out: number, x: number, n: number): void {
    this.at(out, x).add(this.o(out), this.o(x), n);
    this.wrote(out, n * 4);
  }

  read(ptr: number, rows: number, width: number, stride: number): Float32Array {
    return this.at(ptr).read(this.o(ptr), rows, width, stride);
  }

  firstNonFinite(ptr: number, dtype: FloatType, n: number): number {
    return this.at(ptr).firstNonFinite(this.o(ptr), dtype, n);
  }

  /** Read `bytes` bytes at `ptr` (the bandwidth probe), in the memory that holds them. */
  readBytes(ptr: number, bytes: number): void {
    this.at(ptr).readBytes?.(this.o(ptr), bytes);
  }

  async close(): Promise<void> {
    await this.sets[0]!.close(); // one pool serves every memory
  }
}
