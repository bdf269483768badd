// Per-kernel throughput with tinybench: matrix products at OpenELM-270M shapes (decode: one row;
// prefill: 128 rows) for every weight type, the two backward products of training at the prefill shape,
// attention over a long cache and the streaming-read probe, on one thread and on all; the multiply-add
// peak (one thread); the load-time check for NaN and infinity; plus the TypeScript specification's
// matrix–vector product for comparison. Apart: decode's product with its weights from memory
// (matvecFromMemory), which bench/index.ts alternates with native code's.
import { Bench } from "tinybench";
import type { DType, Kernels } from "openelm";
import { createNodeKernels } from "openelm/node";

export interface KernelRow {
  kernel: string;
  threads: number;
  ms: number;
  gflop_s: number;
  gb_s: number;
}

const D = 1280, F = 2 * 5120; // 270M: model width, and proj_1 of the widest layer (gate | up)

async function measure(threads: number, typescript = false): Promise<KernelRow[]> {
  const { arena, kernels } = await createNodeKernels(typescript ? { kernels: "typescript" } : { threads });
  kernels.workspace(arena.alloc(1 << 20), 1 << 20); // activations prepared for each product
  const bench = new Bench({ time: 400, warmup: true });
  const rows: { name: string; flop: number; bytes: number }[] = [];
  const add = (name: string, flop: number, bytes: number, fn: () => void) => {
    rows.push({ name, flop, bytes });
    bench.add(name, fn);
  };
  const x = arena.alloc(128 * F * 4), out = arena.alloc(128 * F * 4);
  arena.floats(x, 128 * F).fill(0.01);
  for (const dtype of (typescript ? ["bf16"] : ["f32", "bf16", "f16"]) as DType[]) {
    const b = dtype === "f32" ? 4 : 2, w = arena.alloc(F * D * b);
    arena.bytes(w, F * D * b).fill(0x3c);
    add(`matvec ${dtype} ${F}×${D}`, 2 * F * D, F * D * b, () => kernels.matmul(out, x, w, dtype, 1, F, D));
    if (!typescript) add(`matmul ${dtype} 128×${D} · ${D}×${F}`, 2 * 128 * F * D, F * D * b, () => kernels.matmul(out, x, w, dtype, 128, F, D));
    if (!typescript && dtype === "f32") {
      // the backward products of the same layer (training): dx[128×D] += dy[128×F] · W, dW[F×D] += dyᵀ · x
      const dw = arena.alloc(F * D * 4); // [F × D]
      add(`matmulGradInput f32 128×${F} · ${F}×${D}`, 2 * 128 * F * D, F * D * b, () => kernels.matmulGradInput(out, x, w, 128, F, D));
      add(`matmulGradWeight f32 (128×${F})ᵀ · 128×${D}`, 2 * 128 * F * D, 2 * F * D * 4, () => kernels.matmulGradWeight(dw, x, out, 128, F, D)); // reads and writes dW
    }
  }
  if (!typescript) {
    const ctx = 1024, heads = 20, kv = 5, hd = 64, cache = arena.alloc(ctx * kv * hd * 4);
    add(`attention 1 query × ${ctx} keys, ${heads}/${kv} heads`, 4 * ctx * heads * hd, 2 * ctx * kv * hd * 4, () => kernels.attention(out, x, cache, cache, 1, ctx - 1, heads, kv, hd));
    if (threads === 1) {
      // the yardstick of the products' GFLOP/s: ten independent f32x4 multiply-adds a step (40 of floats), in registers
      const steps = 1_000_000, probe = kernels as Kernels & { fmaPeak(ptr: number, n: number): void }, scratch = arena.alloc(32);
      add("f32x4 multiply-add peak (registers)", 2 * 40 * steps, 0, () => probe.fmaPeak(scratch, steps));
    }
    const big = 256 * 2 ** 20, p = arena.alloc(big);
    arena.bytes(p, big).fill(1);
    const read = kernels as Kernels & { readBytes(ptr: number, bytes: number): void };
    add("streaming read 256 MiB", 0, big, () => read.readBytes(p, big));
    // the load-time NaN/inf check, in GB/s: 270M's weights in BF16 are about 540 MB, twice this buffer
    for (const dtype of ["bf16", "f32"] as const) {
      const n = big / (dtype === "f32" ? 4 : 2);
      add(`firstNonFinite ${dtype} 256 MiB`, 0, big, () => kernels.firstNonFinite(p, dtype, n));
    }
  }
  await bench.run();
  await kernels.close();
  return bench.tasks.map((t, i) => {
    const result = t.result;
    if (result.state !== "completed") throw new Error(`benchmark ${t.name} did not complete (${result.state})`);
    const ms = result.latency.mean;
    const r = rows[i]!;
    return { kernel: (typescript ? "typescript " : "") + r.name, threads, ms, gflop_s: r.flop / ms / 1e6, gb_s: r.bytes / ms / 1e6 };
  });
}

/** SIMD on one thread, SIMD on `threads`, and the TypeScript specification (rows marked "typescript"). */
export async function kernelBenchmarks(threads: number): Promise<KernelRow[]> {
  return [...(await measure(1)), ...(threads > 1 ? await measure(threads) : []), ...(await measure(1, true))];
}

/**
 * Decode's product over 256 MiB of BF16 and of F16 weights, 1280 wide (all from memory, as
 * bench/matvec-ceiling.c measures native code), on `threads` threads, set up once: `measure` gives GB/s of
 * weights, the median of 11 calls each; `close` stops the threads.
 */
export async function matvecFromMemory(threads: number): Promise<{ measure(): { bf16: number; f16: number }; close(): Promise<void> }> {
  const { arena, kernels } = await createNodeKernels({ threads });
  const rows = Math.floor(2 ** 27 / D), bytes = 2 * rows * D, w = arena.alloc(bytes), x = arena.alloc(D * 4), out = arena.alloc(rows * 4);
  kernels.workspace(arena.alloc(1 << 16), 1 << 16); // x in the order the 16-bit loop reads it
  arena.bytes(w, bytes).fill(0x3c); // about 1 as f16, 0.01 as bf16: no subnormals
  arena.floats(x, D).fill(0.01);
  const gbs = (dtype: "bf16" | "f16") => {
    const times: number[] = [];
    for (let i = 0; i < 11; i++) {
      const t = performance.now();
      kernels.matmul(out, x, w, dtype, 1, rows, D);
      times.push(performance.now() - t);
    }
    return bytes / times.sort((a, b) => a - b)[times.length >> 1]! / 1e6;
  };
  return {
    measure: () => {
      // half a second unmeasured first, as bench/matvec-ceiling.c does: idle cores take that long to come up to speed
      for (const start = performance.now(); performance.now() - start < 500; ) kernels.matmul(out, x, w, "bf16", 1, rows, D);
      return { bf16: gbs("bf16"), f16: gbs("f16") };
    },
    close: () => kernels.close(),
  };
}
