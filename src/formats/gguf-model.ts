// OpenELM in a GGUF file, as llama.cpp's converter writes it (convert_hf_to_gguf.py's OpenELMModel and
// gguf-py's tensor names; llama.cpp's src/models/openelm.cpp reads it):
//
// | metadata (prefix openelm.) | what |
// | --- | --- |
// | block_count, embedding_length, context_length | layers, model_dim, max_context_length |
// | feed_forward_length, attention.head_count, attention.head_count_kv | per-layer arrays: FFN widths, query heads, kv heads |
// | attention.key_length, attention.value_length, rope.dimension_count | head_dim (all three) |
// | rope.freq_base, attention.layer_norm_rms_epsilon | RoPE base, RMSNorm epsilon (1e-6) |
//
// | GGUF tensor | Hugging Face tensor |
// | --- | --- |
// | token_embd.weight, output_norm.weight, output.weight | transformer.token_embeddings, transformer.norm, lm_head (absent when tied) |
// | blk.N.attn_norm, .attn_qkv, .attn_q_norm, .attn_k_norm, .attn_output | transformer.layers.N.attn_norm, .attn.qkv_proj, .attn.q_norm, .attn.k_norm, .attn.out_proj |
// | blk.N.ffn_norm, .ffn_gate + .ffn_up, .ffn_down | .ffn_norm, .ffn.proj_1 (gate rows, then up rows), .ffn.proj_2 |
//
// GGUF dimensions are ggml's order (row length first), the reverse of Hugging Face's shapes. The FFN is
// SwiGLU and RoPE the rotate-half (NEOX) form: llama.cpp's openelm graph has no other.
import { MAX, checkConfig, type OpenELMConfig } from "../config.js";
import { tensorBytes, type DType } from "../dtype.js";
import { GGUFError, type GGUFFile, type GGUFValue, type TensorToWrite, type TypedValue } from "./gguf.js";
import { storedAt, type TensorEntry } from "./safetensors.js";

const ARCH = "openelm";

/** The GGUF name of each Hugging Face tensor of layer-free parts and of layer N. */
const NAMES: [hf: string, gguf: string][] = [
  ["transformer.token_embeddings.weight", "token_embd.weight"],
  ["transformer.norm.weight", "output_norm.weight"],
  ["lm_head.weight", "output.weight"],
];
const LAYER_NAMES: [hf: string, gguf: string][] = [
  ["attn_norm.weight", "attn_norm.weight"],
  ["attn.qkv_proj.weight", "attn_qkv.weight"],
  ["attn.q_norm.weight", "attn_q_norm.weight"],
  ["attn.k_norm.weight", "attn_k_norm.weight"],
  ["attn.out_proj.weight", "attn_output.weight"],
  ["ffn_norm.weight", "ffn_norm.weight"],
  ["ffn.proj_2.weight", "ffn_down.weight"],
];

/** The GGUF tensor names for a Hugging Face name (proj_1 is two: gate, then up). */
export function ggufNames(hf: string): string[] {
  const top = NAMES.find(([h]) => h === hf);
  if (top) return [top[1]];
  const m = /^transformer\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m && m[2] === "ffn.proj_1.weight") return [`blk.${m[1]}.ffn_gate.weight`, `blk.${m[1]}.ffn_up.weight`];
  const layer = m && LAYER_NAMES.find(([h]) => h === m[2]);
  if (!layer) throw new RangeError(`no GGUF name for ${hf}`);
  return [`blk.${m![1]}.${layer[1]}`];
}

/** The model's config from a GGUF file's metadata and tensors, checked like a config.json. */
export function configFromGGUF(g: GGUFFile): OpenELMConfig {
  const fail = (msg: string) => new GGUFError(`${g.source.name}: ${msg}`);
  const m = g.metadata, get = (key: string) => m.get(`${ARCH}.${key}`);
  const arch = m.get("general.architecture");
  if (arch !== ARCH) throw fail(`general.architecture is ${JSON.stringify(arch)}; openelm reads "openelm" models`);
  const int = (key: string): number => {
    const v = get(key);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw fail(`${ARCH}.${key} is ${v === undefined ? "missing" : JSON.stringify(String(v))}, not a positive integer`);
    return v;
  };
  const list = (key: string, n: number): number[] => {
    const v = get(key);
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number" && Number.isInteger(x) && x > 0))
      throw fail(`${ARCH}.${key} must list ${n} positive integers, one per layer`);
    return v as number[];
  };
  const float = (key: string, fallback?: number): number => {
    const v = get(key) ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw fail(`${ARCH}.${key} is ${v === undefined ? "missing" : String(v)}, not a positive number`);
    return v;
  };
  const numLayers = int("block_count"), headDim = int("attention.key_length");
  if (numLayers > MAX.layers) throw fail(`${ARCH}.block_count is ${numLayers}, more than the ${MAX.layers} layers openelm allows`);
  if (int("attention.value_length") !== headDim) throw fail(`${ARCH}.attention.value_length differs from key_length: openelm needs one head size`);
  const rot = get("rope.dimension_count") ?? headDim;
  if (rot !== headDim) throw fail(`${ARCH}.rope.dimension_count is ${String(rot)}: openelm rotates whole heads of ${headDim}`);
  const embeddings = g.tensors.find((t) => t.name === "token_embd.weight");
  if (!embeddings || embeddings.dims.length !== 2) throw fail("no two-dimensional token_embd.weight tensor");
  const modelDim = int("embedding_length"), q = list("attention.head_count", numLayers), kv = list("attention.head_count_kv", numLayers);
  const ffnDims = list("feed_forward_length", numLayers), id = (key: string, fallback: number) => {
    const v = m.get(key) ?? fallback;
    return typeof v === "number" ? v : NaN;
  };
  const names = new Set(g.tensors.map((t) => t.name));
  return checkConfig({
    vocabSize: embeddings.dims[1]!,
    maxContextLength: int("context_length"),
    numLayers,
    modelDim,
    headDim,
    numGqaGroups: q[0]! / kv[0]!,
    numQueryHeads: q,
    numKvHeads: kv,
    ffnDims,
    ffnMultipliers: ffnDims.map((f) => f / modelDim),
    ffnWithGlu: true,
    activation: "swish",
    normalizeQk: names.has("blk.0.attn_q_norm.weight"),
    shareInputOutput: !names.has("output.weight"),
    ropeFreqConstant: float("rope.freq_base", 10000),
    normEps: float("attention.layer_norm_rms_epsilon"),
    bosTokenId: id("tokenizer.ggml.bos_token_id", 1),
    eosTokenId: id("tokenizer.ggml.eos_token_id", 2),
  }, `${g.source.name} (GGUF metadata)`);
}

