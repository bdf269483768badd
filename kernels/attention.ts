// Causal grouped-query attention over the KV cache, for query heads h0..h1 (threads split the heads).
// Softmax is computed online: keys are taken four at a time, their scores form one f32x4, and the output
// row (which accumulates the weighted values) is rescaled once per block when the running maximum grows.
// No score buffer is needed.
import { madd, hsum, exp4 } from "./simd";

/** q · k over headDim floats (four lanes of partial sums). */
// @ts-ignore: decorator
@inline function dot(q: usize, k: usize, hd4: i32): v128 {
  let acc = f32x4.splat(0);
  for (let c = 0; c < hd4; c += 4) acc = madd(v128.load(q + <usize>c * 4), v128.load(k + <usize>c * 4), acc);
  return acc;
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
        // scores of keys s..s+3 (missing keys of the last block get -inf, so weight 0)
        const k0 = kCache + <usize>s * rowKv + kv;
        let score = f32x4.splat(-Infinity);
        for (let i = 0; i < n; i++) {
          const kp = k0 + <usize>i * rowKv;
          let d = hsum(dot(qi, kp, hd4));
          for (let c = hd4; c < headDim; c++) d += load<f32>(qi + <usize>c * 4) * load<f32>(kp + <usize>c * 4);
          score = f32x4.replace_lane(score, 0, d * scale);
          score = i32x4.shuffle(score, score, 1, 2, 3, 0); // rotate: key i ends in lane i after four steps
        }
        for (let i = n; i < 4; i++) score = i32x4.shuffle(score, score, 1, 2, 3, 0);
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
