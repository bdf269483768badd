// Evaluation: log-likelihoods against the reference logits, the harness's prompts for each task, a
// synthetic task with known answers, shared-prefix scoring, perplexity, and input errors.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { evaluate, meanStderr, scoreRequest } from "../src/eval/evaluate.js";
import { Scorer, encodePair } from "../src/eval/loglikelihood.js";
import { Divergence, klDivergence } from "../src/eval/divergence.js";
import { StridedPerplexity, perplexity } from "../src/eval/perplexity.js";
import { TASKS, TaskDataError, hellaswagPreprocess, parseDocument, readTask } from "../src/eval/tasks.js";
import { loadTokenizerFromFolder } from "../src/node/index.js";
import type { Tokenizer } from "../src/tokenizer.js";
import { MODELS, ORACLE, ROOT, loadOracle, oracleCases } from "./helpers/oracle.js";

/** log-softmax(row)[id] in float64. */
function logSoftmax(row: Float32Array, id: number): number {
  const max = Math.max(...row);
  return row[id]! - max - Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
}

let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizerFromFolder(join(ORACLE, "elm-tiny-32k"));
});

describe("log-likelihoods equal the log-softmax of the reference logits", () => {
  it.each(MODELS)("%s", async (name) => {
    const model = await loadOracle(name);
    const scorer = new Scorer(model, tokenizer);
    for (const c of oracleCases(name).filter((c) => c.ids.length >= 3)) {
      const V = model.config.vocabSize, split = Math.floor(c.ids.length / 2);
      const [s] = scorer.scoreIds(c.ids.slice(0, split), [c.ids.slice(split)]);
      const want = c.ids.slice(split).map((id, i) => logSoftmax(c.logits.subarray((split + i - 1) * V, (split + i) * V), id));
      s!.tokenLogprobs.forEach((lp, i) => expect(lp).toBeCloseTo(want[i]!, 3));
      expect(s!.logprob).toBeCloseTo(want.reduce((a, b) => a + b, 0), 3);
      // greedy: every continuation token is the argmax of the reference row before it
      const greedy = c.ids.slice(split).every((id, i) => {
        const row = c.logits.subarray((split + i - 1) * V, (split + i) * V);
        return row.indexOf(Math.max(...row)) === id;
      });
      expect(s!.isGreedy).toBe(greedy);
    }
  });

  it("several continuations sharing the context's cache score as each would from scratch", async () => {
    const model = await loadOracle("elm-tiny-32k"), scorer = new Scorer(model, tokenizer);
    const conts = [" a llama.", " two alpacas and a vicuña", " 🦙", " x"];
    const shared = scorer.score("The animal in the field is", conts);
    conts.forEach((c, i) => {
      const alone = scorer.score("The animal in the field is", [c])[0]!;
      expect(shared[i]!.logprob).toBeCloseTo(alone.logprob, 4);
      expect(shared[i]!.tokens).toBe(alone.tokens);
    });
  });
});

describe("the harness's tokenization of (context, continuation)", () => {
  it("trailing spaces of the context move to the continuation; continuation tokens come from the joint encoding", () => {
    const a = encodePair(tokenizer, "Question: What is 2+2?\nAnswer: ", "4");
    const b = encodePair(tokenizer, "Question: What is 2+2?\nAnswer:", " 4");
    expect(a).toEqual(b);
    expect(a.context[0]).toBe(1); // BOS
    expect(a.continuation).toEqual(tokenizer.encode("Question: What is 2+2?\nAnswer: 4").slice(a.context.length));
    expect(encodePair(tokenizer, "", "Hello")).toEqual({ context: [1], continuation: [15043] });
  });
});

