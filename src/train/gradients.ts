// One training example's loss and the gradient of every weight. The forward pass is the model's own
// (src/model.ts, through `trace`, which keeps every intermediate); the backward pass below walks the
// layers in reverse, each step the mirror of a step of OpenELM.step, with the operations of backward.ts
// and, for the matrix products, the cross-entropy and attention, the model's kernels (SIMD and threads, or
// their TypeScript specification).
import { ropeTables, type OpenELM } from "../model.js";
import { trace, type Trace } from "../trace.js";
import { activationBackward, ropeBackward, rmsNormBackward } from "./backward.js";
import type { Tensor } from "../weights.js";

/** Run `f` on arena copies of `arrays` (allocated in the memory of the weight at `beside`, as kernels need), then free them. */
export function inArena<R>(model: OpenELM, beside: number, arrays: (Float32Array | Int32Array)[], f: (ptrs: number[]) => R): R {
  const arena = model.arena, ptrs: number[] = [];
  try {
    for (const a of arrays) {
      ptrs.push(arena.allocBeside(beside, a.byteLength, "training buffer"));
      arena.bytes(ptrs.at(-1)!, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    return f(ptrs);
  } finally {
    ptrs.forEach((p, i) => arena.free(p, arrays[i]!.byteLength));
  }
}

/**
 * Mean cross-entropy of predicting ids[t + 1] from logits row t [T, V] (rows 0..T−2; the last row predicts
 * nothing), on the model's kernels; with `mask`, only over the targets j with mask[j] (e.g. the assistant's
 * tokens of a chat). `backward`, if given, runs while the gradient of `scale` × that loss, dlogits [T−1, V]
 * ((softmax − one-hot)·scale/count on counted rows, 0 on the others), is in the arena at the pointer it is passed.
 */
export function crossEntropy(model: OpenELM, logits: Float32Array, ids: number[], scale = 1, backward?: (pDlogits: number, rows: number) => void, mask?: boolean[]): number {
  const V = model.config.vocabSize, n = ids.length - 1;
  const counted = mask ? mask.slice(1, n + 1).filter(Boolean).length : n;
  if (counted === 0) throw new RangeError("crossEntropy: the mask counts none of the sequence's targets");
  return inArena(model, model.weights.lmHead.ptr, [logits.subarray(0, n * V), Int32Array.from(ids.slice(1)), new Float32Array(n)], ([pLogits, pIds, pLosses]) => {
    model.kernels.crossEntropy(pLogits!, pLogits!, pIds!, pLosses!, n, V, scale / counted); // in place: the logits become dlogits
    let loss = 0;
    const losses = model.arena.floats(pLosses!, n);
    for (let t = 0; t < n; t++)
      if (!mask || mask[t + 1]) loss += losses[t]!;
      else model.arena.floats(pLogits! + t * V * 4, V).fill(0);
    backward?.(pLogits!, n);
    return loss / counted;
  });
}

/** The mean cross-entropy per counted target over `examples` (all targets, or those with mask[j]), forward passes only. */
export function meanLoss(model: OpenELM, examples: { ids: number[]; mask?: boolean[] }[]): number {
  let total = 0, count = 0;
  for (const { ids, mask } of examples) {
    const cache = model.newCache(ids.length), n = mask ? mask.slice(1).filter(Boolean).length : ids.length - 1;
    try {
      total += crossEntropy(model, model.forward(cache, ids, { allPositions: true }), ids, 1, undefined, mask) * n;
      count += n;
    } finally {
      model.releaseCache(cache);
    }
  }
  return total / count;
}

/** Every trainable weight of a model by Hugging Face name (the head only when it is not the embeddings). */
export function namedWeights(model: OpenELM): Map<string, Tensor> {
  const w = model.weights, out = new Map<string, Tensor>();
  const add = (name: string, t: Tensor | undefined) => t && out.set(name, t);
  add("transformer.token_embeddings.weight", w.tokenEmbeddings);
  w.layers.forEach((L, l) => {
    const p = `transformer.layers.${l}.`;
    add(p + "attn_norm.weight", L.attnNorm);
    add(p + "attn.qkv_proj.weight", L.qkvProj);
    add(p + "attn.q_norm.weight", L.qNorm);
    add(p + "attn.k_norm.weight", L.kNorm);
    add(p + "attn.out_proj.weight", L.outProj);
    add(p + "ffn_norm.weight", L.ffnNorm);
    add(p + "ffn.proj_1.weight", L.proj1);
    add(p + "ffn.proj_2.weight", L.proj2);
  });
  add("transformer.norm.weight", w.norm);
  if (!model.config.shareInputOutput) add("lm_head.weight", w.lmHead);
  return out;
}

const count = (t: Tensor) => t.shape.reduce((a, b) => a * b, 1);

/**
 * A gradient accumulator per weight, in the arena beside the weight (the backward kernels add into them
 * in place, so a batch's gradients sum without copies). Free them when done.
 */
export class Gradients {
  readonly at = new Map<string, { ptr: number; length: number }>();

  /** `only`: the names of the weights to collect gradients for (default: all). */
  constructor(readonly model: OpenELM, only?: Iterable<string>) {
    const keep = only && new Set(only);
    for (const [name, t] of namedWeights(model)) if (!keep || keep.has(name)) this.at.set(name, { ptr: model.arena.allocBeside(t.ptr, count(t) * 4, `the gradient of ${name}`), length: count(t) });
    this.zero();
  }

  /** A view of one gradient (take it fresh: the arena may have grown since); for a weight not collected, a scratch array. */
  view(name: string): Float32Array {
    const g = this.at.get(name);
    return g ? this.model.arena.floats(g.ptr, g.length) : new Float32Array(count(namedWeights(this.model).get(name)!));
  }

  /** Views of every gradient, by name (valid until the arena grows). */
  views(): Map<string, Float32Array> {
    return new Map([...this.at.keys()].map((name) => [name, this.view(name)]));
  }

  /** Set every gradient to 0 (before a batch). */
  zero(): void {
    for (const name of this.at.keys()) this.view(name).fill(0);
  }

  /** Give the buffers back to the arena. */
  free(): void {
    for (const g of this.at.values()) this.model.arena.free(g.ptr, g.length * 4);
    this.at.clear();
  }
}

/** The loss of one sequence (mean cross-entropy of each next token) and its gradient per weight, by Hugging Face tensor name. */
export interface LossAndGradients {
  loss: number;
  grads: Map<string, Float32Array>;
}

/** One sequence's loss and gradients as plain arrays (see accumulateGradients). */
export function lossAndGradients(model: OpenELM, ids: number[]): LossAndGradients {
  const grads = new Gradients(model);
  try {
    const loss = accumulateGradients(model, ids, grads);
    return { loss, grads: new Map([...grads.views()].map(([name, g]) => [name, g.slice()])) };
  } finally {
    grads.free();
  }
}

/**
 * Mean cross-entropy of predicting ids[1..] from ids[..T−1] (with `mask`, of the targets j with mask[j]);
 * adds `scale` × its gradient to `grads` (the tied embeddings collect the head's gradient too). The model's
 * weights must be f32.
 */
export function accumulateGradients(model: OpenELM, ids: number[], grads: Gradients, scale = 1, mask?: boolean[]): number {
  const c = model.config, w = model.weights, T = ids.length, D = c.modelDim, hd = c.headDim, V = c.vocabSize, eps = c.normEps;
  if (T < 2) throw new RangeError(`lossAndGradients: a sequence of ${T} token(s) predicts nothing; give at least 2`);
  const f32 = (t: Tensor) => {
    if (t.dtype !== "f32") throw new TypeError(`training needs f32 weights, and this model holds ${t.dtype} (load it with dtype "f32")`);
  };
  const weight = (t: Tensor): Float32Array => (f32(t), model.arena.floats(t.ptr, count(t)).slice());
  const grad = (name: string) => grads.at.get(name)?.ptr;
  /** y[m×n] = x[m×k] · Wᵀ: dx[m×k] += dy · W and the weight's gradient += dyᵀ · x, on the kernels (arena copies beside W). */
  const linearBackward = (dy: Float32Array, x: Float32Array, t: Tensor, m: number, n: number, k: number, dx: Float32Array, name: string) => {
    f32(t);
    inArena(model, t.ptr, [dy, x, dx], ([pDy, pX, pDx]) => {
      model.kernels.matmulGradInput(pDx!, pDy!, t.ptr, m, n, k);
      const pDw = grad(name);
      if (pDw !== undefined) model.kernels.matmulGradWeight(pDw, pDy!, pX!, m, n, k);
      dx.set(model.arena.floats(pDx!, dx.length));
    });
  };
  /** x[m×k] · Wᵀ again (a forward product the backward pass needs and the trace does not keep), in passes of at most maxRows rows as the model's workspace allows. */
  const project = (x: Float32Array, t: Tensor, m: number, n: number, k: number): Float32Array =>
    inArena(model, t.ptr, [x, new Float32Array(m * n)], ([px, py]) => {
      for (let r = 0; r < m; r += model.maxRows)
        model.kernels.matmul(py! + r * n * 4, px! + r * k * 4, t.ptr, t.dtype, Math.min(model.maxRows, m - r), n, k);
      return model.arena.floats(py!, m * n).slice();
    });
  const a: Trace = trace(model, ids); // every intermediate of the forward pass, all positions
  const act = (name: string, l?: number) => a[l === undefined ? name : `layers.${l}.${name}`]!.data;
  const { cos, sin } = ropeTables(T, hd, c.ropeFreqConstant);

  // loss, and through dlogits [T−1, V] the output head (the embeddings when shared): logits = norm · headᵀ → dnorm [T, D]
  const headName = c.shareInputOutput ? "transformer.token_embeddings.weight" : "lm_head.weight";
  const dnorm = new Float32Array(T * D);
  f32(w.lmHead);
  const loss = crossEntropy(model, act("logits"), ids, scale, (pDlogits, n) =>
    inArena(model, w.lmHead.ptr, [act("norm").subarray(0, n * D), dnorm], ([pNorm, pDnorm]) => {
      model.kernels.matmulGradInput(pDnorm!, pDlogits, w.lmHead.ptr, n, V, D);
      const pDw = grad(headName);
      if (pDw !== undefined) model.kernels.matmulGradWeight(pDw, pDlogits, pNorm!, n, V, D);
      dnorm.set(model.arena.floats(pDnorm!, dnorm.length));
    }),
    mask,
  );
  // final norm → dx [T, D], the gradient of the residual stream
  const last = c.numLayers - 1;
  const dx = new Float32Array(T * D);
  rmsNormBackward(dnorm, act("resid_ffn", last), weight(w.norm), T, D, eps, dx, grads.view("transformer.norm.weight"));

  for (let l = last; l >= 0; l--) {
    const L = w.layers[l]!, p = `transformer.layers.${l}.`, nq = c.numQueryHeads[l]!, nkv = c.numKvHeads[l]!, ffn = c.ffnDims[l]!;
    const width = L.proj1.shape[0]!, qkvWidth = (nq + 2 * nkv) * hd;

    // proj_2 (the FFN's residual branch): dact [T, ffn]
    const dact = new Float32Array(T * ffn);
    linearBackward(dx, act("ffn_act", l), L.proj2, T, D, ffn, dact, p + "ffn.proj_2.weight");
    // act(gate)·up → dffn [T, 2·ffn] (gate | up), or act(up) → [T, ffn]
    const ffnOut = new Float32Array(T * width), dffn = new Float32Array(T * width);
    for (let t = 0; t < T; t++) {
      if (c.ffnWithGlu) ffnOut.set(act("ffn_gate", l).subarray(t * ffn, (t + 1) * ffn), t * width);
      ffnOut.set(act("ffn_up", l).subarray(t * ffn, (t + 1) * ffn), t * width + (c.ffnWithGlu ? ffn : 0));
    }
    activationBackward(dact, ffnOut, T, ffn, c.activation, c.ffnWithGlu, dffn);
    // proj_1 → dffnNorm [T, D]
    const dffnNorm = new Float32Array(T * D);
    linearBackward(dffn, act("ffn_norm", l), L.proj1, T, width, D, dffnNorm, p + "ffn.proj_1.weight");
    // FFN pre-norm: the residual stream before it gets this branch's gradient too
    rmsNormBackward(dffnNorm, act("resid_attn", l), weight(L.ffnNorm), T, D, eps, dx, grads.view(p + "ffn_norm.weight"));

    // out projection (the attention's residual branch): dattn [T, nq·hd]
    const dattn = new Float32Array(T * nq * hd);
    linearBackward(dx, act("attn", l), L.outProj, T, D, nq * hd, dattn, p + "attn.out_proj.weight");
    // attention over the rotated queries and keys → dq, dk [T, heads, hd] (then rotated back), dv
    const dq = new Float32Array(T * nq * hd), dk = new Float32Array(T * nkv * hd), dv = new Float32Array(T * nkv * hd);
    inArena(model, L.qkvProj.ptr, [dq, dk, dv, dattn, act("q_rope", l), act("k_rope", l), act("v", l)], ([pDq, pDk, pDv, pDout, pQ, pK, pV]) => {
      model.kernels.attentionBackward(pDq!, pDk!, pDv!, pDout!, pQ!, pK!, pV!, T, nq, nkv, hd);
      [dq, dk, dv].forEach((g, i) => g.set(model.arena.floats([pDq, pDk, pDv][i]!, g.length)));
    });
    ropeBackward(dq, cos, sin, T, nq, hd);
    ropeBackward(dk, cos, sin, T, nkv, hd);
    // QK-norm: its input is the projection's q and k, recomputed (one small product) instead of kept
    const attnNorm = act("attn_norm", l);
    let dqIn = dq, dkIn = dk;
    if (L.qNorm && L.kNorm) {
      const qkv = project(attnNorm, L.qkvProj, T, qkvWidth, D), qIn = new Float32Array(T * nq * hd), kIn = new Float32Array(T * nkv * hd);
      for (let t = 0; t < T; t++) {
        qIn.set(qkv.subarray(t * qkvWidth, t * qkvWidth + nq * hd), t * nq * hd);
        kIn.set(qkv.subarray(t * qkvWidth + nq * hd, t * qkvWidth + (nq + nkv) * hd), t * nkv * hd);
      }
      dqIn = new Float32Array(T * nq * hd);
      dkIn = new Float32Array(T * nkv * hd);
      rmsNormBackward(dq, qIn, weight(L.qNorm), T * nq, hd, eps, dqIn, grads.view(p + "attn.q_norm.weight"));
      rmsNormBackward(dk, kIn, weight(L.kNorm), T * nkv, hd, eps, dkIn, grads.view(p + "attn.k_norm.weight"));
    }
    // fused projection: dqkv [T, (nq + 2·nkv)·hd] = dq | dk | dv per row → dattnNorm [T, D]
    const dqkv = new Float32Array(T * qkvWidth), dattnNorm = new Float32Array(T * D);
    for (let t = 0; t < T; t++) {
      dqkv.set(dqIn.subarray(t * nq * hd, (t + 1) * nq * hd), t * qkvWidth);
      dqkv.set(dkIn.subarray(t * nkv * hd, (t + 1) * nkv * hd), t * qkvWidth + nq * hd);
      dqkv.set(dv.subarray(t * nkv * hd, (t + 1) * nkv * hd), t * qkvWidth + (nq + nkv) * hd);
    }
    linearBackward(dqkv, attnNorm, L.qkvProj, T, qkvWidth, D, dattnNorm, p + "attn.qkv_proj.weight");
    // attention pre-norm: its input is the layer's input (the previous layer's output, or the embeddings)
    rmsNormBackward(dattnNorm, l > 0 ? act("resid_ffn", l - 1) : act("embed"), weight(L.attnNorm), T, D, eps, dx, grads.view(p + "attn_norm.weight"));
  }
  // token embeddings: each position's gradient goes to its token's row
  if (!grads.at.has("transformer.token_embeddings.weight")) return loss;
  const demb = grads.view("transformer.token_embeddings.weight");
  ids.forEach((id, t) => {
    for (let i = 0; i < D; i++) demb[id * D + i]! += dx[t * D + i]!;
  });
  return loss;
}
