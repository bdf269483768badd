// Continuous batching. A fixed number of slots, each a sequence with its own KV cache and sampler. Every
// step runs ONE forwardBatch over all busy slots: one token for each slot that is decoding, and pieces of
// the prompts of slots that are prefilling (shortest first, within a budget of rows), so the weights are
// read once per step for everyone and a long prompt is prefilled across steps while the others keep
// decoding. Between steps the event loop runs: new requests join at the next step, cancelled ones leave.
import { ContextError, OpenELM, type KVCache } from "../model.js";
import { Sampler, type SamplingOptions } from "../generation/sampler.js";
import { TextStream, type Tokenizer } from "../tokenizer.js";
import { nextTask, stopSplit } from "../generation/stream.js";

/** A token and its log probability under the model (log-softmax of its logits). */
export interface TokenLogprob {
  id: number;
  logprob: number;
}

/** One generated token as the scheduler hands it out. */
export interface TokenEvent {
  id: number;
  /** The end-of-sequence token: not part of the text (its event may still carry text held back until the end). */
  eos: boolean;
  /** Text that may be shown now (never inside a UTF-8 character or a possible stop string). */
  text: string;
  /** When the job asked for log probabilities: this token's, and the most likely tokens', most likely first. */
  logprob?: number;
  top?: TokenLogprob[];
}

/** One request for the scheduler: a prompt's ids and how to continue it. */
export interface Job {
  ids: number[];
  /** Most new tokens; the context caps it in any case. */
  maxTokens?: number;
  sampling: SamplingOptions;
  /** Stop before the first of these strings. */
  stop: string[];
  /** Report log probabilities, with this many top alternatives per token (undefined: none). */
  logprobs?: number;
  /** Cancels the job: its slot is freed at the next step. */
  signal?: AbortSignal;
  /** Receives each token as it is sampled. */
  onToken: (token: TokenEvent) => void;
}

/** How a job ended: end-of-sequence or a stop string ("stop"), its token limit or the context ("length"), or its signal ("abort"). */
export interface JobResult {
  finishReason: "stop" | "length" | "abort";
  promptTokens: number;
  completionTokens: number;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  /** Sequences decoded together (default 4); at most the model's maxRows. */
  parallel?: number;
  /** Requests that may wait for a slot (default 64); beyond that, submit throws QueueFullError. */
  queue?: number;
  /**
   * Prompt tokens prefilled per step, over all prefilling slots (default 16: on a 270M model with 2 threads,
   * 16 rows run as many rows per second as 64 do, in a quarter of the time the others wait).
   */
  prefillChunk?: number;
}

/** Thrown by submit when every slot is busy and the queue is full. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

/** Figures for /health: slots busy, jobs waiting, steps run and tokens generated since the start. */
export interface SchedulerStats {
  slots: number;
  busy: number;
  queued: number;
  steps: number;
  tokens: number;
}

interface Slot {
  job: Job;
  cache: KVCache;
  sampler: Sampler;
  /** Prompt tokens already run through the model. */
  fed: number;
  context: number[];
  generated: number[];
  limit: number;
  text: TextStream;
  pending: string;
  done: (r: JobResult) => void;
  fail: (e: unknown) => void;
}

interface Waiting {
  job: Job;
  done: (r: JobResult) => void;
  fail: (e: unknown) => void;
}

/** Log-softmax of `logits` at `id`, and the `k` most likely tokens (ties: lower id first). */
export function logprobs(logits: Float32Array, id: number, k: number): { logprob: number; top: TokenLogprob[] } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  // k is at most 20: keep a small sorted list rather than sorting the vocabulary
  const top: number[] = [];
  for (let i = 0; i < logits.length && k > 0; i++) {
    if (top.length === k && logits[i]! <= logits[top[k - 1]!]!) continue;
    let at = top.length;
    while (at > 0 && logits[i]! > logits[top[at - 1]!]!) at--;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
  }
  return { logprob: logits[id]! - lse, top: top.map((t) => ({ id: t, logprob: logits[t]! - lse })) };
}

/** Runs jobs in slots with continuous batching (see the top of this file). */
export class Scheduler {
  /** Positions one sequence may take: the model's cap, or without one its trained context. */
  readonly contextLength: number;
  /** Slots: sequences decoded together. */
  readonly parallel: number;
  private readonly queueLimit: number;
  private readonly prefillChunk: number;
  private readonly slots: Slot[] = [];
  private readonly waiting: Waiting[] = [];
  private readonly caches: KVCache[] = [];
  private running = false;
  private steps = 0;
  private tokens = 0;

