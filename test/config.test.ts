// Config parsing and layer-wise scaling against values derived independently in Python (ref/derive_config.py).
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError, PRESETS, linspace, makeDivisible, parameterCount, parseConfig, pyRound2 } from "../src/config.js";
import { planModel } from "../src/load.js";
import { MODELS, ORACLE } from "./helpers/oracle.js";

const derived = JSON.parse(readFileSync(new URL("../ref/derived-presets.json", import.meta.url), "utf8"));
const tiny = { model_type: "openelm", num_transformer_layers: 4, model_dim: 128, head_dim: 16, num_gqa_groups: 4 };

describe("helpers that mirror the reference's Python", () => {
  it.each([
    [640, 256, 768], [1280, 256, 1280], [937.6, 256, 1024], [100, 8, 104], [3, 8, 8], [1000, 256, 1024], [1150, 256, 1280],
  ])("make_divisible(%d, %d) = %d", (v, d, want) => expect(makeDivisible(v, d)).toBe(want));

  it.each([
    [2.675, 2.67], [0.125, 0.12], [0.375, 0.38], [1.005, 1], [0.7333333333333334, 0.73], [2.3125, 2.31], [4, 4], [1.6666666666666667, 1.67],
  ])("round(%d, 2) = %d as Python rounds", (x, want) => expect(pyRound2(x)).toBe(want));

  it("linspace matches numpy, including the exact endpoint", () => {
    expect(linspace(0.5, 4, 16)[15]).toBe(4);
    expect(linspace(0.5, 1, 3)).toEqual([0.5, 0.75, 1]);
    expect(linspace(2, 3, 1)).toEqual([2]);
  });
});

describe("presets of the released models", () => {
  it("OpenELM-270M: query heads 12×5, 16×7, 20×4; kv = query/4; FFN 768 rising to 5120", () => {
    const c = parseConfig(PRESETS["270M"]!);
    expect(c.numQueryHeads).toEqual([...Array(5).fill(12), ...Array(7).fill(16), ...Array(4).fill(20)]);
    expect(c.numKvHeads).toEqual(c.numQueryHeads.map((q) => q / 4));
    expect(c.ffnDims).toEqual([768, 1024, 1280, 1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 3840, 4352, 4608, 4864, 5120]);
    expect(parameterCount(c)).toBe(derived["270M"].parameters);
  });

  it.each(Object.keys(PRESETS))("%s: every per-layer list equals the Python derivation", (name) => {
    const c = parseConfig(PRESETS[name]!);
    const want = derived[name];
    expect(c.numQueryHeads).toEqual(want.num_query_heads);
    expect(c.numKvHeads).toEqual(want.num_kv_heads);
    expect(c.ffnMultipliers).toEqual(want.ffn_multipliers);
    expect(c.ffnDims).toEqual(want.ffn_dims);
    expect(parameterCount(c)).toBe(want.parameters);
  });
});

