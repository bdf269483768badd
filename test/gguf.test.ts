// The GGUF reader and writer: round trips, agreement with @huggingface/gguf's parser on what we write,
// and every malformed header refused with a GGUFError that says what is wrong.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { gguf as hfGguf } from "@huggingface/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { bytesSource } from "../src/files.js";
import { GGUFError, GGUF_LIMITS, encodeGGUF, readGGUF, type TypedValue } from "../src/formats/gguf.js";
import { ggufFile } from "../src/formats/gguf-export.js";
import type { WeightType } from "../src/dtype.js";
import { loadGGUFModel } from "../src/load.js";
import { nodeKernelOptions, readCheckpointAt } from "../src/node/index.js";
import { MODELS, ORACLE, loadOracle, oracleCases, relError } from "./helpers/oracle.js";

const tmp = mkdtempSync(join(tmpdir(), "openelm-gguf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const metadata: [string, TypedValue][] = [
  ["general.architecture", { type: "string", value: "openelm" }],
  ["general.alignment", { type: "u32", value: 64 }],
  ["test.u8", { type: "u8", value: 200 }], ["test.i8", { type: "i8", value: -3 }], ["test.u16", { type: "u16", value: 65535 }],
  ["test.i16", { type: "i16", value: -300 }], ["test.i32", { type: "i32", value: -7 }], ["test.f32", { type: "f32", value: 1e-6 }],
  ["test.bool", { type: "bool", value: true }], ["test.u64", { type: "u64", value: 2 ** 40 }], ["test.i64", { type: "i64", value: -(2 ** 40) }],
  ["test.f64", { type: "f64", value: Math.PI }], ["test.ints", { type: "array", of: "i32", value: [4, 8, 8, 8] }],
  ["test.strings", { type: "array", of: "string", value: ["<s>", "▁the", "é🦙"] }],
];
const tensors = [
  { name: "a", dtype: "f32" as const, dims: [3, 2], bytes: 24, data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer) },
  { name: "b", dtype: "q8_0" as const, dims: [32], bytes: 34, data: new Uint8Array(34).fill(1) },
];
const file = encodeGGUF(metadata, tensors, 64);
const read = (bytes: Uint8Array) => readGGUF(bytesSource("f.gguf", bytes));

