// SIMD kernels over the one WebAssembly.Memory that the TypeScript arena owns.
// Every argument is a byte offset into that memory or a size; nothing here allocates.
// The readable specification of each kernel is src/kernels/reference.ts; tests hold the two together.

// Weight storage types, as numbered in src/kernels/types.ts.
const F32: i32 = 0;
const F16: i32 = 1;
const BF16: i32 = 2;

// bf16 is the top half of an f32: shift the 16 bits into place.
@inline function bf16x4(p: usize): v128 {
  return i32x4.shl(v128.load16x4_u(p), 16);
}

// f16 -> f32 without float16 instructions: move exponent and mantissa into f32 position and rescale
// by 2^112 (exact for normals and subnormals); inf/NaN keep an all-ones exponent.
@inline function f16x4(p: usize): v128 {
  const h = v128.load16x4_u(p);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const em = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const scaled = f32x4.mul(em, f32x4.splat(5.192296858534828e33)); // 2^112
  const infNan = i32x4.ge_u(em, i32x4.splat(0x0f800000));
  return v128.or(sign, v128.bitselect(v128.or(em, i32x4.splat(0x7f800000)), scaled, infNan));
}

@inline function widen4(p: usize, dtype: i32): v128 {
  if (dtype == F32) return v128.load(p);
  if (dtype == BF16) return bf16x4(p);
  return f16x4(p);
}

@inline function f16(bits: u32): f32 {
  const em = (bits & 0x7fff) << 13;
  const v = reinterpret<f32>(em) * 5.192296858534828e33;
  const mag = em >= 0x0f800000 ? reinterpret<f32>(em | 0x7f800000) : v;
  return (bits & 0x8000) != 0 ? -mag : mag;
}

@inline function widen1(p: usize, dtype: i32): f32 {
  if (dtype == F32) return load<f32>(p);
  if (dtype == BF16) return reinterpret<f32>(<u32>load<u16>(p) << 16);
  return f16(load<u16>(p));
}

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// out[m×n] = x[m×k] · W[n×k]ᵀ, W stored as dtype. Four weight rows at a time stay in L1 while every
// row of x streams past them, so each weight is read from memory once per call. A tail block of fewer
// than four rows repeats its last row and stores only the real ones.
@inline function matmulAs(dtype: i32, out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const wb: usize = dtype == F32 ? 4 : 2; // bytes per weight
  const k4 = k & ~3;
  for (let j = 0; j < n; j += 4) {
    const w0 = w + <usize>j * k * wb;
    const w1 = w + <usize>min(j + 1, n - 1) * k * wb;
    const w2 = w + <usize>min(j + 2, n - 1) * k * wb;
    const w3 = w + <usize>min(j + 3, n - 1) * k * wb;
    for (let i = 0; i < m; i++) {
      const xr = x + <usize>i * k * 4;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let c = 0; c < k4; c += 4) {
        const xv = v128.load(xr + <usize>c * 4);
        const o = <usize>c * wb;
        a0 = f32x4.add(a0, f32x4.mul(xv, widen4(w0 + o, dtype)));
        a1 = f32x4.add(a1, f32x4.mul(xv, widen4(w1 + o, dtype)));
        a2 = f32x4.add(a2, f32x4.mul(xv, widen4(w2 + o, dtype)));
        a3 = f32x4.add(a3, f32x4.mul(xv, widen4(w3 + o, dtype)));
      }
      let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (let c = k4; c < k; c++) {
        const xs = load<f32>(xr + <usize>c * 4);
        const o = <usize>c * wb;
        s0 += xs * widen1(w0 + o, dtype);
        s1 += xs * widen1(w1 + o, dtype);
        s2 += xs * widen1(w2 + o, dtype);
        s3 += xs * widen1(w3 + o, dtype);
      }
      const orow = out + (<usize>i * n + j) * 4;
      store<f32>(orow, s0);
      if (j + 1 < n) store<f32>(orow, s1, 4);
      if (j + 2 < n) store<f32>(orow, s2, 8);
      if (j + 3 < n) store<f32>(orow, s3, 12);
    }
  }
}

export function matmul(out: usize, x: usize, w: usize, dtype: i32, m: i32, n: i32, k: i32): void {
  if (dtype == F32) matmulAs(F32, out, x, w, m, n, k);
  else if (dtype == BF16) matmulAs(BF16, out, x, w, m, n, k);
  else matmulAs(F16, out, x, w, m, n, k);
}
