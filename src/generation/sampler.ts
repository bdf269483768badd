// Choosing the next token from logits, with the semantics of Hugging Face transformers' logits processors
// (repetition penalty, then temperature, top-k, top-p, min-p), OpenAI-style frequency and presence
// penalties, a logit bias, and a seeded random generator that gives the same ids in every JS host.
// A draw walks the kept tokens most likely first after top-k or top-p; otherwise (temperature alone, or
// with min-p) in id order, so that nothing is sorted. Whatever is sorted is sorted by a radix sort on the
// logits' bits: the same order in every host, and no comparator called 32000 × 15 times per token.

/** How the next token is chosen from the logits, with Hugging Face semantics. */
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

const BANDS = 256; // quarter-nat bands of (max - logit) / T; the last one holds everything below 63.75 nats

/** Picks each next token: penalties, temperature, top-k, top-p and min-p, then a draw from a seeded generator or the most likely token. */
export class Sampler {
  private readonly random: () => number;
  // vocabulary-sized buffers reused from token to token: sample()'s processed logits, the weights, their bands
  private processed = new Float32Array(0);
  private w = new Float64Array(0);
  private band = new Uint8Array(0);
  private readonly bandMass = new Float64Array(BANDS);
  private readonly sorter = new LogitSorter();

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
    return this.processInto(new Float32Array(logits.length), logits, context, generated);
  }

  /**
   * The distribution to sample from after temperature, top-k, top-p and min-p: token ids and their
   * probabilities (summing to 1), most likely first (ties: lower id first). Excluded tokens are absent.
   */
  distribution(processed: Float32Array): { ids: Uint32Array; probs: Float64Array } {
    const { list, w } = this.truncate(processed);
    let ids: Uint32Array;
    if (list) ids = list.slice();
    else {
      // every token is kept, but for those min-p dropped (weight 0; a kept one has at least minP)
      let n = 0;
      for (let id = 0; id < processed.length; id++) if (!this.opts.minP || w[id]! > 0) this.sorter.ids[n++] = id;
      ids = this.sorter.sort(processed, n).slice();
    }
    const probs = Float64Array.from(ids, (id) => w[id]!), total = probs.reduce((a, b) => a + b, 0);
    return { ids, probs: probs.map((p) => p / total) };
  }

  /** The next token: the most likely one at temperature 0, else a draw from the truncated distribution. */
  sample(logits: Float32Array, context: ArrayLike<number>, generated: ArrayLike<number>): number {
    if (this.processed.length !== logits.length) this.processed = new Float32Array(logits.length);
    const processed = this.processInto(this.processed, logits, context, generated);
    if (this.greedy) return argmax(processed);
    const { list, w, total } = this.truncate(processed), n = list ? list.length : processed.length;
    let r = this.random() * total;
    for (let i = 0; i < n; i++) {
      const id = list ? list[i]! : i;
      if ((r -= w[id]!) < 0) return id;
    }
    return argmax(processed); // rounding left a sliver of r: the most likely token
  }

  /** process(), written into `out` (sample() reuses one buffer instead of allocating one per token). */
  private processInto(out: Float32Array, logits: Float32Array, context: ArrayLike<number>, generated: ArrayLike<number>): Float32Array {
    const o = this.opts;
    out.set(logits);
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
   * The tokens that survive truncation, most likely first (`list`, undefined for all of them in id order),
   * in `w` the weights exp((logit - max) / T) of at least those (unnormalised probabilities), and their sum.
   * Only what must be sorted is: top-k selects k tokens; top-p without top-k sorts the few most likely
   * quarter-nat bands that hold the nucleus; temperature alone and min-p alone sort nothing.
   */
  private truncate(processed: Float32Array): { list?: Uint32Array; w: Float64Array; total: number } {
    const o = this.opts, T = o.temperature || 1, V = processed.length, max = maxOf(processed);
    if (max === -Infinity) throw new RangeError("every token is excluded (all logits are -inf)");
    if (this.w.length !== V) {
      this.w = new Float64Array(V);
      this.band = new Uint8Array(V);
      this.sorter.reserve(V);
    }
    const w = this.w, topP = o.topP !== undefined && o.topP < 1 ? o.topP : undefined;
    let list: Uint32Array, mass = 0; // candidates most likely first, and the mass top-p measures against
    const byTopK = o.topK !== undefined && o.topK > 0 && o.topK < V;
    if (byTopK) {
      list = this.top(processed, o.topK!);
      for (const id of list) mass += w[id] = Math.exp((processed[id]! - max) / T);
    } else if (topP === undefined) {
      // every token, in id order; min-p drops weights below minP (the best token's weight is 1) to 0
      const minP = o.minP ?? 0;
      for (let i = 0; i < V; i++) {
        const x = Math.exp((processed[i]! - max) / T);
        mass += w[i] = x >= minP ? x : 0;
      }
      return { w, total: mass };
    } else {
      // every weight, and the mass of each quarter-nat band of (max - logit) / T: only the most likely bands
      // that hold the nucleus are sorted (one band more, for rounding), a few hundred tokens when it is peaked
      const band = this.band, bandMass = this.bandMass.fill(0);
      for (let i = 0; i < V; i++) {
        const x = (max - processed[i]!) / T; // exp(-x) is exactly exp((logit - max) / T)
        mass += w[i] = Math.exp(-x);
        band[i] = Math.min(BANDS - 1, Math.floor(x * 4));
        bandMass[band[i]!]! += w[i]!;
      }
      let last = 0;
      for (let acc = bandMass[0]!; acc < topP * mass && last < BANDS - 1; ) acc += bandMass[++last]!;
      last = Math.min(BANDS - 1, last + 1);
      let n = 0;
      for (let i = 0; i < V; i++) if (band[i]! <= last) this.sorter.ids[n++] = i;
      list = this.sorter.sort(processed, n);
    }
    if (topP !== undefined) {
      // keep tokens until their probability reaches topP (the token that crosses it included), at least one
      let keep = nucleusSize(list, w, topP * mass);
      if (keep === undefined && !byTopK && list.length < V) {
        // rounding left the candidates' mass short of it: all tokens are candidates
        for (let i = 0; i < V; i++) this.sorter.ids[i] = i;
        list = this.sorter.sort(processed, V);
        keep = nucleusSize(list, w, topP * mass);
      }
      list = list.subarray(0, Math.max(1, keep ?? list.length));
    }
    if (o.minP) {
      let keep = 1;
      while (keep < list.length && w[list[keep]!]! >= o.minP) keep++;
      list = list.subarray(0, keep);
    }
    let total = 0;
    for (const id of list) total += w[id]!;
    return { list, w, total };
  }

  /** The k highest logits' ids, highest first (ties: lower id first), by a bounded heap: O(V log k). */
  private top(values: Float32Array, k: number): Uint32Array {
    const heap = new Uint32Array(k); // a min-heap of the best k so far: heap[0] is the worst of them
    const worse = (a: number, b: number) => values[a]! < values[b]! || (values[a] === values[b] && a > b);
    const siftDown = (i: number, n: number) => {
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < n && worse(heap[l]!, heap[m]!)) m = l;
        if (r < n && worse(heap[r]!, heap[m]!)) m = r;
        if (m === i) return;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    };
    for (let id = 0; id < k; id++) heap[id] = id;
    for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i, k);
    for (let id = k; id < values.length; id++) {
      if (!worse(heap[0]!, id)) continue;
      heap[0] = id;
      siftDown(0, k);
    }
    // heapsort: the worst moves to the end each time, leaving the best first
    for (let n = k - 1; n > 0; n--) {
      [heap[0], heap[n]] = [heap[n]!, heap[0]!];
      siftDown(0, n);
    }
    return heap;
  }
}

