// Matrix products with weights in ggml's quantized blocks (src/formats/blocks.ts describes the layouts).
// As llama.cpp does, the activations are quantized too, to int8 with an f32 scale per block (of 32 for
// Q8_0/Q4_0, of 256 for the K-quants), so the inner loop is an integer dot product of weight and activation
// bytes, turned into a float once per block (Q8_0, Q4_0) or per super-block of 256 (K-quants). Weights whose
// quants are unsigned and below 64 (Q4_0, Q4_K, Q5_K, Q6_K) take relaxed SIMD's i8×i7 products into int16
// pairs (x86 pmaddubsw), then one i32x4.dot_i16x8_s (pmaddwd) that multiplies by the sub-block's scale as it
// widens (measured 15–22% faster than the i8×i7 dot into int32 and a separate multiply); their offset
// (q − 8, q − 32, a block's min) is applied through the activations' block sums.
// Q8_0's quants are signed, so its activations are stored widened to int16 and each 8 products and their
// pairwise sums are one i32x4.dot_i16x8_s (x86: pmaddwd): 7 instructions per 16 weights in V8's code,
// against 11 for int8 widening multiplies and 9 for the sign trick into the i8×i7 dot.
import { madd, hsum, F16_SCALE } from "./simd";

// Storage type codes after F32, F16, BF16 (src/dtype.ts DTYPE_CODE).
export const Q8_0: i32 = 3;
export const Q4_0: i32 = 4;
export const Q4_K: i32 = 5;
export const Q6_K: i32 = 6;
export const Q5_K: i32 = 7;

/**
 * Bytes of one quantized activation row of k values: q[k] (int16 for Q8_0 weights, int8 in the first k
 * bytes otherwise), f32 d[k/32], f32 d·Σq per 16 values [k/16].
 */
// @ts-ignore: decorator
@inline export function qRowBytes(k: i32): usize {
  return <usize>k * 2 + <usize>(k >> 5) * 4 + <usize>(k >> 4) * 4;
}

/** Where a quantized activation row's scales d start. */
// @ts-ignore: decorator
@inline function scalesOf(xq: usize, k: i32): usize {
  return xq + <usize>k * 2;
}

/**
 * An f16 at p as f32 (finite values: files with f16 infinities are refused when loaded), for formats whose
 * scales are often f16 subnormals (`subnormals`: the K-quants' super-block scales, for weights of a typical
 * size) without a subnormal f32 in float arithmetic, for which x86 takes a microcode assist (measured:
 * Q6_K's product 60% slower). The exponent is rebiased in the bits, exact for a normal f16; a subnormal
 * one (exponent 0, mantissa m) gets exponent 1 instead, 2^-14 + m·2^-24, and 2^-14 is then taken away.
 * Otherwise (Q8_0, Q4_0: subnormal only where a block's largest weight is below 8e-3 or 5e-4) the bits
 * scaled by 2^112, which is a few instructions shorter (measured 5–10% on their decode products).
 */
// @ts-ignore: decorator
@inline function half(p: usize, subnormals: bool): f32 {
  const h = <u32>load<u16>(p);
  if (!subnormals) return reinterpret<f32>(((h & 0x7fff) << 13) | ((h & 0x8000) << 16)) * F16_SCALE;
  const e = h & 0x7c00, v = reinterpret<f32>(((h & 0x7fff) << 13) + select<u32>(112 << 23, 113 << 23, e));
  const mag = v - select<f32>(0, 6.103515625e-5, e);
  return reinterpret<f32>(reinterpret<u32>(mag) | ((h & 0x8000) << 16));
}

/** x rounded to the nearest f16 value (x ≥ 0 and finite): llama.cpp keeps activation scales as f16. */
// @ts-ignore: decorator
@inline function roundToHalf(x: f32): f32 {
  if (x < 6.103515625e-5) return nearest<f32>(x * 16777216) / 16777216; // subnormal f16: multiples of 2^-24
  const b = reinterpret<u32>(x);
  return reinterpret<f32>((b + 0xfff + ((b >> 13) & 1)) & ~0x1fff); // 10 mantissa bits, ties to even
}

/** Store 16 activations at p times `scale`, rounded half to even, as int8 at q (int16 if `wide`); returns their sum. */
// @ts-ignore: decorator
@inline function quantize16(q: usize, p: usize, scale: v128, wide: bool): i32 {
  const v0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p), scale)));
  const v1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 16), scale)));
  const v2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 32), scale)));
  const v3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 48), scale)));
  const lo = i16x8.narrow_i32x4_s(v0, v1), hi = i16x8.narrow_i32x4_s(v2, v3);
  if (wide) {
    v128.store(q, lo);
    v128.store(q, hi, 16);
  } else v128.store(q, i8x16.min_s(i8x16.narrow_i16x8_s(lo, hi), i8x16.splat(127))); // -127·x / max can round to 128 only at +127 (q8_K's MIN)
  const s = i32x4.add(i32x4.add(v0, v1), i32x4.add(v2, v3));
  return min(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3), 0x7fffffff);
}

/** max |x| over n floats at p (n a multiple of 16). */
// @ts-ignore: decorator
@inline function absMax(p: usize, n: i32): f32 {
  let a = f32x4.splat(0);
  for (let o = 0; o < n * 4; o += 16) a = f32x4.max(a, f32x4.abs(v128.load(p + <usize>o)));
  return max(max(f32x4.extract_lane(a, 0), f32x4.extract_lane(a, 1)), max(f32x4.extract_lane(a, 2), f32x4.extract_lane(a, 3)));
}

