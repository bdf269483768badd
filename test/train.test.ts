// Training (src/train/): the backward pass against PyTorch autograd (for every checkpoint in ref/grads,
// made by ref/grad_reference.py in float64, the loss and every weight's gradient, with the max relative
// error per tensor asserted) and the clear errors of what it cannot train; AdamW, the learning-rate
// schedule and clipping on hand-computed values; and `openelm train` end to end, including an exact resume.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fileSource } from "../src/node/files.js";
import { loadModelFromFolder } from "../src/node/index.js";
import { readTrace } from "../src/trace.js";
import { encodeSafetensors } from "../src/formats/safetensors.js";
import { lossAndGradients } from "../src/train/gradients.js";
import { AdamW, clipGradients, learningRate } from "../src/train/optimizer.js";
import { readState } from "../src/node/commands/train.js";
import { UsageError } from "../src/node/commands/args.js";
import fc from "fast-check";
import { lossCurveSvg } from "../src/train/plot.js";
import { ROOT } from "./helpers/oracle.js";

const CASES = [
  ["elm-tiny-gqa", "ref/oracle/elm-tiny-gqa"], // GQA with 4 groups, QK-norm, tied head
  ["elm-tiny-untied-mha", "ref/oracle/elm-tiny-untied-mha"], // one kv head per query head, no QK-norm, separate lm_head
  ["elm-tiny-fp16", "ref/oracle/elm-tiny-fp16"], // stored in f16, trained in f32
  ["gelu-plain-untied", "ref/synthetic/gelu-plain-untied"], // GELU without GLU
  ["relu-glu-mqa", "ref/synthetic/relu-glu-mqa"], // ReLU with GLU, one kv head, RoPE base 1e5
] as const;

/** The ids and loss that ref/grad_reference.py wrote into the file's metadata. */
function metadata(path: string): { ids: number[]; loss: number } {
  const bytes = readFileSync(path), n = Number(bytes.readBigUInt64LE(0));
  const meta = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")).__metadata__ as { ids: string; loss: string };
  return { ids: meta.ids.split(",").map(Number), loss: Number(meta.loss) };
}

describe("backward pass against PyTorch autograd", () => {
  it.each(CASES)("%s: loss and every weight's gradient", async (name, dir) => {
    const path = join(ROOT, "ref/grads", `${name}.safetensors`);
    const { ids, loss } = metadata(path);
    const expected = await readTrace(await fileSource(path));
    const model = await loadModelFromFolder(join(ROOT, dir), { dtype: "f32" });
    try {
      const ours = lossAndGradients(model, ids);
      expect(Math.abs(ours.loss - loss) / loss).toBeLessThan(1e-6);
      expect([...ours.grads.keys()].sort()).toEqual(Object.keys(expected).sort());
      const rows = Object.entries(expected).map(([tensor, { data }]) => {
        const g = ours.grads.get(tensor)!;
        let err = 0, scale = 0;
        for (let i = 0; i < data.length; i++) {
          err = Math.max(err, Math.abs(g[i]! - data[i]!));
          scale = Math.max(scale, Math.abs(data[i]!));
        }
        return { tensor, maxAbs: scale, relError: err / scale };
      });
      console.log(`${name}: loss ${ours.loss.toFixed(6)} (PyTorch ${loss.toFixed(6)}); worst gradient ${rows.reduce((a, r) => (r.relError > a.relError ? r : a)).tensor} at ${Math.max(...rows.map((r) => r.relError)).toExponential(2)} of its largest value`);
      for (const r of rows) {
        expect(r.maxAbs, r.tensor).toBeGreaterThan(0); // every weight gets some gradient
        expect(r.relError, r.tensor).toBeLessThan(1e-5);
      }
    } finally {
      await model.kernels.close();
    }
  });

  it("says what it cannot train: 16-bit or quantized weights, and a sequence of one token", async () => {
    const model = await loadModelFromFolder(join(ROOT, "ref/oracle/elm-tiny-gqa"), { dtype: "bf16" });
    try {
      expect(() => lossAndGradients(model, [1, 5, 9])).toThrow(/training needs f32 weights, and this model holds bf16/);
      expect(() => lossAndGradients(model, [1])).toThrow(/a sequence of 1 token\(s\) predicts nothing/);
    } finally {
      await model.kernels.close();
    }
  });
});

