// safetensors reading (single file and sharded), malformed files, and the tensor checks against the config.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { convert, f32ToBf16, f32ToF16, F16_TABLE, bf16ToF32 } from "../src/dtype.js";
import { memoryFiles } from "../src/files.js";
import { loadModel } from "../src/load.js";
import { SafetensorsError, encodeSafetensors, readCheckpoint, readHeader } from "../src/safetensors.js";
import { WeightsError, checkTensors, expectedTensors } from "../src/weights.js";
import { bytesSource } from "../src/files.js";
import { ORACLE } from "./helpers/oracle.js";

const f32bytes = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const tensor = (name: string, shape: number[], values = Array(shape.reduce((a, b) => a * b, 1)).fill(0.5)) =>
  ({ name, dtype: "f32" as const, shape, data: f32bytes(values) });

/** A header followed by `data`, with an arbitrary JSON text. */
function rawFile(headerJson: string, data = new Uint8Array(0)): Uint8Array {
  const head = new TextEncoder().encode(headerJson);
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

describe("reading safetensors", () => {
  it("round-trips tensors written by encodeSafetensors, with absolute data offsets", async () => {
    const file = encodeSafetensors([tensor("a", [2, 3], [1, 2, 3, 4, 5, 6]), tensor("b", [4])], { format: "pt" });
    const entries = await readHeader(bytesSource("x.safetensors", file));
    expect(entries.map((e) => [e.name, e.dtype, e.shape, e.bytes])).toEqual([["a", "f32", [2, 3], 24], ["b", "f32", [4], 16]]);
    const a = new Float32Array(file.slice(entries[0]!.offset, entries[0]!.offset + 24).buffer);
    expect(Array.from(a)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("reads the oracle's sharded BF16 checkpoint through its index", async () => {
    const dir = `${ORACLE}/elm-tiny-bf16-sharded`;
    const read = (n: string) => new Uint8Array(readFileSync(`${dir}/${n}`));
    const files = memoryFiles({
      "model.safetensors.index.json": read("model.safetensors.index.json"),
      "model-00001-of-00002.safetensors": read("model-00001-of-00002.safetensors"),
      "model-00002-of-00002.safetensors": read("model-00002-of-00002.safetensors"),
    });
    const tensors = await readCheckpoint(files);
    const index = JSON.parse(readFileSync(`${dir}/model.safetensors.index.json`, "utf8"));
    expect([...tensors.keys()].sort()).toEqual(Object.keys(index.weight_map).sort());
    expect(new Set([...tensors.values()].map((t) => t.source.name)).size).toBe(2);
    expect([...tensors.values()].every((t) => t.dtype === "bf16")).toBe(true);
  });

  const good = encodeSafetensors([tensor("w", [2, 2])]);
  it.each([
    ["a file shorter than the length field", good.slice(0, 5), /truncated: 5 bytes/],
    ["a header length past the end", rawFile("{}").fill(0xff, 0, 8), /bad header: header length/],
    ["a header that is not JSON", rawFile("{not json"), /bad header: not valid UTF-8 JSON/],
    ["a header that is a list", rawFile("[1,2]"), /bad header: not a JSON object/],
    ["an unsupported dtype", rawFile(JSON.stringify({ w: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }), new Uint8Array(8)), /tensor "w" has dtype "F64"; supported: F32, F16, BF16/],
    ["an integer dtype", rawFile(JSON.stringify({ w: { dtype: "I32", shape: [1], data_offsets: [0, 4] } }), new Uint8Array(4)), /dtype "I32"/],
    ["offsets that disagree with the shape", rawFile(JSON.stringify({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }), new Uint8Array(8)), /span 8 bytes but shape \[3\] of F32 needs 12/],
    ["a negative shape", rawFile(JSON.stringify({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }), new Uint8Array(4)), /shape \[-1\]/],
    ["data cut off at the end", good.slice(0, good.length - 3), /truncated: tensor "w" ends at byte/],
  ])("rejects %s", async (_, bytes, message) => {
    const read = readHeader(bytesSource("bad.safetensors", bytes));
    await expect(read).rejects.toThrow(SafetensorsError);
    await expect(readHeader(bytesSource("bad.safetensors", bytes))).rejects.toThrow(message);
  });

  it("rejects a folder without weights, an index naming a missing shard, and a shard the index does not describe", async () => {
    await expect(readCheckpoint(memoryFiles({}, "empty/"))).rejects.toThrow(/no model.safetensors and no model.safetensors.index.json/);
    const index = (map: object) => JSON.stringify({ weight_map: map });
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": index({ w: "s1.safetensors" }) }))).rejects.toThrow(/lists shard s1.safetensors, which is not in/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": index({ v: "s1.safetensors" }), "s1.safetensors": good }))).rejects.toThrow(/holds tensor "w", which the index does not list/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": "{}" }))).rejects.toThrow(/no "weight_map"/);
  });
});

describe("checking tensors against the config", () => {
  const config = parseConfig({ model_type: "openelm", num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, qkv_multipliers: 1.0, ffn_multipliers: 2, ffn_dim_divisor: 16, normalize_qk_projections: true, share_input_output_layers: true, vocab_size: 10 });
  const full = () => [...expectedTensors(config)].map(([name, shape]) => tensor(name, shape));
  const entries = async (ts: ReturnType<typeof full>) => new Map((await readHeader(bytesSource("m", encodeSafetensors(ts)))).map((e) => [e.name, e]));

  it("lists the Hugging Face names with shapes from the config", () => {
    const e = expectedTensors(config);
    expect(e.get("transformer.token_embeddings.weight")).toEqual([10, 32]);
    expect(e.get("transformer.layers.1.attn.qkv_proj.weight")).toEqual([(4 + 2 * 2) * 8, 32]);
    expect(e.get("transformer.layers.0.attn.q_norm.weight")).toEqual([8]);
    expect(e.get("transformer.layers.0.ffn.proj_1.weight")).toEqual([128, 32]);
    expect(e.get("transformer.layers.0.ffn.proj_2.weight")).toEqual([32, 64]);
    expect(e.has("lm_head.weight")).toBe(false);
    expect(e.size).toBe(2 + 2 * 8);
  });

  it("accepts a complete checkpoint", async () => {
    expect(() => checkTensors(config, new Map())).toThrow(WeightsError);
    checkTensors(config, await entries(full()));
  });

  it("names a missing tensor, a wrong shape and an unexpected tensor", async () => {
    const missing = full().filter((t) => t.name !== "transformer.layers.1.attn.k_norm.weight");
    expect(() => checkTensors(config, new Map())).toThrow(/missing tensors: transformer.token_embeddings.weight/);
    const m = await entries(missing);
    expect(() => checkTensors(config, m)).toThrow("missing tensor: transformer.layers.1.attn.k_norm.weight");
    const wrong = full().map((t) => (t.name.endsWith("0.attn.out_proj.weight") ? tensor(t.name, [32, 16]) : t));
    const w = await entries(wrong);
    expect(() => checkTensors(config, w)).toThrow("tensor transformer.layers.0.attn.out_proj.weight has shape [32,16], expected [32,32] from config.json");
    const extra = await entries([...full(), tensor("lm_head.weight", [10, 32])]);
    expect(() => checkTensors(config, extra)).toThrow(/unexpected tensor not used by this config: lm_head.weight \(config.json says share_input_output_layers: true\)/);
  });

  it("loads a checkpoint whose weights arrive in memory through the files interface (as in a browser)", async () => {
    const cfg = JSON.stringify({ model_type: "openelm", num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, qkv_multipliers: 1.0, ffn_multipliers: 2, ffn_dim_divisor: 16, normalize_qk_projections: true, share_input_output_layers: true, vocab_size: 10, max_context_length: 16 });
    const model = await loadModel(memoryFiles({ "config.json": cfg, "model.safetensors": encodeSafetensors(full()) }), { kernels: "typescript", dtype: "bf16" });
    const logits = model.forward(model.newCache(), [1, 2, 3]);
    expect(logits).toHaveLength(10);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  it("rejects f16 infinities: corrupt f16 files, and f32 values beyond the f16 range kept as f16", async () => {
    const cfg = JSON.stringify({ model_type: "openelm", num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, qkv_multipliers: 1.0, ffn_multipliers: 2, ffn_dim_divisor: 16, normalize_qk_projections: true, share_input_output_layers: true, vocab_size: 10 });
    const big = full().map((t) => (t.name.endsWith("1.ffn.proj_2.weight") ? tensor(t.name, t.shape, t.data.length / 4 === 2048 ? Array(2048).fill(1e6) : []) : t));
    const load = (ts: typeof big, dtype?: "f16") => loadModel(memoryFiles({ "config.json": cfg, "model.safetensors": encodeSafetensors(ts) }), { kernels: "typescript", dtype });
    await expect(load(big, "f16")).rejects.toThrow("tensor transformer.layers.1.ffn.proj_2.weight has values beyond the f16 range (±65504), e.g. element 0; keep it as bf16 or f32 (--dtype)");
    const inf = full().map((t) => (t.name.endsWith("0.attn.out_proj.weight") ? { ...t, dtype: "f16" as const, data: new Uint8Array(new Uint16Array(t.data.length / 4).fill(0x3c00).map((v, i) => (i === 5 ? 0x7c00 : v)).buffer) } : t));
    await expect(load(inf)).rejects.toThrow("tensor transformer.layers.0.attn.out_proj.weight holds an f16 infinity or NaN (element 5): the checkpoint is corrupt");
  });
});

describe("storage-type conversions", () => {
  it("f32 → bf16 and f32 → f16 round to nearest even and widen back exactly", () => {
    expect(bf16ToF32(f32ToBf16(1))).toBe(1);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // halfway: to even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway: to even (up)
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(65520)).toBe(0x7c00); // overflows to infinity
    expect(F16_TABLE[f32ToF16(2 ** -24)]).toBe(2 ** -24); // smallest subnormal
    expect(f32ToF16(2 ** -26)).toBe(0); // underflows
    expect(Number.isNaN(F16_TABLE[f32ToF16(NaN)]!)).toBe(true);
    for (let h = 0; h < 0x7c00; h++) expect(f32ToF16(F16_TABLE[h]!)).toBe(h); // every finite f16 survives
  });

  it("convert() maps whole buffers between every pair of types", () => {
    const values = [0.1, -2.5, 3e-6, 1000];
    const bf = new Uint8Array(8), back = new Uint8Array(16);
    convert(f32bytes(values), "f32", bf, "bf16", 4);
    convert(bf, "bf16", back, "f32", 4);
    expect(Array.from(new Float32Array(back.buffer))).toEqual(values.map((v) => bf16ToF32(f32ToBf16(v))));
    const h = new Uint8Array(8);
    convert(bf, "bf16", h, "f16", 4);
    expect(Array.from(new Uint16Array(h.buffer))).toEqual(values.map((v) => f32ToF16(bf16ToF32(f32ToBf16(v)))));
  });
});
