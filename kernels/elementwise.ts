// The kernels that touch each element a few times: norms, rotary embedding, activations, residual adds.
import { F32, BF16, madd, hsum, widen4, widen1, weightMask, exp4, F16_SCALE, BF16Bits, F16Bits } from "./simd";

/** Per row of `dim`: out = x / sqrt(mean(x²) + eps) * weight. */
export function rmsNorm(out: usize, x: usize, weight: usize, rows: i32, dim: i32, eps: f32): void {
  const d4 = dim & ~3;
  for (let r = 0; r < rows; r++) {
    const xi = x + <usize>r * dim * 4, oi = out + <usize>r * dim * 4;
    let acc = f32x4.splat(0);
    for (let c = 0; c < d4; c += 4) {
      const v = v128.load(xi + <usize>c * 4);
      acc = madd(v, v, acc);
    }
    let ss = hsum(acc);
    for (let c = d4; c < dim; c++) ss += load<f32>(xi + <usize>c * 4) * load<f32>(xi + <usize>c * 4);
    const inv = <f32>(1 / Math.sqrt(<f64>(ss / <f32>dim + eps)));
    const iv = f32x4.splat(inv);
    for (let c = 0; c < d4; c += 4) {
      const o = <usize>c * 4;
      v128.store(oi + o, f32x4.mul(f32x4.mul(v128.load(xi + o), iv), v128.load(weight + o)));
    }
    for (let c = d4; c < dim; c++) store<f32>(oi + <usize>c * 4, load<f32>(xi + <usize>c * 4) * inv * load<f32>(weight + <usize>c * 4));
  }
}

/** Rotate-half RoPE in place on x[rows × heads × headDim], row r at position pos0 + r. */
export function rope(x: usize, cos: usize, sin: usize, rows: i32, heads: i32, headDim: i32, pos0: i32): void {
  const half = headDim >> 1, h4 = half & ~3;
  for (let r = 0; r < rows; r++) {
    const cr = cos + <usize>(pos0 + r) * half * 4, sr = sin + <usize>(pos0 + r) * half * 4;
    for (let h = 0; h < heads; h++) {
      const v = x + (<usize>r * heads + h) * headDim * 4, v2 = v + <usize>half * 4;
      for (let i = 0; i < h4; i += 4) {
        const o = <usize>i * 4;
        const a = v128.load(v + o), b = v128.load(v2 + o), c = v128.load(cr + o), s = v128.load(sr + o);
        v128.store(v + o, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(v2 + o, madd(a, s, f32x4.mul(b, c)));
      }
      for (let i = h4; i < half; i++) {
        const o = <usize>i * 4;
        const a = load<f32>(v + o), b = load<f32>(v2 + o), c = load<f32>(cr + o), s = load<f32>(sr + o);
        store<f32>(v + o, a * c - b * s);
        store<f32>(v2 + o, b * c + a * s);
      }
    }
  }
}

const SWISH: i32 = 0;
const GELU: i32 = 1;

// erf for four lanes (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
// @ts-ignore: decorator
@inline function erf4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const t = f32x4.div(f32x4.splat(1), madd(ax, f32x4.splat(0.3275911), f32x4.splat(1)));
  let p = f32x4.splat(1.061405429);
  p = madd(p, t, f32x4.splat(-1.453152027));
  p = madd(p, t, f32x4.splat(1.421413741));
  p = madd(p, t, f32x4.splat(-0.284496736));
  p = madd(p, t, f32x4.splat(0.254829592));
  const y = f32x4.sub(f32x4.splat(1), f32x4.mul(f32x4.mul(p, t), exp4(f32x4.neg(f32x4.mul(ax, ax)))));
  return v128.or(y, v128.and(x, i32x4.splat(0x80000000))); // copy the sign of x
}

// @ts-ignore: decorator
@inline function act4(v: v128, act: i32): v128 {
  if (act == SWISH) return f32x4.div(v, f32x4.add(f32x4.splat(1), exp4(f32x4.neg(v))));
  if (act == GELU) return f32x4.mul(f32x4.mul(v, f32x4.splat(0.5)), f32x4.add(f32x4.splat(1), erf4(f32x4.mul(v, f32x4.splat(0.7071067811865476)))));
  return f32x4.max(v, f32x4.splat(0));
}