describe("optimizer", () => {
  it("AdamW: one step by hand (bias-corrected moments; weight decay on matrices only)", () => {
    // g = [0.5, -1]: m̂ = g, v̂ = g², so the step is lr·sign(g); decay multiplies a matrix by 1 − lr·wd = 0.99
    const g = () => new Map([["w", new Float32Array([0.5, -1])], ["n", new Float32Array([0.5, -1])]]);
    const params = new Map([["w", { data: new Float32Array([1, -2]), matrix: true }], ["n", { data: new Float32Array([1, -2]), matrix: false }]]);
    const adam = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    adam.update(params, g(), 0.1);
    expect([...params.get("w")!.data].map((x) => +x.toFixed(6))).toEqual([0.89, -1.88]);
    expect([...params.get("n")!.data].map((x) => +x.toFixed(6))).toEqual([0.9, -1.9]);
    expect(adam.state.step).toBe(1);
    // a second identical gradient: the moments stay g and g², so again a step of lr (0.89·0.99 − 0.1)
    adam.update(params, g(), 0.1);
    expect(+params.get("w")!.data[0]!.toFixed(6)).toBe(0.7811);
  });

  it("learning rate: linear warmup, cosine to the minimum, then flat", () => {
    const s = { lr: 1, minLr: 0.1, warmup: 10, total: 110 };
    expect([5, 10, 60, 110, 200].map((step) => +learningRate(step, s).toFixed(6))).toEqual([0.5, 1, 0.55, 0.1, 0.1]);
  });

  it("clipping by global norm", () => {
    const grads = new Map([["a", new Float32Array([3])], ["b", new Float32Array([4])]]);
    expect(clipGradients(grads, 10)).toBe(5);
    expect([grads.get("a")![0], grads.get("b")![0]]).toEqual([3, 4]);
    expect(clipGradients(grads, 1)).toBe(5);
    expect([grads.get("a")![0], grads.get("b")![0]].map((x) => +x!.toFixed(6))).toEqual([0.6, 0.8]);
  });

  it("the loss curve: one polyline point per step, one per evaluation", () => {
    const svg = lossCurveSvg([{ step: 1, train: 10 }, { step: 2, train: 8, heldOut: 9 }, { step: 3, train: 7 }, { step: 4, train: 6, heldOut: 7 }], "run <1>");
    const lines = [...svg.matchAll(/points="([^"]*)"/g)].map((m) => m[1]!.split(" ").length);
    expect(lines).toEqual([4, 2]);
    expect(svg).toContain("run &lt;1>");
  });
});

