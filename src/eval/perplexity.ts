// Perplexity of a text with a sliding window: windows of `context` tokens start every `stride` tokens,
// and each window scores only the tokens no earlier window scored, with everything before them in the
// window as context (Hugging Face's strided perplexity). A window's first token has nothing before it,
// so it is not scored (with stride = context that loses one token per window, as Hugging Face's does);
// nor is the text's first token, BOS. Tokens arrive in pieces, so a text of any length is scored in
// memory bounded by the window.
import type { KVCache, OpenELM } from "../model.js";
import { scoreToken } from "./loglikelihood.js";

/** Perplexity over a text, and the counts it comes from. */
export interface PerplexityResult {
  tokens: number; // tokens scored
  nll: number; // their summed negative log-likelihood (nats)
  ppl: number; // exp(nll / tokens)
}

/** How a long text is cut into windows. */
export interface WindowOptions {
  /** Tokens per window (default: the trained context). */
  context?: number;
  /** Tokens between window starts (default: the window). */
  stride?: number;
}

/** The windows over a token stream; a subclass scores each window's new positions. */
export abstract class StridedWindows {
  readonly context: number;
  readonly stride: number;
  private buffer: number[] = []; // tokens from position `start` on
  private start = 0;
  private begin = 0; // the next window's first position
  private scored = 1; // positions before this are scored; 0 (BOS) is context only

  constructor(model: OpenELM, opts: WindowOptions) {
    this.context = Math.min(opts.context ?? model.config.maxContextLength, model.contextLength);
    this.stride = opts.stride ?? this.context;
    if (!(Number.isInteger(this.context) && this.context >= 2)) throw new RangeError(`the window must hold at least 2 tokens (one to predict from, one to score), got ${this.context}`);
    if (!(Number.isInteger(this.stride) && this.stride > 0 && this.stride <= this.context)) throw new RangeError(`stride ${this.stride} must be between 1 and the window ${this.context}`);
  }

  /** Add the text's next tokens (the first piece starts with BOS); every window now complete is scored. */
  push(ids: number[]): void {
    for (const id of ids) this.buffer.push(id);
    while (this.start + this.buffer.length >= this.begin + this.context) this.next(this.begin + this.context);
  }

  /** Score the windows left. */
  protected flush(): void {
    const end = this.start + this.buffer.length;
    while (this.scored < end) this.next(Math.min(this.begin + this.context, end));
  }

  /**
   * Score one window: `ids` are its tokens, and positions `first` to ids.length - 1 are to be scored, each
   * predicted by the logits of the position before it.
   */
  protected abstract score(ids: number[], first: number): void;

  /** Run the window [begin, end) and score its positions not scored before. */
  private next(end: number): void {
    const from = this.begin - this.start;
    this.score(this.buffer.slice(from, from + end - this.begin), Math.max(this.scored, this.begin + 1) - this.begin);
    this.scored = end;
    this.begin += this.stride;
    // tokens before the next window are no longer needed
    const drop = Math.min(this.begin - this.start, this.buffer.length);
    this.buffer = this.buffer.slice(drop);
    this.start += drop;
  }
}

/** Perplexity fed a text's tokens in pieces, scored in strided windows, in memory bounded by the window. */
export class StridedPerplexity extends StridedWindows {
  private readonly cache: KVCache;
  private nll = 0;
  private count = 0;

  constructor(private readonly model: OpenELM, opts: WindowOptions = {}) {
    super(model, opts);
    this.cache = model.newCache(this.context);
  }

  /** Tokens scored so far. */
  get tokens(): number {
    return this.count;
  }

  /** Score the windows left and give the result. */
  finish(): PerplexityResult {
    this.flush();
    this.model.releaseCache(this.cache);
    if (this.count === 0) throw new RangeError("the text has no token to score after BOS");
    return { tokens: this.count, nll: this.nll, ppl: Math.exp(this.nll / this.count) };
  }

  protected score(ids: number[], first: number): void {
    const V = this.model.config.vocabSize;
    this.cache.length = 0;
    const logits = this.model.forward(this.cache, ids, { allPositions: true });
    for (let p = first; p < ids.length; p++, this.count++) this.nll -= scoreToken(logits.subarray((p - 1) * V, p * V), ids[p]!).logprob;
  }
}

/** Perplexity of a whole token list (see StridedPerplexity). */
export function perplexity(model: OpenELM, ids: number[], opts: WindowOptions = {}): PerplexityResult {
  const p = new StridedPerplexity(model, opts);
  p.push(ids);
  return p.finish();
}
