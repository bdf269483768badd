// The SIMD kernel set: the AssemblyScript module in kernels/ compiled to WebAssembly, instantiated on
// the arena's memory. Kernels it does not (yet) provide fall back to the TypeScript specification.
import type { Arena } from "../arena.js";
import { DTYPE_CODE, type DType } from "../dtype.js";
import { ReferenceKernels } from "./reference.js";

interface WasmExports {
  matmul(out: number, x: number, w: number, dtype: number, m: number, n: number, k: number): void;
}

export class WasmKernels extends ReferenceKernels {
  override readonly name = "wasm-simd";
  private constructor(arena: Arena, private readonly wasm: WasmExports) {
    super(arena);
  }

  /** Instantiate the compiled kernels (bytes of kernels.wasm, or a compiled module) on the arena's memory. */
  static async create(arena: Arena, module: BufferSource | WebAssembly.Module): Promise<WasmKernels> {
    const compiled = module instanceof WebAssembly.Module ? module : await WebAssembly.compile(module);
    const instance = await WebAssembly.instantiate(compiled, { env: { memory: arena.memory } });
    return new WasmKernels(arena, instance.exports as unknown as WasmExports);
  }

  override matmul(out: number, x: number, w: number, wType: DType, m: number, n: number, k: number): void {
    this.wasm.matmul(out, x, w, DTYPE_CODE[wType], m, n, k);
  }
}
