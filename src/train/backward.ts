// The backward pass of each operation of the model, in plain TypeScript: given the gradient of the loss
// with respect to an operation's output (dy) and what its forward pass saw, add the gradients with respect
// to its inputs and weights into the arrays passed in (+=, so that a tensor used twice, like tied
// embeddings, collects both). Matrices are row-major Float32Arrays; shapes are given in each comment.
// The matrix products' backward (dx += dy·W, dW += dyᵀ·x), the cross-entropy loss with its gradient and
// attention's backward pass are kernels (matmulGradInput, matmulGradWeight, crossEntropy,
// attentionBackward), specified in src/kernels/reference.ts and called from gradients.ts.
import type { Activation } from "../config.js";
import { erf } from "../kernels/reference.js";

/**
 * y = x · r · g per row of `dim`, with r = 1 / sqrt(mean(x²) + eps): dg += Σ_rows dy·x·r, and
 * dx += r·(dy·g) − x·r³·(Σ dy·g·x) / dim (the second term: every value moves r).
 */
export function rmsNormBackward(dy: Float32Array, x: Float32Array, g: Float32Array, rows: number, dim: number, eps: number, dx: Float32Array, dg: Float32Array): void {
  for (let i = 0; i < rows; i++) {
    const o = i * dim;
    let ss = 0, dot = 0;
    for (let c = 0; c < dim; c++) {
      ss += x[o + c]! * x[o + c]!;
      dot += dy[o + c]! * g[c]! * x[o + c]!;
    }
    const r = 1 / Math.sqrt(ss / dim + eps), r3 = (r * r * r * dot) / dim;
    for (let c = 0; c < dim; c++) {
      dg[c]! += dy[o + c]! * x[o + c]! * r;
      dx[o + c]! += r * dy[o + c]! * g[c]! - x[o + c]! * r3;
    }
  }
}

/**
 * Rotate-half RoPE of x[T, heads, headDim] at positions pos0.. (tables [positions, headDim/2]) is a rotation
 * of each pair (i, i + headDim/2) by its angle; its backward rotates dy back by the same angle. In place.
 */
export function ropeBackward(dy: Float32Array, cos: Float32Array, sin: Float32Array, T: number, heads: number, headDim: number, pos0 = 0): void {
  const half = headDim / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim, a = (pos0 + t) * half;
      for (let i = 0; i < half; i++) {
        const d1 = dy[o + i]!, d2 = dy[o + i + half]!, c = cos[a + i]!, s = sin[a + i]!;
        dy[o + i] = d1 * c + d2 * s;
        dy[o + i + half] = d2 * c - d1 * s;
      }
    }
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The activation and its derivative at x (swish = x·σ(x); gelu in its exact erf form, as the forward pass). */
const ACTIVATIONS: Record<Activation, (x: number) => [number, number]> = {
  swish: (x) => [x * sigmoid(x), sigmoid(x) * (1 + x * (1 - sigmoid(x)))],
  gelu: (x) => [0.5 * x * (1 + erf(x / Math.SQRT2)), 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)],
  relu: (x) => [Math.max(0, x), x > 0 ? 1 : 0],
};

/**
 * act[rows×width] = act(gate)·up (gated; ffn [rows, 2·width] = gate | up) or act(ffn) ([rows, width]):
 * dffn += d(gate) | d(up), with d(gate) = dact·up·act'(gate) and d(up) = dact·act(gate).
 */
export function activationBackward(dact: Float32Array, ffn: Float32Array, rows: number, width: number, act: Activation, gated: boolean, dffn: Float32Array): void {
  const f = ACTIVATIONS[act], stride = gated ? 2 * width : width;
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < width; c++) {
      const o = i * stride + c, [a, da] = f(ffn[o]!), d = dact[i * width + c]!;
      if (!gated) dffn[o]! += d * da;
      else {
        dffn[o]! += d * ffn[o + width]! * da;
        dffn[o + width]! += d * a;
      }
    }
}