/**
 * Quantize rows of activations as llama.cpp does for each weight type. For Q8_0 and Q4_0 (its q8_0):
 * per block of 32, d = max|x| / 127 rounded to f16, q = round(x · 127 / max|x|). For the K-quants (its
 * q8_K): per block of 256, with x_max the value of largest magnitude, q = min(127, round(-127 / x_max · x))
 * and d = x_max / -127. Rounding is half to even. Each row: q[k] (int16 for Q8_0, else int8), then f32 d
 * per 32 (a 256-block's d repeated), then d·Σq per 16 values, which the formats with an offset need. m rows
 * of qRowBytes(k); `dtype` is the weights' type.
 */
export function quantizeRows(xq: usize, x: usize, m: i32, k: i32, dtype: i32): void {
  const rowBytes = qRowBytes(k), kquant = dtype >= Q4_K, wide = dtype == Q8_0, block = kquant ? 256 : 32;
  for (let i = 0; i < m; i++) {
    const src = x + <usize>i * k * 4, q = xq + <usize>i * rowBytes, ds = scalesOf(q, k), sums = ds + <usize>(k >> 5) * 4;
    for (let b0 = 0; b0 < k; b0 += block) {
      const p = src + <usize>b0 * 4, amax = absMax(p, block);
      let d: f32, scale: f32;
      if (!kquant) {
        d = roundToHalf(amax / 127);
        scale = amax != 0 ? <f32>127 / amax : 0;
      } else {
        // the first value of largest magnitude gives the scale its sign
        let big: f32 = 0;
        for (let c = 0; c < block && big == 0; c++) if (abs(load<f32>(p + <usize>c * 4)) == amax) big = load<f32>(p + <usize>c * 4);
        scale = big != 0 ? <f32>-127 / big : 0;
        d = scale != 0 ? <f32>1 / scale : 0;
      }
      for (let c = 0; c < block; c += 16) {
        const total = wide ? quantize16(q + <usize>(b0 + c) * 2, p + <usize>c * 4, f32x4.splat(scale), true) : quantize16(q + <usize>(b0 + c), p + <usize>c * 4, f32x4.splat(scale), false);
        store<f32>(sums + <usize>((b0 + c) >> 4) * 4, d * <f32>total);
      }
      for (let c = 0; c < block; c += 32) store<f32>(ds + <usize>((b0 + c) >> 5) * 4, d);
    }
  }
}

/**
 * 16 signed activation bytes a times 16 weight bytes u in 0..63, as eight int16 lanes that sum to their
 * dot product: each lane is at most 2·127·63, so two such results still add in int16, and a following
 * i32x4.dot_i16x8_s (x86 pmaddwd) sums pairs of lanes times a scale, or times 1. With relaxed SIMD this is
 * one pmaddubsw on x86; without it, two widening multiplies.
 */
// @ts-ignore: decorator
@inline function dotPairs(a: v128, u: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(a, u);
  return i16x8.add(i16x8.extmul_low_i8x16_s(a, u), i16x8.extmul_high_i8x16_s(a, u));
}

/** Four f16 scales, `stride` bytes apart from p, as f32x4 (as half(p, false) converts them). */
// @ts-ignore: decorator
@inline function halves4(p: usize, stride: usize): v128 {
  let v = i32x4.splat(<i32>load<u16>(p));
  v = i32x4.replace_lane(v, 1, <i32>load<u16>(p + stride));
  v = i32x4.replace_lane(v, 2, <i32>load<u16>(p + 2 * stride));
  v = i32x4.replace_lane(v, 3, <i32>load<u16>(p + 3 * stride));
  const bits = v128.or(i32x4.shl(v128.and(v, i32x4.splat(0x7fff)), 13), i32x4.shl(v128.and(v, i32x4.splat(0x8000)), 16));
  return f32x4.mul(bits, f32x4.splat(F16_SCALE));
}

/** [Σa, Σb, Σc, Σd] of four i32x4, as f32x4. */
// @ts-ignore: decorator
@inline function sums4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 2, 4, 6), i32x4.shuffle(a, b, 1, 3, 5, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 2, 4, 6), i32x4.shuffle(c, d, 1, 3, 5, 7));
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.shuffle(ab, cd, 0, 2, 4, 6), i32x4.shuffle(ab, cd, 1, 3, 5, 7)));
}

/** The activation sums d·Σq of four blocks of 32, from the eight sums of 16 at p. */
// @ts-ignore: decorator
@inline function blockSums4(p: usize): v128 {
  const a = v128.load(p), b = v128.load(p, 16);
  return f32x4.add(i32x4.shuffle(a, b, 0, 2, 4, 6), i32x4.shuffle(a, b, 1, 3, 5, 7));
}

/**
 * (v >> s) & mask in every byte, for masks that keep only bits the shift brought from the same byte
 * (mask < 2^(8-s)): x86 has no byte shifts, so WebAssembly's i8x16 shifts cost several instructions
 * there, while a 16-bit shift is one.
 */
// @ts-ignore: decorator
@inline function bitsOf(v: v128, s: u32, mask: i8): v128 {
  return v128.and(i16x8.shr_u(v, s), i8x16.splat(mask));
}

/** v << s in every byte whose value is below 2^(8-s) (nothing carries into the next byte). */
// @ts-ignore: decorator
@inline function up(v: v128, s: u32): v128 {
  return i16x8.shl(v, s);
}