describe("each task builds the harness's prompts", () => {
  const one = (task: string, doc: object) => readTask(task, JSON.stringify(doc))[0]!;

  it("arc_easy / arc_challenge", () => {
    const r = one("arc_challenge", { id: "x", question: "Which is a gas?", choices: { text: ["ice", "steam", "rock"], label: ["A", "B", "C"] }, answerKey: "B" });
    expect(r).toEqual({ contexts: Array(3).fill("Question: Which is a gas?\nAnswer:"), continuations: [" ice", " steam", " rock"], choices: ["ice", "steam", "rock"], gold: 1 });
    expect(one("arc_easy", { question: "Q", choices: { text: ["a", "b"], label: ["1", "2"] }, answerKey: "2" }).gold).toBe(1);
  });

  it("boolq", () => {
    const r = one("boolq", { passage: "Llamas are camelids.", question: "is a llama a camelid", label: 1, idx: 0 });
    expect(r).toEqual({ contexts: Array(2).fill("Llamas are camelids.\nQuestion: is a llama a camelid?\nAnswer:"), continuations: [" no", " yes"], choices: ["no", "yes"], gold: 1 });
  });

  it("hellaswag, with its text cleanup and Python's capitalize", () => {
    const r = one("hellaswag", {
      activity_label: "Making a cake", ctx_a: "A woman stands in a kitchen.", ctx_b: "SHE [header] Mixes flour",
      endings: ["and  eggs [step] together.", " pours it [title] Bake"], label: "0",
    });
    expect(r.contexts[0]).toBe("Making a cake: A woman stands in a kitchen. She mixes flour");
    expect(r.continuations).toEqual([" and eggs together.", " pours it. Bake"]);
    expect(r.gold).toBe(0);
    expect(hellaswagPreprocess(" a [title] b  [x]c ")).toBe("a. b c");
  });

  it("piqa", () => {
    expect(one("piqa", { goal: "Open a jar", sol1: "Twist the lid.", sol2: "Eat the lid.", label: 0 })).toEqual({
      contexts: Array(2).fill("Question: Open a jar\nAnswer:"), continuations: [" Twist the lid.", " Eat the lid."], choices: ["Twist the lid.", "Eat the lid."], gold: 0,
    });
  });

  it("sciq, support left-stripped, the correct answer last", () => {
    const r = one("sciq", { question: "What do plants make?", support: "  Plants make sugar.", distractor1: "salt", distractor2: "iron", distractor3: "gold", correct_answer: "sugar" });
    expect(r.contexts[0]).toBe("Plants make sugar.\nQuestion: What do plants make?\nAnswer:");
    expect(r.continuations).toEqual([" salt", " iron", " gold", " sugar"]);
    expect(r.gold).toBe(3);
  });

  it("winogrande: the option fills the blank in the context, and only the rest is scored", () => {
    const r = one("winogrande", { sentence: "The trophy didn't fit in the case because _ was too big.", option1: "the trophy", option2: "the case", answer: "1" });
    expect(r.contexts).toEqual(["The trophy didn't fit in the case because the trophy", "The trophy didn't fit in the case because the case"]);
    expect(r.continuations).toEqual([" was too big.", " was too big."]);
    expect(r.gold).toBe(0);
  });

  it.each([
    ["hellaswag", "{\"ctx_a\": \"x\"}\n", /data line 1: missing field "activity_label" \(hellaswag documents have: /],
    ["piqa", "\n{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n{\"goal\": \"g\", \"sol1\": \"a\", \"label\": 1}", /data line 3: missing field "sol2"/],
    ["boolq", "{\"passage\": \"p\", \"question\": 3, \"label\": 1}", /data line 1: field "question" has an unexpected value 3/],
    ["arc_easy", "{\"question\": \"q\", \"choices\": {\"text\": [\"a\"], \"label\": [\"A\"]}, \"answerKey\": \"E\"}", /data line 1: field "answerKey" is "E", not one of choices.label \["A"\]/],
    ["sciq", "not json", /data line 1: not valid JSON/],
    ["squad", "{}", /unknown task "squad"/],
  ])("%s: bad input names the line and field", (task, jsonl, message) => {
    expect(() => readTask(task, jsonl)).toThrow(TaskDataError);
    expect(() => readTask(task, jsonl)).toThrow(message);
  });

  it("any line, any JSON in the task's fields: a well-formed request or a TaskDataError naming the line (fast-check)", () => {
    const value = fc.oneof(fc.jsonValue(), fc.string(), fc.integer({ min: -3, max: 5 }), fc.constantFrom("1", "2", "A", "B"),
      fc.array(fc.string(), { maxLength: 5 }), fc.record({ text: fc.array(fc.string(), { maxLength: 5 }), label: fc.array(fc.constantFrom("A", "B", "C"), { maxLength: 5 }) }));
    // a valid document of each task, then with one field replaced by anything or removed; other JSON; other text
    const VALID: Record<string, Record<string, unknown>> = {
      arc_easy: { question: "Q", choices: { text: ["a", "b"], label: ["A", "B"] }, answerKey: "B" },
      arc_challenge: { question: "Q", choices: { text: ["a", "b", "c"], label: ["1", "2", "3"] }, answerKey: "3" },
      boolq: { passage: "p", question: "q", label: 1 },
      hellaswag: { activity_label: "a", ctx_a: "b", ctx_b: "c", endings: ["d", "e"], label: "1" },
      piqa: { goal: "g", sol1: "a", sol2: "b", label: 0 },
      sciq: { question: "q", support: "s", distractor1: "a", distractor2: "b", distractor3: "c", correct_answer: "d" },
      winogrande: { sentence: "x _ y", option1: "a", option2: "b", answer: "2" },
    };
    expect(Object.keys(VALID).sort()).toEqual(Object.keys(TASKS).sort());
    const doc = (task: string) => fc.tuple(fc.option(fc.tuple(fc.constantFrom(...Object.keys(VALID[task]!)), fc.option(value))), fc.constant(VALID[task]!))
      .map(([change, valid]) => {
        const d: Record<string, unknown> = { ...valid };
        if (change) change[1] === null ? delete d[change[0]] : (d[change[0]] = change[1]);
        return JSON.stringify(d);
      });
    const line = (task: string) => fc.oneof({ arbitrary: doc(task), weight: 4 }, fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)));
    let built = 0;
    fc.assert(fc.property(fc.constantFrom(...Object.keys(TASKS)).chain((task) => fc.tuple(fc.constant(task), line(task))), ([task, text]) => {
      let r;
      try {
        r = parseDocument(task, text, "data line 7");
      } catch (e) {
        expect(e).toBeInstanceOf(TaskDataError);
        expect((e as Error).message).toMatch(/^data line 7: /);
        return;
      }
      if (r === undefined) {
        expect(text.trim()).toBe(""); // blank lines are skipped
        return;
      }
      expect(r.choices.length).toBeGreaterThan(0);
      expect(Number.isInteger(r.gold) && r.gold >= 0 && r.gold < r.choices.length).toBe(true);
      for (const s of [...r.contexts, ...r.continuations, ...r.choices]) expect(typeof s).toBe("string");
      expect(r.contexts.length).toBe(r.continuations.length);
      built++;
    }), { numRuns: 2000 });
    expect(built).toBeGreaterThan(0); // some random documents are valid ones
  });
});

