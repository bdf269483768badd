// The text API: streaming generation with stop strings, cancellation and timings; conversations that keep
// their KV cache from turn to turn; several prompts decoded together.
import { ContextError, OpenELM, type KVCache } from "../model.js";
import { TextStream, type Tokenizer } from "../tokenizer.js";
import { renderChat, type ChatMessage } from "./chat.js";
import { decode, type DecodeOptions, type SpeculationStats } from "./decode.js";
import { Sampler } from "./sampler.js";

/** Options for `TextGenerator.generate`: decoding options plus stop strings and an abort signal. */
export interface GenerateOptions extends Partial<DecodeOptions> {
  /** Stop before the first occurrence of any of these strings (which is not part of the text). */
  stop?: string[];
  /** Cancels generation; the stream then ends with finishReason "abort". */
  signal?: AbortSignal;
}

/** Why generation ended: end-of-sequence token, max new tokens, a stop string, the abort signal, or the context length. */
export type FinishReason = "eos" | "length" | "stop" | "abort" | "context";

/** Times and token counts of one generation. */
export interface Timings {
  promptTokens: number; // prompt tokens run through the model (a conversation's cached ones excluded)
  prefillMs: number; // until the first new token
  newTokens: number;
  decodeMs: number; // after the first new token
  decodeTokensPerSecond: number | undefined;
}

/** One piece of a streamed generation. */
export interface GenerateChunk {
  /** New text; never ends inside a UTF-8 character or inside a possible stop string. */
  text: string;
  /** New token ids (one, or several when guesses were accepted at once). */
  ids: number[];
  done: boolean;
  /** On the last chunk: why generation ended, its timings, and with prompt lookup or a draft model the guesses kept. */
  finishReason?: FinishReason;
  timings?: Timings;
  speculation?: SpeculationStats;
}

/** Let timers and events run between tokens (so that an AbortSignal can fire), without a 4 ms timer clamp. */
export function nextTask(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  if (g.setImmediate) return new Promise((r) => g.setImmediate!(r));
  const { port1, port2 } = new MessageChannel();
  return new Promise((r) => {
    port1.onmessage = () => (port1.close(), r());
    port2.postMessage(0);
  });
}

/** Where generated text must end: before a stop string, and never in the middle of a possible one. */
export function stopSplit(text: string, stops: string[], final: boolean): { emit: number; stopped: boolean } {
  let cut = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  if (cut >= 0) return { emit: cut, stopped: true };
  if (final) return { emit: text.length, stopped: false };
  // hold back the longest tail that could still grow into a stop string
  let hold = 0;
  for (const s of stops) for (let n = Math.min(s.length - 1, text.length); n > hold; n--) if (s.startsWith(text.slice(-n))) hold = n;
  return { emit: text.length - hold, stopped: false };
}

/** Text in, text out: streams generated text, completes prompts, runs batches and keeps conversations. */
export class TextGenerator {
  private cache?: KVCache;

  constructor(readonly model: OpenELM, readonly tokenizer: Tokenizer) {}

  /** Stream the continuation of `prompt` (text, encoded with BOS, or token ids). */
  generate(prompt: string | number[], opts: GenerateOptions = {}): AsyncGenerator<GenerateChunk> {
    const ids = this.encode(prompt);
    this.cache ??= this.model.newCache();
    this.cache.length = 0;
    return this.run(this.cache, ids, opts);
  }

  /** A prompt's ids: text encoded with BOS (checked against the model's vocabulary), or ids as given. */
  encode(prompt: string | number[]): number[] {
    return typeof prompt === "string" ? this.tokenizer.checkIds(this.tokenizer.encode(prompt), this.model.config.vocabSize) : prompt;
  }

  /** Generate the whole continuation and return its text and ids. */
  async complete(prompt: string | number[], opts: GenerateOptions = {}): Promise<{ text: string; ids: number[]; finishReason: FinishReason; timings: Timings; speculation?: SpeculationStats }> {
    let text = "";
    const ids: number[] = [];
    for await (const chunk of this.generate(prompt, opts)) {
      text += chunk.text;
      ids.push(...chunk.ids);
      if (chunk.done) return { text, ids, finishReason: chunk.finishReason!, timings: chunk.timings!, speculation: chunk.speculation };
    }
    throw new Error("generation ended without a final chunk");
  }

  /** A conversation with this model, in its chat template, keeping its KV cache between turns. */
  conversation(opts: ConversationOptions = {}): Conversation {
    return new Conversation(this, opts);
  }