// The products. Q8_0 and Q4_0 take four blocks of 32 values at a time, so that the blocks' integer dot
// products become floats together (two shuffle rounds sum four lanes of four vectors at once). Every
// format reads one weight row for `rows` activation rows (1 when decoding, 4 in prefill): the weights are
// unpacked once and used four times.

// Q8_0: Σ over blocks of (dw·dx)·(q_w · q_x), q_w signed int8, q_x int16.

/** The products of one block: 32 int16 activations at x with its weights widened to int16 (w0..w3), as four lanes of partial sums. */
// @ts-ignore: decorator
@inline function blockQ8_0(x: usize, w0: v128, w1: v128, w2: v128, w3: v128): v128 {
  const s = i32x4.add(i32x4.dot_i16x8_s(v128.load(x), w0), i32x4.dot_i16x8_s(v128.load(x, 16), w1));
  return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(v128.load(x, 32), w2), i32x4.dot_i16x8_s(v128.load(x, 48), w3)));
}

/** The products of block b of a weight row at w (34 bytes a block) with activations at xq. */
// @ts-ignore: decorator
@inline function dotQ8_0(w: usize, xq: usize, b: i32): v128 {
  // each 8 weights sign-extended by the load itself (x86 pmovsxbw from memory), no shuffles
  const wb = w + <usize>b * 34;
  return blockQ8_0(xq + <usize>b * 64, v128.load8x8_s(wb, 2), v128.load8x8_s(wb, 10), v128.load8x8_s(wb, 18), v128.load8x8_s(wb, 26));
}

// @ts-ignore: decorator
@inline function rowQ8_0(w: usize, xq: usize, k: i32, out: usize): void {
  // a block at a time, its scale applied at once: V8 gathers a longer unrolled body's loads up front, which spills
  let acc = f32x4.splat(0);
  const ds = scalesOf(xq, k);
  for (let b = 0; b < k >> 5; b++)
    acc = madd(f32x4.convert_i32x4_s(dotQ8_0(w, xq, b)), f32x4.splat(half(w + <usize>b * 34, false) * load<f32>(ds + <usize>b * 4)), acc);
  store<f32>(out, hsum(acc));
}

// @ts-ignore: decorator
@inline function rows4Q8_0(w: usize, xq: usize, rowBytes: usize, k: i32, out: usize, outStride: usize): void {
  // one block at a time: its weights widened once for the four rows, each row's sum scaled at once
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const nb = k >> 5, ds = scalesOf(xq, k);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * 34, dw = f32x4.splat(half(wb, false));
    const w0 = v128.load8x8_s(wb, 2), w1 = v128.load8x8_s(wb, 10), w2 = v128.load8x8_s(wb, 18), w3 = v128.load8x8_s(wb, 26);
    const x = xq + <usize>b * 64, dx = ds + <usize>b * 4;
    a0 = madd(f32x4.convert_i32x4_s(blockQ8_0(x, w0, w1, w2, w3)), f32x4.mul(dw, v128.load32_splat(dx)), a0);
    a1 = madd(f32x4.convert_i32x4_s(blockQ8_0(x + rowBytes, w0, w1, w2, w3)), f32x4.mul(dw, v128.load32_splat(dx + rowBytes)), a1);
    a2 = madd(f32x4.convert_i32x4_s(blockQ8_0(x + 2 * rowBytes, w0, w1, w2, w3)), f32x4.mul(dw, v128.load32_splat(dx + 2 * rowBytes)), a2);
    a3 = madd(f32x4.convert_i32x4_s(blockQ8_0(x + 3 * rowBytes, w0, w1, w2, w3)), f32x4.mul(dw, v128.load32_splat(dx + 3 * rowBytes)), a3);
  }
  store<f32>(out, hsum(a0));
  store<f32>(out + outStride, hsum(a1));
  store<f32>(out + 2 * outStride, hsum(a2));
  store<f32>(out + 3 * outStride, hsum(a3));
}

// Q4_0: weights as unsigned nibbles u, value d·(u − 8): acc + Σ (dw·dx)·(u · q_x) − 8·dw·(dx·Σq_x).

/** u · q_x for one block of 32 (u0: its values 0..15, u1: 16..31; x: its activations), as four lanes of partial sums. */
// @ts-ignore: decorator
@inline function blockQ4_0(x: usize, u0: v128, u1: v128, ones: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.add(dotPairs(v128.load(x), u0), dotPairs(v128.load(x, 16), u1)), ones);
}

// @ts-ignore: decorator
@inline function quadQ4_0(x: usize, dx: usize, sums: usize, dw: v128, w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128, acc: v128, ones: v128): v128 {
  const s0 = blockQ4_0(x, w0, w1, ones), s1 = blockQ4_0(x + 32, w2, w3, ones);
  const s2 = blockQ4_0(x + 64, w4, w5, ones), s3 = blockQ4_0(x + 96, w6, w7, ones);
  acc = madd(sums4(s0, s1, s2, s3), f32x4.mul(dw, v128.load(dx)), acc);
  return f32x4.sub(acc, f32x4.mul(f32x4.mul(dw, f32x4.splat(8)), blockSums4(sums)));
}

