// Matrix products out = x · Wᵀ with W [n × k] stored as f32, f16 or bf16 (the Hugging Face layout:
// one row per output). Each call computes the output columns j0..j1, so threads can split the rows of W.
import { Q8_0, matmulQ, dequantizeRows, quantRowBytes } from "./quant";
import { widen } from "./elementwise";
import { F32, F16, BF16, madd, hsum, widen4, widen1, weightMask, pairLo, pairHi, BF16Bits, F16Bits } from "./simd";

// m > 1 (prefill, and the server's batched decoding): x packed in blocks of 4 rows by packRows, so each
// step reads a block's 4 values of a column from one pointer at fixed offsets. Tiles of 4 rows of x × 2
// rows of W, or for m = 2 (the server decodes 2 sequences at a time as well as 4) 2 × 4, half the
// multiply-adds of a 4-row tile; either keeps eight f32x4 accumulators in registers. The rows of W stay in
// L1 while all of x streams past them, so W is read once per call. Blocks at the edges repeat their last
// row (packRows did), tiles their last row of W, and they store only the real ones.
function matmulBlocked<W>(out: usize, xp: usize, w: usize, m: i32, n: i32, k: i32, j0: i32, j1: i32): void {
  const R = m > 2 ? 4 : 2, wRows = 8 / R, rowW = <usize>k * sizeof<W>();
  for (let j = j0; j < j1; j += wRows) {
    // R = 4: the next tile's rows of W, read a byte per step while these are multiplied, so that they are
    // in cache when their turn comes (wasm has no prefetch; measured: m = 4 from memory 22% faster on Zen 3,
    // 4% on Zen 5); after the last tile, x instead (in cache anyway: 16·k bytes a block). R = 2 reads four
    // rows of W side by side, which the prefetchers follow alone: a touch made it 30% slower (Zen 5)
    const touch = j + wRows < j1 ? w + <usize>(j + wRows) * rowW : xp;
    if (R == 4) for (let i = 0; i < m; i += 4) tile<W>(out, xp, w, i, m, n, k, j, j1, touch, 4);
    else tile<W>(out, xp, w, 0, m, n, k, j, j1, touch, 2);
  }
}

/**
 * One tile: rows i.. of x (R = 4, or 2: the block's first two) × rows j.. of W (8 / R of them, the last
 * real one repeated past j1), over all k columns; for R = 4, `touch` steps through the rows of W after them.
 */
// @ts-ignore: decorator
@inline function tile<W>(out: usize, xp: usize, w: usize, i: i32, m: i32, n: i32, k: i32, j: i32, j1: i32, touch: usize, R: i32): void {
  const wb = <usize>sizeof<W>(), k4 = k & ~3, tail = <usize>(k - k4) * 4, rowW = <usize>k * wb;
  const mask = weightMask<W>(), scale: f32 = isSigned<W>() ? F16_HALF : 1;
  // R = 4: a, c are W rows j, j+1 and 0..3 the rows of x; R = 2: a0/a1, a2/a3, c0/c1, c2/c3 are W rows j..j+3 × x rows i, i+1
  let pa = w + <usize>j * rowW, pb = w + <usize>min(j + 1, j1 - 1) * rowW;
  let pc = w + <usize>min(j + 4 / R, j1 - 1) * rowW, pd = w + <usize>min(j + 3, j1 - 1) * rowW;
  let px = xp + <usize>(i >> 2) * <usize>k * 16;
  const end = px + <usize>k4 * 16;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  for (; px < end; px += 64) {
    if (R == 4) {
      const va = widen4<W>(pa, mask), vc = widen4<W>(pc, mask);
      let v = v128.load(px);
      a0 = madd(v, va, a0); c0 = madd(v, vc, c0);
      v = v128.load(px, 16);
      a1 = madd(v, va, a1); c1 = madd(v, vc, c1);
      v = v128.load(px, 32);
      a2 = madd(v, va, a2); c2 = madd(v, vc, c2);
      v = v128.load(px, 48);
      a3 = madd(v, va, a3); c3 = madd(v, vc, c3);
    } else {
      const v0 = v128.load(px), v1 = v128.load(px, 16);
      let u = widen4<W>(pa, mask);
      a0 = madd(v0, u, a0); a1 = madd(v1, u, a1);
      u = widen4<W>(pb, mask);
      a2 = madd(v0, u, a2); a3 = madd(v1, u, a3);
      u = widen4<W>(pc, mask);
      c0 = madd(v0, u, c0); c1 = madd(v1, u, c1);
      u = widen4<W>(pd, mask);
      c2 = madd(v0, u, c2); c3 = madd(v1, u, c3);
      pb += 4 * wb; pd += 4 * wb;
    }
    if (R == 4) { load<u8>(touch); touch += 8 * wb; }
    pa += 4 * wb; pc += 4 * wb;
  }
  let s0 = hsum(a0) * scale, s1 = hsum(a1) * scale, s2 = hsum(a2) * scale, s3 = hsum(a3) * scale;
  let t0 = hsum(c0) * scale, t1 = hsum(c1) * scale, t2 = hsum(c2) * scale, t3 = hsum(c3) * scale;
  // the k % 4 last columns, packed row after row and unscaled
  for (let o: usize = 0; o < tail; o += 4) {
    const f0 = load<f32>(px + o), f1 = load<f32>(px + tail + o);
    if (R == 4) {
      const fa = widen1<W>(pa + (o >> 2) * wb), fc = widen1<W>(pc + (o >> 2) * wb);
      const f2 = load<f32>(px + 2 * tail + o), f3 = load<f32>(px + 3 * tail + o);
      s0 += f0 * fa; t0 += f0 * fc; s1 += f1 * fa; t1 += f1 * fc;
      s2 += f2 * fa; t2 += f2 * fc; s3 += f3 * fa; t3 += f3 * fc;
    } else {
      const fa = widen1<W>(pa + (o >> 2) * wb), fb = widen1<W>(pb + (o >> 2) * wb);
      const fc = widen1<W>(pc + (o >> 2) * wb), fd = widen1<W>(pd + (o >> 2) * wb);
      s0 += f0 * fa; s1 += f1 * fa; s2 += f0 * fb; s3 += f1 * fb;
      t0 += f0 * fc; t1 += f1 * fc; t2 += f0 * fd; t3 += f1 * fd;
    }
  }
  const o0 = out + (<usize>i * n + j) * 4, rowO = <usize>n * 4;
  if (R == 4) {
    const two = j + 1 < j1;
    store<f32>(o0, s0); if (two) store<f32>(o0, t0, 4);
    if (i + 1 < m) { store<f32>(o0 + rowO, s1); if (two) store<f32>(o0 + rowO, t1, 4); }
    if (i + 2 < m) { store<f32>(o0 + 2 * rowO, s2); if (two) store<f32>(o0 + 2 * rowO, t2, 4); }
    if (i + 3 < m) { store<f32>(o0 + 3 * rowO, s3); if (two) store<f32>(o0 + 3 * rowO, t3, 4); }
  } else {
    const second = i + 1 < m;
    store<f32>(o0, s0); if (second) store<f32>(o0 + rowO, s1);
    if (j + 1 < j1) { store<f32>(o0, s2, 4); if (second) store<f32>(o0 + rowO, s3, 4); }
    if (j + 2 < j1) { store<f32>(o0, t0, 8); if (second) store<f32>(o0 + rowO, t1, 8); }
    if (j + 3 < j1) { store<f32>(o0, t2, 12); if (second) store<f32>(o0 + rowO, t3, 12); }
  }
}

