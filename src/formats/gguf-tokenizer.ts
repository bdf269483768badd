// OpenELM's Llama-2 tokenizer as GGUF stores it (tokenizer.ggml.*: SentencePiece pieces with scores and
// types, llama.cpp's "llama" model) and as Hugging Face tokenizers runs it (tokenizer.json: BPE with merges
// and byte fallback), in both directions. A SentencePiece BPE model merges the pair whose result has the
// highest score; the same tokenization in tokenizer.json is the list of merges in that order.
import type { GGUFValue, TypedValue } from "./gguf.js";

/** Token types as gguf.h numbers them. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export class TokenizerFormatError extends Error {
  override name = "TokenizerFormatError";
}

interface Special {
  bos: number;
  eos: number;
  unk: number;
  addBos: boolean;
}

/** A Llama-style tokenizer.json (SentencePiece semantics: "▁" for spaces, one prepended) from a vocabulary and merges. */
export function llamaTokenizerJson(tokens: string[], merges: [string, string][], types: number[], s: Special): object {
  const vocab = Object.fromEntries(tokens.map((t, id) => [t, id]));
  const added = tokens.flatMap((content, id) => types[id] === TOKEN_TYPE.control || types[id] === TOKEN_TYPE.unknown || types[id] === TOKEN_TYPE.userDefined
    ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] !== TOKEN_TYPE.userDefined }] : []);
  const bos = tokens[s.bos]!;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: s.addBos ? {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [s.bos], tokens: [bos] } },
    } : null,
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE", dropout: null, unk_token: tokens[s.unk], continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges,
    },
  };
}

/**
 * The merges of a SentencePiece BPE vocabulary: every split of a normal piece into two normal pieces, the
 * pieces of higher score first (then by id), as Hugging Face's converters derive them.
 */
export function mergesFromScores(tokens: string[], scores: ArrayLike<number>, types: ArrayLike<number>): [string, string][] {
  const id = new Map<string, number>();
  tokens.forEach((t, i) => types[i] === TOKEN_TYPE.normal && id.set(t, i));
  const found: { left: string; right: string; score: number; order: [number, number, number] }[] = [];
  tokens.forEach((t, i) => {
    if (types[i] !== TOKEN_TYPE.normal) return;
    const chars = Array.from(t);
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join(""), right = chars.slice(cut).join("");
      if (id.has(left) && id.has(right)) found.push({ left, right, score: scores[i]!, order: [i, id.get(left)!, id.get(right)!] });
    }
  });
  found.sort((a, b) => b.score - a.score || a.order[0] - b.order[0] || a.order[1] - b.order[1] || a.order[2] - b.order[2]);
  return found.map((m) => [m.left, m.right]);
}

const isStrings = (v: GGUFValue | undefined): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
const isNumbers = (v: GGUFValue | undefined): v is number[] => Array.isArray(v) && v.every((x) => typeof x === "number");