describe("openelm train", () => {
  const CLI = join(ROOT, "dist/node/cli.js");
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, "train", ...args], { encoding: "utf8" });
  const dir = mkdtempSync(join(tmpdir(), "openelm-train-"));
  // a tiny OpenELM with the Llama-2 vocabulary, and a small corpus of short documents
  const config = join(dir, "config.json"), corpus = join(dir, "corpus.txt");
  writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(join(ROOT, "ref/oracle/elm-tiny-32k/config.json"), "utf8")), model_dim: 32, num_transformer_layers: 2, head_dim: 8, num_query_heads: [2, 4], num_kv_heads: [1, 2], ffn_multipliers: [1.0, 2.0], ffn_dim_divisor: 16 }));
  const sentences = ["The cat sat on the mat.", "A dog ran in the park.", "The sun is warm today.", "Birds sing in the morning.", "We walk to the river."];
  writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `${sentences[i % 5]} ${sentences[(i * 3) % 5]} ${sentences[(i * 7 + 1) % 5]}`).join("\n\n"));
  const common = ["--config", config, "--corpus", corpus, "--batch", "2", "--seq-len", "16", "--lr", "1e-2", "--eval-every", "5", "--eval-windows", "4", "--seed", "3"];

  it("trains: the loss falls, and the output is a checkpoint every command loads", () => {
    const out = join(dir, "run");
    const r = run(...common, "--steps", "20", "--out", out, "--json");
    expect(r.status, r.stderr).toBe(0);
    for (const f of ["config.json", "model.safetensors", "optimizer.safetensors", "training-state.json", "loss-curve.svg"]) expect(existsSync(join(out, f)), f).toBe(true);
    const history = (JSON.parse(readFileSync(join(out, "training-state.json"), "utf8")) as { history: { step: number; train: number; heldOut?: number }[] }).history;
    expect(history.map((p) => p.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const held = history.filter((p) => p.heldOut !== undefined).map((p) => p.heldOut!);
    expect(held).toHaveLength(4);
    expect(history[0]!.train).toBeGreaterThan(Math.log(32000) - 0.5); // random start: about uniform over 32000 tokens
    expect(held[3]!).toBeLessThan(held[0]!);
    expect(history[19]!.train).toBeLessThan(history[0]!.train - 2);
    const summary = JSON.parse(r.stdout) as { steps: number; held_out_ppl: number; tok_s: number; peak_rss_mb: number };
    expect(summary.steps).toBe(20);
    expect(summary.tok_s).toBeGreaterThan(1); // 40 tokens a step, well under a second each on any machine
    expect(summary.peak_rss_mb).toBeGreaterThan(20);
    expect(summary.held_out_ppl).toBeCloseTo(Math.exp(held[3]!), 6);
    // the end of a run scores every held-out token, beside the n-gram baselines on the same tokens
    const evaluation = JSON.parse(readFileSync(join(out, "evaluation.json"), "utf8")) as { steps: number; held_out_tokens: number; perplexity: number; unigram: number; bigram: number };
    expect(r.stderr).toContain(`held-out perplexity ${evaluation.perplexity.toFixed(1)} (unigram ${evaluation.unigram.toFixed(1)}, bigram ${evaluation.bigram.toFixed(1)} on the same tokens)`);
    expect(evaluation.steps).toBe(20);
    expect(evaluation.held_out_tokens).toBeGreaterThan(16);
    expect(evaluation.perplexity).toBeLessThan(evaluation.unigram); // 20 steps learn more than word frequencies
    expect(evaluation.bigram).toBeLessThan(evaluation.unigram);
    const g = spawnSync(process.execPath, [CLI, "generate", "--model", out, "--prompt", "The cat", "--max-new-tokens", "4"], { encoding: "utf8" });
    expect(g.status, g.stderr).toBe(0);
  });

  it("--until then --resume gives exactly the weights of an uninterrupted run", () => {
    const whole = join(dir, "whole"), parts = join(dir, "parts");
    expect(run(...common, "--steps", "6", "--out", whole).status).toBe(0);
    const first = run(...common, "--steps", "6", "--until", "3", "--out", parts);
    expect(first.status, first.stderr).toBe(0);
    const second = run("--resume", "--out", parts);
    expect(second.status, second.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(join(parts, "model.safetensors")), readFileSync(join(whole, "model.safetensors")))).toBe(0);
    const losses = (d: string) => (JSON.parse(readFileSync(join(d, "training-state.json"), "utf8")) as { history: { train: number }[] }).history.map((p) => p.train);
    expect(losses(parts)).toEqual(losses(whole));
  });

  it("a damaged training-state.json is named, never trusted (fast-check over mutations of a real one)", () => {
    const good = { options: { steps: 6, batch: 2, seqLen: 16, lr: 0.01, minLr: 0.001, warmup: 1, clip: 1, seed: 3, adamw: { weightDecay: 0.1 } }, corpus: "c.txt", evalEvery: 5, evalWindows: 4, saveEvery: 5,
      history: [{ step: 1, train: 10.2 }, { step: 2, train: 9.9, heldOut: 10 }] };
    expect(readState(JSON.stringify(good), "s.json")).toEqual(good);
    const value = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer({ min: -3, max: 3 }), fc.double(), fc.string({ maxLength: 4 }), fc.constant([]), fc.constant({}));
    const paths = ["options", "options.steps", "options.lr", "options.warmup", "options.seed", "options.adamw", "corpus", "evalEvery", "saveEvery", "history", "history.0", "history.0.step", "history.1.train", "history.1.heldOut"];
    fc.assert(fc.property(fc.constantFrom(...paths), value, (path, v) => {
      const state = structuredClone(good) as Record<string, unknown>, keys = path.split(".");
      let at = state as Record<string, unknown>;
      for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
      if (v === undefined) delete at[keys.at(-1)!];
      else at[keys.at(-1)!] = v;
      try {
        const s = readState(JSON.stringify(state), "s.json");
        expect(s.options.steps).toBeGreaterThanOrEqual(s.history.length); // what it accepts is consistent
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(UsageError);
        expect((e as Error).message).toMatch(/^s\.json: /);
      }
    }), { numRuns: 400 });
    expect(() => readState("{ not json", "s.json")).toThrow(/s\.json/);
  });

  it("says what is wrong with its options", () => {
    expect(run("--corpus", corpus, "--out", join(dir, "x")).stderr).toMatch(/give exactly one of --config/);
    expect(run("--config", config, "--corpus", corpus).stderr).toMatch(/--out DIR is required/);
    expect(run("--resume", "--out", join(dir, "nothing")).stderr).toMatch(/nothing to resume/);
    expect(run(...common, "--out", join(dir, "y"), "--lr", "0").stderr).toMatch(/--lr: "0" is not a number/);
    expect(run(...common, "--out", join(dir, "z"), "--seq-len", "256").stderr).toMatch(/--seq-len 256: each window holds 257 tokens \(256 predicted\), more than the model's context \(max_context_length 256\)/);
    // a run whose optimizer state lost its moments: resuming would silently restart Adam, so it refuses
    const broken = join(dir, "broken");
    expect(run(...common, "--steps", "4", "--until", "2", "--out", broken).status).toBe(0);
    writeFileSync(join(broken, "optimizer.safetensors"), encodeSafetensors([]));
    expect(run("--resume", "--out", broken).stderr).toMatch(/optimizer\.safetensors: the moments of transformer\.\S+ are missing or the wrong size/);
  });
});