/**
 * x[m×k] in the order matmulBlocked reads it: rows in blocks of 4 (the last block repeats the last row),
 * and in each block, for every 4 columns the 4 rows' 4 values side by side (64 bytes), × 2^56 for f16
 * weights as in pairActivations; then the block's k % 4 last columns, row after row, as they are.
 * 16·k bytes per block.
 */
export function packRows(out: usize, x: usize, m: i32, k: i32, dtype: i32): void {
  const k4 = k & ~3, tail = <usize>(k - k4) * 4, rowX = <usize>k * 4, scale = f32x4.splat(dtype == F16 ? F16_HALF : 1);
  for (let i = 0; i < m; i += 4) {
    const block = out + <usize>(i >> 2) * rowX * 4;
    for (let r = 0; r < 4; r++) {
      const src = x + <usize>min(i + r, m - 1) * rowX;
      for (let c = 0; c < k4; c += 4) v128.store(block + <usize>c * 16 + <usize>r * 16, f32x4.mul(v128.load(src + <usize>c * 4), scale));
      memory.copy(block + <usize>k4 * 16 + <usize>r * tail, src + <usize>k4 * 4, tail);
    }
  }
}

// Decode, m = 1: bound by reading W. One weight row at a time, sixteen weights per step, so the reads
// form a single sequential stream (measured here: the prefetchers sustain more for one stream than
// for four rows read side by side). Each v128 of weights is loaded once (see pairLo/pairHi); for 16-bit
// weights x comes in the matching order, prepared once per product by pairActivations.
function matvec<W>(out: usize, x: usize, w: usize, k: i32, j0: i32, j1: i32): void {
  const wb = <usize>sizeof<W>(), k16 = k & ~15, xEnd = x + <usize>k16 * 4, mask = weightMask<W>();
  for (let j = j0; j < j1; j++) {
    let p = w + <usize>j * k * wb;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let px = x; px < xEnd; px += 64) {
      const r = v128.load(p), q = p + 8 * wb, s = v128.load(q);
      a0 = accumulate<W>(v128.load(px), pairLo<W>(p, r, mask), a0);
      a1 = accumulate<W>(v128.load(px, 16), pairHi<W>(p, r, mask), a1);
      a2 = accumulate<W>(v128.load(px, 32), pairLo<W>(q, s, mask), a2);
      a3 = accumulate<W>(v128.load(px, 48), pairHi<W>(q, s, mask), a3);
      p += 16 * wb;
    }
    // f16: x came scaled by 2^56 and the weights by 2^-112; both scalings are exact
    const scale: f32 = isSigned<W>() ? F16_HALF : 1;
    let sum = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) * scale;
    for (let c = k16; c < k; c++) sum += load<f32>(x + <usize>c * 4) / scale * widen1<W>(p + <usize>(c - k16) * wb);
    store<f32>(out + <usize>j * 4, sum);
  }
}

