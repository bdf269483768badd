// ggml's quantized block formats (ggml-common.h) in plain TypeScript: how a row of values is stored, how to
// get the values back (as ggml's dequantize_row_* computes them, in float32), and quantizers that write
// them. Q8_0 and Q4_0 quantize exactly as ggml's reference quantizers do; the K-quants here choose their
// scales by rounding each sub-block's range (ggml searches for scales that lower the error, so llama.cpp's
// own Q4_K and Q6_K files are a little more accurate, and read identically).
//
// | type | block | bytes | layout | value |
// | --- | --- | --- | --- | --- |
// | q8_0 | 32 | 34 | f16 d, int8 q[32] | d·q |
// | q4_0 | 32 | 18 | f16 d, u8 qs[16]: value j in the low nibble of qs[j], value 16+j in the high | d·(q − 8) |
// | q4_k | 256 | 144 | f16 d, f16 dmin, u8 scales[12] (eight 6-bit scales and mins), u8 qs[128] | d·sc·q − dmin·m |
// | q5_k | 256 | 176 | as q4_k, with u8 qh[32] before qs: bit s of qh[l] is the fifth bit of value l of sub-block s | d·sc·q − dmin·m |
// | q6_k | 256 | 210 | u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), int8 scales[16], f16 d | d·sc·(q − 32) |
import { BLOCK, BYTES, F16_TABLE, convert, f32ToF16, isQuantized, type DType, type FloatType, type QuantType } from "../dtype.js";

const f = Math.fround;
/** C's roundf: halves away from zero. */
const roundf = (x: number) => Math.sign(x) * Math.round(Math.abs(x));
const half = (b: Uint8Array, at: number) => F16_TABLE[b[at]! | (b[at + 1]! << 8)]!;
const setHalf = (b: Uint8Array, at: number, x: number) => {
  const h = f32ToF16(x);
  b[at] = h & 0xff;
  b[at + 1] = h >> 8;
};

/** The 6-bit scale and min of sub-block j (0..7) of a q4_k block (ggml's get_scale_min_k4). */
export function scaleMinK4(s: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [s[at + j]! & 63, s[at + j + 4]! & 63];
  return [(s[at + j + 4]! & 0xf) | ((s[at + j - 4]! >> 6) << 4), (s[at + j + 4]! >> 4) | ((s[at + j]! >> 6) << 4)];
}

/** Values of one row of `k` values stored as `type` (k a multiple of the block size). */
export function dequantizeRow(type: QuantType, src: Uint8Array, dst: Float32Array, k: number): void {
  const { values, bytes } = BLOCK[type];
  for (let b = 0, at = 0; b < k / values; b++, at += bytes) {
    const y = b * values;
    if (type === "q8_0") {
      const d = half(src, at);
      for (let j = 0; j < 32; j++) dst[y + j] = f(d * ((src[at + 2 + j]! << 24) >> 24));
    } else if (type === "q4_0") {
      const d = half(src, at);
      for (let j = 0; j < 16; j++) {
        dst[y + j] = f(((src[at + 2 + j]! & 0xf) - 8) * d);
        dst[y + j + 16] = f(((src[at + 2 + j]! >> 4) - 8) * d);
      }
    } else if (type === "q4_k" || type === "q5_k") {
      const d = half(src, at), dmin = half(src, at + 2), five = type === "q5_k", qh = at + 16, qs = at + (five ? 48 : 16);
      for (let j = 0; j < 8; j++) {
        const [sc, m] = scaleMinK4(src, at + 4, j), d1 = f(d * sc), m1 = f(dmin * m);
        // sub-blocks 2i and 2i+1 share 32 bytes: low nibbles, then high nibbles
        const q = qs + (j >> 1) * 32, shift = (j & 1) * 4;
        for (let l = 0; l < 32; l++) {
          const v = ((src[q + l]! >> shift) & 0xf) | (five ? ((src[qh + l]! >> j) & 1) << 4 : 0);
          dst[y + j * 32 + l] = f(f(d1 * v) - m1);
        }
      }
    } else {
      const d = half(src, at + 208);
      for (let n = 0; n < 2; n++) {
        const ql = at + n * 64, qh = at + 128 + n * 32, sc = at + 192 + n * 8;
        for (let l = 0; l < 32; l++) {
          // four values per position l of this half: low/high nibbles of ql[l] and ql[l+32], two bits of qh[l] each
          const q = [(src[ql + l]! & 0xf) | (((src[qh + l]! >> 0) & 3) << 4), (src[ql + l + 32]! & 0xf) | (((src[qh + l]! >> 2) & 3) << 4),
            (src[ql + l]! >> 4) | (((src[qh + l]! >> 4) & 3) << 4), (src[ql + l + 32]! >> 4) | (((src[qh + l]! >> 6) & 3) << 4)];
          for (let i = 0; i < 4; i++) dst[y + n * 128 + l + 32 * i] = f(f(d * ((src[sc + (l >> 4) + 2 * i]! << 24) >> 24)) * (q[i]! - 32));
        }
      }
    }
  }
}

