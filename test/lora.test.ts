// LoRA (src/formats/peft.ts, src/train/lora.ts): adapters in peft's layout against PyTorch (for each model in
// ref/lora, made by ref/lora_reference.py in float64: the logits with the adapter, and the gradient of the
// masked loss for every lora_A and lora_B, max relative error asserted); merging into stored and quantized
// weights; every problem of an adapter folder named (fast-check over damaged configs and files); and a
// fine-tune that learns.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileError, memoryFiles } from "../src/files.js";
import { fileSource, folderFiles } from "../src/node/files.js";
import { loadModelFromFolder } from "../src/node/index.js";
import { readTrace } from "../src/trace.js";
import { AdapterError, encodeAdapter, loraNames, mergeAdapter, readAdapter, type Adapter } from "../src/formats/peft.js";
import { seededRandom } from "../src/generation/sampler.js";
import { readCheckpoint, readHeader, type TensorEntry } from "../src/formats/safetensors.js";
import { LoraTrainer, initAdapter } from "../src/train/lora.js";
import { JsonError } from "../src/formats/json.js";
import { SafetensorsError } from "../src/formats/safetensors.js";
import { ROOT } from "./helpers/oracle.js";

const CASES = [
  ["elm-tiny-gqa", "ref/oracle/elm-tiny-gqa"], // tied head, QK-norm, GQA
  ["elm-tiny-untied-mha", "ref/oracle/elm-tiny-untied-mha"], // separate head, no QK-norm
  ["relu-glu-mqa", "ref/synthetic/relu-glu-mqa"], // ReLU GLU, one kv head
] as const;

/** ids, mask and loss from ref/lora_reference.py's metadata. */
function metadata(path: string): { ids: number[]; mask: boolean[]; loss: number } {
  const bytes = readFileSync(path), n = Number(bytes.readBigUInt64LE(0));
  const m = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")).__metadata__ as { ids: string; mask: string; loss: string };
  return { ids: m.ids.split(",").map(Number), mask: [...m.mask].map((c) => c === "1"), loss: Number(m.loss) };
}

