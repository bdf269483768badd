// Training data as token ids: a corpus of documents tokenized with the Llama-2 tokenizer, each document
// BOS-prefixed, split into training and held-out documents by a seed; random training sequences, the
// held-out windows, and the unigram and bigram baselines that a trained model's perplexity is set beside.
// Core code (no Node built-ins): src/node/corpus.ts reads the documents from disk.
import { seededRandom } from "../generation/sampler.js";
import type { Tokenizer } from "../tokenizer.js";

/** A corpus as token ids: each document BOS-prefixed; split into train and held-out by document. */
export interface TokenCorpus {
  train: Int32Array;
  heldOut: Int32Array;
  /** Ids are 0 .. vocabSize - 1 (the tokenizer's). */
  vocabSize: number;
  /** Documents in each part (a corpus of one document counts its two parts as one each). */
  documents: { train: number; heldOut: number };
}

/** Characters per piece that a document is encoded in (BPE on one unbroken string grows faster than its length). */
const PIECE_CHARS = 1024;

/**
 * The end of the piece of `text` that starts at `start`: after the last newline, else before the last
 * single space between words, within PIECE_CHARS; the tokenizer never merges across either (see
 * Tokenizer.encodeContinuation). Past PIECE_CHARS without such a place, the next one, else the text's end.
 */
function pieceEnd(text: string, start: number): number {
  if (text.length - start <= PIECE_CHARS) return text.length;
  const limit = start + PIECE_CHARS;
  const newline = text.lastIndexOf("\n", limit - 1);
  if (newline >= start) return newline + 1;
  const isCut = (i: number) => text[i] === " " && text[i - 1] !== " " && text[i + 1] !== " " && text[i - 1] !== "\n";
  for (let i = limit - 1; i > start; i--) if (isCut(i)) return i;
  const next = text.indexOf("\n", limit);
  for (let i = limit; i < text.length - 1 && (next < 0 || i <= next); i++) if (isCut(i)) return i;
  return next < 0 ? text.length : next + 1;
}

/** Ids of one document with BOS first: the same as tokenizer.encode(text), in pieces of bounded length. */
export function encodeDocument(text: string, tokenizer: Tokenizer): number[] {
  const ids: number[] = [];
  for (let start = 0; start === 0 || start < text.length; ) {
    const end = pieceEnd(text, start), piece = text.slice(start, end);
    for (const id of start === 0 ? tokenizer.encode(piece) : tokenizer.encodeContinuation(piece)) ids.push(id);
    start = end;
    if (end >= text.length) break;
  }
  return ids;
}

/** The indices 0 .. n - 1 in an order drawn by `random` (Fisher–Yates). */
function shuffled(n: number, random: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** The documents' ids one after another (each BOS-prefixed) in one array. */
function concat(parts: number[][]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, at), (at += p.length);
  return out;
}

/**
 * Tokenize documents (Llama-2 tokenizer) and hold out a fraction (default 0.05) of them, chosen by a seed.
 * Each document is encoded with BOS first; documents that are empty or only whitespace are skipped. The
 * held-out documents are round(fraction × documents) of them (at least one, and at least one is left to
 * train on), drawn by `seededRandom(seed)` (default seed 0); both parts keep the documents' order. A
 * corpus of one document holds out the last `fraction` of its tokens instead (that part has no BOS).
 */
export function tokenizeCorpus(documents: string[], tokenizer: Tokenizer, opts: { heldOutFraction?: number; seed?: number } = {}): TokenCorpus {
  const fraction = opts.heldOutFraction ?? 0.05, seed = opts.seed ?? 0;
  if (!(typeof fraction === "number" && fraction > 0 && fraction < 1)) throw new RangeError(`heldOutFraction must be between 0 and 1 (both excluded), got ${fraction}`);
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Array.isArray(documents)) throw new TypeError("documents must be an array of strings");
  const bad = documents.findIndex((d) => typeof d !== "string");
  if (bad >= 0) throw new TypeError(`documents[${bad}] is a ${typeof documents[bad]}, not a string`);
  const texts = documents.filter((d) => d.trim() !== "");
  if (texts.length === 0) throw new RangeError(`documents: the corpus is empty (${documents.length} document(s), none with text)`);

  const vocabSize = tokenizer.vocabSize;
  if (texts.length === 1) {
    const ids = encodeDocument(texts[0]!, tokenizer);
    const held = Math.round(ids.length * fraction);
    if (ids.length < 2) throw new RangeError(`documents: the one document has ${ids.length} token(s), too few to hold any out`);
    const cut = ids.length - Math.min(Math.max(held, 1), ids.length - 1);
    return { train: Int32Array.from(ids.slice(0, cut)), heldOut: Int32Array.from(ids.slice(cut)), vocabSize, documents: { train: 1, heldOut: 1 } };
  }
  const held = Math.min(Math.max(Math.round(texts.length * fraction), 1), texts.length - 1);
  const isHeld = new Set(shuffled(texts.length, seededRandom(seed)).slice(0, held));
  const train: number[][] = [], heldOut: number[][] = [];
  texts.forEach((text, i) => (isHeld.has(i) ? heldOut : train).push(encodeDocument(text, tokenizer)));
  return { train: concat(train), heldOut: concat(heldOut), vocabSize, documents: { train: train.length, heldOut: heldOut.length } };
}

