// The readable specification of every kernel, in plain TypeScript over the arena's memory.
// The SIMD kernels in kernels/ must agree with these (test/kernels.test.ts).
import type { Arena } from "../arena.js";
import { F16_TABLE, bf16ToF32, f32ToF16, isKQuant, isQuantized, tensorBytes, type DType, type FloatType, type QuantType } from "../dtype.js";
import { dequantizeRow } from "../formats/blocks.js";
import type { Activation } from "../config.js";
import type { Kernels } from "./types.js";

/** erf to about 1e-7 (Abramowitz & Stegun 7.1.26), enough for float32 GELU. */
export function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x < 0 ? -y : y;
}

export const ACTIVATIONS: Record<Activation, (x: number) => number> = {
  swish: (x) => x / (1 + Math.exp(-x)),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), // the exact (erf) form, not the tanh approximation
  relu: (x) => Math.max(0, x),
};

/**
 * Activations for a quantized product, as llama.cpp quantizes them (and kernels/quant.ts): for Q8_0 and
 * Q4_0 weights per block of 32, d = max|x| / 127 rounded to f16 and q = x · 127 / max|x|; for the
 * K-quants per block of 256, with x_max the first value of largest magnitude, q = min(127, -127 / x_max · x)
 * and d = x_max / -127. Rounding is half to even. `d` has one scale per 32 values either way.
 */
export function quantizeActivations(x: Float32Array, kquant: boolean): { q: Int8Array; d: Float32Array } {
  const q = new Int8Array(x.length), d = new Float32Array(x.length / 32), f = Math.fround, block = kquant ? 256 : 32;
  for (let b0 = 0; b0 < x.length; b0 += block) {
    let amax = 0, big = 0;
    for (let c = b0; c < b0 + block; c++) if (Math.abs(x[c]!) > amax) (amax = Math.abs(x[c]!)), (big = x[c]!);
    const scale = kquant ? (big ? f(-127 / big) : 0) : amax ? f(127 / amax) : 0;
    const scaleD = kquant ? (scale ? f(1 / scale) : 0) : F16_TABLE[f32ToF16(f(amax / 127))]!;
    d.fill(scaleD, b0 / 32, (b0 + block) / 32);
    for (let c = b0; c < b0 + block; c++) q[c] = Math.min(127, roundHalfEven(f(x[c]! * scale)));
  }
  return { q, d };
}

const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** Copy rows of `width` floats, `stride` apart, starting at byte offset `ptr` of a memory's f32 view. */
export function readRows(f32: Float32Array, ptr: number, rows: number, width: number, stride: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(f32.subarray((ptr >> 2) + r * stride, (ptr >> 2) + r * stride + width), r * width);
  return out;
}

/** The readable TypeScript specification of every kernel, on one thread (`kernels: "typescript"`). */
export class ReferenceKernels implements Kernels {
  readonly name: string = "typescript";
  constructor(protected readonly arena: Arena) {}

  /** Element i of a weight tensor of type `type` at byte offset `ptr`, as a number. */
  protected weightReader(ptr: number, type: FloatType): (i: number) => number {
    const buf = this.arena.memory.buffer;
    if (type === "f32") {
      const a = new Float32Array(buf, ptr);
      return (i) => a[i]!;
    }
    const a = new Uint16Array(buf, ptr);
    return type === "bf16" ? (i) => bf16ToF32(a[i]!) : (i) => F16_TABLE[a[i]!]!;
  }

  workspace(): void {} // the specification quantizes into plain arrays