// @ts-ignore: decorator
@inline function rowsQ4_0(w: usize, xq: usize, rowBytes: usize, k: i32, rows: i32, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const nb = k >> 5, ds = scalesOf(xq, k), sums = ds + <usize>nb * 4, low = i8x16.splat(0xf), ones = i16x8.splat(1);
  let b = 0;
  for (; b + 4 <= nb; b += 4) {
    const wb = w + <usize>b * 18, dw = halves4(wb, 18), x = xq + <usize>b * 32, dx = ds + <usize>b * 4, sx = sums + <usize>b * 8;
    const q0 = v128.load(wb, 2), q1 = v128.load(wb, 20), q2 = v128.load(wb, 38), q3 = v128.load(wb, 56);
    // low nibbles are a block's values 0..15, high nibbles 16..31
    const w0 = v128.and(q0, low), w1 = bitsOf(q0, 4, 0xf), w2 = v128.and(q1, low), w3 = bitsOf(q1, 4, 0xf);
    const w4 = v128.and(q2, low), w5 = bitsOf(q2, 4, 0xf), w6 = v128.and(q3, low), w7 = bitsOf(q3, 4, 0xf);
    a0 = quadQ4_0(x, dx, sx, dw, w0, w1, w2, w3, w4, w5, w6, w7, a0, ones);
    if (rows > 1) a1 = quadQ4_0(x + rowBytes, dx + rowBytes, sx + rowBytes, dw, w0, w1, w2, w3, w4, w5, w6, w7, a1, ones);
    if (rows > 2) a2 = quadQ4_0(x + 2 * rowBytes, dx + 2 * rowBytes, sx + 2 * rowBytes, dw, w0, w1, w2, w3, w4, w5, w6, w7, a2, ones);
    if (rows > 3) a3 = quadQ4_0(x + 3 * rowBytes, dx + 3 * rowBytes, sx + 3 * rowBytes, dw, w0, w1, w2, w3, w4, w5, w6, w7, a3, ones);
  }
  for (let r = 0; r < rows; r++) {
    let t = hsum(r == 0 ? a0 : r == 1 ? a1 : r == 2 ? a2 : a3);
    const x = xq + <usize>r * rowBytes, xd = scalesOf(x, k), xs = xd + <usize>nb * 4;
    for (let c = b; c < nb; c++) {
      const wb = w + <usize>c * 18, xb = x + <usize>c * 32, qs = v128.load(wb, 2), d = half(wb, false);
      const s = blockQ4_0(xb, v128.and(qs, low), bitsOf(qs, 4, 0xf), ones);
      const total = <f32>(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3));
      t += d * (load<f32>(xd + <usize>c * 4) * total - 8 * (load<f32>(xs + <usize>c * 8) + load<f32>(xs + <usize>c * 8 + 4)));
    }
    store<f32>(out + <usize>r * outStride, t);
  }
}

// Q4_K and Q5_K: per sub-block j of 32, value d·sc_j·u − dmin·m_j with u unsigned (4 or 5 bits) and
// 6-bit sc_j, m_j. As llama.cpp does, a super-block's Σ sc_j·(u · q_x) is kept in integers (at most
// 8 · 8 · 127 · 31 · 63 per lane) and becomes a float once per 256 values, with the mins' term
// dmin·Σ m_j·(dx·Σq_x) beside it.

/** isum + two sub-blocks of 32 at x (one pair), each dot product times its scale (s0, s1: its i16x8 splat). */
// @ts-ignore: decorator
@inline function pairK(x: usize, s0: v128, s1: v128, w0: v128, w1: v128, w2: v128, w3: v128, isum: v128): v128 {
  isum = i32x4.add(isum, i32x4.dot_i16x8_s(i16x8.add(dotPairs(v128.load(x), w0), dotPairs(v128.load(x, 16), w1)), s0));
  return i32x4.add(isum, i32x4.dot_i16x8_s(i16x8.add(dotPairs(v128.load(x, 32), w2), dotPairs(v128.load(x, 48), w3)), s1));
}

/** Four unsigned bytes at lanes 0..3 of v as i32x4. */
// @ts-ignore: decorator
@inline function ints4(v: v128): v128 {
  return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v));
}