/** The file's tensors under their Hugging Face names; every GGUF tensor must have one. */
export function tensorsFromGGUF(g: GGUFFile, expected: Iterable<string>): Map<string, TensorEntry> {
  const fail = (msg: string) => new GGUFError(`${g.source.name}: ${msg}`);
  const byName = new Map(g.tensors.map((t) => [t.name, t]));
  const out = new Map<string, TensorEntry>(), used = new Set<string>();
  for (const hf of expected) {
    const parts = ggufNames(hf).map((n) => byName.get(n));
    const missing = ggufNames(hf).filter((n) => !byName.has(n));
    if (missing.length) throw fail(`no tensor ${missing[0]}, which the metadata implies (${hf} in Hugging Face terms)`);
    const [first, second] = parts as NonNullable<(typeof parts)[number]>[];
    for (const p of parts) used.add(p!.name);
    const shape = [...first!.dims].reverse();
    if (!second) {
      out.set(hf, { name: hf, dtype: first!.dtype, shape, bytes: first!.bytes, read: storedAt(g.source, first!.offset) });
      continue;
    }
    // proj_1: gate rows, then up rows, read as one tensor
    if (second.dtype !== first!.dtype || second.dims.join() !== first!.dims.join())
      throw fail(`${first!.name} and ${second.name} differ in type or shape; openelm keeps them as one matrix`);
    const read = async (at: number, into: Uint8Array) => {
      const inFirst = Math.max(0, Math.min(into.length, first!.bytes - at));
      if (inFirst > 0) await g.source.read(first!.offset + at, into.subarray(0, inFirst));
      if (inFirst < into.length) await g.source.read(second.offset + Math.max(0, at - first!.bytes), into.subarray(inFirst));
    };
    out.set(hf, { name: hf, dtype: first!.dtype, shape: [2 * shape[0]!, shape[1]!], bytes: 2 * first!.bytes, read });
  }
  const extra = g.tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (extra.length) throw fail(`tensor${extra.length > 1 ? "s" : ""} openelm does not use: ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ", ..." : ""}`);
  return out;
}

/** The chat template of a GGUF file, if it has one. */
export function chatTemplateFromGGUF(meta: Map<string, GGUFValue>): string | undefined {
  const t = meta.get("tokenizer.chat_template");
  return typeof t === "string" ? t : undefined;
}

/** GGUF metadata describing `config` as llama.cpp's converter writes it. */
export function ggufMetadata(c: OpenELMConfig, fileType: number, name: string): [string, TypedValue][] {
  if (!c.ffnWithGlu || c.activation !== "swish") throw new RangeError(`llama.cpp's openelm architecture has SwiGLU FFNs only; this model's FFN is ${c.ffnWithGlu ? "gated" : "plain"} ${c.activation}`);
  const u32s = (v: number[]): TypedValue => ({ type: "array", of: "u32", value: v });
  return [
    ["general.architecture", { type: "string", value: ARCH }],
    ["general.name", { type: "string", value: name }],
    ["general.file_type", { type: "u32", value: fileType }],
    ["general.alignment", { type: "u32", value: 32 }],
    [`${ARCH}.block_count`, { type: "u32", value: c.numLayers }],
    [`${ARCH}.context_length`, { type: "u32", value: c.maxContextLength }],
    [`${ARCH}.embedding_length`, { type: "u32", value: c.modelDim }],
    [`${ARCH}.feed_forward_length`, u32s(c.ffnDims)],
    [`${ARCH}.attention.head_count`, u32s(c.numQueryHeads)],
    [`${ARCH}.attention.head_count_kv`, u32s(c.numKvHeads)],
    [`${ARCH}.rope.freq_base`, { type: "f32", value: c.ropeFreqConstant }],
    [`${ARCH}.attention.layer_norm_rms_epsilon`, { type: "f32", value: c.normEps }],
    [`${ARCH}.rope.dimension_count`, { type: "u32", value: c.headDim }],
    [`${ARCH}.attention.key_length`, { type: "u32", value: c.headDim }],
    [`${ARCH}.attention.value_length`, { type: "u32", value: c.headDim }],
  ];
}

/** The GGUF tensors to write for a Hugging Face tensor of `shape` stored as `dtype` (proj_1 splits in two). */
export function ggufTensors(hf: string, shape: number[], dtype: DType): TensorToWrite[] {
  const names = ggufNames(hf), dims = shape.length === 1 ? [shape[0]!] : [shape[1]!, shape[0]! / names.length];
  return names.map((name) => ({ name, dtype, dims, bytes: tensorBytes(dtype, [...dims].reverse()) }));
}
