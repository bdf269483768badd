// The arena owns the WebAssembly.Memory that weights, KV cache and activations live in and that the
// kernels read. It hands out byte offsets; typed views are rebuilt whenever a memory has grown.
//
// A wasm32 memory ends at 4 GiB, so a model larger than that (OpenELM-3B in BF16 is ~6 GB) gets several
// memories. Then a pointer to a buffer that lives in one memory (a layer's weights, its KV cache) carries
// the memory in its high part: (memory + 1)·2^32 + offset. Everything else (activations, RoPE tables) is
// mirrored: allocated at the same offset in every memory, with a plain offset as its pointer.
// src/kernels/sharded.ts runs each kernel call in the memory its pointers name.

const PAGE = 65536;
/** wasm32 memories end at 4 GiB. */
export const MAX_MEMORY_BYTES = 65536 * PAGE;
/** The first page stays free for the kernel module's own static data. */
const RESERVED = PAGE;
const TAG = 2 ** 32;

/** A freed range: in memory `memory`, or mirrored (-1). */
interface Hole {
  memory: number;
  ptr: number;
  bytes: number;
}

/** The WebAssembly memories (one, or several past 4 GiB) holding weights, KV caches and activations, with a bump allocator and reuse of freed ranges. */
export class Arena {
  readonly memories: WebAssembly.Memory[];
  private readonly tops: number[];
  /** Ranges given back with free() (a KV cache that grew), reused first-fit; neighbours are merged. */
  private readonly holes: Hole[] = [];
  private readonly views: { buffer: ArrayBuffer | SharedArrayBuffer; f32: Float32Array; u8: Uint8Array }[];

  /** `shared`: memories that worker threads can share (needs SharedArrayBuffer). */
  constructor(shared = false, memories = 1) {
    this.memories = Array.from({ length: memories }, () => new WebAssembly.Memory({ initial: 1, maximum: 65536, shared }));
    this.tops = this.memories.map(() => RESERVED);
    this.views = this.memories.map(() => ({ buffer: new ArrayBuffer(0), f32: new Float32Array(0), u8: new Uint8Array(0) }));
  }

  /** The first (for a model that fits in one, the only) memory. */
  get memory(): WebAssembly.Memory {
    return this.memories[0]!;
  }

  /** Bytes handed out so far, over all memories. */
  get used(): number {
    return this.tops.reduce((a, b) => a + b, 0);
  }

  /**
   * Reserve `bytes` (64-byte aligned, so SIMD loads and cache lines line up) and return the pointer:
   * in memory `memory`, or mirrored in every memory when it is not given.
   */
  alloc(bytes: number, what = "buffer", memory?: number): number {
    const inOne = memory !== undefined && this.memories.length > 1;
    const reused = this.reuse(inOne ? memory : -1, bytes);
    if (reused !== undefined) return inOne ? (memory + 1) * TAG + reused : reused;
    const ptr = Math.ceil((inOne ? this.tops[memory]! : Math.max(...this.tops)) / 64) * 64;
    const end = ptr + bytes;
    if (end > MAX_MEMORY_BYTES)
      throw new RangeError(`out of memory: ${what} needs ${(bytes / 2 ** 20).toFixed(1)} MiB more, past the 4 GiB limit of a wasm32 memory (in use: ${(this.used / 2 ** 20).toFixed(1)} MiB); try --dtype bf16 or a shorter --context`);
    for (const i of inOne ? [memory] : this.memories.keys()) {
      const m = this.memories[i]!, have = m.buffer.byteLength;
      try {
        if (end > have) m.grow(Math.ceil((end - have) / PAGE));
      } catch {
        throw new RangeError(`out of memory: the host would not grow a WebAssembly memory to ${(end / 2 ** 20).toFixed(0)} MiB for ${what}; try --dtype bf16 or a shorter --context`);
      }
      this.tops[i] = end;
    }
    return inOne ? (memory + 1) * TAG + ptr : ptr;
  }

  /** Give back `bytes` at `ptr` (from alloc) for later allocations. */
  free(ptr: number, bytes: number): void {
    const memory = ptr >= TAG ? this.memoryOf(ptr) : -1;
    let hole: Hole = { memory, ptr: this.offsetOf(ptr), bytes: Math.ceil(bytes / 64) * 64 };
    for (let i = this.holes.length - 1; i >= 0; i--) {
      const h = this.holes[i]!;
      if (h.memory !== memory || (h.ptr + h.bytes !== hole.ptr && hole.ptr + hole.bytes !== h.ptr)) continue;
      hole = { memory, ptr: Math.min(h.ptr, hole.ptr), bytes: h.bytes + hole.bytes };
      this.holes.splice(i, 1);
    }
    this.holes.push(hole);
  }

  /** An offset from the first hole of that memory that holds `bytes`, or undefined. */
  private reuse(memory: number, bytes: number): number | undefined {
    const need = Math.ceil(bytes / 64) * 64, i = this.holes.findIndex((h) => h.memory === memory && h.bytes >= need);
    if (i < 0) return undefined;
    const h = this.holes[i]!, ptr = h.ptr;
    if (h.bytes === need) this.holes.splice(i, 1);
    else this.holes[i] = { memory, ptr: ptr + need, bytes: h.bytes - need };
    return ptr;
  }

  /** Allocate in the memory that holds `beside` (e.g. a layer's KV cache beside the layer's weights). */
  allocBeside(beside: number, bytes: number, what: string): number {
    return this.alloc(bytes, what, this.memoryOf(beside));
  }

  /** Which memory a pointer lives in (0 for mirrored buffers). */
  memoryOf(ptr: number): number {
    return ptr >= TAG ? Math.floor(ptr / TAG) - 1 : 0;
  }

  /** The byte offset of a pointer within its memory. */
  offsetOf(ptr: number): number {
    return ptr % TAG;
  }

  /** Float32 view of all of memory `i` (of the only memory, by default). */
  f32Of(i = 0): Float32Array {
    return this.view(i).f32;
  }

  get f32(): Float32Array {
    return this.view(0).f32;
  }

  /** A Float32Array over `count` floats at `ptr` (valid until the memory grows); mirrored: memory 0's copy. */
  floats(ptr: number, count: number): Float32Array {
    const o = this.offsetOf(ptr) >>> 2;
    return this.view(this.memoryOf(ptr)).f32.subarray(o, o + count);
  }

  /** The `count` bytes at `ptr`, as a view into the memory that holds them. */
  bytes(ptr: number, count: number): Uint8Array {
    const o = this.offsetOf(ptr);
    return this.view(this.memoryOf(ptr)).u8.subarray(o, o + count);
  }

  /** Write floats at `ptr`: into every memory for a mirrored buffer. */
  write(ptr: number, data: Float32Array): void {
    const o = this.offsetOf(ptr) >>> 2;
    const targets = ptr >= TAG ? [this.memoryOf(ptr)] : [...this.memories.keys()];
    for (const i of targets) this.view(i).f32.set(data, o);
  }

  private view(i: number) {
    const v = this.views[i]!, buffer = this.memories[i]!.buffer;
    if (v.buffer !== buffer) {
      v.buffer = buffer;
      v.f32 = new Float32Array(buffer);
      v.u8 = new Uint8Array(buffer);
    }
    return v;
  }
}