/** The 6-bit scales (mins: false) or mins of sub-blocks 4·quad .. 4·quad + 3 from a super-block's 12 bytes v (ggml's get_scale_min_k4). */
// @ts-ignore: decorator
@inline function scalesK(v: v128, quad: i32, mins: bool): v128 {
  const m6 = i8x16.splat(63), B = i8x16.shuffle(v, v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
  if (quad == 0) return ints4(v128.and(mins ? B : v, m6));
  const C = i8x16.shuffle(v, v, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11);
  return ints4(mins ? v128.or(bitsOf(C, 4, 0xf), up(bitsOf(B, 6, 3), 4)) : v128.or(v128.and(C, i8x16.splat(0xf)), up(bitsOf(v, 6, 3), 4)));
}

/** acc + one super-block of one activation row: d·dx·isum − Σ (dmin·m_j)·(dx·Σq_x over sub-block j). */
// @ts-ignore: decorator
@inline function superK(dx: f32, sums: usize, d: f32, mnA: v128, mnB: v128, isum: v128, acc: v128): v128 {
  acc = madd(f32x4.convert_i32x4_s(isum), f32x4.splat(d * dx), acc);
  return f32x4.sub(acc, madd(mnB, blockSums4(sums + 32), f32x4.mul(mnA, blockSums4(sums))));
}

// @ts-ignore: decorator
@inline function rowsK(w: usize, xq: usize, rowBytes: usize, k: i32, rows: i32, out: usize, outStride: usize, five: bool): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const ds = scalesOf(xq, k), sums = ds + <usize>(k >> 5) * 4, low = i8x16.splat(0xf), bit4 = i8x16.splat(0x10);
  const size: usize = five ? 176 : 144, qs: usize = five ? 48 : 16;
  for (let sb = 0; sb < k >> 8; sb++) {
    const wb = w + <usize>sb * size, v = v128.load(wb + 4);
    let ha = five ? v128.load(wb + 16) : v128.splat<i32>(0), hb = five ? v128.load(wb + 32) : v128.splat<i32>(0);
    let i0 = i32x4.splat(0), i1 = i0, i2 = i0, i3 = i0;
    // the eight sub-blocks' scales as int16 lanes, rotated down by two lanes after each pair (a value that
    // changes in the loop: V8 moved the scales' computation from a loop-invariant one into the loop)
    let scales = i16x8.narrow_i32x4_u(scalesK(v, 0, false), scalesK(v, 1, false));
    // 64 values at a time, few enough live vectors that V8 spills none: sub-blocks 2·pair (the low nibbles
    // of these 32 bytes) and 2·pair + 1 (the high nibbles)
    for (let pair = 0; pair < 4; pair++) {
      const p = wb + qs + <usize>pair * 32, q0 = v128.load(p), q1 = v128.load(p, 16);
      let w0 = v128.and(q0, low), w1 = v128.and(q1, low), w2 = bitsOf(q0, 4, 0xf), w3 = bitsOf(q1, 4, 0xf);
      if (five) {
        // bit j of qh[l] is the fifth bit of value l of sub-block j: this pair's are bits 0, 1 (the next
        // pair's are brought down below), each moved up to bit 4 of its byte and masked there (one mask
        // for all: V8 rebuilds a constant at each use inside a loop)
        w0 = v128.or(w0, v128.and(i16x8.shl(ha, 4), bit4));
        w1 = v128.or(w1, v128.and(i16x8.shl(hb, 4), bit4));
        w2 = v128.or(w2, v128.and(i16x8.shl(ha, 3), bit4));
        w3 = v128.or(w3, v128.and(i16x8.shl(hb, 3), bit4));
        ha = i16x8.shr_u(ha, 2);
        hb = i16x8.shr_u(hb, 2);
      }
      const s0 = i8x16.shuffle(scales, scales, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
      const s1 = i8x16.shuffle(scales, scales, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
      scales = i8x16.shuffle(scales, scales, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3);
      const x = xq + <usize>(sb * 256 + pair * 64);
      i0 = pairK(x, s0, s1, w0, w1, w2, w3, i0);
      if (rows > 1) i1 = pairK(x + rowBytes, s0, s1, w0, w1, w2, w3, i1);
      if (rows > 2) i2 = pairK(x + 2 * rowBytes, s0, s1, w0, w1, w2, w3, i2);
      if (rows > 3) i3 = pairK(x + 3 * rowBytes, s0, s1, w0, w1, w2, w3, i3);
    }
    // the super-block's float terms, for each activation row (dx: its q8_K scale, repeated per 32)
    const d = half(wb, true), dmin = f32x4.splat(half(wb + 2, true));
    const mnA = f32x4.mul(dmin, f32x4.convert_i32x4_s(scalesK(v, 0, true))), mnB = f32x4.mul(dmin, f32x4.convert_i32x4_s(scalesK(v, 1, true)));
    const dx = ds + <usize>sb * 32, sx = sums + <usize>sb * 64;
    a0 = superK(load<f32>(dx), sx, d, mnA, mnB, i0, a0);
    if (rows > 1) a1 = superK(load<f32>(dx + rowBytes), sx + rowBytes, d, mnA, mnB, i1, a1);
    if (rows > 2) a2 = superK(load<f32>(dx + 2 * rowBytes), sx + 2 * rowBytes, d, mnA, mnB, i2, a2);
    if (rows > 3) a3 = superK(load<f32>(dx + 3 * rowBytes), sx + 3 * rowBytes, d, mnA, mnB, i3, a3);
  }
  store<f32>(out, hsum(a0));
  if (rows > 1) store<f32>(out + outStride, hsum(a1));
  if (rows > 2) store<f32>(out + 2 * outStride, hsum(a2));
  if (rows > 3) store<f32>(out + 3 * outStride, hsum(a3));
}

// Q6_K: value d·sc·(u − 32), u in 0..63, one int8 scale per group of 16 values. As llama.cpp does, a
// super-block's sum Σ sc·(u · q_x) is kept in integers (at most 16 · 128 · 4 · 127 · 63 per lane, far
// below 2^31) and turned into a float once per 256 values, its offset once too: 32·d·Σ sc·(dx·Σq_x).

/** Four int8 scales at p as i32x4. */
// @ts-ignore: decorator
@inline function scales4(p: usize): v128 {
  return i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(p)));
}

/** isum + four groups of 16, 32 values apart from x (x, x + 32, x + 64, x + 96), each dot product times its scale (lanes 0..3 of sc). */
// @ts-ignore: decorator
@inline function groupsQ6_K(x: usize, sc: v128, u0: v128, u1: v128, u2: v128, u3: v128, isum: v128): v128 {
  // lane j's low two bytes, repeated, are its i16x8 splat
  isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotPairs(v128.load(x), u0), i8x16.shuffle(sc, sc, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1)));
  isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotPairs(v128.load(x, 32), u1), i8x16.shuffle(sc, sc, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5)));
  isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotPairs(v128.load(x, 64), u2), i8x16.shuffle(sc, sc, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9)));
  return i32x4.add(isum, i32x4.dot_i16x8_s(dotPairs(v128.load(x, 96), u3), i8x16.shuffle(sc, sc, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13)));
}

