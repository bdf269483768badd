// Autoregressive decoding: prefill the prompt as one matrix pass, then one token at a time with the KV cache.
import type { KVCache, OpenELM } from "./model.js";

export interface DecodeOptions {
  maxNewTokens: number;
  /** 0 (default) decodes greedily; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Seed of the sampler's random numbers (same seed, same ids, in every JS host). */
  seed?: number;
  /** Keep going after the end-of-sequence token. */
  ignoreEos?: boolean;
}

/** Index of the largest logit (the first one on ties, like torch.argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
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

function sample(logits: Float32Array, temperature: number, random: () => number): number {
  if (temperature <= 0) return argmax(logits);
  const max = logits[argmax(logits)]!;
  const p = Float64Array.from(logits, (x) => Math.exp((x - max) / temperature));
  let r = random() * p.reduce((a, b) => a + b, 0);
  for (let i = 0; i < p.length; i++) if ((r -= p[i]!) < 0) return i;
  return p.length - 1;
}

/** Yields new token ids after `promptIds` until maxNewTokens or EOS (which is yielded, then stops). */
export function* decode(model: OpenELM, cache: KVCache, promptIds: number[], opts: DecodeOptions): Generator<number> {
  const random = seededRandom(opts.seed ?? 0);
  let logits = model.forward(cache, promptIds);
  for (let n = 0; n < opts.maxNewTokens; n++) {
    const id = sample(logits, opts.temperature ?? 0, random);
    yield id;
    if (id === model.config.eosTokenId && !opts.ignoreEos) return;
    if (n + 1 < opts.maxNewTokens) logits = model.forward(cache, [id]);
  }
}
