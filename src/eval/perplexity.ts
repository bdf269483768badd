// Perplexity of a text with a sliding window: windows of `context` tokens start every `stride` tokens,
// and each window scores only the tokens no earlier window scored, with everything before them in the
// window as context (Hugging Face's strided perplexity). A window's first token has nothing before it,
// so it is not scored (with stride = context that loses one token per window, as Hugging Face's does);
// nor is the text's first token, BOS.
import type { OpenELM } from "../model.js";
import { scoreToken } from "./loglikelihood.js";

export interface PerplexityResult {
  tokens: number; // tokens scored
  nll: number; // their summed negative log-likelihood (nats)
  ppl: number; // exp(nll / tokens)
}

export function perplexity(model: OpenELM, ids: number[], opts: { context?: number; stride?: number; onProgress?: (done: number, total: number) => void } = {}): PerplexityResult {
  const context = Math.min(opts.context ?? model.contextLength, model.contextLength);
  const stride = opts.stride ?? context;
  if (!(stride > 0 && stride <= context)) throw new RangeError(`stride ${stride} must be between 1 and the window ${context}`);
  if (ids.length < 2) throw new RangeError("the text has no token to score after BOS");
  const V = model.config.vocabSize, cache = model.newCache(context);
  let nll = 0, count = 0, scored = 1; // positions before `scored` are done; 0 (BOS) is context only
  try {
    for (let begin = 0; scored < ids.length; begin += stride) {
      const end = Math.min(begin + context, ids.length);
      cache.length = 0;
      const logits = model.forward(cache, ids.slice(begin, end), { allPositions: true });
      // score the new positions, each predicted by the row before it
      for (let p = Math.max(scored, begin + 1); p < end; p++, count++)
        nll -= scoreToken(logits.subarray((p - 1 - begin) * V, (p - begin) * V), ids[p]!).logprob;
      scored = end;
      opts.onProgress?.(scored, ids.length);
    }
  } finally {
    model.releaseCache(cache);
  }
  return { tokens: count, nll, ppl: Math.exp(nll / count) };
}