/** Store one row of `k` values as `type`. */
export function quantizeRow(type: QuantType, x: Float32Array, dst: Uint8Array, k: number): void {
  const { values, bytes } = BLOCK[type];
  dst.fill(0, 0, (k / values) * bytes);
  for (let b = 0, at = 0; b < k / values; b++, at += bytes) {
    const v = x.subarray(b * values, (b + 1) * values);
    if (type === "q8_0") {
      let amax = 0;
      for (const e of v) amax = Math.max(amax, Math.abs(e));
      const d = f(amax / 127), id = d ? f(1 / d) : 0;
      setHalf(dst, at, d);
      for (let j = 0; j < 32; j++) dst[at + 2 + j] = roundf(f(v[j]! * id)) & 0xff;
    } else if (type === "q4_0") {
      // the value of largest magnitude maps to -8, so its sign decides the scale's
      let amax = 0, max = 0;
      for (const e of v) if (amax < Math.abs(e)) (amax = Math.abs(e)), (max = e);
      const d = f(max / -8), id = d ? f(1 / d) : 0;
      setHalf(dst, at, d);
      const q = (e: number) => Math.min(15, Math.trunc(f(f(e * id) + 8.5)));
      for (let j = 0; j < 16; j++) dst[at + 2 + j] = q(v[j]!) | (q(v[j + 16]!) << 4);
    } else if (type === "q4_k" || type === "q5_k") quantizeK(v, dst, at, type === "q5_k");
    else quantizeQ6K(v, dst, at);
  }
}

/** q4_k and q5_k: per sub-block of 32 a scale and a min (value ≈ scale·q − min, q in 0..15 or 0..31), both stored in 6 bits. */
function quantizeK(v: Float32Array, dst: Uint8Array, at: number, five: boolean): void {
  const scales = new Float64Array(8), mins = new Float64Array(8), top = five ? 31 : 15, qs = at + (five ? 48 : 16);
  for (let j = 0; j < 8; j++) {
    const s = v.subarray(j * 32, (j + 1) * 32);
    const lo = Math.min(0, ...s), hi = Math.max(...s);
    scales[j] = (hi - lo) / top;
    mins[j] = -lo;
  }
  const maxScale = Math.max(...scales), maxMin = Math.max(...mins);
  const d = f(maxScale / 63), dmin = f(maxMin / 63);
  setHalf(dst, at, d);
  setHalf(dst, at + 2, dmin);
  const ls = scales.map((s) => (d ? Math.min(63, Math.round(s / d)) : 0)), lm = mins.map((m) => (dmin ? Math.min(63, Math.round(m / dmin)) : 0));
  const sc = at + 4;
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      dst[sc + j] = ls[j]!;
      dst[sc + j + 4] = lm[j]!;
    } else {
      dst[sc + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      dst[sc + j - 4]! |= (ls[j]! >> 4) << 6;
      dst[sc + j]! |= (lm[j]! >> 4) << 6;
    }
  }
  // the values from the scales as stored, so that rounding of the scales is accounted for
  const dHalf = half(dst, at), mHalf = half(dst, at + 2);
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(dst, sc, j), step = f(dHalf * s), off = f(mHalf * m);
    const q = qs + (j >> 1) * 32, shift = (j & 1) * 4;
    for (let l = 0; l < 32; l++) {
      const level = step ? Math.max(0, Math.min(top, Math.round((v[j * 32 + l]! + off) / step))) : 0;
      dst[q + l]! |= (level & 0xf) << shift;
      if (five) dst[at + 16 + l]! |= (level >> 4) << j;
    }
  }
}