describe("every form of config.json the reference accepts", () => {
  it.each(MODELS)("oracle %s: derived heads and FFN multipliers equal the ones the file lists", (name) => {
    const raw = JSON.parse(readFileSync(`${ORACLE}/${name}/config.json`, "utf8"));
    const c = parseConfig(raw);
    expect(c.numQueryHeads).toEqual(raw.num_query_heads);
    expect(c.numKvHeads).toEqual(raw.num_kv_heads);
    expect(c.ffnMultipliers).toEqual(raw.ffn_multipliers);
    // the same file without the derived lists derives the same thing
    const { num_query_heads: _q, num_kv_heads: _k, ...bare } = raw;
    expect(parseConfig(bare)).toEqual(c);
  });

  it("qkv_multipliers as a scalar gives uniform layers; as a pair, linearly spaced ones", () => {
    expect(parseConfig({ ...tiny, qkv_multipliers: 1.0 }).numQueryHeads).toEqual([8, 8, 8, 8]);
    expect(parseConfig({ ...tiny, qkv_multipliers: [0.5, 1.0] }).numQueryHeads).toEqual([4, 8, 8, 8]);
  });

  it("ffn_multipliers as a scalar, a pair or a per-layer list", () => {
    expect(parseConfig({ ...tiny, ffn_multipliers: 2, ffn_dim_divisor: 32 }).ffnDims).toEqual([256, 256, 256, 256]);
    expect(parseConfig({ ...tiny, ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 32 }).ffnMultipliers).toEqual([0.5, 1.67, 2.83, 4]);
    expect(parseConfig({ ...tiny, ffn_multipliers: [1, 2, 3, 4], ffn_dim_divisor: 32 }).ffnDims).toEqual([128, 256, 384, 512]);
  });

  it("num_gqa_groups from 1 (multi-head) to multi-query (one kv head)", () => {
    const mha = parseConfig({ ...tiny, num_gqa_groups: 1, qkv_multipliers: 1.0 });
    expect(mha.numKvHeads).toEqual(mha.numQueryHeads);
    const mqa = parseConfig({ ...tiny, num_gqa_groups: 8, qkv_multipliers: 1.0 });
    expect(mqa.numQueryHeads).toEqual([8, 8, 8, 8]);
    expect(mqa.numKvHeads).toEqual([1, 1, 1, 1]);
  });

  it("activations, GLU, QK-norm, sharing and RoPE base are read; defaults follow OpenELMConfig", () => {
    const c = parseConfig({ ...tiny, activation_fn_name: "gelu", ffn_with_glu: false, normalize_qk_projections: true, share_input_output_layers: true, rope_freq_constant: 500 });
    expect([c.activation, c.ffnWithGlu, c.normalizeQk, c.shareInputOutput, c.ropeFreqConstant]).toEqual(["gelu", false, true, true, 500]);
    const d = parseConfig(tiny);
    expect([d.activation, d.ffnWithGlu, d.normalizeQk, d.shareInputOutput, d.ropeFreqConstant, d.vocabSize]).toEqual(["swish", true, false, false, 10000, 32000]);
  });
});

describe("invalid configs are rejected with a message that names the field", () => {
  it.each([
    [{ ...tiny, model_type: "llama" }, /model_type/],
    [{ ...tiny, num_transformer_layers: undefined }, /missing field "num_transformer_layers"/],
    [{ ...tiny, model_dim: -3 }, /"model_dim" must be an integer from 1 to 65,536, got -3/],
    [{ ...tiny, head_dim: 15 }, /"head_dim" must be even/],
    [{ ...tiny, qkv_multipliers: [0.5, 0.75, 1.0] }, /"qkv_multipliers" must be a number or a pair/],
    [{ ...tiny, num_transformer_layers: 1e9 }, /"num_transformer_layers" must be an integer from 1 to 1,024, got 1000000000/],
    [{ ...tiny, num_transformer_layers: 2.5 }, /"num_transformer_layers" must be an integer/],
    [{ ...tiny, vocab_size: 2 ** 31 }, /"vocab_size" must be an integer from 1 to 4,194,304, got 2147483648/],
    [{ ...tiny, max_context_length: 0 }, /"max_context_length" must be an integer from 1/],
    [{ ...tiny, head_dim: 1e6 }, /"head_dim" must be an integer from 2 to 4,096/],
    [{ ...tiny, rope_freq_constant: JSON.parse("1e999") }, /"rope_freq_constant" must be a number above 1/],
    [{ ...tiny, rope_freq_constant: -5 }, /"rope_freq_constant" must be a number above 1/],
    [{ ...tiny, qkv_multipliers: [0.5, 1e9] }, /"qkv_multipliers" must be a number in \(0, 64\]/],
    [{ ...tiny, ffn_multipliers: [0.5, null] }, /"ffn_multipliers" must be/],
    [{ ...tiny, bos_token_id: 40000 }, /"bos_token_id" must be a token id below vocab_size 32000/],
    [{ ...tiny, eos_token_id: -1 }, /"eos_token_id" must be a token id below vocab_size/],
    [{ ...tiny, ffn_multipliers: [1, 2, 3] }, /"ffn_multipliers" has 3 values; expected 1, 2 or 4/],
    [{ ...tiny, ffn_multipliers: "big" }, /"ffn_multipliers" must be/],
    [{ ...tiny, activation_fn_name: "tanh" }, /"activation_fn_name" is "tanh"/],
    [{ ...tiny, normalization_layer_name: "layer_norm" }, /"normalization_layer_name"/],
    [{ ...tiny, ffn_with_glu: "yes" }, /"ffn_with_glu" must be true or false/],
    [{ ...tiny, qkv_multipliers: 1.0, num_query_heads: [8, 8, 8, 4] }, /"num_query_heads" \[8,8,8,4\] contradicts .* \[8,8,8,8\]/],
    [{ ...tiny, qkv_multipliers: 1.0, num_kv_heads: [4, 4, 4, 4] }, /"num_kv_heads" \[4,4,4,4\] contradicts .* \[2,2,2,2\]/],
    [{ ...tiny, num_query_heads: [4, 8] }, /"num_query_heads" must be a list of 4/],
  ])("%#: %s", (raw, message) => {
    expect(() => parseConfig(raw as Record<string, unknown>)).toThrow(ConfigError);
    expect(() => parseConfig(raw as Record<string, unknown>)).toThrow(message);
  });
});