describe("accuracy", () => {
  it("a synthetic task whose right answers are known: the model's own most likely next token", async () => {
    const model = await loadOracle("elm-tiny-32k"), scorer = new Scorer(model, tokenizer);
    const contexts = ["Once upon a time", "The llama", "In the beginning there was", "Hello world"];
    const requests = contexts.map((context, i) => {
      // the four most likely next tokens whose text, appended to the context, encodes back to that one token:
      // as one-token continuations their log-likelihoods rank as their logits do, so the first is right
      const logits = model.forward(model.newCache(), tokenizer.encode(context));
      const ranked = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
      const text = (id: number) => tokenizer.decode([29871, id]);
      const [best, ...wrong] = ranked.filter((id) => encodePair(tokenizer, context, text(id)).continuation.join() === String(id)).slice(0, 4) as [number, ...number[]];
      const tokens = [...wrong.slice(0, i % 4), best, ...wrong.slice(i % 4)].map(text);
      return { contexts: tokens.map(() => context), continuations: tokens, choices: tokens, gold: i % 4 };
    });
    // each continuation must be exactly one token after the context for the answer to be known
    for (const r of requests) for (const c of r.continuations) expect(encodePair(tokenizer, r.contexts[0]!, c).continuation).toHaveLength(1);
    const result = evaluate(scorer, requests);
    expect(result).toMatchObject({ n: 4, acc: 1, acc_stderr: 0 });
    expect(scoreRequest(scorer, requests[0]!).indexOf(Math.max(...scoreRequest(scorer, requests[0]!)))).toBe(0);
  });

  it("standard error of the mean as the harness computes it", () => {
    expect(meanStderr([1, 0, 1, 1])).toBeCloseTo(Math.sqrt(0.25 / 4), 12);
  });
});

