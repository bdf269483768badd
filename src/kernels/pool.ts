// A pool of workers that run slices of one kernel call on the same shared WebAssembly.Memory (matrix
// products: chunks dealt out as the threads ask, see takeChunks).
// Hand-off is a spin barrier on a SharedArrayBuffer: a decode step issues ~65 matrix products, and a
// wake-up through Atomics.wait/notify costs ~76 µs against ~2 µs for a spin. Idle workers spin for about
// a millisecond, then sleep in Atomics.wait until the next job.

/** What a host must give: a started worker that runs `runWorker` (src/kernels/worker.ts) on its first message. */
export interface WorkerLike {
  /** Send the worker its start message (a `WorkerInit`). */
  postMessage(message: unknown): void;
  /** Stop the worker. */
  terminate(): unknown;
}

export interface WorkerInit {
  module: WebAssembly.Module;
  memories: WebAssembly.Memory[];
  control: SharedArrayBuffer;
  index: number; // 1..threads-1; the calling thread is 0
  threads: number;
}

// Int32 slots of the control block, then float64 arguments from ARGS_BYTE.
export const GENERATION = 0, DONE = 1, SLEEPERS = 2, READY = 3, OP = 4, MEMORY = 5, FAILED = 6, NEXT = 7;
export const ARGS_BYTE = 64, MAX_ARGS = 16;
/** The kernel a job in the control block runs on every thread. */
export enum Op { Matmul = 1, Attention = 2, Read = 3, GradInput = 4, GradWeight = 5, CrossEntropy = 6, AttentionBackward = 7, Stop = 9 }
/** Workspace bytes each thread's slice of attentionBackward keeps a query row's P and dP in: two rows of T floats, 16-byte aligned (within GRAD_SCRATCH up to T = 1024). */
export const attentionBackwardScratch = (T: number) => 2 * Math.ceil(T / 4) * 16;

const SPIN_BEFORE_WAIT = 1 << 16;

/** Worker threads sharing the kernels' memories, each running its slice of a kernel call. */
export class ThreadPool {
  private canWait = true;
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;

  private constructor(readonly threads: number, private readonly workers: WorkerLike[], control: SharedArrayBuffer) {
    this.ctl = new Int32Array(control, 0, 16);
    this.args = new Float64Array(control, ARGS_BYTE, MAX_ARGS);
  }

  /** Start threads-1 workers (the caller is the first thread) and wait until they are ready. */
  static async start(threads: number, spawn: () => WorkerLike, module: WebAssembly.Module, memories: WebAssembly.Memory[]): Promise<ThreadPool> {
    const control = new SharedArrayBuffer(ARGS_BYTE + 8 * MAX_ARGS);
    let failure: string | undefined;
    const workers = Array.from({ length: threads - 1 }, (_, i) => {
      const w = spawn() as WorkerLike & { on?: (event: "error", f: (e: unknown) => void) => void; addEventListener?: (event: "error", f: (e: unknown) => void) => void };
      // a worker whose script is missing or throws says so at once, instead of the start timing out
      const fail = (e: unknown) => (failure ??= `worker thread ${i + 1} failed to start: ${(e as { message?: string })?.message || "its script could not be loaded or threw"}`);
      w.on?.("error", fail); // Node's worker_threads
      w.addEventListener?.("error", fail); // Web Workers
      w.postMessage({ module, memories, control, index: i + 1, threads } satisfies WorkerInit);
      return w;
    });
    const pool = new ThreadPool(threads, workers, control);
    const deadline = Date.now() + 30_000;
    while (Atomics.load(pool.ctl, READY) < threads - 1) {
      if (failure || Date.now() > deadline) {
        for (const w of workers) w.terminate();
        throw new Error(failure ?? `worker threads did not start within 30 s (${Atomics.load(pool.ctl, READY)} of ${threads - 1} ready)`);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    return pool;
  }

  /** Run `op` on every thread; `self` runs this thread's slice (index 0). Returns when all are done. */
  run(op: Op, memory: number, args: number[], self: () => void): void {
    const ctl = this.ctl;
    this.args.set(args);
    ctl[OP] = op;
    ctl[MEMORY] = memory;
    ctl[NEXT] = 0;
    Atomics.store(ctl, DONE, 0);
    Atomics.add(ctl, GENERATION, 1);
    if (Atomics.load(ctl, SLEEPERS) > 0) Atomics.notify(ctl, GENERATION);
    let error: unknown;
    try {
      self();
    } catch (e) {
      error = e; // still wait for the other slices: the next job must not overwrite this one's arguments
    }
    // The other slices end within microseconds of ours: spin. If they do not (more threads than free
    // cores), sleep until a worker's notify, where the host lets this thread block.
    for (let spins = 0, done = Atomics.load(ctl, DONE); done < this.threads - 1; done = Atomics.load(ctl, DONE)) {
      if (++spins < SPIN_BEFORE_WAIT || !this.canWait) continue;
      try {
        Atomics.wait(ctl, DONE, done, 1);
      } catch {
        this.canWait = false; // a browser's main thread may not block
      }
    }
    const failed = Atomics.exchange(ctl, FAILED, 0);
    if (error) throw error;
    if (failed) throw new Error(`kernel ${Op[op] ?? op} failed on worker thread ${failed}`);
  }

  /** Run `f` on each chunk of [0, n) that this thread takes (see takeChunks), inside `run`'s `self`. */
  chunks(n: number, perThread: number, f: (j0: number, j1: number) => void): void {
    takeChunks(this.ctl, n, this.threads, perThread, f);
  }

  /** Stop the workers' loops and terminate them. */
  async close(): Promise<void> {
    this.run(Op.Stop, 0, [], () => {});
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Split [0, n) into `parts` ranges whose starts are multiples of `align`; part p is [start, end). */
export function slice(n: number, parts: number, p: number, align = 4): [number, number] {
  const size = Math.ceil(n / parts / align) * align;
  return [Math.min(n, p * size), Math.min(n, (p + 1) * size)];
}

/**
 * Chunks per thread for a product of m rows of x. With many rows, 8: a fixed split waits for its slowest
 * slice, and on a shared machine the host often slows one core down for a while; then the other takes
 * more chunks. One row (decode) pays for every chunk's start as the weight stream restarts, about 3 µs
 * each here: 2 per thread decoded 10-13% faster than 8 (Zen 5, bf16, all of a 270M step's products).
 */
export const chunksPerThread = (m: number) => (m === 1 ? 2 : 8);

/**
 * Deal [0, n) out in chunks of multiples of 4, about `perThread` per thread, each to whichever thread asks
 * first, and run `f` on those this one takes.
 */
export function takeChunks(ctl: Int32Array, n: number, threads: number, perThread: number, f: (j0: number, j1: number) => void): void {
  const size = Math.max(4, Math.ceil(n / (threads * perThread) / 4) * 4);
  for (let c = Atomics.add(ctl, NEXT, 1); c * size < n; c = Atomics.add(ctl, NEXT, 1)) f(c * size, Math.min(n, (c + 1) * size));
}
