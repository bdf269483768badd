// LoRA adapters in the layout of Hugging Face's peft library, so that adapters trained here load in Python
// (PeftModel.from_pretrained) and peft's load here: adapter_config.json, and adapter_model.safetensors with,
// for each adapted Linear W [out, in], lora_A [rank, in] and lora_B [out, rank]. The adapted layer computes
// y = x·Wᵀ + scale·x·Aᵀ·Bᵀ with scale = lora_alpha / rank (rsLoRA: / √rank); merging adds scale·B·A to W.
import type { OpenELMConfig } from "../config.js";
import { FLOAT_TYPES, convert, isQuantized, tensorBytes, type DType, type FloatType } from "../dtype.js";
import { readText, type ModelFiles } from "../files.js";
import { expectedTensors } from "../weights.js";
import { convertRows } from "./blocks.js";
import { parseJsonObject } from "./json.js";
import { encodeSafetensors, readHeader, type TensorEntry } from "./safetensors.js";

/** An adapter folder that cannot be used as it is, with the file and field it concerns. */
export class AdapterError extends Error {
  override name = "AdapterError";
}

/** The projections an adapter may target (peft's target_modules: names of the model's Linear layers). */
export const LORA_TARGETS = ["qkv_proj", "out_proj", "proj_1", "proj_2"] as const;
/** One of LORA_TARGETS. */
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** An adapter's settings (adapter_config.json's r, lora_alpha, lora_dropout, target_modules, use_rslora, base_model_name_or_path). */
export interface LoraConfig {
  rank: number;
  alpha: number;
  /** Training's dropout (recorded; inference ignores it). */
  dropout: number;
  targets: LoraTarget[];
  /** peft's use_rslora: scale alpha/√rank instead of alpha/rank. */
  rslora?: boolean;
  baseModel?: string;
}

/** One adapted weight's pair: a [rank × in] and b [out × rank], row-major. */
export interface LoraPair {
  a: Float32Array;
  b: Float32Array;
  out: number;
  in: number;
}

/** An adapter: its config and a pair per adapted weight, by the weight's Hugging Face name. */
export interface Adapter {
  config: LoraConfig;
  pairs: Map<string, LoraPair>;
}

/** The factor of B·A in the adapted weight: alpha / rank, or alpha / √rank with rsLoRA. */
export const loraScale = (c: LoraConfig) => c.alpha / (c.rslora ? Math.sqrt(c.rank) : c.rank);

/** peft's tensor names for the pair adapting `weight` (e.g. transformer.layers.0.attn.qkv_proj.weight). */
export function loraNames(weight: string): { a: string; b: string } {
  const module = `base_model.model.${weight.replace(/\.weight$/, "")}`;
  return { a: `${module}.lora_A.weight`, b: `${module}.lora_B.weight` };
}

/** The weights that `targets` adapt in a model of config `c`, with their shapes [out, in]. */
export function adaptedWeights(c: OpenELMConfig, targets: readonly LoraTarget[]): Map<string, [number, number]> {
  return new Map([...expectedTensors(c)].filter(([name]) => targets.some((t) => name.endsWith(`.${t}.weight`))).map(([name, s]) => [name, [s[0]!, s[1]!]]));
}

/** The largest rank read (a bound before anything is allocated). */
export const MAX_RANK = 4096;

const isEmptyObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