  /**
   * Decode several prompts together: each decode step runs every unfinished sequence in one pass, so the
   * weights are read once per step for all of them. Each sequence samples with seed + its index.
   */
  async batch(prompts: (string | number[])[], opts: Omit<GenerateOptions, "promptLookup" | "draft"> = {}): Promise<{ text: string; ids: number[]; finishReason: FinishReason }[]> {
    const model = this.model, eos = model.config.eosTokenId, maxNew = opts.maxNewTokens ?? 256;
    const seqs = prompts.map((p, i) => {
      const prompt = this.encode(p);
      const cache = model.newCache();
      if (prompt.length >= cache.capacity) throw new ContextError(`prompt ${i} has ${prompt.length} tokens; the context holds ${cache.capacity}`);
      return { prompt, cache, sampler: new Sampler({ ...opts, seed: (opts.seed ?? 0) + i }), ids: [] as number[], text: "", reason: undefined as FinishReason | undefined };
    });
    try {
      // prefill each prompt, then step all unfinished sequences together
      let logits = seqs.map((s) => model.forward(s.cache, s.prompt));
      for (;;) {
        const active = seqs.filter((s) => !s.reason);
        active.forEach((s, i) => {
          const id = s.sampler.sample(logits[i]!, [...s.prompt, ...s.ids], s.ids);
          s.ids.push(id);
          if (id === eos && !opts.ignoreEos) s.reason = "eos";
          else if (s.ids.length >= maxNew) s.reason = "length";
          else if (s.cache.length >= s.cache.capacity) s.reason = "context";
        });
        const next = seqs.filter((s) => !s.reason);
        if (next.length === 0 || opts.signal?.aborted) break;
        logits = model.forwardBatch(next.map((s) => s.cache), next.map((s) => [s.ids[s.ids.length - 1]!]));
        await nextTask();
      }
    } finally {
      for (const s of seqs) model.releaseCache(s.cache);
    }
    return seqs.map((s) => {
      const { emit, stopped } = stopSplit(this.tokenizer.decode(s.ids), opts.stop ?? [], true);
      return { text: this.tokenizer.decode(s.ids).slice(0, emit), ids: s.ids, finishReason: stopped ? "stop" : (s.reason ?? "abort") };
    });
  }

  /** @internal The streaming loop over a cache that may hold a prefix of `ids` already. */
  async *run(cache: KVCache, ids: number[], opts: GenerateOptions): AsyncGenerator<GenerateChunk> {
    if (ids.length > cache.capacity)
      throw new ContextError(`prompt too long: ${ids.length} tokens, but the context holds ${cache.capacity} (--context)`);
    const stops = opts.stop ?? [];
    const maxNewTokens = Math.min(opts.maxNewTokens ?? 256, cache.capacity - ids.length + 1);
    const stats: SpeculationStats = { proposed: 0, accepted: 0, passes: 0 };
    const speculating = Boolean(opts.promptLookup || opts.draft);
    const text = new TextStream(this.tokenizer, ids[ids.length - 1]);
    const t0 = performance.now(), cached = Math.min(cache.length, ids.length - 1);
    let tFirst = 0, pending = "", count = 0, reason: FinishReason | undefined;
    const eos = this.model.config.eosTokenId;
    const finish = (chunkIds: number[], chunkText: string, why: FinishReason): GenerateChunk => {
      const now = performance.now();
      return {
        text: chunkText, ids: chunkIds, done: true, finishReason: why,
        timings: {
          promptTokens: ids.length - cached, prefillMs: (tFirst || now) - t0, newTokens: count, decodeMs: tFirst ? now - tFirst : 0,
          decodeTokensPerSecond: count > 1 ? (count - 1) / ((now - tFirst) / 1000) : undefined,
        },
        ...(speculating ? { speculation: stats } : {}),
      };
    };
    const tokens = decode(this.model, cache, ids, { ...opts, maxNewTokens }, stats);
    for (const id of tokens) {
      if (count++ === 0) tFirst = performance.now();
      pending += id === eos && !opts.ignoreEos ? "" : text.push(id);
      const last = id === eos && !opts.ignoreEos ? "eos" : count >= maxNewTokens ? (count >= (opts.maxNewTokens ?? 256) ? "length" : "context") : undefined;
      if (last) pending += text.flush();
      const { emit, stopped } = stopSplit(pending, stops, last !== undefined);
      const out = pending.slice(0, emit);
      pending = pending.slice(emit);
      if (stopped) return void (yield finish([id], out, "stop"));
      if (last) return void (yield finish([id], out, last));
      yield { text: out, ids: [id], done: false };
      await nextTask();
      if (opts.signal?.aborted) {
        reason = "abort";
        break;
      }
    }
    yield finish([], "", reason ?? "length");
  }
}