/** q6_k: per sub-block of 16 an int8 scale (value = d·sc·(q − 32), q in 0..63). */
function quantizeQ6K(v: Float32Array, dst: Uint8Array, at: number): void {
  const scales = new Float64Array(16);
  for (let j = 0; j < 16; j++) {
    // the value of largest magnitude maps to -32 (as q4_0 maps its to -8)
    let amax = 0, max = 0;
    for (const e of v.subarray(j * 16, (j + 1) * 16)) if (amax < Math.abs(e)) (amax = Math.abs(e)), (max = e);
    scales[j] = max / -32;
  }
  let amax = 0, max = 0;
  for (const s of scales) if (amax < Math.abs(s)) (amax = Math.abs(s)), (max = s);
  const d = f(max / -128);
  setHalf(dst, at + 208, d);
  const dHalf = half(dst, at + 208), levels = new Uint8Array(256);
  for (let j = 0; j < 16; j++) {
    const s = dHalf ? Math.max(-128, Math.min(127, Math.round(scales[j]! / dHalf))) : 0;
    dst[at + 192 + j] = s & 0xff;
    const step = f(dHalf * s);
    for (let l = 0; l < 16; l++) levels[j * 16 + l] = step ? Math.max(0, Math.min(63, Math.round(v[j * 16 + l]! / step) + 32)) : 32;
  }
  for (let n = 0; n < 2; n++) {
    const ql = at + n * 64, qh = at + 128 + n * 32, L = n * 128;
    for (let l = 0; l < 32; l++) {
      dst[ql + l] = (levels[L + l]! & 0xf) | ((levels[L + l + 64]! & 0xf) << 4);
      dst[ql + l + 32] = (levels[L + l + 32]! & 0xf) | ((levels[L + l + 96]! & 0xf) << 4);
      dst[qh + l] = (levels[L + l]! >> 4) | ((levels[L + l + 32]! >> 4) << 2) | ((levels[L + l + 64]! >> 4) << 4) | ((levels[L + l + 96]! >> 4) << 6);
    }
  }
}

/**
 * Convert `rows` rows of `k` values from `from` to `to` (raw bytes in, raw bytes out): between float types
 * as dtype.ts does, quantizing float rows, or dequantizing quantized ones. Quantized to another quantized
 * type is refused: it would quantize twice.
 */
export function convertRows(src: Uint8Array, from: DType, dst: Uint8Array, to: DType, rows: number, k: number): void {
  if (from === to) return void dst.set(src.subarray(0, rows * (k / BLOCK[from].values) * BLOCK[from].bytes));
  if (!isQuantized(from) && !isQuantized(to)) return convert(src, from, dst, to, rows * k);
  if (isQuantized(from) && isQuantized(to)) throw new RangeError(`${from} weights cannot be stored as ${to} (quantizing twice); use f32, f16 or bf16`);
  const row = new Float32Array(k), rowIn = (k / BLOCK[from].values) * BLOCK[from].bytes, rowOut = (k / BLOCK[to].values) * BLOCK[to].bytes;
  const f32 = new Uint8Array(row.buffer);
  for (let r = 0; r < rows; r++) {
    const s = src.subarray(r * rowIn, (r + 1) * rowIn), d = dst.subarray(r * rowOut, (r + 1) * rowOut);
    if (isQuantized(from)) {
      dequantizeRow(from, s, row, k);
      convert(f32, "f32", d, to as FloatType, k);
    } else {
      convert(s, from, f32, "f32", k);
      quantizeRow(to as QuantType, row, d, k);
    }
  }
}

/** Bytes per element of a float type, or of a block's share for a quantized one (for messages and bounds). */
export const bytesPerValue = (t: DType) => (isQuantized(t) ? BLOCK[t].bytes / BLOCK[t].values : BYTES[t]);

/** Index of the first block of a quantized tensor whose scale (or min) is NaN or infinite, or -1. */
export function firstNonFiniteBlock(type: QuantType, data: Uint8Array): number {
  const { bytes } = BLOCK[type], scales = { q8_0: [0], q4_0: [0], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208] }[type];
  for (let b = 0, at = 0; at < data.length; b++, at += bytes) for (const o of scales) if ((data[at + o + 1]! & 0x7c) === 0x7c) return b;
  return -1;
}
