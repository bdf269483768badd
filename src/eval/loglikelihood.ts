// Log-likelihoods with lm-evaluation-harness semantics (HFLM, add_bos_token=True): how context and
// continuation are tokenized and joined, which positions are scored, and whether greedy decoding would
// have produced the continuation. Several continuations of one context share its KV cache.
import type { KVCache, OpenELM } from "../model.js";
import type { Tokenizer } from "../tokenizer.js";

/** The log-likelihood of one continuation, as lm-evaluation-harness scores it. */
export interface Score {
  /** Sum of log-probabilities of the continuation's tokens. */
  logprob: number;
  /** Per continuation token. */
  tokenLogprobs: number[];
  /** Would greedy decoding produce exactly these tokens? */
  isGreedy: boolean;
  tokens: number;
}

/** log Σ exp(row) (so that log-softmax is row - logZ), and the row's argmax. */
export function logNormalizer(row: Float32Array): { logZ: number; arg: number } {
  let max = -Infinity, arg = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) (max = row[i]!), (arg = i);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return { logZ: max + Math.log(sum), arg };
}

/** log-softmax of one row of logits at index `id`, and whether `id` is the row's argmax. */
export function scoreToken(row: Float32Array, id: number): { logprob: number; best: boolean } {
  const { logZ, arg } = logNormalizer(row);
  return { logprob: row[id]! - logZ, best: arg === id };
}

/**
 * The harness's _encode_pair: trailing spaces of the context move to the continuation; the continuation's
 * tokens are those of tokenize(context + continuation) after the first len(tokenize(context)) ones.
 * Both encodings start with BOS. An empty context is BOS alone.
 */
export function encodePair(tokenizer: Tokenizer, context: string, continuation: string): { context: number[]; continuation: number[] } {
  if (context === "") return { context: [tokenizer.bosId], continuation: tokenizer.encode(continuation, false) };
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(-spaces) + continuation;
    context = context.slice(0, -spaces);
  }
  const whole = tokenizer.encode(context + continuation), ctx = tokenizer.encode(context);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

/** Scores continuations of a context as lm-evaluation-harness's `loglikelihood` does, running a shared context once. */
export class Scorer {
  private readonly cache: KVCache;

  constructor(readonly model: OpenELM, readonly tokenizer: Tokenizer) {
    this.cache = model.newCache();
  }

  /** Log-likelihood of each continuation token id list after the context ids; the context runs once. */
  scoreIds(context: number[], continuations: number[][]): Score[] {
    const V = this.model.config.vocabSize, cap = this.cache.capacity;
    if (context.length === 0) throw new RangeError("scoring needs at least one context token (BOS)");
    for (const c of continuations) {
      if (c.length === 0) throw new RangeError("a continuation has no tokens");
      if (context.length + c.length - 1 > cap) throw new RangeError(`context ${context.length} + continuation ${c.length} tokens exceed the context length ${cap}`);
    }
    // the context's keys and values, all but its last token, computed once
    this.cache.length = 0;
    if (context.length > 1) this.model.forward(this.cache, context.slice(0, -1));
    const shared = this.cache.length;
    return continuations.map((cont) => {
      this.cache.length = shared;
      // input: last context token + all continuation tokens but the last; row i predicts cont[i]
      const logits = this.model.forward(this.cache, [context[context.length - 1]!, ...cont.slice(0, -1)], { allPositions: true });
      const per = cont.map((id, i) => scoreToken(logits.subarray(i * V, (i + 1) * V), id));
      return { logprob: per.reduce((a, p) => a + p.logprob, 0), tokenLogprobs: per.map((p) => p.logprob), isGreedy: per.every((p) => p.best), tokens: cont.length };
    });
  }

  /** The harness's loglikelihood(context, continuation) for several continuations of one context. */
  score(context: string, continuations: string[]): Score[] {
    const V = this.model.config.vocabSize;
    const pairs = continuations.map((c) => encodePair(this.tokenizer, context, c));
    for (const p of pairs) this.tokenizer.checkIds([...p.context, ...p.continuation], V);
    // the harness feeds each pair's own context encoding; it is the same for every continuation
    return this.scoreIds(pairs[0]!.context, pairs.map((p) => p.continuation));
  }

  /** Give back the KV cache. */
  close(): void {
    this.model.releaseCache(this.cache);
  }
}