/** Options of a conversation. */
export interface ConversationOptions {
  system?: string;
  /** A chat template to use instead of the tokenizer's (or OpenELM-Instruct's). */
  template?: string;
  /** Called with the oldest messages dropped so that a grown conversation fits its context. */
  onDrop?: (dropped: ChatMessage[]) => void;
}

/**
 * A chat in the model's template. Each turn re-renders the whole conversation, and the tokens its cache
 * already holds (the longest common prefix) are not run again. A conversation lives within the model's
 * context cap, or without one the trained context: when it outgrows that, its oldest turns are dropped
 * (the system prompt stays) so that the new message and room for the reply fit.
 */
export class Conversation {
  readonly messages: ChatMessage[] = [];
  /** Positions a turn's prompt and reply may take. */
  readonly contextLength: number;
  private readonly cache: KVCache;
  private cachedIds: number[] = [];

  constructor(private readonly generator: TextGenerator, private readonly opts: ConversationOptions = {}) {
    const model = generator.model;
    this.contextLength = OpenELM.plannedPositions(model.config, model.contextLength);
    this.cache = model.newCache(this.contextLength);
    if (opts.system) this.messages.push({ role: "system", content: opts.system });
  }

  /** The prompt text for the next assistant turn. */
  prompt(): string {
    return renderChat(this.messages, { template: this.opts.template ?? this.generator.tokenizer.chatTemplate, addGenerationPrompt: true });
  }

  /** The prompt's ids, after dropping the oldest turns until it leaves `room` tokens for the reply. */
  private fit(room: number): number[] {
    const dropped: ChatMessage[] = [];
    for (;;) {
      const ids = this.generator.encode(this.prompt());
      const oldest = this.messages.findIndex((m) => m.role !== "system");
      const droppable = oldest >= 0 && oldest < this.messages.length - 1; // never the new message
      if (ids.length + room <= this.contextLength || !droppable) {
        if (ids.length >= this.contextLength)
          throw new ContextError(`the message does not fit: the conversation's prompt is ${ids.length} tokens, and the context holds ${this.contextLength}`);
        if (dropped.length) this.opts.onDrop?.(dropped);
        return ids;
      }
      // drop the oldest turn: a user message with the reply that followed it
      const n = this.messages[oldest + 1]?.role === "assistant" && oldest + 1 < this.messages.length - 1 ? 2 : 1;
      dropped.push(...this.messages.splice(oldest, n));
    }
  }

  /** Add a user message and stream the assistant's reply, which joins the history when it ends. */
  async *send(content: string, opts: GenerateOptions = {}): AsyncGenerator<GenerateChunk> {
    const before = this.messages.slice();
    const restore = () => this.messages.splice(0, this.messages.length, ...before);
    this.messages.push({ role: "user", content });
    let ids: number[];
    try {
      ids = this.fit(Math.min(opts.maxNewTokens ?? 256, Math.floor(this.contextLength / 4)));
    } catch (e) {
      restore(); // the conversation is as it was, dropped turns included
      throw e;
    }
    let common = 0;
    while (common < this.cachedIds.length && common < ids.length && this.cachedIds[common] === ids[common]) common++;
    this.cache.length = common;
    let reply = "", failed = true;
    const all = ids.slice();
    try {
      for await (const chunk of this.generator.run(this.cache, ids, opts)) {
        reply += chunk.text;
        all.push(...chunk.ids);
        yield chunk;
      }
      failed = false;
    } finally {
      // the cache holds the keys and values of all[0 .. cache.length), whatever happened
      this.cachedIds = all.slice(0, this.cache.length);
      if (failed) this.messages.splice(this.messages.length - 1); // the message that got no reply
      else this.messages.push({ role: "assistant", content: reply });
    }
  }

  /** Forget every message but the system prompt. */
  reset(): void {
    this.messages.splice(this.messages[0]?.role === "system" ? 1 : 0);
  }

  /** Give the KV cache back to the model. */
  close(): void {
    this.generator.model.releaseCache(this.cache);
  }
}