/** max |a − b| / max |b| */
function relError(a: Float32Array, b: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

const trainingOptions = { steps: 30, batch: 2, seqLen: 64, lr: 1e-2, minLr: 1e-3, warmup: 3, clip: 1, seed: 0 };

describe("LoRA against PyTorch", () => {
  it.each(CASES)("%s: logits with the adapter merged at load, and the gradient of every lora_A and lora_B", async (name, dir) => {
    const expectedPath = join(ROOT, "ref/lora", name, "expected.safetensors");
    const { ids, mask, loss } = metadata(expectedPath), expected = await readTrace(await fileSource(expectedPath));
    const adapterDir = await folderFiles(join(ROOT, "ref/lora", name));
    const merged = await loadModelFromFolder(join(ROOT, dir), { dtype: "f32", adapter: adapterDir });
    try {
      const cache = merged.newCache(ids.length), logits = merged.forward(cache, ids, { allPositions: true });
      const err = relError(logits, expected.logits!.data);
      console.log(`${name}: logits with the adapter within ${err.toExponential(2)} of the largest`);
      expect(err).toBeLessThan(1e-5);
    } finally {
      await merged.kernels.close();
    }

    const model = await loadModelFromFolder(join(ROOT, dir), { dtype: "f32" });
    try {
      const adapter = await readAdapter(adapterDir, model.config);
      const trainer = new LoraTrainer(model, adapter, [{ ids, mask }], trainingOptions);
      const ours = trainer.gradients([{ ids, mask }]);
      expect(Math.abs(ours.loss - loss) / loss).toBeLessThan(1e-6);
      const names = Object.keys(expected).filter((n) => n.startsWith("grad.")).map((n) => n.slice(5));
      expect([...ours.grads.keys()].sort()).toEqual(names.sort());
      const worst = Math.max(...names.map((n) => relError(ours.grads.get(n)!, expected[`grad.${n}`]!.data)));
      console.log(`${name}: masked loss ${ours.loss.toFixed(6)} (PyTorch ${loss.toFixed(6)}); worst lora gradient at ${worst.toExponential(2)} of its largest value`);
      for (const n of names) expect(relError(ours.grads.get(n)!, expected[`grad.${n}`]!.data), n).toBeLessThan(1e-5);
      trainer.close();
    } finally {
      await model.kernels.close();
    }
  });
});

describe("LoRA gradients with rsLoRA scaling and DropConnect masks, by finite differences", () => {
  it("the largest entries of dA and dB match central differences of the loss", async () => {
    const model = await loadModelFromFolder(join(ROOT, "ref/oracle/elm-tiny-gqa"), { dtype: "f32" });
    try {
      const adapter = await readAdapter(await folderFiles(join(ROOT, "ref/lora/elm-tiny-gqa")), model.config);
      adapter.config.rslora = true; // scale alpha/√r
      const { ids, mask } = metadata(join(ROOT, "ref/lora/elm-tiny-gqa/expected.safetensors"));
      const trainer = new LoraTrainer(model, adapter, [{ ids, mask }], trainingOptions), random = seededRandom(5);
      const masks = new Map([...adapter.pairs].map(([n, p]) => [n, p.a.map(() => (random() < 0.3 ? 0 : 1 / 0.7))]));
      const { grads } = trainer.gradients([{ ids, mask }], masks);
      const name = "transformer.layers.1.attn.qkv_proj.weight", pair = adapter.pairs.get(name)!, peft = loraNames(name);
      for (const [which, values, g] of [["A", pair.a, grads.get(peft.a)!], ["B", pair.b, grads.get(peft.b)!]] as const) {
        const i = g.reduce((best, x, j) => (Math.abs(x) > Math.abs(g[best]!) ? j : best), 0), eps = 1e-2, v = values[i]!;
        values[i] = v + eps;
        const up = trainer.gradients([{ ids, mask }], masks).loss;
        values[i] = v - eps;
        const down = trainer.gradients([{ ids, mask }], masks).loss;
        values[i] = v;
        const numeric = (up - down) / (2 * eps);
        expect(Math.abs(numeric - g[i]!) / Math.abs(g[i]!), `d${which}[${i}]: ${g[i]} vs ${numeric}`).toBeLessThan(2e-2);
      }
      trainer.close();
    } finally {
      await model.kernels.close();
    }
  });
});

describe("merging", () => {
  it("merges into bf16 and q8_0 weights exactly as storing the f32-merged weights in those types does", async () => {
    const dir = join(ROOT, "ref/oracle/elm-tiny-gqa"), adapter = join(ROOT, "ref/lora/elm-tiny-gqa"), merged = mkdtempSync(join(tmpdir(), "openelm-merged-f32-"));
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", dir, "--adapter", adapter, "--format", "safetensors", "--type", "f32", "--out", merged], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const ids = [1, 415, 96, 354, 170, 432];
    const logitsOf = async (from: string, dtype: "f32" | "bf16" | "q8_0", opts: object = {}) => {
      const m = await loadModelFromFolder(from, { dtype, ...opts });
      try {
        return m.forward(m.newCache(ids.length), ids).slice();
      } finally {
        await m.kernels.close();
      }
    };
    const withAdapter = { adapter: await folderFiles(adapter) };
    expect(relError(await logitsOf(dir, "f32"), await logitsOf(dir, "f32", withAdapter))).toBeGreaterThan(1e-3); // the adapter changes the model
    for (const dtype of ["bf16", "q8_0"] as const) expect(await logitsOf(dir, dtype, withAdapter), dtype).toEqual(await logitsOf(merged, dtype));
  });

  it("refuses to merge into a quantized weight and store it as another quantized type", () => {
    const base: TensorEntry = { name: "w", dtype: "q8_0", shape: [2, 32], bytes: 68, read: async () => {} };
    const adapter: Adapter = { config: { rank: 1, alpha: 1, dropout: 0, targets: ["qkv_proj"] }, pairs: new Map([["w", { a: new Float32Array(32), b: new Float32Array(2), out: 2, in: 32 }]]) };
    expect(() => mergeAdapter(new Map([["w", base]]), adapter, () => "q4_0")).toThrow(/w is stored as q8_0; merging an adapter and storing it as q4_0 would quantize it twice/);
    expect(mergeAdapter(new Map([["w", base]]), adapter).get("w")!.dtype).toBe("q8_0");
  });

  it("a new adapter (B = 0) leaves the model as it was; encodeAdapter and readAdapter round-trip", async () => {
    const dir = join(ROOT, "ref/oracle/elm-tiny-gqa"), model = await loadModelFromFolder(dir, { dtype: "f32" });
    try {
      const adapter = initAdapter(model, { rank: 2, alpha: 4, dropout: 0, targets: ["qkv_proj", "proj_2"] }, 3);
      expect([...adapter.pairs.keys()].filter((n) => n.includes("layers.0."))).toEqual(["transformer.layers.0.attn.qkv_proj.weight", "transformer.layers.0.ffn.proj_2.weight"]);
      adapter.pairs.forEach((p) => p.b.forEach((_, i) => (p.b[i] = Math.sin(i))));
      const files = encodeAdapter(adapter), back = await readAdapter(memoryFiles(files), model.config);
      expect(back.config).toEqual({ rank: 2, alpha: 4, dropout: 0, targets: ["qkv_proj", "proj_2"], rslora: false });
      for (const [n, p] of adapter.pairs) {
        expect(back.pairs.get(n)!.a).toEqual(p.a);
        expect(back.pairs.get(n)!.b).toEqual(p.b);
      }
      const tensors = await readCheckpoint(await folderFiles(dir)), fresh = initAdapter(model, adapter.config, 3);
      const same = mergeAdapter(tensors, fresh), name = "transformer.layers.0.attn.qkv_proj.weight";
      const read = async (e: TensorEntry) => {
        const b = new Uint8Array(e.bytes);
        await e.read(0, b);
        return b;
      };
      expect(await read(same.get(name)!)).toEqual(await read(tensors.get(name)!));
    } finally {
      await model.kernels.close();
    }
  });
});

describe("openelm convert --format safetensors", () => {
  it("merges an adapter for good: the folder it writes gives the logits of the base with --adapter", async () => {
    const out = mkdtempSync(join(tmpdir(), "openelm-merged-")), base = join(ROOT, "ref/oracle/elm-tiny-gqa"), adapter = join(ROOT, "ref/lora/elm-tiny-gqa");
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", base, "--adapter", adapter, "--format", "safetensors", "--type", "f32", "--out", out], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*: model.safetensors [\d.]+ MiB, 4 layers, matrices f32, adapter .* merged/);
    const ids = [1, 415, 96, 354, 170, 432];
    const logitsOf = async (dir: string, opts: object) => {
      const m = await loadModelFromFolder(dir, { dtype: "f32", ...opts });
      try {
        return m.forward(m.newCache(ids.length), ids, { allPositions: true }).slice();
      } finally {
        await m.kernels.close();
      }
    };
    expect(await logitsOf(out, {})).toEqual(await logitsOf(base, { adapter: await folderFiles(adapter) }));
    const bf16 = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", base, "--format", "safetensors", "--out", join(out, "bf16")], { encoding: "utf8" });
    expect(bf16.status, bf16.stderr).toBe(0);
    const entries = await readHeader(await fileSource(join(out, "bf16", "model.safetensors")));
    expect(new Set(entries.map((e) => `${e.shape.length}:${e.dtype}`))).toEqual(new Set(["2:bf16", "1:f32"]));
    const bad = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", base, "--format", "safetensors", "--type", "q8_0", "--out", join(out, "q")], { encoding: "utf8" });
    expect(bad.stderr).toMatch(/--type: a safetensors folder holds f32, f16, bf16, not "q8_0"/);
  });
});

describe("adapter folders that are wrong", () => {
  const good = JSON.parse(readFileSync(join(ROOT, "ref/lora/elm-tiny-gqa/adapter_config.json"), "utf8")) as Record<string, unknown>;
  const weights = new Uint8Array(readFileSync(join(ROOT, "ref/lora/elm-tiny-gqa/adapter_model.safetensors")));
  const config = async () => {
    const m = await loadModelFromFolder(join(ROOT, "ref/oracle/elm-tiny-gqa"), { kernels: "typescript" });
    await m.kernels.close();
    return m.config;
  };

  it.each([
    [{ peft_type: "PREFIX_TUNING" }, /field "peft_type" must be "LORA"/],
    [{ r: 0 }, /field "r" must be an integer from 1 to 4096, got 0/],
    [{ lora_alpha: "8" }, /field "lora_alpha" must be a positive number/],
    [{ lora_dropout: 1 }, /field "lora_dropout" must be a number in \[0, 1\)/],
    [{ target_modules: ".*proj" }, /field "target_modules" is a regular expression/],
    [{ target_modules: ["q_proj"] }, /names "q_proj", which is not a Linear layer of OpenELM/],
    [{ fan_in_fan_out: true }, /field "fan_in_fan_out" is true .* which openelm does not support/],
    [{ use_dora: true }, /field "use_dora" is true/],
    [{ layers_to_transform: [0] }, /field "layers_to_transform" is set/],
    [{ layer_replication: [[0, 2]] }, /field "layer_replication" is set \(layers stacked again\)/],
    [{ exclude_modules: ["out_proj"] }, /field "exclude_modules" is set/],
    [{ rank_pattern: 5 }, /field "rank_pattern" is set/],
    [{ init_lora_weights: "pissa_niter_4" }, /field "init_lora_weights" is "pissa_niter_4" \(an adapter for a changed base model\)/],
    [{ r: 8 }, /tensor base_model\.model\.transformer\.layers\.0\.attn\.qkv_proj\.lora_A\.weight has shape \[4,128\], expected \[8,128\]/],
    [{ target_modules: ["qkv_proj"] }, /tensors not of this model's qkv_proj adapters: base_model\.model\.transformer\.layers\.0\.attn\.out_proj/],
  ])("%j", async (change, message) => {
    const files = memoryFiles({ "adapter_config.json": JSON.stringify({ ...good, ...change }), "adapter_model.safetensors": weights }, "adapter");
    await expect(readAdapter(files, await config())).rejects.toThrow(message);
  });

  it("\"all-linear\" targets the four projections, and init_lora_weights true or \"gaussian\" is an ordinary adapter", async () => {
    const c = await config();
    for (const change of [{ target_modules: "all-linear" }, { init_lora_weights: "gaussian" }, { init_lora_weights: true }]) {
      const a = await readAdapter(memoryFiles({ "adapter_config.json": JSON.stringify({ ...good, ...change }), "adapter_model.safetensors": weights }, "a"), c);
      expect(a.config.targets).toEqual(["qkv_proj", "out_proj", "proj_1", "proj_2"]);
    }
  });

  it("a folder without the files, or with peft's pickle only", async () => {
    const c = await config();
    await expect(readAdapter(memoryFiles({}, "empty"), c)).rejects.toThrow(/empty has no adapter_config.json/);
    await expect(readAdapter(memoryFiles({ "adapter_config.json": JSON.stringify(good), "adapter_model.bin": new Uint8Array(4) }, "a"), c)).rejects.toThrow(/no adapter_model.safetensors \(adapter_model.bin is a pickle/);
  });

  it("a NaN in an adapter is named", async () => {
    const c = await config(), n = Number(new DataView(weights.buffer).getBigUint64(0, true)), bad = weights.slice();
    new DataView(bad.buffer).setFloat32(8 + n + 4 * 3, NaN, true);
    await expect(readAdapter(memoryFiles({ "adapter_config.json": JSON.stringify(good), "adapter_model.safetensors": bad }, "a"), c)).rejects.toThrow(/has a NaN or infinite value at element 3/);
  });

  it("fast-check: any config.json text or damaged tensor file is read or refused with a named error", async () => {
    const c = await config(), known = [AdapterError, JsonError, SafetensorsError, FileError];
    const field = fc.constantFrom("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "rank_pattern", "modules_to_save");
    await fc.assert(
      fc.asyncProperty(fc.dictionary(field, fc.jsonValue()), fc.array(fc.tuple(fc.nat(weights.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(weights.length), async (change, flips, cut) => {
        const bytes = weights.slice(0, Math.max(cut, weights.length - 64 * (cut % 3)));
        for (const [at, v] of flips) if (at < bytes.length) bytes[at] = v;
        try {
          const a: Adapter = await readAdapter(memoryFiles({ "adapter_config.json": JSON.stringify({ ...good, ...change }), "adapter_model.safetensors": bytes }, "a"), c);
          for (const p of a.pairs.values()) expect(p.a.every(Number.isFinite) && p.b.every(Number.isFinite)).toBe(true);
        } catch (e) {
          expect(known.some((k) => e instanceof k), String(e)).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("fine-tuning", () => {
  it("learns the masked tokens, with and without dropout, and the same seed gives the same adapter", async () => {
    const dir = join(ROOT, "ref/oracle/elm-tiny-gqa");
    const ids = [1, 7, 9, 11, 13, 200, 201, 202, 203, 204, 2, 15, 17, 19, 210, 211, 212, 2];
    const mask = ids.map((id, j) => j > 4 && id >= 200 || (j === 10 || j === 17));
    const run = async (dropout: number) => {
      const model = await loadModelFromFolder(dir, { dtype: "f32" });
      try {
        const adapter = initAdapter(model, { rank: 4, alpha: 8, dropout, targets: ["qkv_proj", "out_proj", "proj_1", "proj_2"] }, 1);
        const trainer = new LoraTrainer(model, adapter, [{ ids, mask }], { ...trainingOptions, batch: 1 });
        const before = trainer.heldOutLoss([{ ids, mask }]);
        const unmasked = trainer.heldOutLoss([{ ids, mask: ids.map((_, j) => j > 0) }]);
        for (let i = 0; i < trainingOptions.steps; i++) trainer.trainStep();
        const after = trainer.heldOutLoss([{ ids, mask }]);
        trainer.close();
        return { before, unmasked, after, a: adapter.pairs.get("transformer.layers.0.attn.qkv_proj.weight")!.a.slice() };
      } finally {
        await model.kernels.close();
      }
    };
    const plain = await run(0), dropped = await run(0.1), again = await run(0.1);
    expect(plain.before).not.toBeCloseTo(plain.unmasked, 3); // the mask changes what is counted
    expect(plain.after).toBeLessThan(plain.before * 0.5);
    expect(dropped.after).toBeLessThan(dropped.before * 0.7);
    expect(dropped.a).not.toEqual(plain.a);
    expect(again.a).toEqual(dropped.a);
  });
});

describe("--adapter where no weights load", () => {
  it.each([
    [["bench", "--shape", "270M", "--adapter", "x"], /--adapter: openelm bench loads no model weights/],
    [["conformance", "--out", "x", "--adapter", "x"], /--adapter: openelm conformance loads no model weights/],
    [["compare", "a.safetensors", "b.safetensors", "--adapter", "x"], /--adapter: openelm compare reads two traces and loads no model/],
    [["train", "--config", "c.json", "--corpus", "sotu", "--out", "x", "--adapter", "x"], /--adapter goes with --model DIR/],
  ])("%j is refused", (args, message) => {
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), ...args], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});

describe("openelm finetune", () => {
  const CLI = join(ROOT, "dist/node/cli.js"), dir = mkdtempSync(join(tmpdir(), "openelm-finetune-"));
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  const names = ["Ada", "Bo", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu", "Mo", "Nia", "Oz", "Pam", "Quin", "Rex", "Sue", "Tim", "Uma", "Val"];
  const data = join(dir, "chat.jsonl");
  writeFileSync(data, names.map((n) => JSON.stringify({ messages: [{ role: "system", content: "Answer briefly." }, { role: "user", content: "Who is the friend?" }, { role: "assistant", content: `The friend is ${n}.` }] })).join("\n") + "\n");
  const model = join(ROOT, "ref/oracle/elm-tiny-32k");

  it("writes a peft adapter that learns the replies, and generate --adapter uses it", () => {
    const out = join(dir, "adapter");
    const r = run("finetune", "--model", model, "--data", data, "--out", out, "--steps", "24", "--lr", "1e-2", "--rank", "4", "--eval-every", "4", "--dropout", "0.05", "--json");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/fine-tuning 12 projections \(rank 4, alpha 8\) on 20 conversations \(\d+ assistant tokens\), 2 held out/);
    const summary = JSON.parse(r.stdout.trim().split("\n").pop()!) as { steps: number; conversations: number; held_out: number };
    expect(summary).toMatchObject({ steps: 24, conversations: 20, held_out: 2 });
    const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, lora_dropout: 0.05, target_modules: ["qkv_proj", "out_proj", "proj_1", "proj_2"], base_model_name_or_path: model });
    const state = JSON.parse(readFileSync(join(out, "finetune-state.json"), "utf8")) as { history: { step: number; train: number; heldOut?: number }[] };
    const evals = state.history.filter((p) => p.heldOut !== undefined);
    expect(evals.map((p) => p.step)).toEqual([4, 8, 12, 16, 20, 24]);
    expect(evals.at(-1)!.heldOut!).toBeLessThan(evals[0]!.heldOut! * 0.7); // the replies are learnt
    expect(readFileSync(join(out, "loss-curve.svg"), "utf8")).toMatch(/^<svg/);

    const prompt = ["--prompt", "Who is the friend?", "--chat", "--max-new-tokens", "4"];
    const base = run("generate", "--model", model, ...prompt), tuned = run("generate", "--model", model, "--adapter", out, ...prompt);
    expect(base.status, base.stderr).toBe(0);
    expect(tuned.status, tuned.stderr).toBe(0);
    expect(tuned.stdout).toMatch(/The friend is/);
    expect(base.stdout).not.toMatch(/The friend is/);
  });

  it.each([
    [["--data", "missing.jsonl", "--out", "x"], /--data: cannot read missing.jsonl/],
    [["--out", "x"], /--data CHAT.jsonl is required/],
    [["--data", "DATA", "--out", "x", "--targets", "q_proj"], /--targets: "q_proj" is not one of qkv_proj, out_proj, proj_1, proj_2/],
    [["--data", "DATA", "--out", "x", "--adapter", "ADAPTER", "--rank", "4"], /--adapter continues an adapter with its own rank/],
    [["--data", "DATA", "--out", "x", "--dropout", "1"], /--dropout: "1" is not a number in \[0, 0.95\]/],
    [["--data", "DATA", "--out", "x", "--seq-len", "4096"], /--seq-len 4096 is longer than the model's trained context \(max_context_length 256\)/],
    [["--data", "BAD", "--out", "x"], /bad.jsonl line 2: "messages\[0\].role" must be "system", "user" or "assistant", got "bot"/],
  ])("%j is refused with a clear message", (args, message) => {
    writeFileSync(join(dir, "bad.jsonl"), readFileSync(data, "utf8").split("\n")[0] + '\n{"messages": [{"role": "bot", "content": "hi"}]}\n');
    const r = run("finetune", "--model", model, ...args.map((a) => (a === "DATA" ? data : a === "BAD" ? join(dir, "bad.jsonl") : a === "ADAPTER" ? join(ROOT, "ref/lora/elm-tiny-gqa") : a)));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});
