// Causal grouped-query attention over the KV cache, for query heads h0..h1 (threads split the heads).
// Softmax is computed online: keys are taken four at a time, their scores form one f32x4, and the output
// row (which accumulates the weighted values) is rescaled once per block when the running maximum grows.
// No score buffer is needed.
import { madd, hsum, exp4 } from "./simd";

/**
 * q · k for the four keys at k0..k3 (rows of headDim floats), as one f32x4: four independent sums (a
 * single one would wait on each multiply-add), then a transpose-and-add puts key i's total in lane i.
 */
// @ts-ignore: decorator
@inline function scores4(q: usize, k0: usize, k1: usize, k2: usize, k3: usize, headDim: i32): v128 {
  const hd4 = headDim & ~3;
  let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
  for (let c = 0; c < hd4; c += 4) {
    const o = <usize>c * 4, qv = v128.load(q + o);
    d0 = madd(qv, v128.load(k0 + o), d0); d1 = madd(qv, v128.load(k1 + o), d1);
    d2 = madd(qv, v128.load(k2 + o), d2); d3 = madd(qv, v128.load(k3 + o), d3);
  }
  const t0 = f32x4.add(i32x4.shuffle(d0, d1, 0, 4, 1, 5), i32x4.shuffle(d0, d1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(d2, d3, 0, 4, 1, 5), i32x4.shuffle(d2, d3, 2, 6, 3, 7));
  let sums = f32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  for (let c = hd4; c < headDim; c++) {
    const o = <usize>c * 4;
    let kc = f32x4.splat(load<f32>(k0 + o));
    kc = f32x4.replace_lane(kc, 1, load<f32>(k1 + o));
    kc = f32x4.replace_lane(kc, 2, load<f32>(k2 + o));
    kc = f32x4.replace_lane(kc, 3, load<f32>(k3 + o));
    sums = madd(f32x4.splat(load<f32>(q + o)), kc, sums);
  }
  return sums;
}

export function attention(out: usize, q: usize, kCache: usize, vCache: usize, rows: i32, pos0: i32, qHeads: i32, kvHeads: i32, headDim: i32, h0: i32, h1: i32): void {
  const group = qHeads / kvHeads, scale = <f32>(1 / Math.sqrt(<f64>headDim));
  const hd4 = headDim & ~3, rowKv = <usize>kvHeads * headDim * 4;
  for (let r = 0; r < rows; r++) {
    const len = pos0 + r + 1; // causal: keys 0..pos0+r
    for (let h = h0; h < h1; h++) {
      const qi = q + (<usize>r * qHeads + h) * headDim * 4, oi = out + (<usize>r * qHeads + h) * headDim * 4;
      const kv = <usize>(h / group) * headDim * 4;
      memory.fill(oi, 0, <usize>headDim * 4);
      let top: f32 = -Infinity, sum: f32 = 0; // running maximum score and sum of e^(score - top)
      for (let s = 0; s < len; s += 4) {
        const n = min(4, len - s); // keys in this block
        // scores of keys s..s+3; missing keys of the last block (read as key s again) get -inf, so weight 0
        const k0 = kCache + <usize>s * rowKv + kv;
        let score = f32x4.mul(scores4(qi, k0, k0 + (n > 1 ? rowKv : 0), k0 + (n > 2 ? 2 * rowKv : 0), k0 + (n > 3 ? 3 * rowKv : 0), headDim), f32x4.splat(scale));
        if (n < 4) score = v128.bitselect(score, f32x4.splat(-Infinity), i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(n)));
        const blockTop = max(max(f32x4.extract_lane(score, 0), f32x4.extract_lane(score, 1)), max(f32x4.extract_lane(score, 2), f32x4.extract_lane(score, 3)));
        const newTop = max(top, blockTop);
        const correction = Mathf.exp(top - newTop);
        const p = exp4(f32x4.sub(score, f32x4.splat(newTop)));
        sum = sum * correction + hsum(p);
        top = newTop;
        // out = out·correction + Σ p_i·v_i
        const v0 = vCache + <usize>s * rowKv + kv;
        const p0 = f32x4.splat(f32x4.extract_lane(p, 0)), p1 = f32x4.splat(f32x4.extract_lane(p, 1));
        const p2 = f32x4.splat(f32x4.extract_lane(p, 2)), p3 = f32x4.splat(f32x4.extract_lane(p, 3));
        const cv = f32x4.splat(correction);
        const v1 = v0 + (n > 1 ? rowKv : 0), v2 = v0 + (n > 2 ? 2 * rowKv : 0), v3 = v0 + (n > 3 ? 3 * rowKv : 0);
        for (let c = 0; c < hd4; c += 4) {
          const o = <usize>c * 4;
          let acc = f32x4.mul(v128.load(oi + o), cv);
          acc = madd(p0, v128.load(v0 + o), acc);
          acc = madd(p1, v128.load(v1 + o), acc);
          acc = madd(p2, v128.load(v2 + o), acc);
          acc = madd(p3, v128.load(v3 + o), acc);
          v128.store(oi + o, acc);
        }
        for (let c = hd4; c < headDim; c++) {
          const o = <usize>c * 4;
          store<f32>(oi + o, load<f32>(oi + o) * correction + f32x4.extract_lane(p, 0) * load<f32>(v0 + o) + f32x4.extract_lane(p, 1) * load<f32>(v1 + o)
            + f32x4.extract_lane(p, 2) * load<f32>(v2 + o) + f32x4.extract_lane(p, 3) * load<f32>(v3 + o));
        }
      }
      const inv = f32x4.splat(1 / sum);
      for (let c = 0; c < hd4; c += 4) v128.store(oi + <usize>c * 4, f32x4.mul(v128.load(oi + <usize>c * 4), inv));
      for (let c = hd4; c < headDim; c++) store<f32>(oi + <usize>c * 4, load<f32>(oi + <usize>c * 4) / sum);
    }
  }
}
