// The backward pass of each operation of the model, in plain TypeScript: given the gradient of the loss
// with respect to an operation's output (dy) and what its forward pass saw, add the gradients with respect
// to its inputs and weights into the arrays passed in (+=, so that a tensor used twice, like tied
// embeddings, collects both). Matrices are row-major Float32Arrays; shapes are given in each comment.
// The matrix products' backward (dx += dy·W, dW += dyᵀ·x) are kernels: matmulGradInput and
// matmulGradWeight, specified in src/kernels/reference.ts.
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

/**
 * Causal grouped-query attention, out[t, h] = Σ_{s ≤ t} P[h, t, s] · v[s, h/group] with P = softmax(q·k / √hd):
 * the probabilities are recomputed from q and k (cheaper than keeping T² of them), then
 * dv += Pᵀ·dout, dS = P ⊙ (dP − Σ_s P·dP) with dP = dout·vᵀ, dq += dS·k / √hd, dk += dSᵀ·q / √hd.
 * q [T, qHeads, hd], k and v [T, kvHeads, hd], dout [T, qHeads·hd].
 */
export function attentionBackward(dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, T: number, qHeads: number, kvHeads: number, hd: number, dq: Float32Array, dk: Float32Array, dv: Float32Array): void {
  const group = qHeads / kvHeads, scale = 1 / Math.sqrt(hd);
  const p = new Float64Array(T), dp = new Float64Array(T);
  for (let h = 0; h < qHeads; h++) {
    const g = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const qo = (t * qHeads + h) * hd;
      // this row's probabilities over keys 0..t
      let top = -Infinity;
      for (let s = 0; s <= t; s++) {
        const ko = (s * kvHeads + g) * hd;
        let d = 0;
        for (let c = 0; c < hd; c++) d += q[qo + c]! * k[ko + c]!;
        p[s] = d * scale;
        top = Math.max(top, p[s]!);
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += p[s] = Math.exp(p[s]! - top);
      // dP = dout · vᵀ, and the row's Σ P·dP
      let pdp = 0;
      for (let s = 0; s <= t; s++) {
        p[s]! /= sum;
        const vo = (s * kvHeads + g) * hd;
        let d = 0;
        for (let c = 0; c < hd; c++) d += dout[qo + c]! * v[vo + c]!;
        dp[s] = d;
        pdp += p[s]! * d;
      }
      for (let s = 0; s <= t; s++) {
        const ko = (s * kvHeads + g) * hd, ds = p[s]! * (dp[s]! - pdp) * scale;
        for (let c = 0; c < hd; c++) {
          dv[ko + c]! += p[s]! * dout[qo + c]!;
          dq[qo + c]! += ds * k[ko + c]!;
          dk[ko + c]! += ds * q[qo + c]!;
        }
      }
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

/**
 * Mean cross-entropy of predicting ids[t + 1] from logits row t (rows 0..T−2; the last row predicts
 * nothing), and its gradient: (softmax − one-hot) / (T − 1) per row.
 */
export function crossEntropy(logits: Float32Array, ids: number[], vocab: number): { loss: number; dlogits: Float32Array } {
  const T = ids.length, n = T - 1, dlogits = new Float32Array(T * vocab);
  let loss = 0;
  for (let t = 0; t < n; t++) {
    const o = t * vocab;
    let top = -Infinity, sum = 0;
    for (let j = 0; j < vocab; j++) top = Math.max(top, logits[o + j]!);
    for (let j = 0; j < vocab; j++) sum += dlogits[o + j] = Math.exp(logits[o + j]! - top);
    loss += top + Math.log(sum) - logits[o + ids[t + 1]!]!;
    for (let j = 0; j < vocab; j++) dlogits[o + j]! /= sum * n;
    dlogits[o + ids[t + 1]!]! -= 1 / n;
  }
  return { loss: loss / n, dlogits };
}
