// The arena owns the one WebAssembly.Memory that weights, KV cache and activations live in and that the
// kernels read. It hands out byte offsets; typed views are rebuilt whenever the memory has grown.

const PAGE = 65536;
/** wasm32 memories end at 4 GiB. */
export const MAX_ARENA_BYTES = 65536 * PAGE;
/** The first page stays free for the kernel module's own static data. */
const RESERVED = PAGE;

export class Arena {
  readonly memory: WebAssembly.Memory;
  private top = RESERVED;
  private buffer!: ArrayBuffer;
  private _f32!: Float32Array;
  private _u8!: Uint8Array;

  /** `shared`: a memory that worker threads can share (needs SharedArrayBuffer). */
  constructor(shared = false) {
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared });
    this.refresh();
  }

  /** Bytes handed out so far. */
  get used(): number {
    return this.top;
  }

  /** Reserve `bytes` (64-byte aligned, so SIMD loads and cache lines line up) and return the offset. */
  alloc(bytes: number, what = "buffer"): number {
    const ptr = Math.ceil(this.top / 64) * 64;
    const end = ptr + bytes;
    if (end > MAX_ARENA_BYTES)
      throw new RangeError(`out of memory: ${what} needs ${(bytes / 2 ** 20).toFixed(1)} MiB more, past the 4 GiB limit of a wasm32 memory (in use: ${(this.top / 2 ** 20).toFixed(1)} MiB); try --dtype bf16 or a shorter context`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return ptr;
  }

  get f32(): Float32Array {
    if (this.buffer !== this.memory.buffer) this.refresh();
    return this._f32;
  }

  get u8(): Uint8Array {
    if (this.buffer !== this.memory.buffer) this.refresh();
    return this._u8;
  }

  /** A Float32Array over `count` floats at byte offset `ptr` (valid until the memory grows). */
  floats(ptr: number, count: number): Float32Array {
    return this.f32.subarray(ptr >>> 2, (ptr >>> 2) + count);
  }

  bytes(ptr: number, count: number): Uint8Array {
    return this.u8.subarray(ptr, ptr + count);
  }

  private refresh(): void {
    this.buffer = this.memory.buffer as ArrayBuffer;
    this._f32 = new Float32Array(this.buffer);
    this._u8 = new Uint8Array(this.buffer);
  }
}
