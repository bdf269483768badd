// Config parsing and layer-wise scaling against values derived independently in Python (ref/derive_config.py).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, PRESETS, linspace, makeDivisible, parameterCount, parseConfig, pyRound2 } from "../src/config.js";
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
    [{ ...tiny, model_dim: -3 }, /"model_dim" must be a positive integer/],
    [{ ...tiny, head_dim: 15 }, /"head_dim" must be even/],
    [{ ...tiny, qkv_multipliers: [0.5, 0.75, 1.0] }, /"qkv_multipliers" must be a number or a pair/],
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
