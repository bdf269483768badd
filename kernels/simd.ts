// Shared SIMD helpers: widening stored weights to f32x4, fused multiply-add, horizontal sums, exp.

// Weight storage types, as numbered in src/dtype.ts (DTYPE_CODE).
export const F32: i32 = 0;
export const F16: i32 = 1;
export const BF16: i32 = 2;

// Kernels over weights are generic in a marker type W so that the compiler emits one loop per storage
// type with no branch inside: f32 = F32, u16 = BF16 bits, i16 = F16 bits.
export type BF16Bits = u16;
export type F16Bits = i16;

/** a·b + c; one fused instruction where the host has relaxed SIMD (this build's feature flag). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

// Four bf16 values into the top halves of four 32-bit lanes, which makes them f32. Interleaving with zeros
// is one unpack on x64, where a widening load and a shift are two.
// @ts-ignore: decorator
@inline function bf16x4(p: usize): v128 {
  return i16x8.shuffle(f32x4.splat(0), v128.load64_zero(p), 0, 8, 1, 9, 2, 10, 3, 11);
}

/**
 * The mask top16 clears f16 bits with, in a global that the start function writes: V8 keeps a global read
 * before a loop in a register, where it rebuilt a constant at every iteration (three instructions on
 * x64), and even a value computed before the loop. memory.size() >> 30 is 0 (memory stays below 2^30
 * pages); it keeps Binaryen from folding the global into a constant.
 */
const f16Mask: v128 = i32x4.splat(0x8fffe000 | (memory.size() >> 30));

/** The mask pairLo, pairHi and widen4 take for weights W (used by f16 only); read it once before the loop. */
// @ts-ignore: decorator
@inline export function weightMask<W>(): v128 {
  return f16Mask;
}

// A 16-bit value in the top half of each 32-bit lane (low half zero) → f32: bf16 is already in place;
// f16 moves exponent and mantissa down by 3 (an arithmetic shift, whose copies of the sign bit the mask
// then clears), which gives its value × 2^-112 with the sign kept; the caller makes up the 2^112 once
// per sum instead of once per weight. Checkpoints with f16 infinities or NaNs are rejected when loaded,
// so this needs no special case for them.
// @ts-ignore: decorator
@inline function top16<W>(v: v128, mask: v128): v128 {
  if (!isSigned<W>()) return v;
  return v128.and(i32x4.shr_s(v, 3), mask);
}

/**
 * Eight consecutive weights at p, loaded once, as two f32x4 halves. For f32 the halves are weights 0-3
 * and 4-7; for 16-bit types they are the even (0, 2, 4, 6) and odd (1, 3, 5, 7) weights, which costs one
 * shift or mask each for bf16; pairActivations (matmul.ts) puts x in the same order. f16 weights come out
 * × 2^-112 (see top16).
 */
// @ts-ignore: decorator
@inline export function pairLo<W>(p: usize, v: v128, mask: v128): v128 {
  if (isFloat<W>()) return v;
  return top16<W>(i32x4.shl(v, 16), mask);
}
// @ts-ignore: decorator
@inline export function pairHi<W>(p: usize, v: v128, mask: v128): v128 {
  if (isFloat<W>()) return v128.load(p, 16);
  // f16: the shift moves the even weight's bits below bit 13, where the mask clears them
  if (isSigned<W>()) return v128.and(i32x4.shr_s(v, 3), mask);
  // bf16: the odd weights with zeros below them, a blend with zero (measured: V8 rebuilt the mask in the loop)
  return i16x8.shuffle(f32x4.splat(0), v, 0, 9, 2, 11, 4, 13, 6, 15);
}
/** Four consecutive weights at p as f32x4 (f16 × 2^-112, see top16). */
// @ts-ignore: decorator
@inline export function widen4<W>(p: usize, mask: v128): v128 {
  if (isFloat<W>()) return v128.load(p);
  if (!isSigned<W>()) return bf16x4(p);
  // f16: sign-extended, a shift by 13 leaves what top16 would (copies of the sign in bits 28-31), with no
  // zero register for bf16x4's unpack (measured: that spilled an accumulator of the blocked product)
  return v128.and(i32x4.shl(v128.load16x4_s(p), 13), mask);
}

/** 2^112: what top16 leaves out of f16 weights. */
export const F16_SCALE: f32 = 5.192296858534828e33;

/** One weight at p as f32 (exact for every f16 bit pattern, infinities and NaN included). */
// @ts-ignore: decorator
@inline export function widen1<W>(p: usize): f32 {
  if (isFloat<W>()) return load<f32>(p);
  if (!isSigned<W>()) return reinterpret<f32>(<u32>load<u16>(p) << 16);
  const bits = <u32>load<u16>(p);
  const em = (bits & 0x7fff) << 13;
  const mag = em >= 0x0f800000 ? reinterpret<f32>(em | 0x7f800000) : reinterpret<f32>(em) * F16_SCALE;
  return (bits & 0x8000) != 0 ? -mag : mag;
}


/**
 * e^x for four lanes (Cephes expf: x = n·ln2 + r, a degree-5 polynomial for e^r, 2^n built in the
 * exponent bits); about 2 ulp, inputs clamped to [-87.3, 88.7] so that 2^n stays a normal number.
 */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  // pmin/pmax: one instruction each on x64 where min/max are six; they give the same for every x, NaN included
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.3)), f32x4.splat(88.7));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  p = madd(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1)));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}
