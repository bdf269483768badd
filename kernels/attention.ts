// Causal grouped-query attention over the KV cache, for query heads h0..h1 (threads split the heads).
// Keys are taken in chunks of CHUNK, and the query heads that share a key/value head go through each chunk
// two at a time, so that its keys and values come from memory once for all of them (from cache for the
// rest) and each key or value loaded serves both heads. Per pair and chunk: the scores go to this call's
// scratch (4 keys × 2 heads at a time, eight independent sums), then become e^(score − running maximum)
// in place, then the output rows take the weighted values with 2 × 4 f32x4 accumulators held in registers
// across the chunk's keys. When a chunk raises a head's running maximum, its output row and sum are
// rescaled once (the online softmax), so any length needs only 2 · CHUNK floats of scratch. Why pairs: V8
// issues a loop's loads ahead of its arithmetic, so loaded values and accumulators must fit in x64's 16
// vector registers together; one head at a time spilled an accumulator of the value rows (8 of them and
// 8 loads) and kept only four sums going in the scores. 16 query heads on 4 key/value heads, one thread,
// old and new builds alternated (medians): 160 keys in cache 54–62 → 27–35 µs, from memory 79–97 → 58–72
// µs; 1,000 keys from memory 596 → 442 µs.
import { madd, hsum, exp4 } from "./simd";

/** Keys per chunk: their keys and values for one head (2 · CHUNK · headDim floats) stay in cache while the heads that share them pass. */
const CHUNK = 256;

/**
 * Scores of the four keys at k0..k3 (rows of headDim floats) for the query rows qa and qb, × scale, to
 * pa[0..4) and pb[0..4): eight independent sums, each turned by a transpose-and-add into one lane per key.
 */
// @ts-ignore: decorator
@inline function scores4x2(qa: usize, qb: usize, k0: usize, k1: usize, k2: usize, k3: usize, headDim: i32, scale: v128, pa: usize, pb: usize): void {
  const hd4 = headDim & ~3;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let o: usize = 0, end = <usize>hd4 * 4; o < end; o += 16) {
    const u = v128.load(qa + o), w = v128.load(qb + o);
    let k = v128.load(k0 + o);
    a0 = madd(u, k, a0); b0 = madd(w, k, b0);
    k = v128.load(k1 + o);
    a1 = madd(u, k, a1); b1 = madd(w, k, b1);
    k = v128.load(k2 + o);
    a2 = madd(u, k, a2); b2 = madd(w, k, b2);
    k = v128.load(k3 + o);
    a3 = madd(u, k, a3); b3 = madd(w, k, b3);
  }
  let sa = transposeAdd(a0, a1, a2, a3), sb = transposeAdd(b0, b1, b2, b3);
  for (let c = hd4; c < headDim; c++) {
    const o = <usize>c * 4;
    let kc = f32x4.splat(load<f32>(k0 + o));
    kc = f32x4.replace_lane(kc, 1, load<f32>(k1 + o));
    kc = f32x4.replace_lane(kc, 2, load<f32>(k2 + o));
    kc = f32x4.replace_lane(kc, 3, load<f32>(k3 + o));
    sa = madd(f32x4.splat(load<f32>(qa + o)), kc, sa);
    sb = madd(f32x4.splat(load<f32>(qb + o)), kc, sb);
  }
  v128.store(pa, f32x4.mul(sa, scale));
  v128.store(pb, f32x4.mul(sb, scale));
}