/**
 * acc + x·w for matvec. BF16: a multiply, then an add, where the other types take one fused multiply-add:
 * each of the 4 sums then waits on an add instead of a 4-cycle multiply-add, the chain that held bf16 to
 * one multiply-add a cycle (measured, Zen 5: 6-8% faster from memory, 14% in cache; f16, whose widening
 * fills the vector ports, and f32, which waits on its bytes, were 16-23% slower split).
 */
// @ts-ignore: decorator
@inline function accumulate<W>(x: v128, w: v128, acc: v128): v128 {
  if (isInteger<W>() && !isSigned<W>()) return f32x4.add(f32x4.mul(x, w), acc);
  return madd(x, w, acc);
}

const F16_HALF: f32 = 7.205759403792794e16; // 2^56: x and the sum each carry half of the 2^112 that pairLo/pairHi leave out of f16 weights

/**
 * x[k] in the order matvec reads it against 16-bit weights: in each 8 of the first k & ~15 values the
 * even ones, then the odd ones (the order pairLo and pairHi widen weights in); the rest as they are.
 * For f16 weights also × 2^56 (see below).
 */
export function pairActivations(out: usize, x: usize, k: i32, dtype: i32): void {
  // for f16, x × 2^56 and the sum × 2^56 make up for the weights' missing 2^112 (overflow would need |x| > 2^72)
  const k16 = k & ~15, scale = f32x4.splat(dtype == F16 ? F16_HALF : 1);
  for (let c = 0; c < k16; c += 8) {
    const a = v128.load(x + <usize>c * 4), b = v128.load(x + <usize>c * 4, 16);
    v128.store(out + <usize>c * 4, f32x4.mul(i32x4.shuffle(a, b, 0, 2, 4, 6), scale));
    v128.store(out + <usize>c * 4, f32x4.mul(i32x4.shuffle(a, b, 1, 3, 5, 7), scale), 16);
  }
  for (let c = k16; c < k; c++) store<f32>(out + <usize>c * 4, load<f32>(x + <usize>c * 4) * f32x4.extract_lane(scale, 0));
}

/**
 * 16-bit or quantized W against many rows (prefill): two rows of W at a time decoded to f32 in `panel`
 * (8·k bytes, this call's own), then the blocked f32 product over all m rows, so the decoding is shared by
 * every row and the inner loop is f32's, with no widening. x is packRows' output (as f32); for quantized
 * W, packQuantized's: the activations quantized as the integer kernels quantize them and decoded again,
 * so both paths compute the same sums up to float rounding.
 */
function matmulPanel(out: usize, xp: usize, w: usize, dtype: i32, m: i32, n: i32, k: i32, j0: i32, j1: i32, panel: usize): void {
  const wRow = dtype >= Q8_0 ? quantRowBytes(dtype, k) : <usize>k * 2;
  for (let j = j0; j < j1; j += 2) {
    const rows = min(2, j1 - j);
    if (dtype >= Q8_0) dequantizeRows(panel, w + <usize>j * wRow, dtype, k, rows);
    else widen(panel, w + <usize>j * wRow, dtype, rows * k);
    matmulBlocked<f32>(out + <usize>j * 4, xp, panel, m, n, k, 0, rows);
  }
}

/**
 * out[m×n] = x[m×k] · W[n×k]ᵀ for output columns j0..j1. With a `panel` (workspace of 8·k bytes; W not
 * f32), matmulPanel's; otherwise for quantized W, x is quantizeRows' output; for float W, packRows' output
 * when m > 1, and for 16-bit W and m = 1 pairActivations' output.
 */
export function matmul(out: usize, x: usize, w: usize, dtype: i32, m: i32, n: i32, k: i32, j0: i32, j1: i32, panel: usize): void {
  if (panel) matmulPanel(out, x, w, dtype, m, n, k, j0, j1, panel);
  else if (dtype >= Q8_0) matmulQ(out, x, w, dtype, m, n, k, j0, j1);
  else if (m == 1) {
    if (dtype == F32) matvec<f32>(out, x, w, k, j0, j1);
    else if (dtype == BF16) matvec<BF16Bits>(out, x, w, k, j0, j1);
    else matvec<F16Bits>(out, x, w, k, j0, j1);
  } else {
    if (dtype == F32) matmulBlocked<f32>(out, x, w, m, n, k, j0, j1);
    else if (dtype == BF16) matmulBlocked<BF16Bits>(out, x, w, m, n, k, j0, j1);
    else matmulBlocked<F16Bits>(out, x, w, m, n, k, j0, j1);
  }
}
