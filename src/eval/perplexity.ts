// Perplexity of a text with a sliding window: windows of `context` tokens start every `stride` tokens,
// and each window scores only the tokens no earlier window scored, with everything before them in the
// window as context (Hugging Face's strided perplexity). A window's first token has nothing before it,
// so it is not scored (with stride = context that loses one token per window, as Hugging Face's does);
// nor is the text's first token, BOS. Tokens arrive in pieces, so a text of any length is scored in
// memory bounded by the window.
import type { KVCache, OpenELM } from "../model.js";
import { scoreToken } from "./loglikelihood.js";

export interface PerplexityResult {
  tokens: number; // tokens scored
  nll: number; // their summed negative log-likelihood (nats)
  ppl: number; // exp(nll / tokens)
}

export class StridedPerplexity {
  readonly context: number;
  readonly stride: number;
  private readonly cache: KVCache;
  private buffer: number[] = []; // tokens from position `start` on
  private start = 0;
  private begin = 0; // the next window's first position
  private scored = 1; // positions before this are scored; 0 (BOS) is context only
  private nll = 0;
  private count = 0;

  /** `context`: the window (default: the trained context); `stride`: its step (default: the window). */
  constructor(private readonly model: OpenELM, opts: { context?: number; stride?: number } = {}) {
    this.context = Math.min(opts.context ?? model.config.maxContextLength, model.contextLength);
    this.stride = opts.stride ?? this.context;
    if (!(Number.isInteger(this.context) && this.context >= 2)) throw new RangeError(`the window must hold at least 2 tokens (one to predict from, one to score), got ${this.context}`);
    if (!(Number.isInteger(this.stride) && this.stride > 0 && this.stride <= this.context)) throw new RangeError(`stride ${this.stride} must be between 1 and the window ${this.context}`);
    this.cache = model.newCache(this.context);
  }

  /** Tokens scored so far. */
  get tokens(): number {
    return this.count;
  }

  /** Add the text's next tokens (the first piece starts with BOS); every window now complete is scored. */
  push(ids: number[]): void {
    for (const id of ids) this.buffer.push(id);
    while (this.start + this.buffer.length >= this.begin + this.context) this.window(this.begin + this.context);
  }

  /** Score the windows left and give the result. */
  finish(): PerplexityResult {
    const end = this.start + this.buffer.length;
    while (this.scored < end) this.window(Math.min(this.begin + this.context, end));
    this.model.releaseCache(this.cache);
    if (this.count === 0) throw new RangeError("the text has no token to score after BOS");
    return { tokens: this.count, nll: this.nll, ppl: Math.exp(this.nll / this.count) };
  }

  /** Run the window [begin, end) and score its positions not scored before, each predicted by the row before it. */
  private window(end: number): void {
    const V = this.model.config.vocabSize, from = this.begin - this.start;
    this.cache.length = 0;
    const logits = this.model.forward(this.cache, this.buffer.slice(from, from + end - this.begin), { allPositions: true });
    for (let p = Math.max(this.scored, this.begin + 1); p < end; p++, this.count++)
      this.nll -= scoreToken(logits.subarray((p - 1 - this.begin) * V, (p - this.begin) * V), this.buffer[p - this.start]!).logprob;
    this.scored = end;
    this.begin += this.stride;
    // tokens before the next window are no longer needed
    const drop = Math.min(this.begin - this.start, this.buffer.length);
    this.buffer = this.buffer.slice(drop);
    this.start += drop;
  }
}

/** Perplexity of a whole token list (see StridedPerplexity). */
export function perplexity(model: OpenELM, ids: number[], opts: { context?: number; stride?: number } = {}): PerplexityResult {
  const p = new StridedPerplexity(model, opts);
  p.push(ids);
  return p.finish();
}
