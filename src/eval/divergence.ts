// How far a model (quantized, say) is from a base model (the same weights in f32), the way llama.cpp's
// `llama-perplexity --kl-divergence` reports it: over the same windows of the same text, the mean
// KL divergence of the two next-token distributions, how often they agree on the most likely token,
// and both perplexities.
import type { KVCache, OpenELM } from "../model.js";
import { logNormalizer } from "./loglikelihood.js";
import { StridedWindows, type WindowOptions } from "./perplexity.js";

/** How far a model's next-token distributions are from a base model's (llama-perplexity --kl-divergence). */
export interface DivergenceResult {
  tokens: number;
  ppl: number; // of the model
  basePpl: number; // of the base model
  lnPplRatio: number; // ln(ppl / basePpl) = mean difference of the NLLs
  kl: { mean: number; stderr: number; median: number; p99: number; max: number }; // nats per token
  sameTop: { fraction: number; stderr: number }; // positions whose argmax agrees
}

/** KL(P‖Q) of the distributions softmax(p) and softmax(q), given their log normalizers. */
export function klDivergence(p: Float32Array, pLogZ: number, q: Float32Array, qLogZ: number): number {
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const lp = p[i]! - pLogZ;
    kl += Math.exp(lp) * (lp - (q[i]! - qLogZ));
  }
  return Math.max(0, kl); // rounding may leave a tiny negative sum for identical rows
}

/** The KL divergence and top-token agreement of a model against a base model, over strided windows of a text. */
export class Divergence extends StridedWindows {
  private readonly caches: [KVCache, KVCache];
  private readonly kls: number[] = [];
  private nll = 0;
  private baseNll = 0;
  private same = 0;

  constructor(private readonly model: OpenELM, private readonly base: OpenELM, opts: WindowOptions = {}) {
    super(model, { context: Math.min(opts.context ?? model.config.maxContextLength, base.contextLength), stride: opts.stride });
    if (base.config.vocabSize !== model.config.vocabSize) throw new RangeError(`the base model has ${base.config.vocabSize} tokens, the model ${model.config.vocabSize}: they must share a vocabulary`);
    this.caches = [model.newCache(this.context), base.newCache(this.context)];
  }

  get tokens(): number {
    return this.kls.length;
  }

  /** Score what is left, give back the KV caches and report. */
  finish(): DivergenceResult {
    this.flush();
    this.model.releaseCache(this.caches[0]);
    this.base.releaseCache(this.caches[1]);
    const n = this.kls.length;
    if (n === 0) throw new RangeError("the text has no token to score after BOS");
    const mean = this.kls.reduce((a, b) => a + b, 0) / n;
    const variance = n > 1 ? this.kls.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
    const sorted = Float64Array.from(this.kls).sort(), at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))]!;
    const same = this.same / n;
    return {
      tokens: n,
      ppl: Math.exp(this.nll / n),
      basePpl: Math.exp(this.baseNll / n),
      lnPplRatio: (this.nll - this.baseNll) / n,
      kl: { mean, stderr: Math.sqrt(variance / n), median: at(0.5), p99: at(0.99), max: sorted[n - 1]! },
      sameTop: { fraction: same, stderr: Math.sqrt((same * (1 - same)) / n) },
    };
  }

  protected score(ids: number[], first: number): void {
    const V = this.model.config.vocabSize;
    for (const c of this.caches) c.length = 0;
    const logits = this.model.forward(this.caches[0], ids, { allPositions: true });
    const baseLogits = this.base.forward(this.caches[1], ids, { allPositions: true });
    for (let p = first; p < ids.length; p++) {
      const q = logits.subarray((p - 1) * V, p * V), b = baseLogits.subarray((p - 1) * V, p * V);
      const nq = logNormalizer(q), nb = logNormalizer(b);
      this.kls.push(klDivergence(b, nb.logZ, q, nq.logZ));
      this.nll -= q[ids[p]!]! - nq.logZ;
      this.baseNll -= b[ids[p]!]! - nb.logZ;
      if (nq.arg === nb.arg) this.same++;
    }
  }
}