/**
 * Sixteen 6-bit values from their low-nibble bytes ql and high-bit bytes qh: `part` 0, 1 take the low
 * nibbles and bits 0–1 or 2–3 of qh, parts 2, 3 the high nibbles and bits 4–5 or 6–7. The 16-bit shifts
 * move no kept bit across a byte, and every part masks with the same two constants (low: 0x0f, top:
 * 0x30 in each byte): V8 rebuilds a constant at each use inside a loop (three instructions on x64).
 */
// @ts-ignore: decorator
@inline function sixBits(ql: v128, qh: v128, part: i32, low: v128, top: v128): v128 {
  if (part == 0) return v128.or(v128.and(ql, low), v128.and(i16x8.shl(qh, 4), top));
  if (part == 1) return v128.or(v128.and(ql, low), v128.and(i16x8.shl(qh, 2), top));
  if (part == 2) return v128.or(v128.and(i16x8.shr_u(ql, 4), low), v128.and(qh, top));
  return v128.or(v128.and(i16x8.shr_u(ql, 4), low), v128.and(i16x8.shr_u(qh, 2), top));
}

/** sixBits with the part as a variable (the decoder's loop over parts; the products unroll them). */
// @ts-ignore: decorator
@inline function sixBitsAt(ql: v128, qh: v128, part: i32, low: v128, top: v128): v128 {
  return part == 0 ? sixBits(ql, qh, 0, low, top) : part == 1 ? sixBits(ql, qh, 1, low, top) : part == 2 ? sixBits(ql, qh, 2, low, top) : sixBits(ql, qh, 3, low, top);
}

/** acc + one super-block of one activation row: d·dx·isum − 32·d·Σ sc·sums (x: the row's super-block values). */
// @ts-ignore: decorator
@inline function superQ6_K(dx: f32, sums: usize, d: f32, f0: v128, f1: v128, f2: v128, f3: v128, isum: v128, acc: v128): v128 {
  const offset = madd(f3, v128.load(sums, 48), madd(f2, v128.load(sums, 32), madd(f1, v128.load(sums, 16), f32x4.mul(f0, v128.load(sums)))));
  return f32x4.sub(madd(f32x4.convert_i32x4_s(isum), f32x4.splat(d * dx), acc), f32x4.mul(f32x4.splat(32 * d), offset));
}

// @ts-ignore: decorator
@inline function rowsQ6_K(w: usize, xq: usize, rowBytes: usize, k: i32, rows: i32, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const ds = scalesOf(xq, k), sums = ds + <usize>(k >> 5) * 4, low = i8x16.splat(0xf), top = i8x16.splat(0x30);
  for (let sb = 0; sb < k >> 8; sb++) {
    const wb = w + <usize>sb * 210, d = half(wb + 208, true);
    let i0 = i32x4.splat(0), i1 = i0, i2 = i0, i3 = i0;
    // 64 values at a time, few enough live vectors that V8 spills none: in each 128 (n), position l of
    // its four 32s comes from ql[l] (low nibble, high nibble for the third 32), ql[l + 32] (second, fourth)
    // and two bits each of qh[l]; step c takes l = 16c..16c + 15, whose scales are bytes c, c + 2, c + 4, c + 6
    for (let t = 0; t < 4; t++) {
      const n = t >> 1, c = t & 1, ql = wb + <usize>(n * 64 + c * 16), qh = wb + 128 + <usize>(n * 32 + c * 16);
      const a = v128.load(ql), b = v128.load(ql, 32), h = v128.load(qh);
      const u0 = sixBits(a, h, 0, low, top), u1 = sixBits(b, h, 1, low, top), u2 = sixBits(a, h, 2, low, top), u3 = sixBits(b, h, 3, low, top);
      // the eight scales of this 128 widened to int16: lanes c, c + 2, c + 4, c + 6 are the low halves of
      // the 32-bit lanes, shifted down by 16 bits for c = 1
      const sc = i32x4.shr_u(i16x8.extend_low_i8x16_s(v128.load64_zero(wb + 192 + <usize>n * 8)), c * 16);
      const x = xq + <usize>(sb * 256 + n * 128 + c * 16);
      i0 = groupsQ6_K(x, sc, u0, u1, u2, u3, i0);
      if (rows > 1) i1 = groupsQ6_K(x + rowBytes, sc, u0, u1, u2, u3, i1);
      if (rows > 2) i2 = groupsQ6_K(x + 2 * rowBytes, sc, u0, u1, u2, u3, i2);
      if (rows > 3) i3 = groupsQ6_K(x + 3 * rowBytes, sc, u0, u1, u2, u3, i3);
    }
    // the super-block's float terms, for each activation row (dx: its q8_K scale, repeated per 32)
    const sc = wb + 192, f0 = f32x4.convert_i32x4_s(scales4(sc)), f1 = f32x4.convert_i32x4_s(scales4(sc + 4));
    const f2 = f32x4.convert_i32x4_s(scales4(sc + 8)), f3 = f32x4.convert_i32x4_s(scales4(sc + 12));
    const dx = ds + <usize>sb * 32, sx = sums + <usize>sb * 64;
    a0 = superQ6_K(load<f32>(dx), sx, d, f0, f1, f2, f3, i0, a0);
    if (rows > 1) a1 = superQ6_K(load<f32>(dx + rowBytes), sx + rowBytes, d, f0, f1, f2, f3, i1, a1);
    if (rows > 2) a2 = superQ6_K(load<f32>(dx + 2 * rowBytes), sx + 2 * rowBytes, d, f0, f1, f2, f3, i2, a2);
    if (rows > 3) a3 = superQ6_K(load<f32>(dx + 3 * rowBytes), sx + 3 * rowBytes, d, f0, f1, f2, f3, i3, a3);
  }
  store<f32>(out, hsum(a0));
  if (rows > 1) store<f32>(out + outStride, hsum(a1));
  if (rows > 2) store<f32>(out + 2 * outStride, hsum(a2));
  if (rows > 3) store<f32>(out + 3 * outStride, hsum(a3));
}