/** Check that `length` is a whole number of tokens ≥ 1 and that `tokens` holds at least one window of length + 1. */
function checkWindow(tokens: Int32Array, length: number): void {
  if (!(tokens instanceof Int32Array)) throw new TypeError("tokens must be an Int32Array");
  if (!(Number.isInteger(length) && length >= 1)) throw new RangeError(`length must be an integer ≥ 1 (tokens predicted per sequence), got ${length}`);
  if (tokens.length < length + 1) throw new RangeError(`tokens: ${tokens.length} token(s) are too few for one sequence of length ${length} (${length + 1} tokens with its last target)`);
}

/**
 * `count` sequences of length + 1 tokens (inputs and next-token targets) at random offsets of `tokens`.
 * Offsets are uniform over 0 .. tokens.length − length − 1, drawn by `random` (e.g. seededRandom(seed)),
 * so sequences may cross document boundaries (the BOS between documents marks them).
 */
export function sampleSequences(tokens: Int32Array, length: number, count: number, random: () => number): number[][] {
  checkWindow(tokens, length);
  if (!(Number.isInteger(count) && count >= 0)) throw new RangeError(`count must be an integer ≥ 0, got ${count}`);
  const offsets = tokens.length - length;
  return Array.from({ length: count }, () => {
    const at = Math.min(Math.floor(random() * offsets), offsets - 1); // a `random` returning 1 stays in range
    return Array.from(tokens.subarray(at, at + length + 1));
  });
}

/**
 * Consecutive non-overlapping windows of length + 1 tokens covering `tokens` (the held-out evaluation).
 * Window k is tokens[k·length .. k·length + length]: each window's first token is the previous one's last,
 * so the targets (all tokens but a window's first) do not overlap and every token after tokens[0] is a
 * target exactly once. The last window is shorter (2 .. length tokens) when length does not divide
 * tokens.length − 1.
 */
export function windows(tokens: Int32Array, length: number): number[][] {
  checkWindow(tokens, length);
  const out: number[][] = [];
  for (let at = 0; at < tokens.length - 1; at += length) out.push(Array.from(tokens.subarray(at, Math.min(at + length + 1, tokens.length))));
  return out;
}

/** Check that every id of `tokens` (named `name`) is in 0 .. vocabSize − 1. */
function checkIds(tokens: Int32Array, vocabSize: number, name: string): void {
  for (let i = 0; i < tokens.length; i++)
    if (!(tokens[i]! >= 0 && tokens[i]! < vocabSize)) throw new RangeError(`${name}[${i}] is ${tokens[i]}, not an id below vocabSize ${vocabSize}`);
}

/**
 * Held-out perplexity of a unigram and a bigram model counted on `train` (bigram interpolated with the
 * unigram, add-one smoothed). Both score the same tokens, heldOut[1..] (as a model scores the targets of
 * `windows(heldOut, …)`), and give exp(mean negative log-likelihood).
 * - Unigram, add-one: p(w) = (c(w) + 1) / (N + V), with c(w) the count of w in train, N = train.length,
 *   V = vocabSize.
 * - Bigram, Witten–Bell interpolation with that unigram: p(w | u) = λ(u)·c(u,w)/c(u) + (1 − λ(u))·p(w), with
 *   c(u,w) the count of the pair (u, w) in train, c(u) = Σ_w c(u,w) the pairs starting with u, T(u) the
 *   number of different words seen after u, and λ(u) = c(u) / (c(u) + T(u)); an unseen u (c(u) = 0) gives
 *   p(w). The weight needs no tuning on held-out data, and every probability is above zero.
 */
export function ngramPerplexity(train: Int32Array, heldOut: Int32Array, vocabSize: number): { unigram: number; bigram: number } {
  if (!(Number.isInteger(vocabSize) && vocabSize >= 1)) throw new RangeError(`vocabSize must be an integer ≥ 1, got ${vocabSize}`);
  if (!(train instanceof Int32Array) || !(heldOut instanceof Int32Array)) throw new TypeError("train and heldOut must be Int32Arrays");
  if (train.length < 1) throw new RangeError("train: no tokens to count");
  if (heldOut.length < 2) throw new RangeError(`heldOut: ${heldOut.length} token(s), but at least 2 are needed to score one (the first is context only)`);
  checkIds(train, vocabSize, "train");
  checkIds(heldOut, vocabSize, "heldOut");

  const unigramCounts = new Float64Array(vocabSize);
  for (const id of train) unigramCounts[id]!++;
  const history = new Float64Array(vocabSize), types = new Float64Array(vocabSize);
  const pairs = new Map<number, number>(); // u · V + w → c(u, w)
  for (let i = 1; i < train.length; i++) {
    const u = train[i - 1]!, key = u * vocabSize + train[i]!, c = pairs.get(key) ?? 0;
    if (c === 0) types[u]!++;
    pairs.set(key, c + 1);
    history[u]!++;
  }
  const unigram = (w: number) => (unigramCounts[w]! + 1) / (train.length + vocabSize);
  const bigram = (u: number, w: number) => {
    const h = history[u]!;
    if (h === 0) return unigram(w);
    const lambda = h / (h + types[u]!);
    return (lambda * (pairs.get(u * vocabSize + w) ?? 0)) / h + (1 - lambda) * unigram(w);
  };
  let uni = 0, bi = 0;
  for (let i = 1; i < heldOut.length; i++) {
    uni -= Math.log(unigram(heldOut[i]!));
    bi -= Math.log(bigram(heldOut[i - 1]!, heldOut[i]!));
  }
  const n = heldOut.length - 1;
  return { unigram: Math.exp(uni / n), bigram: Math.exp(bi / n) };
}
