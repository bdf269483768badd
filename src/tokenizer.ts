// The Llama-2 tokenizer that OpenELM uses (32000 SentencePiece-BPE tokens with byte fallback), run by
// @huggingface/tokenizers from a tokenizer.json: the bundled one (built by ref/build-tokenizer.mjs)
// or a model folder's own.
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";

export class Tokenizer {
  private readonly tok: HFTokenizer;
  readonly vocabSize: number;
  /** The model folder's chat template (tokenizer_config.json), if it has one. */
  readonly chatTemplate?: string;
  /** Id of the beginning-of-sequence token (<s>). */
  readonly bosId: number;

  constructor(tokenizerJson: object, tokenizerConfig: { chat_template?: unknown } = {}) {
    this.tok = new HFTokenizer(tokenizerJson as never, { add_bos_token: true, ...tokenizerConfig } as never);
    this.vocabSize = Object.keys((tokenizerJson as { model: { vocab: object } }).model.vocab).length;
    if (typeof tokenizerConfig.chat_template === "string") this.chatTemplate = tokenizerConfig.chat_template;
    this.bosId = this.encode("")[0]!;
  }

  /** Token ids of `text`, with the BOS token first unless `bos` is false. */
  encode(text: string, bos = true): number[] {
    return this.tok.encode(text, { add_special_tokens: bos }).ids;
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