/** The four lane sums of d0..d3, as lanes 0..3 of one f32x4. */
// @ts-ignore: decorator
@inline function transposeAdd(d0: v128, d1: v128, d2: v128, d3: v128): v128 {
  const t0 = f32x4.add(i32x4.shuffle(d0, d1, 0, 4, 1, 5), i32x4.shuffle(d0, d1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(d2, d3, 0, 4, 1, 5), i32x4.shuffle(d2, d3, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

/**
 * One head's chunk of n scores at p → e^(score − new maximum) in place; the head's running maximum and sum
 * at `state` move on. Returns e^(old maximum − new maximum), what its output row must be rescaled by. Up to
 * 3 scores past n (of a key repeated by scores4x2) count for the maximum and are set to 0.
 */
// @ts-ignore: decorator
@inline function softmaxChunk(p: usize, n: i32, state: usize): f32 {
  const top = load<f32>(state), sum = load<f32>(state, 4), full = p + <usize>(n & ~3) * 4, end = p + <usize>((n + 3) & ~3) * 4;
  // pmax is one instruction on x64 where max is six (NaN and -0 rules); a NaN score gives NaN weights either way
  let tops = f32x4.splat(-Infinity);
  for (let o = p; o < end; o += 16) tops = f32x4.pmax(tops, v128.load(o));
  const newTop = max(top, max(max(f32x4.extract_lane(tops, 0), f32x4.extract_lane(tops, 1)), max(f32x4.extract_lane(tops, 2), f32x4.extract_lane(tops, 3))));
  const correction = Mathf.exp(top - newTop), t = f32x4.splat(newTop);
  let total = f32x4.splat(0);
  for (let o = p; o < full; o += 16) {
    const e = exp4(f32x4.sub(v128.load(o), t));
    v128.store(o, e);
    total = f32x4.add(total, e);
  }
  if (full < end) {
    const e = v128.and(exp4(f32x4.sub(v128.load(full), t)), i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(n & 3)));
    v128.store(full, e);
    total = f32x4.add(total, e);
  }
  store<f32>(state, newTop);
  store<f32>(state, sum * correction + hsum(total), 4);
  return correction;
}

/**
 * Two heads' output rows oa and ob (headDim floats each) over the chunk's n keys: out = out·correction +
 * Σ p_i·v_i, with weights pa and pb; sixteen values of a row at a time, so 8 accumulators, 4 values of v
 * and the two weights fit in registers.
 */
// @ts-ignore: decorator
@inline function weighValues2(oa: usize, ob: usize, pa: usize, pb: usize, v: usize, n: i32, rowKv: usize, ca: f32, cb: f32, headDim: i32): void {
  const va = f32x4.splat(ca), vb = f32x4.splat(cb), hd4 = headDim & ~3, pEnd = pa + <usize>n * 4;
  let d = 0;
  for (; d + 16 <= hd4; d += 16) {
    const o = <usize>d * 4;
    let a0 = f32x4.mul(v128.load(oa + o), va), a1 = f32x4.mul(v128.load(oa + o, 16), va), a2 = f32x4.mul(v128.load(oa + o, 32), va), a3 = f32x4.mul(v128.load(oa + o, 48), va);
    let b0 = f32x4.mul(v128.load(ob + o), vb), b1 = f32x4.mul(v128.load(ob + o, 16), vb), b2 = f32x4.mul(v128.load(ob + o, 32), vb), b3 = f32x4.mul(v128.load(ob + o, 48), vb);
    let vi = v + o;
    // ka, kb: key i's weight for each head
    for (let ka = pa, kb = pb; ka < pEnd; ka += 4, kb += 4, vi += rowKv) {
      const wa = v128.load32_splat(ka), wb = v128.load32_splat(kb);
      let x = v128.load(vi);
      a0 = madd(wa, x, a0); b0 = madd(wb, x, b0);
      x = v128.load(vi, 16);
      a1 = madd(wa, x, a1); b1 = madd(wb, x, b1);
      x = v128.load(vi, 32);
      a2 = madd(wa, x, a2); b2 = madd(wb, x, b2);
      x = v128.load(vi, 48);
      a3 = madd(wa, x, a3); b3 = madd(wb, x, b3);
    }
    v128.store(oa + o, a0); v128.store(oa + o, a1, 16); v128.store(oa + o, a2, 32); v128.store(oa + o, a3, 48);
    v128.store(ob + o, b0); v128.store(ob + o, b1, 16); v128.store(ob + o, b2, 32); v128.store(ob + o, b3, 48);
  }
  for (; d < hd4; d += 4) {
    const o = <usize>d * 4;
    let a = f32x4.mul(v128.load(oa + o), va), b = f32x4.mul(v128.load(ob + o), vb), vi = v + o;
    for (let i = 0; i < n; i++, vi += rowKv) {
      const x = v128.load(vi);
      a = madd(v128.load32_splat(pa + <usize>i * 4), x, a);
      b = madd(v128.load32_splat(pb + <usize>i * 4), x, b);
    }
    v128.store(oa + o, a);
    v128.store(ob + o, b);
  }
  for (; d < headDim; d++) {
    const o = <usize>d * 4;
    let a = load<f32>(oa + o) * ca, b = load<f32>(ob + o) * cb, vi = v + o;
    for (let i = 0; i < n; i++, vi += rowKv) {
      const x = load<f32>(vi);
      a += load<f32>(pa + <usize>i * 4) * x;
      b += load<f32>(pb + <usize>i * 4) * x;
    }
    store<f32>(oa + o, a);
    store<f32>(ob + o, b);
  }
}

/** `scratch`: this call's own SCRATCH bytes, 16-byte aligned. */
export function attention(out: usize, q: usize, kCache: usize, vCache: usize, rows: i32, pos0: i32, qHeads: i32, kvHeads: i32, headDim: i32, h0: i32, h1: i32, scratch: usize): void {
  const group = qHeads / kvHeads, scale = f32x4.splat(<f32>(1 / Math.sqrt(<f64>headDim)));
  const rowKv = <usize>kvHeads * headDim * 4, rowHead = <usize>headDim * 4, pb0 = scratch + CHUNK * 4, state = pb0 + CHUNK * 4;
  for (let r = 0; r < rows; r++) {
    const len = pos0 + r + 1; // causal: keys 0..pos0+r
    // this thread's query heads that share key/value head g together, chunk by chunk, so that a chunk's
    // keys and values are read from memory once for all of them (grouped-query attention)
    for (let hA = h0; hA < h1; ) {
      const g = hA / group, hB = min(h1, (g + 1) * group), kv = <usize>g * rowHead;
      for (let h = hA; h < hB; h++) {
        memory.fill(out + (<usize>r * qHeads + h) * rowHead, 0, rowHead);
        store<f32>(state + <usize>(h - hA) * 8, -Infinity); // running maximum score
        store<f32>(state + <usize>(h - hA) * 8, 0, 4); // sum of e^(score - maximum)
      }
      for (let c0 = 0; c0 < len; c0 += CHUNK) {
        const n = min(CHUNK, len - c0);
        // heads h and h + 1; an odd last head goes alone (its second head is itself, with the same weights)
        for (let h = hA; h < hB; h += 2) {
          const alone = h + 1 == hB, pb = alone ? scratch : pb0;
          const qa = q + (<usize>r * qHeads + h) * rowHead, qb = alone ? qa : qa + rowHead;
          // scores of the chunk's keys, four at a time (a last block's missing keys read as its first)
          for (let s = 0; s < n; s += 4) {
            const m = min(4, n - s), k0 = kCache + <usize>(c0 + s) * rowKv + kv;
            scores4x2(qa, qb, k0, k0 + (m > 1 ? rowKv : 0), k0 + (m > 2 ? 2 * rowKv : 0), k0 + (m > 3 ? 3 * rowKv : 0), headDim, scale, scratch + <usize>s * 4, pb + <usize>s * 4);
          }
          const sa = state + <usize>(h - hA) * 8, ca = softmaxChunk(scratch, n, sa);
          const cb = alone ? ca : softmaxChunk(pb, n, sa + 8);
          weighValues2(out + (<usize>r * qHeads + h) * rowHead, out + (<usize>r * qHeads + (alone ? h : h + 1)) * rowHead, scratch, pb, vCache + <usize>c0 * rowKv + kv, n, rowKv, ca, cb, headDim);
        }
      }
      for (let h = hA; h < hB; h++) {
        const oi = out + (<usize>r * qHeads + h) * rowHead, sum = load<f32>(state + <usize>(h - hA) * 8, 4);
        const inv = f32x4.splat(1 / sum), hd4 = headDim & ~3;
        for (let c = 0; c < hd4; c += 4) v128.store(oi + <usize>c * 4, f32x4.mul(v128.load(oi + <usize>c * 4), inv));
        for (let c = hd4; c < headDim; c++) store<f32>(oi + <usize>c * 4, load<f32>(oi + <usize>c * 4) / sum);
      }
      hA = hB;
    }
  }
}
