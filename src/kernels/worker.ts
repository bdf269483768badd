// The loop each worker thread runs: wait for a job in the control block, run its slice, report done.
// Host entry points (src/node/worker.ts, src/kernels/web-worker.ts) call runWorker with the first message.
import { ARGS_BYTE, DONE, FAILED, GENERATION, MAX_ARGS, MEMORY, OP, Op, READY, SLEEPERS, chunksPerThread, slice, takeChunks, type WorkerInit } from "./pool.js";
import { GRAD_SCRATCH } from "./types.js";
import type { WasmExports } from "./wasm.js";

const SPIN = 1 << 20; // polls before sleeping: about a millisecond

export function runWorker(init: WorkerInit): void {
  const ctl = new Int32Array(init.control, 0, 16), a = new Float64Array(init.control, ARGS_BYTE, MAX_ARGS);
  const kernels = init.memories.map((memory) => new WebAssembly.Instance(init.module, { env: { memory } }).exports as unknown as WasmExports);
  const { index, threads } = init;
  Atomics.add(ctl, READY, 1);
  let seen = Atomics.load(ctl, GENERATION);
  for (;;) {
    for (let spins = 0; Atomics.load(ctl, GENERATION) === seen; ) {
      if (++spins < SPIN) continue;
      Atomics.add(ctl, SLEEPERS, 1);
      Atomics.wait(ctl, GENERATION, seen);
      Atomics.sub(ctl, SLEEPERS, 1);
      spins = 0;
    }
    seen = Atomics.load(ctl, GENERATION);
    const op = ctl[OP] as Op, k = kernels[ctl[MEMORY]!]!;
    if (op === Op.Stop) return void Atomics.add(ctl, DONE, 1);
    try {
      run(op, k, a, ctl, index, threads);
    } catch {
      Atomics.store(ctl, FAILED, index); // the caller throws instead of waiting forever
    }
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE); // wakes the caller only if it gave up spinning
  }
}

/** This thread's slice of one kernel call. */
function run(op: Op, k: WasmExports, a: Float64Array, ctl: Int32Array, index: number, threads: number): void {
  if (op === Op.Matmul) {
    // a[7]: the panels, a[8] bytes apart
    takeChunks(ctl, a[5]!, threads, chunksPerThread(a[4]!), (j0, j1) => k.matmul(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, j0, j1, a[7]! ? a[7]! + index * a[8]! : 0));
  } else if (op === Op.GradInput) {
    const [c0, c1] = slice(a[5]!, threads, index, 8);
    if (c0 < c1) k.matmulGradInput(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, c0, c1, a[6]! + index * GRAD_SCRATCH);
  } else if (op === Op.GradWeight) {
    const [j0, j1] = slice(a[4]!, threads, index);
    if (j0 < j1) k.matmulGradWeight(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, j0, j1, a[6]! + index * GRAD_SCRATCH);
  } else if (op === Op.Attention) {
    const [h0, h1] = slice(a[6]!, threads, index, 1);
    if (h0 < h1) k.attention(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, h0, h1, a[9]! + index * GRAD_SCRATCH);
  } else if (op === Op.CrossEntropy) {
    const [r0, r1] = slice(a[4]!, threads, index, 1);
    if (r0 < r1) k.crossEntropy(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, r0, r1);
  } else if (op === Op.AttentionBackward) {
    const [g0, g1] = slice(a[9]!, threads, index, 1);
    if (g0 < g1) k.attentionBackward(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, g0, g1, a[11]! + index * a[12]!);
  } else if (op === Op.Read) {
    const [b0, b1] = slice(a[1]!, threads, index, 64);
    if (b0 < b1) k.readBytes(a[0]! + b0, b1 - b0);
  }
}
