// The bundled Llama-2 tokenizer (dist/tokenizer.json, built from llama-tokenizer-js) run by
// @huggingface/tokenizers: tables of text and ids, agreement with llama-tokenizer-js, round trips.
import { readFileSync } from "node:fs";
import { LlamaTokenizer } from "llama-tokenizer-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { textPieces } from "../src/node/text.js";
import { Tokenizer, TextStream } from "../src/tokenizer.js";
import { loadTokenizer } from "../src/load.js";
import { memoryFiles } from "../src/files.js";

const json = JSON.parse(readFileSync(new URL("../dist/tokenizer.json", import.meta.url), "utf8"));
const tokenizer = new Tokenizer(json);
const llama = new LlamaTokenizer();

// Expected ids are those of Meta's Llama-2 SentencePiece model (as published in llama-tokenizer-js's and
// transformers.js's test suites).
const TABLE: [string, number[]][] = [
  ["Hello world!", [1, 15043, 3186, 29991]],
  ["grabbed", [1, 2646, 1327, 287]],
  [" grabbed", [1, 29871, 2646, 1327, 287]],
  ["           grabbed", [1, 9651, 2646, 1327, 287]],
  ["\n", [1, 29871, 13]],
  [" \n", [1, 259, 13]],
  ["	tabs				out here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]],
  ["\n\t\n", [1, 29871, 13, 12, 13]],
  ["ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]],
  ["镇", [1, 29871, 30411]],
  ["🦙", [1, 29871, 243, 162, 169, 156]],
  ["🦙Ꙋ", [1, 29871, 243, 162, 169, 156, 237, 156, 141]],
  ["Ꙋ🦙", [1, 29871, 237, 156, 141, 243, 162, 169, 156]],
  ["The llama (/ˈlɑːmə/; 🦙Spanish pronunciation: [ˈʎama]) (Lama glama) is a domesticated South American camelid, widely used as a meat and pack animal by Andean cultures since the Pre-Columbian era. Llamas are social animals and live with others as a herd. Their wool is soft and contains only a small amount of lanolin.[2] Llamas can learn simple tasks after a few repetitions. When using a pack, they can carry about 25 to 30% of their body weight for 8 to 13 km (5–8 miles).[3] The name llama (in the past also spelled \"lama\" or \"glama\") was adopted by European settlers from native Peruvians.[4] The ancestors of llamas are thought to have originated from the Great Plains of North America about 40 million years ago, and subsequently migrated to South America about three million years ago during the Great American Interchange. By the end of the last ice age (10,000–12,000 years ago), camelids were extinct in North America.[3] As of 2007, there were over seven million llamas and alpacas in South America and over 158,000 llamas and 100,000Ꙋ🦙 alpacas, descended from progenitors imported late in the 20th century, in the United States and Canada.[5] In Aymara mythology, llamas are important beings. The Heavenly Llama is said to drink water from the ocean and urinates as it rains.[6] According to Aymara eschatology, llamas will return to the water springs and lagoons where they come from at the end of time.[6]", [1, 450, 11148, 3304, 20374, 30176, 29880, 30426, 30215, 29885, 30184, 29914, 29936, 29871, 243, 162, 169, 156, 15495, 728, 11504, 11173, 362, 29901, 518, 30176, 31743, 3304, 2314, 313, 29931, 3304, 3144, 3304, 29897, 338, 263, 21849, 630, 4275, 3082, 3949, 295, 333, 29892, 17644, 1304, 408, 263, 27654, 322, 4870, 13019, 491, 1126, 29872, 273, 4185, 1973, 1951, 278, 4721, 29899, 1625, 3774, 713, 3152, 29889, 365, 5288, 294, 526, 5264, 15006, 322, 5735, 411, 4045, 408, 263, 902, 29881, 29889, 11275, 281, 1507, 338, 4964, 322, 3743, 871, 263, 2319, 5253, 310, 10906, 22878, 7226, 29906, 29962, 365, 5288, 294, 508, 5110, 2560, 9595, 1156, 263, 2846, 21159, 2187, 29889, 1932, 773, 263, 4870, 29892, 896, 508, 8677, 1048, 29871, 29906, 29945, 304, 29871, 29941, 29900, 29995, 310, 1009, 3573, 7688, 363, 29871, 29947, 304, 29871, 29896, 29941, 2383, 313, 29945, 29994, 29947, 7800, 467, 29961, 29941, 29962, 450, 1024, 11148, 3304, 313, 262, 278, 4940, 884, 805, 14356, 376, 29880, 3304, 29908, 470, 376, 3820, 3304, 1159, 471, 16356, 491, 7824, 3604, 9306, 515, 7531, 25493, 1403, 550, 7226, 29946, 29962, 450, 19525, 943, 310, 11829, 294, 526, 2714, 304, 505, 3978, 630, 515, 278, 7027, 13494, 1144, 310, 4644, 6813, 1048, 29871, 29946, 29900, 7284, 2440, 8020, 29892, 322, 17602, 9725, 630, 304, 4275, 6813, 1048, 2211, 7284, 2440, 8020, 2645, 278, 7027, 3082, 4124, 3167, 29889, 2648, 278, 1095, 310, 278, 1833, 14890, 5046, 313, 29896, 29900, 29892, 29900, 29900, 29900, 29994, 29896, 29906, 29892, 29900, 29900, 29900, 2440, 8020, 511, 3949, 295, 4841, 892, 1294, 5562, 297, 4644, 6813, 7226, 29941, 29962, 1094, 310, 29871, 29906, 29900, 29900, 29955, 29892, 727, 892, 975, 9881, 7284, 11829, 294, 322, 394, 29886, 562, 294, 297, 4275, 6813, 322, 975, 29871, 29896, 29945, 29947, 29892, 29900, 29900, 29900, 11829, 294, 322, 29871, 29896, 29900, 29900, 29892, 29900, 29900, 29900, 237, 156, 141, 243, 162, 169, 156, 394, 29886, 562, 294, 29892, 5153, 2760, 515, 410, 1885, 17259, 19673, 5683, 297, 278, 29871, 29906, 29900, 386, 6462, 29892, 297, 278, 3303, 3900, 322, 7400, 7226, 29945, 29962, 512, 319, 962, 2518, 22082, 3002, 29892, 11829, 294, 526, 4100, 367, 886, 29889, 450, 22977, 368, 365, 29880, 3304, 338, 1497, 304, 13748, 4094, 515, 278, 23474, 322, 5065, 262, 1078, 408, 372, 1153, 1144, 7226, 29953, 29962, 7579, 304, 319, 962, 2518, 831, 13496, 3002, 29892, 11829, 294, 674, 736, 304, 278, 4094, 7689, 886, 322, 301, 4425, 787, 988, 896, 2041, 515, 472, 278, 1095, 310, 931, 7226, 29953, 29962]],
  // the empty string is BOS alone, as SentencePiece with add_bos gives (llama-tokenizer-js returns [])
  ["", [1]],
];

// A varied corpus: ASCII, accents, CJK, emoji, byte fallback, spaces at either end and repeated, newlines.
const CORPUS = [
  "Once upon a time", "naïve café résumé Øresund", "Straße und Größe", "日本語のテキストと中文", "한국어 문장",
  "emoji 🦙🎉👩‍👩‍👧 ok", "Zalgo: Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "  two leading", "trailing   ", "many     inner   spaces",
  "line one\nline two\r\nline three\n\n", "\t\tindented\tcode();", "x = 1 + 2 * (3 / 4) ** 5 // 6", "🙂", " ", "    ",
  "😀😃😄😁😆😅😂🤣", "mixed 123 numbers 4567890 and 3.14159", "URL https://example.com/a?b=c&d=e#f", "ʻOkina and ʻokina", "Ελληνικά κείμενα", "Русский текст",
  "\u0000 control \u0007 chars \u001b[0m", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝓂𝒶𝓉𝒽", "A\u00a0non-breaking space", "ﬁ ligature and Å vs Å",
];

describe("Llama-2 tokenizer", () => {
  it.each(TABLE)("%j", (text, ids) => {
    expect(tokenizer.encode(text)).toEqual(ids);
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it.each(CORPUS)("same ids as llama-tokenizer-js and a lossless round trip: %j", (text) => {
    const ids = tokenizer.encode(text);
    expect(ids).toEqual(llama.encode(text));
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it("encodes without BOS on request", () => {
    expect(tokenizer.encode("Hello world!", false)).toEqual([15043, 3186, 29991]);
  });

  it("a model folder's tokenizer.json takes precedence over the bundled one", async () => {
    const own = structuredClone(json);
    own.model.vocab = { ...own.model.vocab, "▁Hello": 7 }; // a visibly different tokenizer
    const fromFolder = await loadTokenizer(memoryFiles({ "tokenizer.json": JSON.stringify(own) }), async () => json);
    expect(fromFolder.encode("Hello")).toEqual([1, 7]);
    const bundled = await loadTokenizer(memoryFiles({}), async () => json);
    expect(bundled.encode("Hello")).toEqual([1, 15043]);
  });
});

describe("tokenizer files are checked, and problems named", () => {
  const load = (files: Record<string, string>) => loadTokenizer(memoryFiles(files, "DIR"), async () => json);
  it.each([
    ["empty", "", /DIR\/tokenizer.json: not valid JSON: the file is empty/],
    ["not JSON", "{\"model\":", /DIR\/tokenizer.json: not valid JSON/],
    ["not an object", "[1, 2]", /DIR\/tokenizer.json: expected a JSON object, found an array/],
    ["null", "null", /found null/],
    ["without a model", "{}", /DIR\/tokenizer.json: no "model" object/],
    ["without a vocabulary", JSON.stringify({ model: { type: "BPE" } }), /"model.vocab" is missing or of the wrong kind/],
    ["with an empty vocabulary", JSON.stringify({ model: { type: "BPE", vocab: {}, merges: [] } }), /"model.vocab" is empty/],
    ["of an unknown model type", JSON.stringify({ model: { type: "WordLevel", vocab: { a: 0 } } }), /model type "WordLevel" is not supported/],
    ["with a negative id", JSON.stringify({ model: { type: "BPE", vocab: { a: -4 }, merges: [] } }), /a token has id -4, not a non-negative integer/],
  ])("a tokenizer.json %s is an error naming the file, never a fallback", async (_, text, message) => {
    await expect(load({ "tokenizer.json": text })).rejects.toThrow(message);
  });

  it("a bad tokenizer_config.json is named", async () => {
    await expect(load({ "tokenizer_config.json": "{oops" })).rejects.toThrow(/^tokenizer_config.json: not valid JSON at line 1, column 2$/);
    await expect(load({ "tokenizer_config.json": JSON.stringify({ chat_template: "{% if %}" }) })).rejects.toThrow(/^tokenizer_config.json field chat_template: /);
    const named = await load({ "tokenizer_config.json": JSON.stringify({ chat_template: [{ name: "tool_use", template: "x" }, { name: "default", template: "{{ 'hi' }}" }] }) });
    expect(named.chatTemplate).toBe("{{ 'hi' }}");
  });

  it("ids beyond the model's vocabulary: the tokenizer and the model disagree, with both sizes", () => {
    expect(tokenizer.checkIds([1, 511], 512)).toEqual([1, 511]);
    expect(() => tokenizer.checkIds([1, 15043], 512)).toThrow("the tokenizer and the model disagree: tokenizer.json has 32000 tokens and gave id 15043, but the model's vocab_size is 512");
  });
});

describe("long texts in pieces", () => {
  const tmp = mkdtempSync(join(tmpdir(), "openelm-pieces-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const word = fc.constantFrom("llama", "the", "a", "Ꙋ", "🦙", "é", ",", "42", "\t", "don't");
  const separator = fc.constantFrom(" ", " ", " ", "  ", "\n", "\n\n", " \n", "\n ");
  const text = fc.array(fc.tuple(word, separator), { minLength: 1, maxLength: 80 }).map((ws) => ws.map(([w, s]) => w + s).join(""));

  it("a text read in pieces (cut after newlines or before spaces) encodes to the ids of the whole (fast-check)", async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(text, fc.integer({ min: 8, max: 64 }), async (t, pieceBytes) => {
      const file = join(tmp, `t${n++}.txt`);
      writeFileSync(file, t);
      const pieces: string[] = [];
      for await (const p of textPieces(file, pieceBytes)) pieces.push(p.text);
      expect(pieces.join("")).toBe(t);
      // every cut is after a newline or before a single space between words (else it was a forced cut: skip)
      fc.pre(pieces.slice(0, -1).every((p, i) => p.endsWith("\n") || (/[^ ]$/.test(p) && /^ [^ ]/.test(pieces[i + 1]!))));
      const ids = pieces.flatMap((p, i) => (i === 0 ? tokenizer.encode(p) : tokenizer.encodeContinuation(p)));
      expect(ids).toEqual(tokenizer.encode(t));
    }), { numRuns: 300 });
  });

  it("a file that is not UTF-8 is named", async () => {
    const file = join(tmp, "latin1.txt");
    writeFileSync(file, Buffer.from([0x61, 0x62, 0xe9, 0x0a]));
    await expect((async () => {
      for await (const _ of textPieces(file));
    })()).rejects.toThrow(/latin1.txt: not UTF-8 text/);
  });
});

describe("TextStream", () => {
  it("yields deltas that join to the decoded text, keep word-initial spaces and never split a character", () => {
    const text = "Once upon 🦙 a naïve 日本 time";
    const ids = tokenizer.encode(text, false); // "▁Once", "▁upon", ...
    const stream = new TextStream(tokenizer, 1576 /* any preceding token */);
    const deltas = ids.map((id) => stream.push(id));
    deltas.push(stream.flush());
    expect(deltas.join("")).toBe(" " + text); // after a preceding token, "▁Once" is " Once"
    expect(deltas.some((d) => d.includes("\uFFFD"))).toBe(false);
    // 🦙 is four byte tokens: nothing comes out until the last of them
    const llamaStart = ids.indexOf(243);
    expect(deltas.slice(llamaStart, llamaStart + 3)).toEqual(["", "", ""]);
    expect(deltas[llamaStart + 3]).toBe("🦙");
  });
});
