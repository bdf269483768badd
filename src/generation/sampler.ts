// Choosing the next token from logits, with the semantics of Hugging Face transformers' logits processors
// (repetition penalty, then temperature, top-k, top-p, min-p), OpenAI-style frequency and presence
// penalties, a logit bias, and a seeded random generator that gives the same ids in every JS host.

export interface SamplingOptions {
  /** 0 (default) picks the most likely token; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens (0: off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability adds up to at least p (1: off). */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely one (0: off). */
  minP?: number;
  /** For tokens already in the context: positive logits divided by it, negative ones multiplied (1: off; the OpenELM card suggests 1.2). */
  repetitionPenalty?: number;
  /** Subtracted from a logit once per occurrence of its token in the generated text. */
  frequencyPenalty?: number;
  /** Subtracted from a logit once if its token occurs in the generated text. */
  presencePenalty?: number;
  /** Added to the logits of the given token ids (e.g. -Infinity bans a token). */
  logitBias?: Record<number, number>;
  /** Seed of the random generator (default 0). */
  seed?: number;
}

/** mulberry32: a small seeded generator of uniform numbers in [0, 1), the same in every host. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest logit (the first one on ties, like torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export class Sampler {
  private readonly random: () => number;

  constructor(readonly opts: SamplingOptions = {}) {
    const o = opts;
    const check = (name: string, v: number | undefined, ok: (v: number) => boolean, what: string) => {
      if (v !== undefined && !(Number.isFinite(v) && ok(v))) throw new RangeError(`${name} must be ${what}, got ${v}`);
    };
    check("temperature", o.temperature, (v) => v >= 0, "≥ 0");
    check("topK", o.topK, (v) => Number.isInteger(v) && v >= 0, "a non-negative integer");
    check("topP", o.topP, (v) => v > 0 && v <= 1, "in (0, 1]");
    check("minP", o.minP, (v) => v >= 0 && v <= 1, "in [0, 1]");
    check("repetitionPenalty", o.repetitionPenalty, (v) => v > 0, "> 0");
    this.random = seededRandom(o.seed ?? 0);
  }

  get greedy(): boolean {
    return !this.opts.temperature;
  }

  /**
   * The processed logits for this step: penalties over `context` (all ids so far, prompt included) and
   * `generated` (the ids generated so far), then the bias.
   */
  process(logits: Float32Array, context: ArrayLike<number>, generated: ArrayLike<number>): Float32Array {
    const o = this.opts, out = Float32Array.from(logits);
    const rep = o.repetitionPenalty ?? 1;
    if (rep !== 1) {
      const seen = new Set<number>();
      for (let i = 0; i < context.length; i++) seen.add(context[i]!);
      for (const id of seen) out[id] = out[id]! > 0 ? out[id]! / rep : out[id]! * rep;
    }
    if (o.frequencyPenalty || o.presencePenalty) {
      const counts = new Map<number, number>();
      for (let i = 0; i < generated.length; i++) counts.set(generated[i]!, (counts.get(generated[i]!) ?? 0) + 1);
      for (const [id, n] of counts) out[id] = out[id]! - (o.frequencyPenalty ?? 0) * n - (o.presencePenalty ?? 0);
    }
    for (const [id, bias] of Object.entries(o.logitBias ?? {})) if (Number(id) < out.length) out[Number(id)] = out[Number(id)]! + bias;
    return out;
  }

  /**
   * The distribution to sample from after temperature, top-k, top-p and min-p: token ids and their
   * probabilities (summing to 1), most likely first. Excluded tokens are absent.
   */
  distribution(processed: Float32Array): { ids: Uint32Array; probs: Float64Array } {
    const o = this.opts, T = o.temperature || 1;
    let ids = Uint32Array.from(processed.keys()).sort((a, b) => processed[b]! - processed[a]! || a - b);
    if (o.topK && o.topK < ids.length) ids = ids.subarray(0, o.topK);
    const max = processed[ids[0]!]!;
    let probs = Float64Array.from(ids, (id) => Math.exp((processed[id]! - max) / T));
    let total = probs.reduce((a, b) => a + b, 0);
    if (o.topP !== undefined && o.topP < 1) {
      // keep tokens until their probability reaches topP (the token that crosses it included)
      let keep = 0;
      for (let acc = 0; keep < probs.length && acc < o.topP * total; keep++) acc += probs[keep]!;
      ids = ids.subarray(0, Math.max(1, keep));
      probs = probs.subarray(0, ids.length);
      total = probs.reduce((a, b) => a + b, 0);
    }
    if (o.minP) {
      const floor = o.minP * probs[0]!;
      let keep = 1;
      while (keep < probs.length && probs[keep]! >= floor) keep++;
      ids = ids.subarray(0, keep);
      probs = probs.subarray(0, keep);
      total = probs.reduce((a, b) => a + b, 0);
    }
    return { ids, probs: probs.map((p) => p / total) };
  }

  /** The next token: the most likely one at temperature 0, else a draw from the distribution. */
  sample(logits: Float32Array, context: ArrayLike<number>, generated: ArrayLike<number>): number {
    const processed = this.process(logits, context, generated);
    if (this.greedy) return argmax(processed);
    const { ids, probs } = this.distribution(processed);
    let r = this.random();
    for (let i = 0; i < ids.length; i++) if ((r -= probs[i]!) < 0) return ids[i]!;
    return ids[ids.length - 1]!;
  }
}
