// safetensors reading (single file and sharded), malformed files, and the tensor checks against the config.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { convert, f32ToBf16, f32ToF16, F16_TABLE, bf16ToF32 } from "../src/dtype.js";
import { memoryFiles } from "../src/files.js";
import { loadModel } from "../src/load.js";
import { SafetensorsError, encodeSafetensors, readCheckpoint, readHeader } from "../src/formats/safetensors.js";
import { WeightsError, checkTensors, expectedTensors } from "../src/weights.js";
import { bytesSource } from "../src/files.js";
import { nodeKernelOptions } from "../src/node/index.js";
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
    for (const t of tensors.values()) await t.read(t.bytes - 2, new Uint8Array(2)); // every tensor's last bytes are in its shard
    expect([...tensors.values()].every((t) => t.dtype === "bf16")).toBe(true);
  });

  const good = encodeSafetensors([tensor("w", [2, 2])]);
  const two = encodeSafetensors([tensor("a", [3]), tensor("b", [2])]);
  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  /** `good` with its header length field changed by `delta` bytes (the bytes themselves unchanged). */
  const lengthOff = (delta: number) => {
    const f = good.slice();
    new DataView(f.buffer).setBigUint64(0, new DataView(good.buffer).getBigUint64(0, true) + BigInt(delta), true);
    return f;
  };
  it.each([
    ["a file shorter than the length field", good.slice(0, 5), /5 bytes: too short for a safetensors file/],
    ["a header length beyond the cap", rawFile("{}").fill(0xff, 0, 8), /not a safetensors file: its header length field is beyond the 16 MiB cap/],
    ["a header running past the end", rawFile("{}").fill(0x10, 1, 2), /the header runs past the end of the file \(10 bytes\): truncated, or not a safetensors file/],
    ["a header length one byte long", lengthOff(1), /bad.safetensors: (header: not valid JSON|truncated)/],
    ["a header length one byte short", lengthOff(-1), /the file has 1 bytes after the last tensor|not valid JSON/],
    ["a header that does not start with {", rawFile("[1,2]"), /the header does not start with '\{'/],
    ["a header that is not UTF-8", rawFile("{\"\xff\"}").map((b, i) => (i === 10 ? 0xff : b)), /the header is not UTF-8 text/],
    ["a header that is not JSON", rawFile("{not json"), /bad.safetensors: header: not valid JSON at line 1, column 2/],
    ["a header with a tensor twice", rawFile(`{"w":${JSON.stringify(entry("F32", [1], [0, 4]))},"w":${JSON.stringify(entry("F32", [1], [4, 8]))}}`, new Uint8Array(8)), /key "w" appears twice in one object/],
    ["metadata that is not a map of strings", rawFile(JSON.stringify({ __metadata__: { n: 1 } })), /"__metadata__" must map names to strings/],
    ["an unsupported dtype", rawFile(JSON.stringify({ w: entry("F64", [1], [0, 8]) }), new Uint8Array(8)), /tensor "w" has dtype "F64"; openelm reads F32, F16 and BF16/],
    ["an integer dtype", rawFile(JSON.stringify({ w: entry("I32", [1], [0, 4]) }), new Uint8Array(4)), /has dtype "I32"/],
    ["an unknown dtype", rawFile(JSON.stringify({ w: entry("F33", [1], [0, 4]) }), new Uint8Array(4)), /has unknown dtype "F33"/],
    ["offsets that disagree with the shape", rawFile(JSON.stringify({ w: entry("F32", [3], [0, 8]) }), new Uint8Array(8)), /span 8 bytes but shape \[3\] of F32 needs 12/],
    ["a negative shape", rawFile(JSON.stringify({ w: entry("F32", [-1], [0, 4]) }), new Uint8Array(4)), /shape \[-1\], not a list of sizes/],
    ["a shape whose size overflows", rawFile(JSON.stringify({ w: entry("F32", [2 ** 30, 2 ** 30, 2 ** 30], [0, 4]) }), new Uint8Array(4)), /whose size overflows/],
    ["offsets that are not a pair", rawFile(JSON.stringify({ w: entry("F32", [1], [4]) }), new Uint8Array(4)), /data_offsets \[4\], not \[begin, end\]/],
    ["offsets backwards", rawFile(JSON.stringify({ w: entry("F32", [1], [8, 4]) }), new Uint8Array(8)), /data_offsets \[8,4\]/],
    ["data that does not start at 0", rawFile(JSON.stringify({ w: entry("F32", [1], [4, 8]) }), new Uint8Array(8)), /starts at data byte 4, but the previous tensor ends at 0: a gap between tensors/],
    ["overlapping tensors", rawFile(JSON.stringify({ a: entry("F32", [2], [0, 8]), b: entry("F32", [1], [4, 8]) }), new Uint8Array(8)), /overlapping tensors/],
    ["bytes after the last tensor", new Uint8Array([...two, 0]), /the file has 1 bytes after the last tensor/],
    ["data cut off at the end", good.slice(0, good.length - 3), /truncated: the tensors end at byte \d+ but the file has \d+ bytes/],
  ])("rejects %s", async (_, bytes, message) => {
    const error = await readHeader(bytesSource("bad.safetensors", bytes)).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(message);
  });

  it("never quotes the bytes of a file that is not safetensors", async () => {
    const text = new TextEncoder().encode("root:x:0:0:root:/root:/bin/bash\n".repeat(4));
    for (const bytes of [text, rawFile("{root:x:0:0:root:/root:/bin/bash}"), rawFile('{"root":"x"} root:/bin/bash')]) {
      const message = await readHeader(bytesSource("passwd", bytes)).then(() => "", (e: Error) => e.message);
      expect(message).toMatch(/^passwd: /);
      expect(message).not.toMatch(/root|bash/);
    }
  });

  it("rejects a folder without weights, an index naming a missing shard, and a shard the index does not describe", async () => {
    await expect(readCheckpoint(memoryFiles({}, "empty/"))).rejects.toThrow(/no model.safetensors and no model.safetensors.index.json/);
    const index = (map: object) => JSON.stringify({ weight_map: map });
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": index({ w: "s1.safetensors" }) }))).rejects.toThrow(/lists shard s1.safetensors, which is not in/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": index({ v: "s1.safetensors" }), "s1.safetensors": good }))).rejects.toThrow(/holds tensor "w", which the index does not list/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": "{}" }))).rejects.toThrow(/no "weight_map"/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": index({}) }))).rejects.toThrow(/"weight_map" lists no tensors/);
    await expect(readCheckpoint(memoryFiles({ "model.safetensors.index.json": '{"weight_map":{"w":"a"},"weight_map":{}}' }))).rejects.toThrow(/key "weight_map" appears twice/);
  });

  it.each([
    ["../outside.safetensors", /leaves the folder/],
    ["/etc/passwd", /is an absolute path/],
    ["C:\\Windows\\x", /backslash|absolute/],
    ["shards/../../x", /leaves the folder/],
    ["", /not a file name/],
    [7, /not a file name/],
    ["a\u0000b", /NUL/],
  ])("an index naming the shard %j is refused, naming the entry", async (shard, message) => {
    const files = memoryFiles({ "model.safetensors.index.json": JSON.stringify({ weight_map: { "lm_head.weight": shard } }) });
    const error = await readCheckpoint(files).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(/model.safetensors.index.json: weight_map\["lm_head.weight"\] names/);
    expect(error?.message).toMatch(message);
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

  const cfg = JSON.stringify({ model_type: "openelm", num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, qkv_multipliers: 1.0, ffn_multipliers: 2, ffn_dim_divisor: 16, normalize_qk_projections: true, share_input_output_layers: true, vocab_size: 10 });
  const load = (ts: ReturnType<typeof full>, opts: { dtype?: "f16" | "bf16" | "f32"; kernels?: "typescript" } = {}) =>
    loadModel(memoryFiles({ "config.json": cfg, "model.safetensors": encodeSafetensors(ts) }), { ...nodeKernelOptions(), threads: 1, ...opts });
  /** The checkpoint with one tensor stored as `dtype`, holding `bad` (raw bits) at element `at`. */
  const withBad = (name: string, dtype: "f32" | "f16" | "bf16", bad: number, at: number) => full().map((t) => {
    if (!t.name.endsWith(name)) return t;
    const count = t.data.length / 4;
    const data = dtype === "f32" ? new Uint8Array(new Uint32Array(count).fill(0x3f000000).map((v, i) => (i === at ? bad : v)).buffer)
      : new Uint8Array(new Uint16Array(count).fill(dtype === "f16" ? 0x3800 : 0x3f00).map((v, i) => (i === at ? bad : v)).buffer);
    return { ...t, dtype, data };
  });

  it.each([
    ["f32", "NaN", 0x7fc00000], ["f32", "+inf", 0x7f800000], ["f32", "-inf", 0xff800000],
    ["bf16", "NaN", 0x7fc1], ["bf16", "+inf", 0x7f80], ["bf16", "-inf", 0xff80],
    ["f16", "NaN", 0x7e00], ["f16", "+inf", 0x7c00], ["f16", "-inf", 0xfc00],
  ] as const)("rejects an %s weight holding %s, naming the tensor and the first bad element (both kernel sets)", async (dtype, _, bits) => {
    for (const kernels of ["typescript", undefined] as const) {
      for (const at of [0, 5, 1023]) {
        const ts = withBad("1.ffn.proj_2.weight", dtype, bits, at);
        await expect(load(ts, { kernels })).rejects.toThrow(`tensor transformer.layers.1.ffn.proj_2.weight holds NaN or infinity (element ${at}): the checkpoint is corrupt`);
      }
    }
    const norm = withBad("0.attn_norm.weight", dtype, bits, 31);
    await expect(load(norm)).rejects.toThrow("tensor transformer.layers.0.attn_norm.weight holds NaN or infinity (element 31)");
  });

  it("rejects f32 values beyond the f16 range kept as f16, and accepts the largest finite values", async () => {
    const big = full().map((t) => (t.name.endsWith("1.ffn.proj_2.weight") ? tensor(t.name, t.shape, Array(t.data.length / 4).fill(0.5).map((v, i) => (i === 7 ? 1e6 : v))) : t));
    await expect(load(big, { dtype: "f16" })).rejects.toThrow("tensor transformer.layers.1.ffn.proj_2.weight has values beyond the f16 range (±65504), e.g. element 7; keep it as bf16 or f32 (--dtype)");
    const edge = full().map((t) => (t.name.endsWith("1.ffn.proj_2.weight") ? tensor(t.name, t.shape, Array(t.data.length / 4).fill(0).map((_, i) => [3.4028234663852886e38, -0, 1e-45, 65504][i % 4]!)) : t));
    await expect(load(edge)).resolves.toBeDefined();
    await expect(load(edge.map((t) => (t.name.endsWith("proj_2.weight") ? tensor(t.name, t.shape, Array(t.data.length / 4).fill(65504)) : t)), { dtype: "f16" })).resolves.toBeDefined();
  });

  it("non-finite logits stop generation with an error instead of being sampled", async () => {
    const huge = full().map((t) => (t.name === "transformer.norm.weight" ? tensor(t.name, t.shape, Array(32).fill(3e38)) : t));
    const model = await load(huge);
    expect(() => model.forward(model.newCache(), [1, 2, 3])).toThrow(/the logits are not finite \(NaN or infinity at token \d+ of row 0\): the activations overflowed/);
    const { decode } = await import("../src/generation/decode.js");
    expect(() => [...decode(model, model.newCache(), [1, 2], { maxNewTokens: 4, temperature: 1 })]).toThrow(/the logits are not finite/);
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

describe("reading safetensors: properties (fast-check)", () => {
  // A valid file of a few tensors of random shapes and types, as the Python writer lays it out.
  const validFile = fc.array(fc.record({
    dtype: fc.constantFrom("f32" as const, "f16" as const, "bf16" as const),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
  }), { minLength: 1, maxLength: 5 }).map((ts) => encodeSafetensors(ts.map((t, i) => ({
    name: `t${i}`, dtype: t.dtype, shape: t.shape,
    data: new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "f32" ? 4 : 2)).fill(i + 1),
  }))));
  const outcome = (bytes: Uint8Array) => readHeader(bytesSource("f.safetensors", bytes)).then((entries) => ({ entries }), (error: unknown) => ({ error }));
  /** Whatever it accepts is consistent: every tensor inside the file, the ranges tiling the data section exactly. */
  const consistent = (bytes: Uint8Array, entries: Awaited<ReturnType<typeof readHeader>>) => {
    const end = entries.reduce((a, e) => Math.max(a, e.offset + e.bytes), 0);
    return entries.every((e) => e.offset >= 8 && e.offset + e.bytes <= bytes.length) && (entries.length === 0 || end === bytes.length);
  };

  it("accepts every file the writer makes", async () => {
    await fc.assert(fc.asyncProperty(validFile, async (file) => {
      const r = await outcome(file);
      expect("entries" in r && consistent(file, r.entries)).toBe(true);
    }));
  });

  it("rejects every truncation with a SafetensorsError", async () => {
    await fc.assert(fc.asyncProperty(validFile, fc.nat(), async (file, cut) => {
      const r = await outcome(file.slice(0, cut % file.length));
      expect("error" in r && r.error).toBeInstanceOf(SafetensorsError);
    }));
  });

  it("a bit flip anywhere is either refused with a SafetensorsError or read consistently", async () => {
    await fc.assert(fc.asyncProperty(validFile, fc.nat(), fc.integer({ min: 0, max: 7 }), async (file, at, bit) => {
      const bytes = file.slice();
      bytes[at % bytes.length]! ^= 1 << bit;
      const r = await outcome(bytes);
      if ("error" in r) expect(r.error).toBeInstanceOf(SafetensorsError);
      else expect(consistent(bytes, r.entries)).toBe(true);
    }), { numRuns: 500 });
  });

  it("a lying header length is refused quickly, without allocating for the lie", async () => {
    await fc.assert(fc.asyncProperty(validFile, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), async (file, length) => {
      const bytes = file.slice();
      new DataView(bytes.buffer).setBigUint64(0, length, true);
      const honest = new DataView(file.buffer).getBigUint64(0, true);
      const r = await outcome(bytes);
      if (length !== honest) expect("error" in r && r.error).toBeInstanceOf(SafetensorsError);
    }));
  });

  it("random bytes are refused with a SafetensorsError", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 256 }), async (bytes) => {
      const r = await outcome(bytes);
      expect("error" in r && r.error).toBeInstanceOf(SafetensorsError);
    }));
  });
});