// @ts-ignore: decorator
@inline function activateAs(act: i32, out: usize, x: usize, rows: i32, width: i32, gated: bool): void {
  const w4 = width & ~3, inRow = <usize>(gated ? 2 * width : width) * 4;
  for (let r = 0; r < rows; r++) {
    const xi = x + <usize>r * inRow, up = xi + <usize>width * 4, oi = out + <usize>r * width * 4;
    for (let c = 0; c < w4; c += 4) {
      const o = <usize>c * 4;
      const a = act4(v128.load(xi + o), act);
      v128.store(oi + o, gated ? f32x4.mul(a, v128.load(up + o)) : a);
    }
    for (let c = w4; c < width; c++) {
      const o = <usize>c * 4;
      const a = f32x4.extract_lane(act4(f32x4.splat(load<f32>(xi + o)), act), 0);
      store<f32>(oi + o, gated ? a * load<f32>(up + o) : a);
    }
  }
}

/** out[rows×width] = act(gate)·up from rows [gate | up] when gated, else act(x). act: 0 swish, 1 gelu, 2 relu. */
export function activate(out: usize, x: usize, rows: i32, width: i32, act: i32, gated: bool): void {
  if (act == SWISH) activateAs(SWISH, out, x, rows, width, gated);
  else if (act == GELU) activateAs(GELU, out, x, rows, width, gated);
  else activateAs(2, out, x, rows, width, gated);
}

/** out[n] += x[n]. */
export function add(out: usize, x: usize, n: i32): void {
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, f32x4.add(v128.load(out + o), v128.load(x + o)));
  }
  for (let i = n4; i < n; i++) store<f32>(out + <usize>i * 4, load<f32>(out + <usize>i * 4) + load<f32>(x + <usize>i * 4));
}

function widenAs<W>(out: usize, src: usize, n: i32): void {
  const n4 = n & ~3, b = <usize>sizeof<W>(), mask = weightMask<W>(), scale = f32x4.splat(isSigned<W>() ? F16_SCALE : 1);
  for (let i = 0; i < n4; i += 4) v128.store(out + <usize>i * 4, f32x4.mul(widen4<W>(src + <usize>i * b, mask), scale));
  for (let i = n4; i < n; i++) store<f32>(out + <usize>i * 4, widen1<W>(src + <usize>i * b));
}

/** out[n] = src[n] widened to f32. */
export function widen(out: usize, src: usize, dtype: i32, n: i32): void {
  if (dtype == F32) widenAs<f32>(out, src, n);
  else if (dtype == BF16) widenAs<BF16Bits>(out, src, n);
  else widenAs<F16Bits>(out, src, n);
}

/** Copy rows of `width` floats between buffers with row strides (in floats). */
export function copyRows(dst: usize, dstStride: i32, src: usize, srcStride: i32, rows: i32, width: i32): void {
  for (let r = 0; r < rows; r++) memory.copy(dst + <usize>r * dstStride * 4, src + <usize>r * srcStride * 4, <usize>width * 4);
}

/**
 * `n` steps of ten independent f32x4 multiply-adds (40 of floats a step, no memory traffic): the compute
 * peak the benchmarks hold the products against. The multiplier and addend are read from `p` (32 bytes)
 * at every step: Node 20's V8 rebuilds a splatted constant inside a loop, which held this loop to three
 * quarters of the peak, while loads from L1 cost nothing here.
 */
