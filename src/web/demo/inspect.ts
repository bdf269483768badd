// The look-inside math, run in the engine worker from one traced forward pass (see src/trace.ts):
// attention weights recomputed from the rotated queries and keys, and the logit lens, which sends every
// layer's output through the model's own final norm and output head.
import { trace, type OpenELM, type Tokenizer } from "openelm";
import type { Inspection } from "./protocol.js";

/** Tokens the lens lists per layer. */
const LENS_TOP = 5;

/** A short readable label of one token: BOS and EOS by name, a token with no text of its own by id. */
function tokenLabel(tokenizer: Tokenizer, eos: number, id: number): string {
  if (id === tokenizer.bosId) return "<s>";
  if (id === eos) return "</s>";
  const text = tokenizer.decode([id]);
  return text === "" ? `#${id}` : text.replace(/\n/g, "\\n");
}

/**
 * Causal attention weights of query head `head` over `T` positions: softmax(q·k / sqrt(headDim)) for
 * keys at or before each query. Query head h reads kv head floor(h / (qHeads / kvHeads)), as in the kernels.
 */
export function attentionWeights(q: Float32Array, k: Float32Array, T: number, qHeads: number, kvHeads: number, headDim: number, head: number): number[][] {
  const kv = Math.floor(head / (qHeads / kvHeads)), scale = 1 / Math.sqrt(headDim);
  return Array.from({ length: T }, (_, i) => {
    const qi = (i * qHeads + head) * headDim;
    const scores = Array.from({ length: i + 1 }, (_, j) => {
      const kj = (j * kvHeads + kv) * headDim;
      let dot = 0;
      for (let d = 0; d < headDim; d++) dot += q[qi + d]! * k[kj + d]!;
      return dot * scale;
    });
    const max = Math.max(...scores), exps = scores.map((s) => Math.exp(s - max)), sum = exps.reduce((a, b) => a + b, 0);
    return [...exps.map((e) => e / sum), ...new Array<number>(T - i - 1).fill(0)];
  });
}

/**
 * Logits of each of `rows` residual vectors [rows, modelDim] through the final RMSNorm and the output
 * head, computed by the model's kernels in scratch space of its arena (so quantized heads work too).
 */
export function lensLogits(model: OpenELM, rows: Float32Array, count: number): Float32Array {
  const { arena, kernels, weights, config: c } = model, D = c.modelDim, V = c.vocabSize;
  const out = new Float32Array(count * V);
  // the kernels' workspace holds at most 64 rows (OpenELM's maxRows) at a time
  for (let r0 = 0; r0 < count; r0 += model.maxRows) {
    const n = Math.min(model.maxRows, count - r0);
    const x = arena.alloc(n * D * 4, "logit lens input"), logits = arena.alloc(n * V * 4, "logit lens logits");
    try {
      arena.write(x, rows.subarray(r0 * D, (r0 + n) * D));
      kernels.rmsNorm(x, x, weights.norm.ptr, n, D, c.normEps);
      kernels.matmul(logits, x, weights.lmHead.ptr, weights.lmHead.dtype, n, V, D);
      out.set(kernels.read(logits, n, V, V), r0 * V);
    } finally {
      arena.free(logits, n * V * 4);
      arena.free(x, n * D * 4);
    }
  }
  return out;
}

/** The `top` most likely tokens of one row of logits, with their softmax probabilities. */
function topTokens(logits: Float32Array, top: number): { id: number; p: number }[] {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const best: { id: number; v: number }[] = [];
  logits.forEach((v, id) => {
    if (best.length === top && v <= best[top - 1]!.v) return;
    const at = best.findIndex((b) => v > b.v);
    best.splice(at < 0 ? best.length : at, 0, { id, v });
    if (best.length > top) best.pop();
  });
  return best.map(({ id, v }) => ({ id, p: Math.exp(v - max) / sum }));
}

/** Trace `ids` once and derive the attention map of (`layer`, `head`) and the logit lens at the last position. */
export function inspect(model: OpenELM, tokenizer: Tokenizer, ids: number[], layer: number, head: number): Inspection {
  const c = model.config, T = ids.length, D = c.modelDim;
  if (!(Number.isInteger(layer) && layer >= 0 && layer < c.numLayers)) throw new RangeError(`layer ${layer} is not one of the model's layers 0 to ${c.numLayers - 1}`);
  const qHeads = c.numQueryHeads[layer]!, kvHeads = c.numKvHeads[layer]!;
  if (!(Number.isInteger(head) && head >= 0 && head < qHeads)) throw new RangeError(`head ${head} is not one of layer ${layer}'s query heads 0 to ${qHeads - 1}`);
  const wanted = new Set([`layers.${layer}.q_rope`, `layers.${layer}.k_rope`, ...c.numQueryHeads.map((_, l) => `layers.${l}.resid_ffn`)]);
  const taps = trace(model, ids, (name) => wanted.has(name));
  // the last position's output of every layer, one row each
  const last = new Float32Array(c.numLayers * D);
  for (let l = 0; l < c.numLayers; l++) last.set(taps[`layers.${l}.resid_ffn`]!.data.subarray((T - 1) * D, T * D), l * D);
  const logits = lensLogits(model, last, c.numLayers), V = c.vocabSize;
  return {
    layer, head, kvHead: Math.floor(head / (qHeads / kvHeads)),
    tokens: ids.map((id) => tokenLabel(tokenizer, c.eosTokenId, id)),
    attention: attentionWeights(taps[`layers.${layer}.q_rope`]!.data, taps[`layers.${layer}.k_rope`]!.data, T, qHeads, kvHeads, c.headDim, head),
    lens: c.numQueryHeads.map((_, l) => topTokens(logits.subarray(l * V, (l + 1) * V), LENS_TOP).map(({ id, p }) => ({ id, p, token: tokenLabel(tokenizer, c.eosTokenId, id) }))),
  };
}