describe("config values are bounded before anything is allocated", () => {
  const plan = (raw: Record<string, unknown>, contextLength = Infinity) => planModel(parseConfig(raw), () => "f32", contextLength);

  it("a config within the bounds but too big for memory fails in milliseconds with the right size", () => {
    const t0 = performance.now();
    expect(() => plan({ ...tiny, vocab_size: 2 ** 22, model_dim: 2 ** 16 })).toThrow("the embeddings and output head (vocab_size 4194304 × model_dim 65536) need 2048.00 GiB (embeddings and a separate lm_head), more than one 4.00 GiB WebAssembly memory holds (--dtype bf16 halves it)");
    expect(() => plan({ ...tiny, num_transformer_layers: 1024, model_dim: 8192, head_dim: 128 })).toThrow(/the model needs [\d.]+ GiB \(\d+ memories of 4.00 GiB\), more than the 16 openelm uses/);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it("a KV cache too big for one memory suggests --context", () => {
    const long = { ...tiny, max_context_length: 2 ** 22, model_dim: 2048, head_dim: 64 };
    expect(() => plan(long)).toThrow(/layer 0 needs [\d.]+ GiB \(weights [\d.]+ MiB, KV cache for 4194304 positions [\d.]+ GiB\), more than one 4.00 GiB WebAssembly memory holds; use --context N for fewer positions/);
    expect(plan(long, 4096).memories).toBe(1);
  });

  it("any JSON object is either a config with consistent per-layer lists or a ConfigError (fast-check)", () => {
    const value = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1, 2, 3, 4, 8, 16, 64, 1e9, 2 ** 31, 2 ** 53), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null),
      fc.array(fc.oneof(fc.integer({ min: -2, max: 300 }), fc.double({ min: 0, max: 8 })), { maxLength: 6 }));
    const keys = ["num_transformer_layers", "model_dim", "head_dim", "num_gqa_groups", "qkv_multipliers", "ffn_multipliers", "ffn_dim_divisor", "vocab_size",
      "max_context_length", "rope_freq_constant", "bos_token_id", "eos_token_id", "num_query_heads", "num_kv_heads", "activation_fn_name", "ffn_with_glu"];
    const raw = fc.record(Object.fromEntries(keys.map((k) => [k, value])), { requiredKeys: [] });
    fc.assert(fc.property(raw, (r) => {
      let c;
      try {
        c = parseConfig({ ...tiny, ...r });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return;
      }
      const sizes = [c.numLayers, c.modelDim, c.headDim, c.vocabSize, c.maxContextLength, ...c.numQueryHeads, ...c.numKvHeads, ...c.ffnDims];
      expect(sizes.every((n) => Number.isSafeInteger(n) && n > 0)).toBe(true);
      expect([c.numQueryHeads.length, c.numKvHeads.length, c.ffnDims.length]).toEqual([c.numLayers, c.numLayers, c.numLayers]);
      expect(Number.isSafeInteger(parameterCount(c))).toBe(true);
    }), { numRuns: 2000 });
  });
});
