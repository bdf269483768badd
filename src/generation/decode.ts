// Autoregressive decoding: prefill the prompt as one matrix pass, then one token at a time with the KV
// cache; or several at a time, when a guess of the next tokens (prompt lookup, or a smaller draft model)
// is checked by the model in one pass and the agreeing prefix kept.
import type { KVCache, OpenELM } from "../model.js";
import { Sampler, argmax, type SamplingOptions } from "./sampler.js";

/** Options for `decode`: sampling, how many tokens, and faster decoding with prompt lookup or a draft model. */
export interface DecodeOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Keep going after the end-of-sequence token. */
  ignoreEos?: boolean;
  /** Prompt-lookup decoding: guess up to this many tokens by finding the last n-gram earlier in the context (Hugging Face `prompt_lookup_num_tokens`). */
  promptLookup?: number;
  /** Longest n-gram prompt lookup matches (Hugging Face `max_matching_ngram_size`, default 2). */
  maxNgram?: number;
  /**
   * Speculative decoding: a smaller OpenELM with the same vocabulary guesses tokens, `draftTokens` (default 5)
   * at first, then as Hugging Face's assisted generation schedules it: two more after a round it got
   * all right, one fewer (at least one) otherwise.
   */
  draft?: OpenELM;
  draftTokens?: number;
}

/** How many guessed tokens were checked and how many kept (prompt lookup and speculative decoding). */
export interface SpeculationStats {
  proposed: number;
  accepted: number;
  passes: number; // forward passes of the model after the prompt
}

/**
 * The tokens of prompt lookup (Hugging Face's PromptLookupCandidateGenerator): the continuation of the
 * first earlier occurrence of the last n tokens, for n from maxNgram down to 1.
 */
export function promptLookup(context: number[], count: number, maxNgram = 2): number[] {
  for (let n = Math.min(maxNgram, context.length - 1); n >= 1; n--) {
    const tail = context.slice(-n);
    for (let i = 0; i + n < context.length; i++) {
      if (!tail.every((t, j) => context[i + j] === t)) continue;
      const guess = context.slice(i + n, Math.min(i + n + count, context.length));
      if (guess.length > 0) return guess;
    }
  }
  return [];
}

/** Guesses from a draft model: its greedy continuation of `context`, its cache kept in step. */
class DraftModel {
  private readonly cache: KVCache;
  private context: number[] = [];

  constructor(private readonly model: OpenELM, capacity: number) {
    this.cache = model.newCache(Math.min(capacity, model.contextLength));
  }

  propose(context: number[], count: number): number[] {
    // drop what the draft cached beyond the agreed context, then feed what it has not seen
    let common = 0;
    while (common < this.context.length && common < context.length - 1 && this.context[common] === context[common]) common++;
    this.cache.length = common;
    this.context = context.slice(0, common);
    const room = this.cache.capacity - context.length;
    const guess: number[] = [];
    if (room <= 0) return guess;
    let logits = this.model.forward(this.cache, context.slice(common));
    this.context = context.slice();
    for (let i = 0; i < Math.min(count, room); i++) {
      const best = argmax(logits);
      guess.push(best);
      if (i + 1 < Math.min(count, room)) {
        logits = this.model.forward(this.cache, [best]);
        this.context.push(best);
      }
    }
    return guess;
  }
}

/**
 * Yields new token ids after `promptIds` until maxNewTokens, EOS (yielded, then stops) or the end of the
 * cache. `cache` may already hold the keys and values of a prefix of promptIds (a conversation's earlier
 * turns); the rest is prefilled. When it returns, the cache holds every id but the last one yielded. With a guess of the
 * next tokens, the model checks all of them in one pass; each guessed token is kept while it equals the
 * token the sampler picks from the model's own logits there, so the output is exactly what plain decoding
 * gives: greedy at temperature 0, and the same distribution when sampling.
 */
export function* decode(model: OpenELM, cache: KVCache, promptIds: number[], opts: DecodeOptions, stats?: SpeculationStats): Generator<number> {
  const sampler = new Sampler(opts), eos = model.config.eosTokenId;
  if (opts.draft && opts.draft.config.vocabSize !== model.config.vocabSize)
    throw new RangeError(`the draft model's vocabulary (${opts.draft.config.vocabSize}) differs from the model's (${model.config.vocabSize})`);
  const draft = opts.draft ? new DraftModel(opts.draft, cache.capacity) : undefined;
  const context = promptIds.slice(), generated: number[] = [];
  let draftTokens = opts.draftTokens ?? 5;
  const s = stats ?? { proposed: 0, accepted: 0, passes: 0 };
  if (promptIds.length === 0) throw new RangeError("decode: the prompt has no tokens");
  if (opts.maxNewTokens <= 0) return;
  cache.length = Math.min(cache.length, promptIds.length - 1); // the last prompt token gives the first logits
  let logits = model.forward(cache, promptIds.slice(cache.length));
  let next = sampler.sample(logits, context, generated);
  for (;;) {
    // emit the chosen token; stop at the limit, EOS, or when the cache is full
    context.push(next);
    generated.push(next);
    yield next;
    if (generated.length >= opts.maxNewTokens || (next === eos && !opts.ignoreEos) || cache.length >= cache.capacity) return;
    // guess what follows, within the token limit and the cache
    const room = Math.min(opts.maxNewTokens - generated.length, cache.capacity - cache.length) - 1;
    const guess = room <= 0 ? [] : opts.promptLookup ? promptLookup(context, Math.min(opts.promptLookup, room), opts.maxNgram)
      : draft ? draft.propose(context, Math.min(draftTokens, room)) : [];
    const start = cache.length;
    logits = model.forward(cache, [next, ...guess], { allPositions: guess.length > 0 });
    s.passes++;
    s.proposed += guess.length;
    const V = model.config.vocabSize;
    let i = 0;
    for (; ; i++) {
      next = sampler.sample(logits.subarray(i * V, (i + 1) * V), context, generated);
      if (i === guess.length || next !== guess[i]) break;
      // the model agrees with the guess: keep it
      s.accepted++;
      context.push(next);
      generated.push(next);
      if (generated.length >= opts.maxNewTokens || (next === eos && !opts.ignoreEos)) {
        cache.length = start + 1 + i; // every id but this last one
        yield next;
        return;
      }
      yield next;
    }
    cache.length = start + 1 + i; // forget the keys and values of guesses that were not kept
    if (draft && guess.length) draftTokens = i === guess.length ? draftTokens + 2 : Math.max(1, draftTokens - 1);
  }
}
