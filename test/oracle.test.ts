// openelm against Apple's CoreNet outputs for every oracle checkpoint (ref/oracle, see its README).
import { describe, expect, it } from "vitest";
import { decode } from "../src/generation/decode.js";
import { MODELS, greedyAgreement, loadOracle, oracleCases, relError, splitBudget } from "./helpers/oracle.js";

const TOLERANCE = 1e-4; // relative to the largest |logit|, as the task sets it

describe.each(MODELS)("%s", (name) => {
  const cases = oracleCases(name);

  it.each([
    ["SIMD kernels, all cores", {}],
    ["SIMD kernels, 3 threads, every call split", { threads: 3, minParallelWork: 0 }],
    ["TypeScript kernels", { kernels: "typescript" as const }],
    ["SIMD kernels, layers spread over several memories", { memoryBytes: splitBudget(name), threads: 2, minParallelWork: 0 }],
  ])("logits of every case are within 1e-4 of the reference (%s)", async (_, opts) => {
    const model = await loadOracle(name, opts);
    if (opts.memoryBytes) expect(model.arena.memories.length).toBeGreaterThan(1);
    for (const c of cases) {
      const logits = model.forward(model.newCache(), c.ids, { allPositions: true });
      expect(relError(logits, c.logits)).toBeLessThan(TOLERANCE);
    }
    await model.close();
  });

  it("greedy decoding with the KV cache gives the reference ids (3 threads, every call split)", async () => {
    const model = await loadOracle(name, { threads: 3, minParallelWork: 0 });
    for (const c of cases) {
      const ours = [...decode(model, model.newCache(), c.ids, { maxNewTokens: c.greedy.length, ignoreEos: true })];
      const { firstMismatch } = greedyAgreement(ours, c.greedy, c.gaps);
      expect(firstMismatch).toBe(-1);
      expect(ours).toHaveLength(c.greedy.length);
    }
  });

  it("prefill then token-by-token decoding gives the logits of one full pass", async () => {
    const model = await loadOracle(name);
    const c = cases[cases.length - 1]!;
    const V = model.config.vocabSize, split = Math.floor(c.ids.length / 2);
    const full = model.forward(model.newCache(), c.ids, { allPositions: true });
    const cache = model.newCache();
    const steps = [model.forward(cache, c.ids.slice(0, split), { allPositions: true })];
    for (const id of c.ids.slice(split)) steps.push(model.forward(cache, [id]));
    const joined = new Float32Array(full.length);
    steps.reduce((at, s) => (joined.set(s, at), at + s.length), 0);
    expect(cache.length).toBe(c.ids.length);
    expect(relError(joined, full)).toBeLessThan(1e-5);
    expect(relError(joined.subarray(split * V), c.logits.subarray(split * V))).toBeLessThan(TOLERANCE);
  });
});

describe("weights stored in another type than the file's", () => {
  it("an f16 checkpoint kept as f32 computes exactly what it computes as f16 (widening is exact)", async () => {
    const [c] = oracleCases("elm-tiny-fp16");
    const asF16 = await loadOracle("elm-tiny-fp16");
    const asF32 = await loadOracle("elm-tiny-fp16", { dtype: "f32" });
    expect(asF32.weights.layers[0]!.qkvProj.dtype).toBe("f32");
    const a = asF16.forward(asF16.newCache(), c!.ids, { allPositions: true });
    const b = asF32.forward(asF32.newCache(), c!.ids, { allPositions: true });
    expect(relError(a, b)).toBe(0);
  });

  it("an f32 checkpoint kept as bf16 or f16 stays close to the reference and halves the weight memory", async () => {
    const cases = oracleCases("elm-tiny-gqa");
    const f32 = await loadOracle("elm-tiny-gqa");
    for (const dtype of ["bf16", "f16"] as const) {
      const m = await loadOracle("elm-tiny-gqa", { dtype });
      expect(m.weights.tokenEmbeddings.dtype).toBe(dtype);
      expect(m.weights.layers[0]!.attnNorm.dtype).toBe("f32"); // norms stay f32
      expect(m.arena.used).toBeLessThan(f32.arena.used * 0.75);
      const c = cases[2]!;
      const err = relError(m.forward(m.newCache(), c.ids, { allPositions: true }), c.logits);
      // rounding every weight to 8 (bf16) or 11 (f16) mantissa bits moves logits by about 2^-8 or 2^-11
      expect(err).toBeLessThan(dtype === "bf16" ? 3e-2 : 4e-3);
      expect(err).toBeGreaterThan(0);
    }
  });
});