export function fmaPeak(p: usize, n: i32): f32 {
  let a0 = f32x4.splat(1), a1 = f32x4.splat(2), a2 = f32x4.splat(3), a3 = f32x4.splat(4), a4 = f32x4.splat(5);
  let a5 = f32x4.splat(6), a6 = f32x4.splat(7), a7 = f32x4.splat(8), a8 = f32x4.splat(9), a9 = f32x4.splat(10);
  v128.store(p, f32x4.splat(0.5));
  v128.store(p, f32x4.splat(0.25), 16);
  for (let i = 0; i < n; i++) {
    const b = v128.load(p), c = v128.load(p, 16);
    a0 = madd(a0, b, c); a1 = madd(a1, b, c); a2 = madd(a2, b, c); a3 = madd(a3, b, c); a4 = madd(a4, b, c);
    a5 = madd(a5, b, c); a6 = madd(a6, b, c); a7 = madd(a7, b, c); a8 = madd(a8, b, c); a9 = madd(a9, b, c);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(a8, a9)), 0);
}

/** Read `bytes` (a multiple of 64) as fast as possible: the memory-bandwidth probe of the benchmarks. */
export function readBytes(p: usize, bytes: usize): f32 {
  // integer adds (one cycle, no float assists on odd bit patterns), 128 bytes per iteration
  let a = i32x4.splat(0), b = a, c = a, d = a;
  let i: usize = 0;
  for (; i + 128 <= bytes; i += 128) {
    a = i32x4.add(a, i32x4.add(v128.load(p + i), v128.load(p + i, 64)));
    b = i32x4.add(b, i32x4.add(v128.load(p + i, 16), v128.load(p + i, 80)));
    c = i32x4.add(c, i32x4.add(v128.load(p + i, 32), v128.load(p + i, 96)));
    d = i32x4.add(d, i32x4.add(v128.load(p + i, 48), v128.load(p + i, 112)));
  }
  for (; i < bytes; i += 64) a = i32x4.add(a, i32x4.add(i32x4.add(v128.load(p + i), v128.load(p + i, 16)), i32x4.add(v128.load(p + i, 32), v128.load(p + i, 48))));
  return <f32>i32x4.extract_lane(i32x4.add(i32x4.add(a, b), i32x4.add(c, d)), 0);
}

// The lane-wise maximum of value & mask over 64 bytes at p: a lane equals `mask` (exponent bits all ones)
// only if one of its values is NaN or ±inf. An and and a max per vector, one compare per block.
// @ts-ignore: decorator
@inline function maxExponent<T>(p: usize, mask: v128): v128 {
  return maxLanes<T>(maxLanes<T>(v128.and(v128.load(p), mask), v128.and(v128.load(p, 16), mask)),
    maxLanes<T>(v128.and(v128.load(p, 32), mask), v128.and(v128.load(p, 48), mask)));
}

// T is u32 (f32) or u16 (f16, bf16): the lane width of the max and the compare.
// @ts-ignore: decorator
@inline function maxLanes<T>(a: v128, b: v128): v128 {
  return sizeof<T>() == 4 ? i32x4.max_u(a, b) : i16x8.max_u(a, b);
}

// @ts-ignore: decorator
@inline function anyEqual<T>(a: v128, b: v128): bool {
  return v128.any_true(sizeof<T>() == 4 ? i32x4.eq(a, b) : i16x8.eq(a, b));
}

function firstNonFiniteAs<T>(p: usize, n: i32, bits: T): i32 {
  const size = <usize>sizeof<T>(), per = 128 / <i32>sizeof<T>();
  const mask = sizeof<T>() == 4 ? i32x4.splat(<i32>bits) : i16x8.splat(<i16>bits);
  let i = 0;
  // 128 bytes at a time until a block holds a bad value; then find it among that block's elements
  for (; i <= n - per; i += per) {
    const q = p + <usize>i * size;
    if (anyEqual<T>(maxLanes<T>(maxExponent<T>(q, mask), maxExponent<T>(q + 64, mask)), mask)) break;
  }
  for (; i < n; i++) if ((load<T>(p + <usize>i * size) & bits) == bits) return i;
  return -1;
}

/** Index of the first of n values (f32, f16 or bf16 by `dtype`) at p that is NaN or ±inf, or -1. */
export function firstNonFinite(p: usize, dtype: i32, n: i32): i32 {
  if (dtype == F32) return firstNonFiniteAs<u32>(p, n, 0x7f800000);
  return firstNonFiniteAs<u16>(p, n, dtype == BF16 ? 0x7f80 : 0x7c00);
}
