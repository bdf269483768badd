// The Llama-2 tokenizer that OpenELM uses (32000 SentencePiece-BPE tokens with byte fallback), run by
// @huggingface/tokenizers from a tokenizer.json: the bundled one (built by ref/build-tokenizer.mjs)
// or a model folder's own.
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

const MODEL_TYPES = ["BPE", "Unigram", "WordPiece"]; // what @huggingface/tokenizers implements

/** Ids a tokenizer.json can produce (1 + the largest id of its vocabulary and added tokens), or an error naming what is wrong. */
function vocabularySize(json: Record<string, unknown>, file: string): number {
  const model = json.model as { type?: unknown; vocab?: unknown } | undefined;
  if (model === null || typeof model !== "object" || Array.isArray(model)) throw new TokenizerError(`${file}: no "model" object`);
  if (!MODEL_TYPES.includes(model.type as string))
    throw new TokenizerError(`${file}: model type ${JSON.stringify(model.type)?.slice(0, 40)} is not supported (${MODEL_TYPES.join(", ")})`);
  const vocab = model.vocab;
  const ids = model.type === "Unigram"
    ? Array.isArray(vocab) ? vocab.map((_, i) => i) : undefined
    : vocab !== null && typeof vocab === "object" && !Array.isArray(vocab) ? Object.values(vocab) : undefined;
  if (!ids || ids.length === 0) throw new TokenizerError(`${file}: "model.vocab" is ${ids ? "empty" : "missing or of the wrong kind"}`);
  const added = Array.isArray(json.added_tokens) ? json.added_tokens.map((t) => (t as { id?: unknown })?.id) : [];
  let size = 0;
  for (const id of [...ids, ...added]) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) throw new TokenizerError(`${file}: a token has id ${JSON.stringify(id)?.slice(0, 40)}, not a non-negative integer`);
    size = Math.max(size, (id as number) + 1);
  }
  return size;
}

/** The Llama-2 tokenizer of a tokenizer.json (`encode` with BOS, `decode`), with the chat template of tokenizer_config.json. */
export class Tokenizer {
  private readonly tok: HFTokenizer;
  /** Token ids it can produce: 0 .. vocabSize - 1. */
  readonly vocabSize: number;
  /** The model folder's chat template (tokenizer_config.json), if it has one. */
  readonly chatTemplate?: string;
  /** Id of the beginning-of-sequence token (<s>). */
  readonly bosId: number;

  /** `source` names the tokenizer in messages (e.g. "DIR/tokenizer.json"). */
  constructor(tokenizerJson: object, tokenizerConfig: { chat_template?: unknown } = {}, readonly source = "tokenizer.json") {
    if (tokenizerJson === null || typeof tokenizerJson !== "object" || Array.isArray(tokenizerJson)) throw new TokenizerError(`${source}: not a JSON object`);
    this.vocabSize = vocabularySize(tokenizerJson as Record<string, unknown>, source);
    try {
      this.tok = new HFTokenizer(tokenizerJson as never, { add_bos_token: true, ...tokenizerConfig } as never);
      this.bosId = this.encode("")[0]!;
    } catch (e) {
      throw new TokenizerError(`${source}: cannot be used as a tokenizer (${(e as Error).message.slice(0, 200)})`);
    }
    if (typeof tokenizerConfig.chat_template === "string") this.chatTemplate = tokenizerConfig.chat_template;
  }

  /** Token ids of `text`, with the BOS token first unless `bos` is false. */
  encode(text: string, bos = true): number[] {
    return this.tok.encode(text, { add_special_tokens: bos }).ids;
  }

  /**
   * Ids of `text` as they stand in a longer text after a cut the tokenizer never merges across (after a
   * newline, or before a space between words), so that a long text can be encoded in pieces:
   * encode(a) then encodeContinuation(b) gives encode(a + b). Checked by test/tokenizer.test.ts.
   */
  encodeContinuation(text: string): number[] {
    this.newline ??= this.encode("\n", false);
    const ids = this.encode("\n" + text, false), n = this.newline.length;
    if (ids.length < n || this.newline.some((id, i) => ids[i] !== id)) throw new TokenizerError(`${this.source}: a newline does not end a token, so a long text cannot be encoded in pieces`);
    return ids.slice(n);
  }
  private newline?: number[];

  /** Check that ids this tokenizer produced fit a model of `vocabSize` tokens: if not, the two disagree. */
  checkIds(ids: number[], vocabSize: number): number[] {
    const bad = ids.find((id) => id >= vocabSize);
    if (bad !== undefined)
      throw new TokenizerError(`the tokenizer and the model disagree: ${this.source} has ${this.vocabSize} tokens and gave id ${bad}, but the model's vocab_size is ${vocabSize}`);
    return ids;
  }

  /** Text of `ids`; special tokens (<s>, </s>) are dropped. */
  decode(ids: number[]): string {
    return ids.length === 0 ? "" : this.tok.decode(ids, { skip_special_tokens: true });
  }
}

/**
 * Turns a growing list of generated ids into text deltas that never split a UTF-8 character and keep
 * the spaces SentencePiece encodes at word starts (decoding is done after a context token, then cut).
 */
export class TextStream {
  private ids: number[] = [];
  private emitted = 0;
  private prefix: string;

  constructor(private readonly tokenizer: Tokenizer, private contextId = 29871 /* "▁" */) {
    this.prefix = tokenizer.decode([contextId]);
  }

  /** Add one token; returns the new complete text (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    return this.take(false);
  }

  /** Whatever is still held back at the end of generation (an incomplete character decodes as U+FFFD). */
  flush(): string {
    return this.take(true);
  }

  private take(final: boolean): string {
    if (this.ids.length === 0) return "";
    const text = this.tokenizer.decode([this.contextId, ...this.ids]).slice(this.prefix.length);
    // An incomplete UTF-8 sequence decodes to U+FFFD at the end: wait for the rest of its bytes.
    if (!final && text.endsWith("\uFFFD")) return "";
    const delta = text.slice(this.emitted);
    // Everything so far is out and whole: continue after the last token, so each step decodes two tokens.
    this.contextId = this.ids[this.ids.length - 1]!;
    this.prefix = this.tokenizer.decode([this.contextId]);
    this.ids = [];
    this.emitted = 0;
    return delta;
  }
}
