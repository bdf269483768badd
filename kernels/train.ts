// The training kernels besides the matrix products (those are in backward.ts): softmax cross-entropy with
// its gradient, and causal grouped-query attention's backward pass. Specification: src/kernels/reference.ts.
import { madd, hsum, exp4 } from "./simd";

// Exponentials summed in f32x4 per block of this many, each block's sum then added in f64: the rounding
// of the sum stays a few ulps however long the row (32000 logits), not one per 4 values added.
const SUM_BLOCK = 256;

/**
 * For the rows r0..r1 of logits [rows × vocab] with target ids targets[rows] (i32): dlogits[r] =
 * softmax(logits[r])·scale, minus scale at the target, and losses[r] = logsumexp(logits[r]) − logits[r,
 * target]. One exp4 per logit (its result is kept in dlogits, then scaled); dlogits may equal logits.
 * Not bit-identical to Math.exp in float64: exp4 is ~2 ulp and x − max x rounds to f32, so dlogits are within
 * 6e-7 + 2^-24·|x − max x| relative of the specification (tested).
 */
export function crossEntropy(dlogits: usize, logits: usize, targets: usize, losses: usize, rows: i32, vocab: i32, scale: f32, r0: i32, r1: i32): void {
  const v4 = vocab & ~3, row = <usize>vocab * 4;
  for (let r = r0; r < r1; r++) {
    const x = logits + <usize>r * row, d = dlogits + <usize>r * row, target = <usize>load<i32>(targets + <usize>r * 4) * 4;
    const xt = load<f32>(x + target); // read before an in-place dlogits overwrites it
    let m = f32x4.splat(-Infinity);
    for (let j = 0; j < v4; j += 4) m = f32x4.max(m, v128.load(x + <usize>j * 4));
    let top = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    for (let j = v4; j < vocab; j++) top = max(top, load<f32>(x + <usize>j * 4));
    // e^(x − top) into dlogits, and their sum
    const t = f32x4.splat(top);
    let sum: f64 = 0;
    for (let b = 0; b < v4; b += SUM_BLOCK) {
      const end = min(b + SUM_BLOCK, v4);
      let s = f32x4.splat(0);
      for (let j = b; j < end; j += 4) {
        const e = exp4(f32x4.sub(v128.load(x + <usize>j * 4), t));
        v128.store(d + <usize>j * 4, e);
        s = f32x4.add(s, e);
      }
      sum += <f64>hsum(s);
    }
    for (let j = v4; j < vocab; j++) {
      const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(x + <usize>j * 4) - top)), 0);
      store<f32>(d + <usize>j * 4, e);
      sum += <f64>e;
    }
    store<f32>(losses + <usize>r * 4, <f32>(<f64>top + Math.log(sum) - <f64>xt));
    const k = <f32>(<f64>scale / sum), kv = f32x4.splat(k);
    for (let j = 0; j < v4; j += 4) v128.store(d + <usize>j * 4, f32x4.mul(v128.load(d + <usize>j * 4), kv));
    for (let j = v4; j < vocab; j++) store<f32>(d + <usize>j * 4, load<f32>(d + <usize>j * 4) * k);
    store<f32>(d + target, load<f32>(d + target) - scale);
  }
}

// a · b over n floats: two f32x4 sums (one would wait on each multiply-add), then the n % 4 last one by one
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), c = 0;
  for (; c + 8 <= n; c += 8) {
    const o = <usize>c * 4;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
    s1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  if (c + 4 <= n) {
    s0 = madd(v128.load(a + <usize>c * 4), v128.load(b + <usize>c * 4), s0);
    c += 4;
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; c < n; c++) s += load<f32>(a + <usize>c * 4) * load<f32>(b + <usize>c * 4);
  return s;
}

/**
 * The backward pass of causal grouped-query attention (the forward pass is attention.ts) for kv heads
 * g0..g1 and their query heads, so that threads splitting the kv heads never write the same rows of dk
 * and dv. q, dout, dq [T × qHeads × headDim]; k, v, dk, dv [T × kvHeads × headDim]; all += . Per query
 * row, the probabilities P (recomputed from q and k) and dP = dout·vᵀ go in `scratch`, this call's own:
 * two rows of T floats, each rounded up to 16 bytes. Then dv += P·dout, dS = P ⊙ (dP − Σ P·dP),
 * dq += dS·k / √headDim, dk += dS·q / √headDim.
 */
