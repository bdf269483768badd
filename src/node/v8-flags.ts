// V8 settings for the kernels, applied before any WebAssembly is compiled (they are process-wide, so
// worker threads inherit them):
// - Node 20 has relaxed SIMD only behind a flag (Chrome and newer Node have it by default);
// - compile straight with the optimizing tier: the baseline tier (Liftoff) runs a kernel call several
//   times slower until background tier-up replaces it, which would skew the first tokens.
import v8 from "node:v8";

/** Set the V8 flags openelm needs (relaxed SIMD on Node 20, no baseline wasm compiler) before any WebAssembly is compiled. */
export function configureV8(): void {
  if (Number(process.versions.node.split(".")[0]) < 22) v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  v8.setFlagsFromString("--no-liftoff");
}
