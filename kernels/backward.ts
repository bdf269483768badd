// The two products of a linear layer's backward pass, y[m×n] = x[m×k] · W[n×k]ᵀ, all f32:
// dx[m×k] += dy[m×n] · W and dW[n×k] += dy[m×n]ᵀ · x. Both accumulate. Register tiles are 4 rows × 8
// columns (eight f32x4 accumulators): each vector loaded is used 4 times, each splat of dy twice.
// The operand a tile reads down a column (rows a multiple of 1 KB apart at widths like 1280 or 10240, so
// all in a few L1 sets) is first copied into `scratch`, contiguous: measured at 128×10240×1280 on one
// thread, interleaved, dW 18.7 → 27.9 GFLOP/s and dx 26.6 → 28.3 (the forward product: 29.7).
import { madd } from "./simd";

// j (rows of W) per pass of matmulGradInput: a strip of W, CHUNK_J × 32 bytes, copied to scratch, stays
// in L1 for every block of 4 rows of dx; the m × CHUNK_J values of dy it meets stay in L2.
const CHUNK_J = 256;
// i (rows of x) and columns per pass of matmulGradWeight: the CHUNK_I × CHUNK_C block of x (128 KB) stays
// in L2 while every block of 4 rows of dW goes over it; the block's 4 columns of dy, copied, stay in L1.
const CHUNK_I = 128, CHUNK_C = 256;
// Each call (each thread) needs its own GRAD_SCRATCH = 8192 bytes of scratch (src/kernels/pool.ts): the
// larger of the two copies, CHUNK_J × 32 and CHUNK_I × 16.

/**
 * dx[m×k] += dy[m×n] · W[n×k] for the columns c0..c1 of dx (threads split k; c0 a multiple of 8), with
 * GRAD_SCRATCH bytes at `scratch` of this call's own.
 */
export function matmulGradInput(dx: usize, dy: usize, w: usize, m: i32, n: i32, k: i32, c0: i32, c1: i32, scratch: usize): void {
  const rowX = <usize>k * 4, rowD = <usize>n * 4, c4 = c0 + ((c1 - c0) & ~3);
  for (let j0 = 0; j0 < n; j0 += CHUNK_J) {
    const jn = min(CHUNK_J, n - j0), d = dy + <usize>j0 * 4, wj = w + <usize>j0 * rowX;
    let c = c0;
    for (; c + 8 <= c4; c += 8) {
      // the strip of W [jn × 8], rows 32 bytes apart
      for (let j = 0, p = wj + <usize>c * 4; j < jn; j++, p += rowX) {
        v128.store(scratch + <usize>j * 32, v128.load(p));
        v128.store(scratch + <usize>j * 32, v128.load(p, 16), 16);
      }
      inputStrip(dx + <usize>c * 4, d, scratch, m, jn, rowD, rowX, 32, true);
    }
    if (c < c4) {
      for (let j = 0, p = wj + <usize>c * 4; j < jn; j++, p += rowX) v128.store(scratch + <usize>j * 16, v128.load(p));
      inputStrip(dx + <usize>c * 4, d, scratch, m, jn, rowD, rowX, 16, false);
    }
  }
  // the (c1 - c0) % 4 last columns, one by one
  for (let c = c4; c < c1; c++)
    for (let i = 0; i < m; i++) {
      let s: f32 = 0;
      for (let j = 0; j < n; j++) s += load<f32>(dy + <usize>i * rowD + <usize>j * 4) * load<f32>(w + <usize>j * rowX + <usize>c * 4);
      const o = dx + <usize>i * rowX + <usize>c * 4;
      store<f32>(o, load<f32>(o) + s);
    }
}

// 8 columns of dx (4 when !wide) over jn rows of W, 4 rows of dx at a time: each step loads one row's 8
// values of W (from the copy, rowW bytes apart) and splats dy[i+r, j] for the 4 rows (own pointers: no address arithmetic per row). A last
// block of fewer than 4 rows repeats the last row and stores only the real ones.
// @ts-ignore: decorator
@inline function inputStrip(dx: usize, dy: usize, w: usize, m: i32, jn: i32, rowD: usize, rowX: usize, rowW: usize, wide: bool): void {
  for (let i = 0; i < m; i += 4) {
    let p0 = dy + <usize>i * rowD, p1 = dy + <usize>min(i + 1, m - 1) * rowD;
    let p2 = dy + <usize>min(i + 2, m - 1) * rowD, p3 = dy + <usize>min(i + 3, m - 1) * rowD;
    let pw = w;
    const end = p0 + <usize>jn * 4;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (; p0 < end; p0 += 4, p1 += 4, p2 += 4, p3 += 4, pw += rowW) {
      const u = v128.load(pw), v = wide ? v128.load(pw, 16) : u;
      let s = v128.load32_splat(p0);
      a0 = madd(s, u, a0); if (wide) b0 = madd(s, v, b0);
      s = v128.load32_splat(p1);
      a1 = madd(s, u, a1); if (wide) b1 = madd(s, v, b1);
      s = v128.load32_splat(p2);
      a2 = madd(s, u, a2); if (wide) b2 = madd(s, v, b2);
      s = v128.load32_splat(p3);
      a3 = madd(s, u, a3); if (wide) b3 = madd(s, v, b3);
    }
    const o = dx + <usize>i * rowX;
    addTo(o, a0, b0, wide);
    if (i + 1 < m) addTo(o + rowX, a1, b1, wide);
    if (i + 2 < m) addTo(o + 2 * rowX, a2, b2, wide);
    if (i + 3 < m) addTo(o + 3 * rowX, a3, b3, wide);
  }
}