/** Parse adapter_config.json, refusing what this implementation would otherwise get silently wrong. */
export function parseAdapterConfig(text: string, where = "adapter_config.json"): LoraConfig {
  const raw = parseJsonObject(text, where);
  const bad = (field: string, what: string) => new AdapterError(`${where}: field "${field}" ${what}`);
  if (raw.peft_type !== "LORA") throw bad("peft_type", `must be "LORA", got ${JSON.stringify(raw.peft_type)}`);
  const rank = raw.r;
  if (!Number.isInteger(rank) || (rank as number) < 1 || (rank as number) > MAX_RANK) throw bad("r", `must be an integer from 1 to ${MAX_RANK}, got ${JSON.stringify(rank)}`);
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !Number.isFinite(alpha) || alpha <= 0) throw bad("lora_alpha", `must be a positive number, got ${JSON.stringify(alpha)}`);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) throw bad("lora_dropout", `must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  const modules = raw.target_modules === "all-linear" ? [...LORA_TARGETS] : raw.target_modules;
  if (typeof modules === "string") throw bad("target_modules", `is a regular expression (${JSON.stringify(modules.slice(0, 80))}); openelm reads a list of names from ${LORA_TARGETS.join(", ")}`);
  if (!Array.isArray(modules) || modules.length === 0) throw bad("target_modules", `must be a non-empty list of names from ${LORA_TARGETS.join(", ")}`);
  for (const m of modules)
    if (!(LORA_TARGETS as readonly unknown[]).includes(m)) throw bad("target_modules", `names ${JSON.stringify(m)}, which is not a Linear layer of OpenELM (${LORA_TARGETS.join(", ")})`);
  // peft features that change the math: refused rather than ignored
  const unsupported: [string, (v: unknown) => boolean, string][] = [
    ["fan_in_fan_out", (v) => v === true, "true (weights stored transposed, as in GPT-2's Conv1D)"],
    ["bias", (v) => v !== undefined && v !== "none", "other than \"none\" (trained biases)"],
    ["use_dora", (v) => v === true, "true (DoRA's magnitude vectors)"],
    ["layers_to_transform", (v) => v !== undefined && v !== null, "set (only some layers adapted)"],
    ["rank_pattern", (v) => v !== undefined && v !== null && !isEmptyObject(v), "set (ranks per layer)"],
    ["alpha_pattern", (v) => v !== undefined && v !== null && !isEmptyObject(v), "set (alphas per layer)"],
    ["modules_to_save", (v) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0), "set (fully trained modules besides the adapters)"],
    ["exclude_modules", (v) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0), "set (modules left out of target_modules)"],
    ["layer_replication", (v) => v !== undefined && v !== null, "set (layers stacked again)"],
    // PiSSA, OLoRA, CorDA and LoftQ start from a changed base model: their adapters are not for the original weights
    ["init_lora_weights", (v) => typeof v === "string" && /^(pissa|olora|corda|loftq|eva)/i.test(v), `"${String(raw.init_lora_weights).slice(0, 20)}" (an adapter for a changed base model)`],
  ];
  for (const [field, is, what] of unsupported) if (is(raw[field])) throw bad(field, `is ${what}, which openelm does not support`);
  if (raw.use_rslora !== undefined && typeof raw.use_rslora !== "boolean") throw bad("use_rslora", "must be true or false");
  const base = raw.base_model_name_or_path;
  return { rank: rank as number, alpha, dropout, targets: [...new Set(modules as LoraTarget[])], rslora: raw.use_rslora === true, ...(typeof base === "string" ? { baseModel: base } : {}) };
}

/** Read and check an adapter folder against the model it adapts: every pair present, shaped and finite, nothing else. */
export async function readAdapter(files: ModelFiles, model: OpenELMConfig): Promise<Adapter> {
  const where = (name: string) => `${files.location}/${name}`;
  const text = await readText(files, "adapter_config.json");
  if (text === undefined)
    throw new AdapterError(`${files.location} has no adapter_config.json: an adapter folder holds adapter_config.json and adapter_model.safetensors, as peft saves them`);
  const config = parseAdapterConfig(text, where("adapter_config.json"));
  const src = await files.open("adapter_model.safetensors");
  if (!src)
    throw new AdapterError(`${files.location} has no adapter_model.safetensors${(await files.open("adapter_model.bin")) ? " (adapter_model.bin is a pickle, which openelm does not read; save with safe_serialization=True)" : ""}`);
  const entries = new Map((await readHeader(src)).map((e) => [e.name, e]));
  const pairs = new Map<string, LoraPair>(), used = new Set<string>();
  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    const e = entries.get(name);
    if (!e) throw new AdapterError(`${where("adapter_model.safetensors")}: missing tensor ${name} (target_modules lists ${config.targets.join(", ")})`);
    if (e.shape.length !== 2 || e.shape[0] !== shape[0] || e.shape[1] !== shape[1])
      throw new AdapterError(`${where("adapter_model.safetensors")}: tensor ${name} has shape [${e.shape}], expected [${shape}] (r = ${config.rank} and the base model's config.json)`);
    if (!(FLOAT_TYPES as readonly string[]).includes(e.dtype)) throw new AdapterError(`${where("adapter_model.safetensors")}: tensor ${name} is ${e.dtype}; adapters are f32, f16 or bf16`);
    used.add(name);
    const bytes = new Uint8Array(e.bytes), out = new Float32Array(shape[0]! * shape[1]!);
    await e.read(0, bytes);
    convert(bytes, e.dtype as FloatType, new Uint8Array(out.buffer), "f32", out.length);
    const i = out.findIndex((x) => !Number.isFinite(x));
    if (i >= 0) throw new AdapterError(`${where("adapter_model.safetensors")}: tensor ${name} has a NaN or infinite value at element ${i}`);
    return out;
  };
  for (const [weight, [out, inDim]] of adaptedWeights(model, config.targets)) {
    const n = loraNames(weight);
    pairs.set(weight, { a: await read(n.a, [config.rank, inDim]), b: await read(n.b, [out, config.rank]), out, in: inDim });
  }
  const extra = [...entries.keys()].filter((n) => !used.has(n));
  if (extra.length) throw new AdapterError(`${where("adapter_model.safetensors")}: tensor${extra.length > 1 ? "s" : ""} not of this model's ${config.targets.join(", ")} adapters: ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? `, and ${extra.length - 3} more` : ""}`);
  return { config, pairs };
}