export function attentionBackward(dq: usize, dk: usize, dv: usize, dout: usize, q: usize, k: usize, v: usize, T: i32, qHeads: i32, kvHeads: i32, headDim: i32, g0: i32, g1: i32, scratch: usize): void {
  const group = qHeads / kvHeads, scale = <f32>(1 / Math.sqrt(<f64>headDim)), hd4 = headDim & ~3;
  const rowQ = <usize>qHeads * headDim * 4, rowKv = <usize>kvHeads * headDim * 4;
  const p = scratch, dp = scratch + ((<usize>T * 4 + 15) & ~15);
  for (let g = g0; g < g1; g++) {
    const kg = k + <usize>g * headDim * 4, vg = v + <usize>g * headDim * 4;
    const dkg = dk + <usize>g * headDim * 4, dvg = dv + <usize>g * headDim * 4;
    for (let h = g * group; h < (g + 1) * group; h++)
      for (let t = 0; t < T; t++) {
        const o = <usize>t * rowQ + <usize>h * headDim * 4, qi = q + o, doi = dout + o, dqi = dq + o, n = t + 1;
        // scores of keys 0..t, and their maximum
        let top: f32 = -Infinity;
        for (let s = 0; s < n; s++) {
          const score = dot(qi, kg + <usize>s * rowKv, headDim) * scale;
          store<f32>(p + <usize>s * 4, score);
          top = max(top, score);
        }
        // e^(score − top), four at a time, and their sum
        const n4 = n & ~3, tv = f32x4.splat(top);
        let sv = f32x4.splat(0);
        for (let s = 0; s < n4; s += 4) {
          const e = exp4(f32x4.sub(v128.load(p + <usize>s * 4), tv));
          v128.store(p + <usize>s * 4, e);
          sv = f32x4.add(sv, e);
        }
        let sum = hsum(sv);
        for (let s = n4; s < n; s++) {
          const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(p + <usize>s * 4) - top)), 0);
          store<f32>(p + <usize>s * 4, e);
          sum += e;
        }
        // P normalized, dP = dout · vᵀ, and Σ P·dP
        const inv: f32 = 1 / sum;
        let pdp: f32 = 0;
        for (let s = 0; s < n; s++) {
          const ps = load<f32>(p + <usize>s * 4) * inv, d = dot(doi, vg + <usize>s * rowKv, headDim);
          store<f32>(p + <usize>s * 4, ps);
          store<f32>(dp + <usize>s * 4, d);
          pdp += ps * d;
        }
        // dv[s] += P·dout, dq += dS·k[s], dk[s] += dS·q
        for (let s = 0; s < n; s++) {
          const ps = load<f32>(p + <usize>s * 4), ds = ps * (load<f32>(dp + <usize>s * 4) - pdp) * scale;
          const ks = kg + <usize>s * rowKv, dks = dkg + <usize>s * rowKv, dvs = dvg + <usize>s * rowKv;
          const pv = f32x4.splat(ps), dsv = f32x4.splat(ds);
          for (let c = 0; c < hd4; c += 4) {
            const oc = <usize>c * 4;
            v128.store(dvs + oc, madd(pv, v128.load(doi + oc), v128.load(dvs + oc)));
            v128.store(dqi + oc, madd(dsv, v128.load(ks + oc), v128.load(dqi + oc)));
            v128.store(dks + oc, madd(dsv, v128.load(qi + oc), v128.load(dks + oc)));
          }
          for (let c = hd4; c < headDim; c++) {
            const oc = <usize>c * 4;
            store<f32>(dvs + oc, load<f32>(dvs + oc) + ps * load<f32>(doi + oc));
            store<f32>(dqi + oc, load<f32>(dqi + oc) + ds * load<f32>(ks + oc));
            store<f32>(dks + oc, load<f32>(dks + oc) + ds * load<f32>(qi + oc));
          }
        }
      }
  }
}