describe("perplexity", () => {
  it("one window: exp of the mean negative log-likelihood under the reference logits", async () => {
    const model = await loadOracle("elm-tiny-32k");
    const [, c] = oracleCases("elm-tiny-32k");
    const V = model.config.vocabSize;
    const nll = -c!.ids.slice(1).reduce((a, id, i) => a + logSoftmax(c!.logits.subarray(i * V, (i + 1) * V), id), 0);
    const r = perplexity(model, c!.ids);
    expect(r.tokens).toBe(c!.ids.length - 1);
    expect(r.nll).toBeCloseTo(nll, 2);
    expect(r.ppl).toBeCloseTo(Math.exp(nll / r.tokens), 2);
  });

  it("sliding windows score every token once; stride = window drops each later window's first token", async () => {
    const model = await loadOracle("elm-tiny-32k");
    const ids = tokenizer.encode("The llama is a domesticated South American camelid, widely used as a meat and pack animal. ".repeat(4));
    const full = perplexity(model, ids);
    const strided = perplexity(model, ids, { context: 32, stride: 8 });
    expect(strided.tokens).toBe(ids.length - 1);
    expect(strided.nll).toBeGreaterThan(full.nll * 0.5); // less context per token, a different (here larger) nll
    const disjoint = perplexity(model, ids, { context: 32, stride: 32 });
    expect(disjoint.tokens).toBe(ids.length - 1 - (Math.ceil(ids.length / 32) - 1));
  });

  it("tokens fed in pieces of any size give exactly the result of the whole list, holding only a window (fast-check)", async () => {
    const model = await loadOracle("elm-tiny-32k");
    const ids = tokenizer.encode("The llama is a domesticated South American camelid. ".repeat(6));
    const whole = { 8: perplexity(model, ids, { context: 24, stride: 8 }), 24: perplexity(model, ids, { context: 24, stride: 24 }) };
    await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }), fc.constantFrom(8 as const, 24 as const), async (sizes, stride) => {
      const p = new StridedPerplexity(model, { context: 24, stride });
      let at = 0;
      for (let i = 0; at < ids.length; i++) {
        const n = sizes[i % sizes.length]!;
        p.push(ids.slice(at, at + n));
        at += n;
        expect((p as unknown as { buffer: number[] }).buffer.length).toBeLessThan(24 + 40);
      }
      expect(p.finish()).toEqual(whole[stride]);
    }), { numRuns: 40 });
  });
});

describe("divergence from a base model (perplexity --kl-base)", () => {
  it("KL divergence of two rows: Σ p log(p/q), zero for equal distributions and for logits shifted by a constant", () => {
    const p = new Float32Array([1, 2, 3]), q = new Float32Array([3, 2, 1]);
    const lz = (r: Float32Array) => Math.log(r.reduce((a, x) => a + Math.exp(x), 0));
    const P = Array.from(p, (x) => Math.exp(x - lz(p))), Q = Array.from(q, (x) => Math.exp(x - lz(q)));
    expect(klDivergence(p, lz(p), q, lz(q))).toBeCloseTo(P.reduce((a, pi, i) => a + pi * Math.log(pi / Q[i]!), 0), 6);
    expect(klDivergence(p, lz(p), p.map((x) => x + 5), lz(p) + 5)).toBeCloseTo(0, 12);
  });

  it("a model against itself: no divergence, the same top token everywhere, the perplexity of perplexity()", async () => {
    const model = await loadOracle("elm-tiny-32k"), same = await loadOracle("elm-tiny-32k");
    const ids = tokenizer.encode("The llama is a domesticated South American camelid. ".repeat(3));
    const d = new Divergence(model, same, { context: 16, stride: 8 });
    d.push(ids);
    const r = d.finish(), p = perplexity(model, ids, { context: 16, stride: 8 });
    expect([r.tokens, r.kl.max, r.sameTop.fraction, r.lnPplRatio]).toEqual([p.tokens, 0, 1, 0]);
    expect(r.ppl).toBeCloseTo(p.ppl, 6);
  });

  it("q8_0 weights stay closer to the f32 model than q4_0 weights", async () => {
    const base = await loadOracle("elm-tiny-32k", { dtype: "f32" });
    const ids = tokenizer.encode("The llama is a domesticated South American camelid, widely used as a meat and pack animal. ".repeat(2));
    const results = [];
    for (const dtype of ["q8_0", "q4_0"] as const) {
      const d = new Divergence(await loadOracle("elm-tiny-32k", { dtype }), base, { context: 32 });
      d.push(ids);
      results.push(d.finish());
    }
    const [q8, q4] = results;
    expect(q8!.kl.mean).toBeGreaterThan(0);
    expect(q8!.kl.mean * 10).toBeLessThan(q4!.kl.mean); // 8 bits against 4: measured 0.0007 against 0.09 nats
    expect(q8!.sameTop.fraction).toBeGreaterThan(q4!.sameTop.fraction);
  });
});

