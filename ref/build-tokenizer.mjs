// Builds the Llama-2 tokenizer.json (Hugging Face `tokenizers` format) that OpenELM uses, from the
// vocabulary and merges that the MIT-licensed npm package `llama-tokenizer-js` carries, so that nobody
// needs the gated Meta download. Usage: node ref/build-tokenizer.mjs OUT.json
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { LlamaTokenizer } from "llama-tokenizer-js";

const out = process.argv[2];
if (!out) throw new Error("usage: node ref/build-tokenizer.mjs OUT.json");

const llama = new LlamaTokenizer();
const vocab = Object.fromEntries(llama.vocabById.map((token, id) => [token, id]));
// llama-tokenizer-js keys merges as "left right" with priority 1, 2, ...; tokens never contain a space.
const merges = [...llama.merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair.split(" "));

const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
  // SentencePiece semantics: a space is "▁" and the text gets one leading "▁".
  normalizer: {
    type: "Sequence",
    normalizers: [
      { type: "Prepend", prepend: "▁" },
      { type: "Replace", pattern: { String: " " }, content: "▁" },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
  decoder: {
    type: "Sequence",
    decoders: [
      { type: "Replace", pattern: { String: "▁" }, content: " " },
      { type: "ByteFallback" },
      { type: "Fuse" },
      { type: "Strip", content: " ", start: 1, stop: 0 },
    ],
  },
  model: {
    type: "BPE",
    dropout: null,
    unk_token: "<unk>",
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab,
    merges,
  },
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(tokenizer));
console.log(`wrote ${out}: ${llama.vocabById.length} tokens, ${merges.length} merges`);