/** The two files of an adapter as peft writes them (tensors as f32). */
export function encodeAdapter(adapter: Adapter): { "adapter_config.json": string; "adapter_model.safetensors": Uint8Array } {
  const c = adapter.config;
  const config = {
    peft_type: "LORA", task_type: "CAUSAL_LM", base_model_name_or_path: c.baseModel ?? null, r: c.rank, lora_alpha: c.alpha, lora_dropout: c.dropout,
    target_modules: c.targets, bias: "none", fan_in_fan_out: false, use_rslora: c.rslora ?? false, use_dora: false, inference_mode: true,
  };
  const tensors = [...adapter.pairs].flatMap(([weight, p]) => {
    const n = loraNames(weight);
    return [
      { name: n.a, dtype: "f32" as const, shape: [c.rank, p.in], data: new Uint8Array(p.a.buffer.slice(p.a.byteOffset, p.a.byteOffset + p.a.byteLength)) },
      { name: n.b, dtype: "f32" as const, shape: [p.out, c.rank], data: new Uint8Array(p.b.buffer.slice(p.b.byteOffset, p.b.byteOffset + p.b.byteLength)) },
    ];
  });
  return { "adapter_config.json": JSON.stringify(config, null, 2) + "\n", "adapter_model.safetensors": encodeSafetensors(tensors, { format: "pt" }) };
}

/** w [out × in] += scale · b [out × rank] · a [rank × in], in place. */
export function addLowRank(w: Float32Array, p: LoraPair, rank: number, scale: number): void {
  const row = new Float32Array(p.in);
  for (let o = 0; o < p.out; o++) {
    row.fill(0);
    for (let r = 0; r < rank; r++) {
      const s = scale * p.b[o * rank + r]!, a = p.a.subarray(r * p.in, (r + 1) * p.in);
      if (s !== 0) for (let i = 0; i < p.in; i++) row[i]! += s * a[i]!;
    }
    for (let i = 0; i < p.in; i++) w[o * p.in + i]! += row[i]!;
  }
}

/**
 * The checkpoint's tensors with the adapter merged into the weights it adapts, each merged weight produced
 * in the type `typeOf` gives (by default its stored type): the loader's placement, so that a weight loaded
 * as f32 gets the exact sum. A quantized weight is dequantized, merged and quantized again (rounded twice:
 * merge into f32, f16 or bf16 weights where you can), and only into its own type. A merged weight is
 * computed in f32 when the loader first reads it and dropped once it has been read to the end.
 */
export function mergeAdapter(tensors: Map<string, TensorEntry>, adapter: Adapter, typeOf: (name: string) => DType = (name) => tensors.get(name)!.dtype): Map<string, TensorEntry> {
  const out = new Map(tensors), scale = loraScale(adapter.config);
  for (const [name, pair] of adapter.pairs) {
    const base = tensors.get(name);
    if (!base) throw new AdapterError(`the adapter adapts ${name}, which the checkpoint does not have`);
    if (base.shape[0] !== pair.out || base.shape[1] !== pair.in) throw new AdapterError(`the adapter's pair for ${name} is for [${pair.out}, ${pair.in}], and the checkpoint's tensor is [${base.shape}]`);
    const dtype = typeOf(name), bytes = tensorBytes(dtype, base.shape);
    if (isQuantized(base.dtype) && isQuantized(dtype) && dtype !== base.dtype)
      throw new AdapterError(`${name} is stored as ${base.dtype}; merging an adapter and storing it as ${dtype} would quantize it twice (load it as ${base.dtype}, or from f32, f16 or bf16 weights)`);
    let merged: Uint8Array | undefined;
    out.set(name, {
      ...base, dtype, bytes,
      read: async (at, into) => {
        if (!merged) {
          const stored = new Uint8Array(base.bytes), w = new Float32Array(pair.out * pair.in);
          await base.read(0, stored);
          convertRows(stored, base.dtype, new Uint8Array(w.buffer), "f32", pair.out, pair.in);
          addLowRank(w, pair, adapter.config.rank, scale);
          merged = new Uint8Array(bytes);
          convertRows(new Uint8Array(w.buffer), "f32", merged, dtype, pair.out, pair.in);
        }
        into.set(merged.subarray(at, at + into.length));
        if (at + into.length >= bytes) merged = undefined;
      },
    });
  }
  return out;
}