/** One weight row against `rows` (1 or 4) activation rows: the format's loop, specialised by the compiler. */
function dots(dtype: i32, w: usize, xq: usize, rowBytes: usize, k: i32, rows: i32, out: usize, outStride: usize): void {
  if (rows == 4) {
    if (dtype == Q8_0) rows4Q8_0(w, xq, rowBytes, k, out, outStride);
    else if (dtype == Q4_0) rowsQ4_0(w, xq, rowBytes, k, 4, out, outStride);
    else if (dtype == Q4_K) rowsK(w, xq, rowBytes, k, 4, out, outStride, false);
    else if (dtype == Q5_K) rowsK(w, xq, rowBytes, k, 4, out, outStride, true);
    else rowsQ6_K(w, xq, rowBytes, k, 4, out, outStride);
  } else {
    if (dtype == Q8_0) rowQ8_0(w, xq, k, out);
    else if (dtype == Q4_0) rowsQ4_0(w, xq, rowBytes, k, 1, out, outStride);
    else if (dtype == Q4_K) rowsK(w, xq, rowBytes, k, 1, out, outStride, false);
    else if (dtype == Q5_K) rowsK(w, xq, rowBytes, k, 1, out, outStride, true);
    else rowsQ6_K(w, xq, rowBytes, k, 1, out, outStride);
  }
}

/** out[m×n] = dequantized(W[n×k]) · xᵀ for columns j0..j1, x already quantized by quantizeRows. */
export function matmulQ(out: usize, xq: usize, w: usize, dtype: i32, m: i32, n: i32, k: i32, j0: i32, j1: i32): void {
  const rowBytes = qRowBytes(k), outRow = <usize>n * 4;
  const wRow = quantRowBytes(dtype, k);
  // weight rows in tiles of about 128 KiB, which stay in cache while every activation row passes over
  // them: four at a time (each weight row unpacked once per four), then one at a time
  const tile = max<i32>(4, <i32>(<usize>(128 << 10) / wRow));
  for (let t0 = j0; t0 < j1; t0 += tile) {
    const t1 = min(j1, t0 + tile);
    let i = 0;
    for (; i + 4 <= m; i += 4)
      for (let j = t0; j < t1; j++) dots(dtype, w + <usize>j * wRow, xq + <usize>i * rowBytes, rowBytes, k, 4, out + <usize>i * outRow + <usize>j * 4, outRow);
    for (; i < m; i++)
      for (let j = t0; j < t1; j++) dots(dtype, w + <usize>j * wRow, xq + <usize>i * rowBytes, rowBytes, k, 1, out + <usize>i * outRow + <usize>j * 4, outRow);
  }
}

// Decoding weights to f32, for products of many rows (matmulPanel in matmul.ts): the values exactly as
// src/formats/blocks.ts dequantizeRow gives them (each product below is exact in f32 but the last).

/** 16 signed bytes v as f32, times `scale`, minus `offset`, stored at out (64 bytes). */
// @ts-ignore: decorator
@inline function store16(out: usize, v: v128, scale: v128, offset: v128): void {
  const lo = i16x8.extend_low_i8x16_s(v), hi = i16x8.extend_high_i8x16_s(v);
  v128.store(out, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), scale), offset));
  v128.store(out, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), scale), offset), 16);
  v128.store(out, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), scale), offset), 32);
  v128.store(out, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), scale), offset), 48);
}

/** Lane j (0..3, known only at run time) of an f32x4. */
// @ts-ignore: decorator
@inline function laneOf(v: v128, j: i32): f32 {
  return j == 0 ? f32x4.extract_lane(v, 0) : j == 1 ? f32x4.extract_lane(v, 1) : j == 2 ? f32x4.extract_lane(v, 2) : f32x4.extract_lane(v, 3);
}

/** Bytes of one row of k values stored as `dtype`. */
// @ts-ignore: decorator
@inline export function quantRowBytes(dtype: i32, k: i32): usize {
  return dtype == Q8_0 ? <usize>(k >> 5) * 34 : dtype == Q4_0 ? <usize>(k >> 5) * 18
    : dtype == Q4_K ? <usize>(k >> 8) * 144 : dtype == Q5_K ? <usize>(k >> 8) * 176 : <usize>(k >> 8) * 210;
}