  constructor(readonly model: OpenELM, readonly tokenizer: Tokenizer, opts: SchedulerOptions = {}) {
    this.contextLength = OpenELM.plannedPositions(model.config, model.contextLength);
    this.parallel = opts.parallel ?? 4;
    this.queueLimit = opts.queue ?? 64;
    this.prefillChunk = opts.prefillChunk ?? Math.min(16, model.maxRows);
    const check = (name: string, v: number, min: number, max: number) => {
      if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${v}`);
    };
    check("parallel", this.parallel, 1, model.maxRows);
    check("queue", this.queueLimit, 0, 1 << 20);
    check("prefillChunk", this.prefillChunk, 1, model.maxRows);
  }

  /** Current figures (for /health). */
  get stats(): SchedulerStats {
    return { slots: this.parallel, busy: this.slots.length, queued: this.waiting.length, steps: this.steps, tokens: this.tokens };
  }

  /**
   * Queue a job; it resolves when the job ends. Throws at once (before anything runs) a ContextError for a
   * prompt the context cannot hold, a RangeError for ids outside the vocabulary, and QueueFullError.
   */
  submit(job: Job): Promise<JobResult> {
    const V = this.model.config.vocabSize;
    if (job.ids.length === 0) throw new RangeError("the prompt has no tokens");
    const badId = job.ids.find((id) => !Number.isSafeInteger(id) || id < 0 || id >= V);
    if (badId !== undefined) throw new RangeError(`token id ${badId} is not in the vocabulary (0 to ${V - 1})`);
    if (job.ids.length > this.contextLength) throw new ContextError(`the prompt has ${job.ids.length} tokens, but the context holds ${this.contextLength}`);
    new Sampler(job.sampling); // its options are checked now, not in the middle of a step
    if (this.slots.length + this.waiting.length >= this.parallel + this.queueLimit)
      throw new QueueFullError(`all ${this.parallel} slots are busy and ${this.waiting.length} requests are waiting (--queue ${this.queueLimit})`);
    return new Promise((done, fail) => {
      this.waiting.push({ job, done, fail });
      if (!this.running) {
        this.running = true;
        void this.loop();
      }
    });
  }

  /** Give the slots' caches back to the model (after the last job). */
  close(): void {
    for (const cache of this.caches.splice(0)) this.model.releaseCache(cache);
  }

  private async loop(): Promise<void> {
    try {
      // requests that arrive together start together
      await nextTask();
      while (this.admit()) {
        this.step();
        await nextTask();
      }
    } finally {
      this.running = false;
    }
  }

  /** Drop cancelled jobs, move waiting ones into free slots; whether any slot is busy. */
  private admit(): boolean {
    for (const s of this.slots.slice()) if (s.job.signal?.aborted) this.finish(s, "abort");
    for (const w of this.waiting.filter((w) => w.job.signal?.aborted)) {
      this.waiting.splice(this.waiting.indexOf(w), 1);
      w.done({ finishReason: "abort", promptTokens: w.job.ids.length, completionTokens: 0 });
    }
    while (this.slots.length < this.parallel && this.waiting.length > 0) {
      const { job, done, fail } = this.waiting.shift()!;
      const cache = this.caches.pop() ?? this.model.newCache(this.contextLength);
      cache.length = 0;
      this.slots.push({
        job, cache, sampler: new Sampler(job.sampling), fed: 0, context: job.ids.slice(), generated: [],
        limit: Math.min(job.maxTokens ?? Infinity, this.contextLength - job.ids.length + 1),
        text: new TextStream(this.tokenizer, job.ids[job.ids.length - 1]), pending: "", done, fail,
      });
    }
    return this.slots.length > 0;
  }

  /** One forward pass for every busy slot, then a token for each slot whose prompt is all in. */
  private step(): void {
    const batch: Slot[] = [], pieces: number[][] = [];
    for (const s of this.slots) {
      if (s.fed < s.job.ids.length) continue;
      batch.push(s);
      pieces.push([s.generated[s.generated.length - 1]!]);
    }
    // prompts share what rows are left, shortest remainder first so a short request is not kept waiting
    let budget = Math.min(this.prefillChunk, this.model.maxRows - batch.length);
    const prefilling = this.slots.filter((s) => s.fed < s.job.ids.length).sort((a, b) => a.job.ids.length - a.fed - (b.job.ids.length - b.fed));
    for (const s of prefilling) {
      if (budget === 0) break;
      const piece = s.job.ids.slice(s.fed, s.fed + budget);
      budget -= piece.length;
      batch.push(s);
      pieces.push(piece);
    }
    let logits: Float32Array[];
    try {
      logits = this.model.forwardBatch(batch.map((s) => s.cache), pieces);
    } catch (e) {
      for (const s of batch) this.release(s).fail(e);
      return;
    }
    this.steps++;
    batch.forEach((s, i) => {
      if (s.fed < s.job.ids.length) {
        s.fed += pieces[i]!.length;
        if (s.fed < s.job.ids.length) return; // more of the prompt to come: these logits are not needed
      }
      try {
        this.emit(s, logits[i]!);
      } catch (e) {
        // a receiver that throws ends its own job, not the others'
        if (this.slots.includes(s)) this.release(s).fail(e);
      }
    });
  }

  /** Sample the next token of a slot, hand it out, and end the job if it is done. */
  private emit(s: Slot, logits: Float32Array): void {
    const id = s.sampler.sample(logits, s.context, s.generated), eos = id === this.model.config.eosTokenId;
    s.context.push(id);
    s.generated.push(id);
    this.tokens++;
    const last = eos ? "stop" : s.generated.length >= s.limit ? "length" : undefined;
    s.pending += (eos ? "" : s.text.push(id)) + (last ? s.text.flush() : "");
    const { emit, stopped } = stopSplit(s.pending, s.job.stop, last !== undefined);
    const text = s.pending.slice(0, emit);
    s.pending = s.pending.slice(emit);
    s.job.onToken({ id, eos, text, ...(s.job.logprobs !== undefined ? logprobs(logits, id, s.job.logprobs) : {}) });
    if (stopped || last) this.finish(s, stopped ? "stop" : last!);
  }

  private finish(s: Slot, finishReason: JobResult["finishReason"]): void {
    this.release(s).done({ finishReason, promptTokens: s.job.ids.length, completionTokens: s.generated.length });
  }

  /** Free a slot; its cache waits for the next job. */
  private release(s: Slot): Slot {
    this.slots.splice(this.slots.indexOf(s), 1);
    this.caches.push(s.cache);
    return s;
  }
}
