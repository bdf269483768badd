// The SIMD kernels over the one WebAssembly.Memory that the TypeScript arena owns. Every argument is a
// byte offset into that memory or a size; nothing here allocates. The readable specification of each
// kernel is src/kernels/reference.ts, and the tests hold the two together.
export { matmul, pairActivations, packRows } from "./matmul";
export { matmulGradInput, matmulGradWeight } from "./backward";
export { crossEntropy, attentionBackward } from "./train";
export { quantizeRows, packQuantized, dequantizeRows } from "./quant";
export { attention } from "./attention";
export { rmsNorm, rope, activate, add, widen, copyRows, readBytes, fmaPeak, firstNonFinite } from "./elementwise";