/** tokenizer.json for the tokenizer.ggml.* metadata of a GGUF file (llama.cpp's "llama" SentencePiece model). */
export function tokenizerFromGGUF(meta: Map<string, GGUFValue>, file: string): object {
  const fail = (msg: string) => new TokenizerFormatError(`${file}: ${msg}`);
  const model = meta.get("tokenizer.ggml.model");
  if (model === undefined) throw fail("no tokenizer.ggml.model: the file carries no tokenizer");
  if (model !== "llama") throw fail(`tokenizer.ggml.model is ${JSON.stringify(model)}; openelm reads the "llama" (SentencePiece) tokenizer OpenELM uses`);
  const tokens = meta.get("tokenizer.ggml.tokens"), scores = meta.get("tokenizer.ggml.scores"), types = meta.get("tokenizer.ggml.token_type");
  if (!isStrings(tokens) || tokens.length === 0) throw fail("tokenizer.ggml.tokens is missing or not a list of strings");
  if (!isNumbers(scores) || scores.length !== tokens.length) throw fail(`tokenizer.ggml.scores must hold one number per token (${tokens.length})`);
  if (!isNumbers(types) || types.length !== tokens.length || !types.every((t) => t >= 1 && t <= 6)) throw fail(`tokenizer.ggml.token_type must hold one type (1 to 6) per token (${tokens.length})`);
  const id = (key: string, fallback: number) => {
    const v = meta.get(key) ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= tokens.length) throw fail(`${key} is ${String(v)}, not a token id below ${tokens.length}`);
    return v;
  };
  const addBos = meta.get("tokenizer.ggml.add_bos_token") ?? true;
  if (typeof addBos !== "boolean") throw fail("tokenizer.ggml.add_bos_token is not a bool");
  if (new Set(tokens).size !== tokens.length) throw fail("tokenizer.ggml.tokens has a token twice");
  return llamaTokenizerJson(tokens, mergesFromScores(tokens, scores, types), types, {
    bos: id("tokenizer.ggml.bos_token_id", 1), eos: id("tokenizer.ggml.eos_token_id", 2), unk: id("tokenizer.ggml.unknown_token_id", 0), addBos,
  });
}

/**
 * tokenizer.ggml.* metadata for a Llama-style tokenizer.json: each piece's score is minus the rank of the
 * first merge that makes it (what orders the merges), so llama.cpp's SentencePiece tokenizer merges as the
 * merges list does; pieces no merge makes, and special and byte tokens, follow. llama.cpp needs exactly one
 * token per row of the embeddings: a larger tokenizer is cut to `vocabSize`, a smaller one padded with unused tokens.
 */
export function ggufTokenizer(json: Record<string, unknown>, ids: { bos: number; eos: number }, vocabSize: number, chatTemplate?: string): [string, TypedValue][] {
  const model = json.model as { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; unk_token?: string } | undefined;
  if (model?.type !== "BPE" || !model.vocab || !model.merges) throw new TokenizerFormatError("only a BPE tokenizer.json (the Llama-2 kind OpenELM uses) can be written as a GGUF tokenizer");
  const tokens: string[] = [];
  for (const [t, i] of Object.entries(model.vocab)) tokens[i] = t;
  if (tokens.length !== Object.keys(model.vocab).length || tokens.some((t) => t === undefined)) throw new TokenizerFormatError("tokenizer.json's vocabulary ids are not 0..n-1");
  const special = new Set(((json.added_tokens ?? []) as { id: number; special?: boolean }[]).filter((t) => t.special).map((t) => t.id));
  const rank = new Map<string, number>();
  model.merges.forEach((m, r) => {
    const [a, b] = typeof m === "string" ? m.split(" ") : m;
    if (!rank.has(a! + b!)) rank.set(a! + b!, r);
  });
  tokens.length = Math.min(tokens.length, vocabSize);
  for (let i = tokens.length; i < vocabSize; i++) tokens[i] = `<unused${i}>`;
  const types = tokens.map((t, i) => (i === model.vocab![model.unk_token ?? ""] ? TOKEN_TYPE.unknown : special.has(i) ? TOKEN_TYPE.control
    : t === `<unused${i}>` && model.vocab![t] === undefined ? TOKEN_TYPE.unused : /^<0x[0-9A-F]{2}>$/.test(t) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal));
  const scores = tokens.map((t, i) => (types[i] !== TOKEN_TYPE.normal ? 0 : -(rank.get(t) ?? model.merges!.length + i)));
  const out: [string, TypedValue][] = [
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "array", of: "string", value: tokens }],
    ["tokenizer.ggml.scores", { type: "array", of: "f32", value: scores }],
    ["tokenizer.ggml.token_type", { type: "array", of: "i32", value: types }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: ids.bos }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: ids.eos }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: model.vocab[model.unk_token ?? "<unk>"] ?? 0 }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];
  if (chatTemplate !== undefined) out.push(["tokenizer.chat_template", { type: "string", value: chatTemplate }]);
  return out;
}