describe("GGUF round trip", () => {
  it("reads back every metadata type, the tensor infos, and data at aligned offsets", async () => {
    const g = await read(file);
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(64);
    const m = Object.fromEntries(g.metadata);
    expect(m).toMatchObject({ "general.architecture": "openelm", "test.u8": 200, "test.i8": -3, "test.u16": 65535, "test.i16": -300, "test.i32": -7,
      "test.bool": true, "test.u64": 2 ** 40, "test.i64": -(2 ** 40), "test.f64": Math.PI, "test.ints": [4, 8, 8, 8], "test.strings": ["<s>", "▁the", "é🦙"] });
    expect(m["test.f32"]).toBe(Math.fround(1e-6));
    expect(g.tensors.map((t) => [t.name, t.dtype, t.dims, t.bytes, t.offset % 64])).toEqual([["a", "f32", [3, 2], 24, 0], ["b", "q8_0", [32], 34, 0]]);
    expect(Array.from(new Float32Array(file.slice(g.tensors[0]!.offset, g.tensors[0]!.offset + 24).buffer))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("@huggingface/gguf parses what we write the same way", async () => {
    const path = join(tmp, "t.gguf");
    writeFileSync(path, file);
    const theirs = await hfGguf(path, { allowLocalFile: true });
    expect(theirs.metadata["test.strings"]).toEqual(["<s>", "▁the", "é🦙"]);
    expect(theirs.metadata["test.ints"]).toEqual([4, 8, 8, 8]);
    expect(theirs.metadata["general.architecture"]).toBe("openelm");
    const ours = await read(file);
    expect(theirs.tensorInfos.map((t) => [t.name, t.shape.map(Number), Number(t.offset) + Number(theirs.tensorDataOffset)]))
      .toEqual(ours.tensors.map((t) => [t.name, t.dims, t.offset]));
  });
});

/** `file` with bytes patched by `f`. */
const patched = (f: (b: Uint8Array, v: DataView) => void) => {
  const b = file.slice();
  f(b, new DataView(b.buffer));
  return b;
};
const headerEnd = (async () => (await read(file)).tensors[0]!.offset)();

describe("malformed GGUF headers are refused with what is wrong", () => {
  it.each([
    ["a file too short", () => file.slice(0, 10), /10 bytes: too short for a GGUF file/],
    ["another magic", () => patched((b) => b.set([0x47, 0x47, 0x4d, 0x4c])), /not a GGUF file: it does not start with "GGUF"/],
    ["a big-endian file", () => patched((_, v) => v.setUint32(4, 3, false)), /a big-endian GGUF file/],
    ["version 1", () => patched((_, v) => v.setUint32(4, 1, true)), /GGUF version 1; openelm reads versions 2 and 3/],
    ["a huge tensor count", () => patched((_, v) => v.setBigUint64(8, 1n << 40n, true)), /1099511627776 tensors, more than the 65536/],
    ["a tensor count beyond 2^53", () => patched((_, v) => v.setBigUint64(8, 1n << 60n, true)), /the tensor count is 1152921504606846976, beyond any real size/],
    ["a huge metadata count", () => patched((_, v) => v.setBigUint64(16, 70000n, true)), /70000 metadata keys/],
    ["a key length past the end", () => patched((_, v) => v.setBigUint64(24, 1n << 30n, true)), /metadata key 0 is 1073741824 bytes long|runs past the end/],
    ["a string of invalid UTF-8", () => patched((b) => (b[32] = 0xff)), /metadata key 0 is not UTF-8 text/],
    ["a value type GGUF does not define", () => patched((b, v) => v.setUint32(32 + "general.architecture".length, 99, true)), /has value type 99, which GGUF does not define/],
  ] as const)("%s", async (_, bytes, message) => {
    const e = await read(bytes()).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(GGUFError);
    expect((e as Error).message).toMatch(message);
  });

  const meta = (extra: [string, TypedValue][], ts = tensors, alignment = 64) => encodeGGUF([...metadata.filter(([k]) => k !== "general.alignment"), ["general.alignment", { type: "u32", value: alignment }], ...extra], ts, alignment);
  it.each([
    ["a key twice", () => meta([["test.u8", { type: "u8", value: 1 }]]), /metadata key "test.u8" appears twice/],
    ["an array longer than the file", () => {
      const b = meta([["zz.ints", { type: "array", of: "u32", value: [1, 2] }]]);
      const at = Buffer.from(b).indexOf("zz.ints") + "zz.ints".length + 8; // the array's length field
      new DataView(b.buffer).setBigUint64(at, 1n << 40n, true);
      return b;
    }, /metadata zz.ints claims 1099511627776 elements, more than the rest of the file holds/],
    ["a bool that is neither 0 nor 1", () => {
      const b = meta([]);
      b[Buffer.from(b).indexOf("test.bool") + "test.bool".length + 4] = 7;
      return b;
    }, /metadata test.bool is a bool of value 7/],
    ["an alignment that is not a power of two", () => meta([], tensors, 48), /general.alignment is 48, not a power of two/],
    ["a tensor twice", () => meta([], [tensors[0]!, tensors[0]!]), /tensor "a" appears twice/],
    ["an unsupported tensor type", () => meta([], [{ ...tensors[0]!, dtype: "q4_0" as const, dims: [30], bytes: 18 }]), /tensor a is Q4_0 with rows of 30 values, not a whole number of blocks/],
  ] as const)("%s", async (_, bytes, message) => {
    const e = await read(bytes()).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(GGUFError);
    expect((e as Error).message).toMatch(message);
  });

  it("tensor infos that lie: a type openelm does not compute with, zero or too many dimensions, offsets unaligned, past the end or overlapping", async () => {
    const end = await headerEnd;
    const info = Buffer.from(file).indexOf("a", Buffer.from(file).indexOf("test.strings") + 40); // tensor a's name
    const at = { nDims: info + 1, dim0: info + 5, type: info + 21, offset: info + 25 };
    const cases: [(v: DataView) => void, RegExp][] = [
      [(v) => v.setUint32(at.type, 11, true), /tensor a is Q3_K; openelm computes with F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K/],
      [(v) => v.setUint32(at.type, 77, true), /tensor a has ggml type 77, which openelm does not know/],
      [(v) => v.setUint32(at.nDims, 9, true), /tensor a has 9 dimensions/],
      [(v) => v.setBigUint64(at.dim0, 0n, true), /tensor a has dimensions \[0,2\], an empty or impossibly large shape/],
      [(v) => v.setBigUint64(at.offset, 8n, true), /tensor a starts at data offset 8, not a multiple of the alignment 64/],
      [(v) => v.setBigUint64(at.offset, 1024n, true), /tensor a ends at byte \d+, past the end of the file/],
      [(v) => v.setBigUint64(at.dim0, 10n, true), /tensors a and b overlap/],
    ];
    for (const [patch, message] of cases) await expect(read(patched((_, v) => patch(v)))).rejects.toThrow(message);
    expect(end).toBeGreaterThan(info);
  });

  it("truncations, bit flips and random bytes give a GGUFError or a consistent reading (fast-check)", async () => {
    const consistent = (bytes: Uint8Array, g: Awaited<ReturnType<typeof read>>) => g.tensors.every((t) => t.offset + t.bytes <= bytes.length && t.offset % g.alignment === 0);
    await fc.assert(fc.asyncProperty(fc.nat({ max: file.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 7 }), async (cut, at, bit) => {
      const flipped = file.slice();
      flipped[at % file.length]! ^= 1 << bit;
      for (const bytes of [file.slice(0, cut), flipped]) {
        const r = await read(bytes).then((g) => ({ g }), (error: unknown) => ({ error }));
        if ("error" in r) expect(r.error).toBeInstanceOf(GGUFError);
        else expect(consistent(bytes, r.g)).toBe(true);
      }
    }), { numRuns: 400 });
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
      await expect(read(Uint8Array.from([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, ...bytes]))).rejects.toBeInstanceOf(GGUFError);
    }));
  });

  it("a header is capped, so a file of lying sizes cannot make the reader hold gigabytes", () => {
    expect(GGUF_LIMITS.header).toBe(256 << 20);
  });
});