/** `rows` rows of a quantized matrix with rows of k values, from w, as f32 rows at out. */
export function dequantizeRows(out: usize, w: usize, dtype: i32, k: i32, rows: i32): void {
  const wRow = quantRowBytes(dtype, k), zero = f32x4.splat(0), low = i8x16.splat(0xf);
  for (let r = 0; r < rows; r++) {
    const src = w + <usize>r * wRow, dst = out + <usize>r * k * 4;
    if (dtype == Q8_0 || dtype == Q4_0) {
      const size: usize = dtype == Q8_0 ? 34 : 18;
      for (let b = 0; b < k >> 5; b++) {
        const wb = src + <usize>b * size, d = f32x4.splat(half(wb, false)), y = dst + <usize>b * 128;
        if (dtype == Q8_0) {
          store16(y, v128.load(wb, 2), d, zero);
          store16(y + 64, v128.load(wb, 18), d, zero);
        } else {
          // low nibbles are values 0..15, high nibbles 16..31, each u − 8
          const q = v128.load(wb, 2), eight = i8x16.splat(8);
          store16(y, i8x16.sub(v128.and(q, low), eight), d, zero);
          store16(y + 64, i8x16.sub(bitsOf(q, 4, 0xf), eight), d, zero);
        }
      }
    } else if (dtype == Q6_K) {
      for (let sb = 0; sb < k >> 8; sb++) {
        const wb = src + <usize>sb * 210, d = half(wb + 208, true), thirtyTwo = i8x16.splat(32), top = i8x16.splat(0x30);
        for (let n = 0; n < 2; n++) {
          // value l + 32·i of this 128 (l = 0..31, i = 0..3) is sixBits part i of ql[l] (i even) or ql[l+32] (i odd) with qh[l]; scale sc[l/16 + 2i]
          const ql = wb + <usize>n * 64, qh = wb + 128 + <usize>n * 32, sc = wb + 192 + <usize>n * 8, y = dst + <usize>(sb * 256 + n * 128) * 4;
          const a = v128.load(ql), a1v = v128.load(ql, 16), b = v128.load(ql, 32), b1 = v128.load(ql, 48), h = v128.load(qh), h1 = v128.load(qh, 16);
          for (let i = 0; i < 4; i++) {
            const lo = i & 1 ? b : a, hi = i & 1 ? b1 : a1v;
            const s0 = f32x4.splat(d * <f32>load<i8>(sc + <usize>(2 * i))), s1 = f32x4.splat(d * <f32>load<i8>(sc + <usize>(2 * i + 1)));
            store16(y + <usize>i * 128, i8x16.sub(sixBitsAt(lo, h, i, low, top), thirtyTwo), s0, zero);
            store16(y + <usize>i * 128 + 64, i8x16.sub(sixBitsAt(hi, h1, i, low, top), thirtyTwo), s1, zero);
          }
        }
      }
    } else {
      const five = dtype == Q5_K, size: usize = five ? 176 : 144, qs: usize = five ? 48 : 16;
      for (let sb = 0; sb < k >> 8; sb++) {
        const wb = src + <usize>sb * size, v = v128.load(wb + 4), d = f32x4.splat(half(wb, true)), dmin = f32x4.splat(half(wb + 2, true));
        // d·sc and dmin·m of sub-blocks 0..3 and 4..7 (each product exact in f32)
        const sc0 = f32x4.mul(d, f32x4.convert_i32x4_s(scalesK(v, 0, false))), sc1 = f32x4.mul(d, f32x4.convert_i32x4_s(scalesK(v, 1, false)));
        const mn0 = f32x4.mul(dmin, f32x4.convert_i32x4_s(scalesK(v, 0, true))), mn1 = f32x4.mul(dmin, f32x4.convert_i32x4_s(scalesK(v, 1, true)));
        for (let j = 0; j < 8; j++) {
          // sub-blocks 2i and 2i + 1 share 32 bytes: low nibbles, then high; Q5_K's fifth bit is bit j of qh[l]
          const scale = f32x4.splat(laneOf(j < 4 ? sc0 : sc1, j & 3)), offset = f32x4.splat(laneOf(j < 4 ? mn0 : mn1, j & 3));
          const q = wb + qs + <usize>(j >> 1) * 32, shift = (j & 1) * 4, y = dst + <usize>(sb * 256 + j * 32) * 4;
          let u0 = bitsOf(v128.load(q), shift, 0xf), u1 = bitsOf(v128.load(q, 16), shift, 0xf);
          if (five) {
            u0 = v128.or(u0, up(bitsOf(v128.load(wb + 16), j, 1), 4));
            u1 = v128.or(u1, up(bitsOf(v128.load(wb + 32), j, 1), 4));
          }
          store16(y, u0, scale, offset);
          store16(y + 64, u1, scale, offset);
        }
      }
    }
  }
}

/**
 * Rows of activations quantized by quantizeRows (for weights `dtype`), decoded again (q·d) and laid out as
 * packRows lays out f32 rows (k is a multiple of 32, so there is no tail): what matmulPanel multiplies.
 */
export function packQuantized(out: usize, xq: usize, m: i32, k: i32, dtype: i32): void {
  const rowBytes = qRowBytes(k), wide = dtype == Q8_0;
  for (let i = 0; i < m; i += 4) {
    const block = out + <usize>(i >> 2) * k * 16;
    for (let r = 0; r < 4; r++) {
      const q = xq + <usize>min(i + r, m - 1) * rowBytes, ds = scalesOf(q, k);
      for (let c = 0; c < k; c += 4) {
        const v = wide ? i32x4.extend_low_i16x8_s(v128.load64_zero(q + <usize>c * 2)) : i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(q + <usize>c)));
        v128.store(block + <usize>c * 16 + <usize>r * 16, f32x4.mul(f32x4.convert_i32x4_s(v), v128.load32_splat(ds + <usize>(c >> 5) * 4)));
      }
    }
  }
}