describe("command line", () => {
  const tmp = mkdtempSync(join(tmpdir(), "openelm-eval-"));
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), ...args], { encoding: "utf8" });

  it("openelm eval --json prints task, n, acc, acc_norm and their standard errors", () => {
    const data = join(tmp, "piqa.jsonl");
    writeFileSync(data, [
      { goal: "Open a jar", sol1: "Twist the lid.", sol2: "Eat the lid.", label: 0 },
      { goal: "Dry a towel", sol1: "Soak it.", sol2: "Hang it in the sun.", label: 1 },
      { goal: "Cool tea", sol1: "Wait.", sol2: "Boil it.", label: 0 },
    ].map((d) => JSON.stringify(d)).join("\n"));
    const r = cli("eval", "--task", "piqa", "--data", data, "--limit", "2", "--json");
    expect(r.stderr).toBe("");
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ task: "piqa", n: 2 });
    for (const k of ["acc", "acc_stderr", "acc_norm", "acc_norm_stderr"]) expect(typeof j[k]).toBe("number");
    const table = cli("eval", "--task", "piqa", "--data", data);
    expect(table.stdout).toMatch(/piqa\s+3\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+/);
    const bad = cli("eval", "--task", "piqa", "--data", join(ROOT, "package.json"));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/package.json line 1: not valid JSON/);
  });

  it("openelm perplexity --json prints tokens, nll, ppl and bits per byte", () => {
    const file = join(tmp, "text.txt");
    writeFileSync(file, "Once upon a time, there was a llama. ".repeat(20));
    const j = JSON.parse(cli("perplexity", "--file", file, "--context", "64", "--stride", "32", "--json").stdout);
    expect(j).toMatchObject({ context: 64, stride: 32, bytes: 740 });
    expect(j.ppl).toBeCloseTo(Math.exp(j.nll / j.tokens), 6);
    expect(j.bits_per_byte).toBeCloseTo(j.nll / Math.LN2 / 740, 9);
    expect(cli("perplexity", "--file", join(tmp, "missing.txt")).stderr).toMatch(/cannot read .*missing.txt: no such file/);
  });

  it("openelm perplexity --kl-base: against the same weights in another type, or against another model file", () => {
    const file = join(tmp, "text.txt"), model = join(ORACLE, "elm-tiny-32k");
    writeFileSync(file, "Once upon a time, there was a llama. ".repeat(20));
    const run = (...args: string[]) => JSON.parse(cli("perplexity", "--model", model, "--file", file, "--context", "64", "--json", ...args).stdout);
    const q8 = run("--dtype", "q8_0", "--kl-base", "f32"), plain = run("--dtype", "q8_0");
    expect(q8).toMatchObject({ base: "the same weights as f32", context: 64, tokens: plain.tokens });
    expect(q8.ppl).toBeCloseTo(plain.ppl, 3);
    expect(q8.kl.mean).toBeGreaterThan(0);
    expect(run("--kl-base", model).kl.max).toBe(0); // the folder against itself
    expect(cli("perplexity", "--model", model, "--file", file, "--kl-base", "q9").stderr).toMatch(/--kl-base: "q9" is neither a storage type \(f32, .*\) nor a model folder, .gguf file or hub id/);
  });
});