describe("OpenELM models in GGUF", () => {
  const exported = async (name: string, type: WeightType = "f32") => {
    const { config, tensors, tokenizer, chatTemplate } = await readCheckpointAt(join(ORACLE, name));
    const chunks: Uint8Array[] = [];
    for await (const c of ggufFile(config, tensors, { type, tokenizer, chatTemplate })) chunks.push(c);
    const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return out;
  };
  const load = (bytes: Uint8Array) => loadGGUFModel(bytesSource(`${bytes.length}.gguf`, bytes), { ...nodeKernelOptions(), threads: 1 });

  it.each(MODELS)("%s: exported and read back, it computes Apple's logits (untied heads and models without QK-norm too)", async (name) => {
    const model = await load(await exported(name));
    for (const c of oracleCases(name)) expect(relError(model.forward(model.newCache(), c.ids, { allPositions: true }), c.logits)).toBeLessThan(1e-4);
    await model.close();
  });

  // --dtype quantizes a safetensors checkpoint while it loads, with the quantizers that write GGUF files
  it.each(["q8_0", "q4_0", "q4_k_m"] as const)("--dtype %s on load gives the same model as its GGUF export, bit for bit", async (type) => {
    const name = "elm-tiny-gqa", [c] = oracleCases(name);
    const onLoad = await loadOracle(name, { ...nodeKernelOptions(), threads: 1, dtype: type }), fromFile = await load(await exported(name, type));
    expect(onLoad.weights.layers[0]!.qkvProj.dtype).toBe(type === "q4_0" ? "q4_0" : "q8_0"); // K-quant rows must be multiples of 256: here they fall back to q8_0
    const logits = onLoad.forward(onLoad.newCache(), c!.ids, { allPositions: true });
    expect(logits).toEqual(fromFile.forward(fromFile.newCache(), c!.ids, { allPositions: true }));
    // near the reference, as far as random tiny weights allow (3% for 8 bits, 37% for 4; a wrong layout gives >100%)
    expect(relError(logits, c!.logits)).toBeLessThan(type === "q4_0" ? 0.5 : 5e-2);
    await onLoad.close();
    await fromFile.close();
  });

  it("metadata that does not describe an OpenELM model is named", async () => {
    const good = await readGGUF(bytesSource("m.gguf", await exported("elm-tiny-gqa", "bf16")));
    const variant = (edit: (m: Map<string, unknown>) => void, tensors = good.tensors) => {
      const metadata = new Map(good.metadata) as Map<string, unknown>;
      edit(metadata);
      return { ...good, metadata, tensors } as typeof good;
    };
    const cases: [ReturnType<typeof variant>, RegExp][] = [
      [variant((m) => m.set("general.architecture", "llama")), /general.architecture is "llama"; openelm reads "openelm" models/],
      [variant((m) => m.delete("openelm.attention.head_count_kv")), /openelm.attention.head_count_kv must list 4 positive integers, one per layer/],
      [variant((m) => m.set("openelm.attention.head_count", [4, 8])), /openelm.attention.head_count must list 4 positive integers/],
      [variant((m) => m.set("openelm.attention.head_count", [4, 8, 8, 7])), /layer 3 has 7 query heads for 2 kv heads; they must divide/],
      [variant((m) => m.set("openelm.rope.dimension_count", 8)), /openelm.rope.dimension_count is 8: openelm rotates whole heads of 16/],
      [variant((m) => m.set("openelm.block_count", 1e9)), /openelm.block_count is 1000000000, more than the 1024 layers openelm allows/],
      [variant(() => {}, good.tensors.filter((t) => t.name !== "blk.2.ffn_up.weight")), /no tensor blk.2.ffn_up.weight, which the metadata implies \(transformer.layers.2.ffn.proj_1.weight/],
      [variant(() => {}, [...good.tensors, { ...good.tensors[0]!, name: "rope_freqs.weight" }]), /tensor openelm does not use: rope_freqs.weight/],
    ];
    for (const [g, message] of cases) await expect(loadGGUFModel(g, { kernels: "typescript" })).rejects.toThrow(message);
  });
});
