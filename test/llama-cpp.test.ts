// GGUF both ways, proved with llama.cpp itself (node-llama-cpp's prebuilt binaries): openelm's export of the
// reference checkpoints runs in llama.cpp with Apple's logits and greedy ids, openelm reads the same files
// back with the same numbers, and llama.cpp tokenizes as openelm's tokenizer does.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { getLlama, type Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { readGGUF } from "../src/formats/gguf.js";
import { encodeSafetensors } from "../src/formats/safetensors.js";
import { seededRandom } from "../src/generation/sampler.js";
import { fileSource } from "../src/node/files.js";
import { loadModelFromFolder, loadTokenizerFromFolder } from "../src/node/index.js";
import { expectedTensors } from "../src/weights.js";
import { ORACLE, ROOT, oracleCases, relError } from "./helpers/oracle.js";

const tmp = mkdtempSync(join(tmpdir(), "openelm-llamacpp-"));
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
}, 60_000);
afterAll(async () => {
  await llama?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** `openelm convert` as a user runs it. */
function convert(model: string, type: string): string {
  const out = join(tmp, `${model}-${type}.gguf`);
  const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", join(ORACLE, model), "--out", out, "--type", type], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return out;
}

/** llama.cpp's logits at every position of `ids` (one full pass, `V` per row) and its greedy continuation. */
async function llamaCpp(file: string, ids: number[], V: number, greedy: number) {
  const model = await llama.loadModel({ modelPath: file });
  // an F32 KV cache (llama.cpp defaults to F16), so that an F32 file is computed in float32 throughout
  const context = await model.createContext({ contextSize: 512, threads: 2, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false });
  try {
    const seq = context.getSequence();
    const out = await seq.controlledEvaluate(ids.map((id) => [id, { generateNext: { logits: true } }]));
    const logits = new Float32Array(ids.length * V);
    out.forEach((o, i) => o?.next?.logits?.forEach((l, tok) => (logits[i * V + tok] = l)));
    await seq.clearHistory();
    const continuation: number[] = [];
    for await (const tok of seq.evaluate(ids, { temperature: 0 })) if (continuation.push(tok) >= greedy) break;
    return { logits, continuation };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

// llama.cpp's openelm graph has QK-norm and a tied output head: the untied, norm-free reference model is openelm's own
const SUPPORTED = ["elm-tiny-32k", "elm-tiny-bf16-sharded", "elm-tiny-fp16", "elm-tiny-gqa"];

describe.each(SUPPORTED)("%s exported as F32 GGUF", (name) => {
  it("llama.cpp computes Apple's logits and greedy ids from it; openelm reads it back with the same", async () => {
    const file = convert(name, "f32"), ours = await loadModelFromFolder(file, { threads: 1 });
    for (const c of oracleCases(name)) {
      const theirs = await llamaCpp(file, c.ids, ours.config.vocabSize, c.greedy.length);
      expect(relError(theirs.logits, c.logits)).toBeLessThan(1e-4);
      expect(theirs.continuation).toEqual(c.greedy);
      expect(relError(ours.forward(ours.newCache(), c.ids, { allPositions: true }), c.logits)).toBeLessThan(1e-4);
    }
    await ours.close();
  });
});

describe("16-bit exports", () => {
  // openelm keeps activations in f32. llama.cpp's CPU backend rounds them to bf16 for BF16 weights (its
  // vec_dot_type), and for F16 weights it depends on the CPU: f32 through llamafile's sgemm on an Intel Xeon
  // (1e-4 from openelm), rounded to f16 on AMD EPYC hosts (1.2e-3 to 1.3e-3 from openelm)
  it.each([["f16", 3e-3], ["bf16", 2e-2]] as const)("%s: llama.cpp and openelm compute the same logits from one file (within %d)", async (type, tolerance) => {
    const file = convert("elm-tiny-gqa", type), ours = await loadModelFromFolder(file, { threads: 1 });
    const [c] = oracleCases("elm-tiny-gqa").slice(-1);
    const theirs = await llamaCpp(file, c!.ids, ours.config.vocabSize, 4), mine = ours.forward(ours.newCache(), c!.ids, { allPositions: true });
    expect(relError(mine, theirs.logits)).toBeLessThan(tolerance);
    // against the f32 reference, llama.cpp's rounded activations may add to what the 16-bit weights cost (mine), not more than as much again
    expect(relError(theirs.logits, c!.logits)).toBeLessThan(2 * relError(mine, c!.logits));
    await ours.close();
  });
});

describe("the tokenizer in the file", () => {
  it("llama.cpp tokenizes as openelm does, and openelm reads back the tokenizer it wrote", async () => {
    const file = convert("elm-tiny-32k", "f16");
    const model = await llama.loadModel({ modelPath: file });
    const ours = await loadTokenizerFromFolder(join(ORACLE, "elm-tiny-32k")), fromFile = await loadTokenizerFromFolder(file);
    for (const text of ["Once upon a time", " leading space", "Hello world!\n\n  indented\tand tabbed", "unicode: é, 🦙, 镇, Ꙋ", "<0x0A> looks like a byte token", "a  b   c"]) {
      expect(Array.from(model.tokenize(text))).toEqual(ours.encode(text, false));
      expect(fromFile.encode(text)).toEqual(ours.encode(text));
    }
    expect(fromFile.chatTemplate).toBe(ours.chatTemplate ?? fromFile.chatTemplate);
    await model.dispose();
  });
});

/**
 * openelm's logits against llama.cpp's from the same quantized file, row by row (rows of V). Both quantize
 * activations alike (llama.cpp's q8_0 and q8_K), so a row agrees to float rounding (about 3e-7) unless one
 * of the ~7,500 activations quantized on its way lands within float rounding of a .5 boundary and rounds
 * the other way in one of them (their additions run in different orders): about 15% of tokens here. The
 * row then differs by about 1% in these random tiny models, and through the KV cache so may later rows.
 * A wrong block layout agrees on no row; so: some rows to rounding, all within 5%.
 */
function expectSameComputation(mine: Float32Array, theirs: Float32Array, V: number): void {
  const rows = Array.from({ length: mine.length / V }, (_, r) => relError(mine.subarray(r * V, (r + 1) * V), theirs.subarray(r * V, (r + 1) * V)));
  expect(rows.filter((e) => e < 1e-5).length, `row errors ${rows.map((e) => e.toExponential(0))}`).toBeGreaterThan(0);
  expect(Math.max(...rows)).toBeLessThan(5e-2);
}

describe("quantized exports", () => {
  it.each(["q8_0", "q4_0"])("%s: llama.cpp and openelm compute the same logits from one file", async (type) => {
    const file = convert("elm-tiny-gqa", type), ours = await loadModelFromFolder(file, { threads: 1 });
    for (const c of oracleCases("elm-tiny-gqa")) {
      const theirs = await llamaCpp(file, c.ids, ours.config.vocabSize, 4);
      expectSameComputation(ours.forward(ours.newCache(), c.ids, { allPositions: true }), theirs.logits, ours.config.vocabSize);
    }
    await ours.close();
  });
});

describe("K-quants (rows of a multiple of 256 values)", () => {
  // a small OpenELM whose every row length is a multiple of 256, with random weights
  const config = { model_type: "openelm", num_transformer_layers: 4, model_dim: 256, head_dim: 64, num_gqa_groups: 4, qkv_multipliers: [0.5, 1.0],
    ffn_multipliers: [1.0, 4.0], ffn_dim_divisor: 256, normalize_qk_projections: true, share_input_output_layers: true, vocab_size: 1024, max_context_length: 128 };
  const dir = join(tmp, "aligned");
  beforeAll(() => {
    const random = seededRandom(5), c = parseConfig(config);
    const tensors = [...expectedTensors(c)].map(([name, shape]) => ({
      name, dtype: "f32" as const, shape,
      data: new Uint8Array(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (shape.length === 1 ? 0.5 + random() : (random() - 0.5) * 0.1)).buffer),
    }));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(tensors));
  });

  const ids = Array.from({ length: 20 }, (_, i) => (i * 37 + 3) % 1024);
  it.each(["q4_k", "q5_k", "q6_k"])("%s alone: llama.cpp and openelm compute the same logits", async (type) => {
    const file = join(tmp, `aligned-${type}.gguf`);
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", dir, "--out", file, "--type", type], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const ours = await loadModelFromFolder(file, { threads: 1 });
    expectSameComputation(ours.forward(ours.newCache(), ids, { allPositions: true }), (await llamaCpp(file, ids, 1024, 4)).logits, 1024);
    await ours.close();
  });

  it("q4_k_m: llama-quantize's mix of Q4_K, Q5_K and Q6_K; llama.cpp and openelm compute the same logits from it", async () => {
    const file = join(tmp, "aligned-q4_k_m.gguf");
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", dir, "--out", file, "--type", "q4_k_m"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const g = await readGGUF(await fileSource(file));
    const types = Object.fromEntries(g.tensors.map((t) => [t.name, t.dtype]));
    expect(types).toMatchObject({ "token_embd.weight": "q6_k", "blk.0.attn_qkv.weight": "q5_k", "blk.0.ffn_down.weight": "q4_k", "blk.1.ffn_down.weight": "q4_k", "blk.2.ffn_down.weight": "q6_k",
      "blk.3.ffn_down.weight": "q6_k", "blk.1.ffn_gate.weight": "q4_k", "blk.1.attn_output.weight": "q4_k", "output_norm.weight": "f32" });
    const ours = await loadModelFromFolder(file, { threads: 1 }), reference = await loadModelFromFolder(dir, { threads: 1 });
    const mine = ours.forward(ours.newCache(), ids, { allPositions: true });
    expectSameComputation(mine, (await llamaCpp(file, ids, 1024, 4)).logits, 1024);
    expect(relError(mine, reference.forward(reference.newCache(), ids, { allPositions: true }))).toBeLessThan(0.2); // 4-6 bit weights against f32, in a random model
    await ours.close();
    await reference.close();
  });
});