/** How many of `ids` (most likely first) it takes for their weights to reach `need`; undefined if they never do. */
function nucleusSize(ids: Uint32Array, w: Float64Array, need: number): number | undefined {
  let keep = 0, acc = 0;
  while (keep < ids.length && acc < need) acc += w[ids[keep++]!]!;
  return acc >= need ? keep : undefined;
}

/**
 * Orders token ids by logit, highest first (ties: lower id first), by a stable radix sort on the float32
 * bits of the logits (3 passes of 11 bits) into buffers it keeps: a comparator sort of 32000 ids takes
 * about 8 ms, this under 1 ms, and the order cannot depend on the host's sort.
 */
class LogitSorter {
  /** The ids to sort, in increasing order (stability then puts lower ids first among ties). */
  ids = new Uint32Array(0);
  private otherIds = new Uint32Array(0);
  private keys = new Uint32Array(0);
  private otherKeys = new Uint32Array(0);
  private readonly counts = new Uint32Array(3 << 11);

  reserve(n: number): void {
    if (this.ids.length >= n) return;
    this.ids = new Uint32Array(n);
    this.otherIds = new Uint32Array(n);
    this.keys = new Uint32Array(n);
    this.otherKeys = new Uint32Array(n);
  }

  /** The first `n` of `ids`, sorted (a view into a buffer of the sorter, valid until the next sort). */
  sort(values: Float32Array, n: number): Uint32Array {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length), counts = this.counts.fill(0);
    let ids = this.ids, keys = this.keys, toIds = this.otherIds, toKeys = this.otherKeys;
    for (let i = 0; i < n; i++) {
      // a key that increases as the logit decreases: flip the magnitude of non-negative floats; -0 is 0
      const b = bits[ids[i]!]!, key = b === 0x80000000 ? 0x7fffffff : b >>> 31 ? b : b ^ 0x7fffffff;
      keys[i] = key;
      counts[key & 2047]!++;
      counts[2048 + ((key >>> 11) & 2047)]!++;
      counts[4096 + (key >>> 22)]!++;
    }
    for (let pass = 0; pass < 3 && n > 0; pass++) {
      const shift = 11 * pass, base = 2048 * pass;
      if (counts[base + ((keys[0]! >>> shift) & 2047)] === n) continue; // one digit for all: already in order
      for (let d = 0, at = 0; d < 2048; d++) {
        const c = counts[base + d]!;
        counts[base + d] = at; // where the run of digit d starts
        at += c;
      }
      for (let i = 0; i < n; i++) {
        const key = keys[i]!, to = counts[base + ((key >>> shift) & 2047)]!++;
        toKeys[to] = key;
        toIds[to] = ids[i]!;
      }
      [ids, toIds, keys, toKeys] = [toIds, ids, toKeys, keys];
    }
    return ids.subarray(0, n);
  }
}

function maxOf(values: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
  return max;
}