// 4 or 8 floats at p += a (| b)
// @ts-ignore: decorator
@inline function addTo(p: usize, a: v128, b: v128, wide: bool): void {
  v128.store(p, f32x4.add(v128.load(p), a));
  if (wide) v128.store(p, f32x4.add(v128.load(p, 16), b), 16);
}

/**
 * dW[n×k] += dy[m×n]ᵀ · x[m×k] for the rows j0..j1 of dW (threads split n; j0 a multiple of 4), with
 * GRAD_SCRATCH bytes at `scratch` of this call's own.
 */
export function matmulGradWeight(dw: usize, dy: usize, x: usize, m: i32, n: i32, k: i32, j0: i32, j1: i32, scratch: usize): void {
  const rowX = <usize>k * 4, rowD = <usize>n * 4, k4 = k & ~3;
  if (n < 4) return gradWeightEdge(dw, dy, x, m, n, k, j0, j1, 0);
  for (let i0 = 0; i0 < m; i0 += CHUNK_I) {
    const im = min(CHUNK_I, m - i0), d = dy + <usize>i0 * rowD, xi = x + <usize>i0 * rowX;
    for (let cc = 0; cc < k4; cc += CHUNK_C) {
      const ce = min(cc + CHUNK_C, k4);
      for (let j = j0; j < j1; j += 4) {
        // a last block of fewer than 4 rows starts 4 rows before j1 (n ≥ 4) and adds only its new rows
        const jb = min(j, j1 - 4), skip = j - jb, o = dw + <usize>jb * rowX, dj = d + <usize>jb * 4;
        // dy[i0.., jb..jb+4] [im × 4], rows 16 bytes apart
        for (let i = 0; i < im; i++) v128.store(scratch + <usize>i * 16, v128.load(dj + <usize>i * rowD));
        let c = cc;
        for (; c + 8 <= ce; c += 8) weightStrip(o + <usize>c * 4, scratch, xi + <usize>c * 4, im, rowX, skip, true);
        if (c < ce) weightStrip(o + <usize>c * 4, scratch, xi + <usize>c * 4, im, rowX, skip, false);
      }
    }
  }
  if (k4 < k) gradWeightEdge(dw, dy, x, m, n, k, j0, j1, k4);
}

// 4 rows of dW × 8 columns (4 when !wide) over im rows of x: each step loads 8 values of a row of x and
// splats dy[i, j..j+3] (copied: 16 bytes a row) from one pointer at fixed offsets. Rows before `skip` were done by the last block.
// @ts-ignore: decorator
@inline function weightStrip(dw: usize, dy: usize, x: usize, im: i32, rowX: usize, skip: i32, wide: bool): void {
  let pd = dy, px = x;
  const end = px + <usize>im * rowX;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (; px < end; px += rowX, pd += 16) {
    const u = v128.load(px), v = wide ? v128.load(px, 16) : u;
    let s = v128.load32_splat(pd);
    a0 = madd(s, u, a0); if (wide) b0 = madd(s, v, b0);
    s = v128.load32_splat(pd, 4);
    a1 = madd(s, u, a1); if (wide) b1 = madd(s, v, b1);
    s = v128.load32_splat(pd, 8);
    a2 = madd(s, u, a2); if (wide) b2 = madd(s, v, b2);
    s = v128.load32_splat(pd, 12);
    a3 = madd(s, u, a3); if (wide) b3 = madd(s, v, b3);
  }
  if (skip < 1) addTo(dw, a0, b0, wide);
  if (skip < 2) addTo(dw + rowX, a1, b1, wide);
  if (skip < 3) addTo(dw + 2 * rowX, a2, b2, wide);
  addTo(dw + 3 * rowX, a3, b3, wide);
}

// dW rows j0..j1, columns c0..k, one by one: the k % 4 last columns, and every column when n < 4.
function gradWeightEdge(dw: usize, dy: usize, x: usize, m: i32, n: i32, k: i32, j0: i32, j1: i32, c0: i32): void {
  const rowX = <usize>k * 4, rowD = <usize>n * 4;
  for (let j = j0; j < j1; j++)
    for (let c = c0; c < k; c++) {
      let s: f32 = 0;
      for (let i = 0; i < m; i++) s += load<f32>(dy + <usize>i * rowD + <usize>j * 4) * load<f32>(x + <usize>i * rowX + <usize>c * 4);
      const o = dw + <usize>j * rowX + <usize>c * 4;
      store<f32>(o, load<f32>(o) + s);
    }
}