  matmul(out: number, x: number, w: number, wType: DType, m: number, n: number, k: number): void {
    if (isQuantized(wType)) return this.matmulQuantized(out, x, w, wType, m, n, k);
    const f = this.arena.f32, W = this.weightReader(w, wType);
    for (let i = 0; i < m; i++) {
      const xi = (x >> 2) + i * k;
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let c = 0; c < k; c++) s += f[xi + c]! * W(j * k + c);
        f[(out >> 2) + i * n + j] = s;
      }
    }
  }

  matmulGradInput(dx: number, dy: number, w: number, m: number, n: number, k: number): void {
    const f = this.arena.f32;
    for (let i = 0; i < m; i++)
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += f[(dy >> 2) + i * n + j]! * f[(w >> 2) + j * k + c]!;
        f[(dx >> 2) + i * k + c]! += s;
      }
  }

  matmulGradWeight(dw: number, dy: number, x: number, m: number, n: number, k: number): void {
    const f = this.arena.f32;
    for (let j = 0; j < n; j++)
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += f[(dy >> 2) + i * n + j]! * f[(x >> 2) + i * k + c]!;
        f[(dw >> 2) + j * k + c]! += s;
      }
  }

  /**
   * Per row, in float64: e = exp(x − max x), loss = max x + log Σe − x[target], d = e / Σe · scale, minus
   * scale at the target. The SIMD kernel is not bit-identical: its exp4 (kernels/simd.ts) is not Math.exp and
   * it rounds x − max x to float32, so its dlogits are within 6e-7 + 2^-24·|x − max x| relative (1.3e-6 for
   * logits spread over 20), its losses within 2e-7 (test/kernels.test.ts).
   */
  crossEntropy(dlogits: number, logits: number, targets: number, losses: number, rows: number, vocab: number, scale: number): void {
    const f = this.arena.f32, ids = new Int32Array(this.arena.memory.buffer, targets, rows), e = new Float64Array(vocab);
    for (let r = 0; r < rows; r++) {
      const x = (logits >> 2) + r * vocab, d = (dlogits >> 2) + r * vocab, target = ids[r]!;
      let top = -Infinity, sum = 0;
      for (let j = 0; j < vocab; j++) top = Math.max(top, f[x + j]!);
      for (let j = 0; j < vocab; j++) sum += e[j] = Math.exp(f[x + j]! - top);
      f[(losses >> 2) + r] = top + Math.log(sum) - f[x + target]!; // read before d (which may be x) is written
      for (let j = 0; j < vocab; j++) f[d + j] = (e[j]! / sum) * scale;
      f[d + target]! -= scale;
    }
  }

  /**
   * Per query head h (kv head g = h / group) and row t: P = softmax over keys s ≤ t of q·k / √hd,
   * dP = dout·vᵀ, then dv[s] += P·dout, dS = P ⊙ (dP − Σ P·dP), dq += dS·k / √hd, dk[s] += dS·q / √hd.
   */
  attentionBackward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number, T: number, qHeads: number, kvHeads: number, hd: number): void {
    const f = this.arena.f32, group = qHeads / kvHeads, scale = 1 / Math.sqrt(hd);
    const p = new Float64Array(T), dp = new Float64Array(T);
    for (let h = 0; h < qHeads; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = (t * qHeads + h) * hd, Q = (q >> 2) + qo, D = (dout >> 2) + qo, DQ = (dq >> 2) + qo;
        // this row's probabilities over keys 0..t
        let top = -Infinity;
        for (let s = 0; s <= t; s++) {
          const K = (k >> 2) + (s * kvHeads + g) * hd;
          let d = 0;
          for (let c = 0; c < hd; c++) d += f[Q + c]! * f[K + c]!;
          p[s] = d * scale;
          top = Math.max(top, p[s]!);
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += p[s] = Math.exp(p[s]! - top);
        // dP = dout · vᵀ, and the row's Σ P·dP
        let pdp = 0;
        for (let s = 0; s <= t; s++) {
          p[s]! /= sum;
          const V = (v >> 2) + (s * kvHeads + g) * hd;
          let d = 0;
          for (let c = 0; c < hd; c++) d += f[D + c]! * f[V + c]!;
          dp[s] = d;
          pdp += p[s]! * d;
        }
        for (let s = 0; s <= t; s++) {
          const kv = (s * kvHeads + g) * hd, K = (k >> 2) + kv, DK = (dk >> 2) + kv, DV = (dv >> 2) + kv, ds = p[s]! * (dp[s]! - pdp) * scale;
          for (let c = 0; c < hd; c++) {
            f[DV + c]! += p[s]! * f[D + c]!;
            f[DQ + c]! += ds * f[K + c]!;
            f[DK + c]! += ds * f[Q + c]!;
          }
        }
      }
    }
  }

  /** Quantized weights: each row dequantized (blocks.ts), x quantized as the SIMD kernels quantize it. */
  private matmulQuantized(out: number, x: number, w: number, wType: QuantType, m: number, n: number, k: number): void {
    const f = this.arena.f32, row = new Float32Array(k), rowBytes = tensorBytes(wType, [k]);
    const xs = Array.from({ length: m }, (_, i) => quantizeActivations(f.subarray((x >> 2) + i * k, (x >> 2) + (i + 1) * k), isKQuant(wType)));
    for (let j = 0; j < n; j++) {
      dequantizeRow(wType, this.arena.bytes(w + j * rowBytes, rowBytes), row, k);
      xs.forEach(({ q, d }, i) => {
        let sum = 0;
        for (let b = 0; b < k / 32; b++) {
          let block = 0;
          for (let c = b * 32; c < b * 32 + 32; c++) block += row[c]! * q[c]!;
          sum += d[b]! * block;
        }
        f[(out >> 2) + i * n + j] = sum;
      });
    }
  }

  widen(out: number, src: number, srcType: DType, n: number): void {
    if (isQuantized(srcType)) return dequantizeRow(srcType, this.arena.bytes(src, tensorBytes(srcType, [n])), this.arena.floats(out, n), n);
    const f = this.arena.f32, S = this.weightReader(src, srcType);
    for (let i = 0; i < n; i++) f[(out >> 2) + i] = S(i);
  }

  rmsNorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void {
    const f = this.arena.f32, w = weight >> 2;
    for (let r = 0; r < rows; r++) {
      const xi = (x >> 2) + r * dim, oi = (out >> 2) + r * dim;
      let ss = 0;
      for (let c = 0; c < dim; c++) ss += f[xi + c]! * f[xi + c]!;
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let c = 0; c < dim; c++) f[oi + c] = f[xi + c]! * inv * f[w + c]!;
    }
  }

  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void {
    const f = this.arena.f32;
    for (let r = 0; r < rows; r++) {
      const s = (src >> 2) + r * srcStride;
      f.copyWithin((dst >> 2) + r * dstStride, s, s + width);
    }
  }

  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, pos0: number): void {
    const f = this.arena.f32, half = headDim / 2;
    for (let r = 0; r < rows; r++) {
      const t = (pos0 + r) * half;
      for (let h = 0; h < heads; h++) {
        const v = (x >> 2) + (r * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = f[(cos >> 2) + t + i]!, s = f[(sin >> 2) + t + i]!;
          const a = f[v + i]!, b = f[v + half + i]!;
          // rotate_half(x) = [-x2, x1]: out = x·cos + rotate_half(x)·sin
          f[v + i] = a * c - b * s;
          f[v + half + i] = b * c + a * s;
        }
      }
    }
  }

  attention(out: number, q: number, kCache: number, vCache: number, rows: number, pos0: number, qHeads: number, kvHeads: number, headDim: number): void {
    const f = this.arena.f32;
    const group = qHeads / kvHeads; // query heads that share one kv head
    const scale = 1 / Math.sqrt(headDim);
    for (let r = 0; r < rows; r++) {
      const len = pos0 + r + 1; // causal: keys 0..pos0+r
      for (let h = 0; h < qHeads; h++) {
        const qi = (q >> 2) + (r * qHeads + h) * headDim;
        const kv = Math.floor(h / group);
        const key = (s: number) => (kCache >> 2) + (s * kvHeads + kv) * headDim;
        const value = (s: number) => (vCache >> 2) + (s * kvHeads + kv) * headDim;
        // softmax(q·kᵀ / sqrt(headDim)) over the visible keys
        const scores = Array.from({ length: len }, (_, s) => {
          let d = 0;
          for (let c = 0; c < headDim; c++) d += f[qi + c]! * f[key(s) + c]!;
          return d * scale;
        });
        const max = Math.max(...scores);
        const weights = scores.map((x) => Math.exp(x - max));
        const sum = weights.reduce((a, b) => a + b, 0);
        // the weighted sum of the values
        const oi = (out >> 2) + (r * qHeads + h) * headDim;
        for (let c = 0; c < headDim; c++) {
          let acc = 0;
          for (let s = 0; s < len; s++) acc += weights[s]! * f[value(s) + c]!;
          f[oi + c] = acc / sum;
        }
      }
    }
  }

  activate(out: number, x: number, rows: number, width: number, act: Activation, gated: boolean): void {
    const f = this.arena.f32, fn = ACTIVATIONS[act], inStride = gated ? 2 * width : width;
    for (let r = 0; r < rows; r++) {
      const xi = (x >> 2) + r * inStride, oi = (out >> 2) + r * width;
      for (let c = 0; c < width; c++) f[oi + c] = fn(f[xi + c]!) * (gated ? f[xi + width + c]! : 1);
    }
  }

  firstNonFinite(ptr: number, dtype: FloatType, n: number): number {
    // exponent bits all ones: infinity or NaN
    const buf = this.arena.memory.buffer;
    const [bits, mask] = dtype === "f32" ? [new Uint32Array(buf, ptr, n), 0x7f800000] : [new Uint16Array(buf, ptr, n), dtype === "bf16" ? 0x7f80 : 0x7c00];
    for (let i = 0; i < n; i++) if ((bits[i]! & mask) === mask) return i;
    return -1;
  }

  read(ptr: number, rows: number, width: number, stride: number): Float32Array {
    return readRows(this.arena.f32, ptr, rows, width, stride);
  }

  async close(): Promise<void> {}

  add(out: number, x: number, n: number): void {
    const f = this.arena.f32;
    for (let i = 0; i < n; i++) f[(out >> 2) + i] = f[(out >> 2) + i]! + f[(x >> 2) + i]!;
  }
}

