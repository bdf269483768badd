// The tensors an OpenELM checkpoint must hold (Hugging Face names and shapes, derived from the config),
// checked against what the files hold, then read straight into the arena in the chosen storage type.
import { MAX_MEMORY_BYTES, type Arena } from "./arena.js";
import type { OpenELMConfig } from "./config.js";
import { BYTES, isKQuant, isQuantized, rowBytes, tensorBytes, type DType, type FloatType, type WeightType } from "./dtype.js";
import { convertRows, firstNonFiniteBlock } from "./formats/blocks.js";
import type { TensorEntry } from "./formats/safetensors.js";
import type { Kernels } from "./kernels/types.js";

/** A tensor in the arena. */
export interface Tensor {
  ptr: number;
  dtype: DType;
  shape: number[];
}

/** One transformer layer's tensors in the arena. */
export interface LayerWeights {
  attnNorm: Tensor; // [modelDim]
  qkvProj: Tensor; // [(qHeads + 2·kvHeads)·headDim, modelDim]
  qNorm?: Tensor; // [headDim], when normalize_qk_projections
  kNorm?: Tensor; // [headDim]
  outProj: Tensor; // [modelDim, qHeads·headDim]
  ffnNorm: Tensor; // [modelDim]
  proj1: Tensor; // [(glu ? 2 : 1)·ffnDim, modelDim]
  proj2: Tensor; // [modelDim, ffnDim]
}

/** A model's tensors in the arena. */
export interface Weights {
  tokenEmbeddings: Tensor; // [vocab, modelDim]
  layers: LayerWeights[];
  norm: Tensor; // [modelDim]
  lmHead: Tensor; // [vocab, modelDim]: the embeddings themselves when shared
}

/** A checkpoint whose tensors do not match config.json (missing, unexpected, wrong shape) or hold NaN or infinity. */
export class WeightsError extends Error {
  override name = "WeightsError";
}

/** Name → shape of every tensor the config implies. */
export function expectedTensors(c: OpenELMConfig): Map<string, number[]> {
  const D = c.modelDim, hd = c.headDim;
  const m = new Map<string, number[]>([["transformer.token_embeddings.weight", [c.vocabSize, D]]]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `transformer.layers.${l}.`, q = c.numQueryHeads[l]!, kv = c.numKvHeads[l]!, f = c.ffnDims[l]!;
    m.set(p + "attn_norm.weight", [D]);
    m.set(p + "attn.qkv_proj.weight", [(q + 2 * kv) * hd, D]);
    if (c.normalizeQk) {
      m.set(p + "attn.q_norm.weight", [hd]);
      m.set(p + "attn.k_norm.weight", [hd]);
    }
    m.set(p + "attn.out_proj.weight", [D, q * hd]);
    m.set(p + "ffn_norm.weight", [D]);
    m.set(p + "ffn.proj_1.weight", [(c.ffnWithGlu ? 2 : 1) * f, D]);
    m.set(p + "ffn.proj_2.weight", [D, f]);
  }
  m.set("transformer.norm.weight", [D]);
  if (!c.shareInputOutput) m.set("lm_head.weight", [c.vocabSize, D]);
  return m;
}

/** Check names and shapes; every problem is named, and nothing unexpected passes silently. */
export function checkTensors(c: OpenELMConfig, found: Map<string, TensorEntry>): void {
  const expected = expectedTensors(c);
  const missing = [...expected.keys()].filter((n) => !found.has(n));
  if (missing.length)
    throw new WeightsError(`missing tensor${missing.length > 1 ? "s" : ""}: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? `, and ${missing.length - 5} more` : ""}`);
  for (const [name, shape] of expected) {
    const got = found.get(name)!.shape;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i]))
      throw new WeightsError(`tensor ${name} has shape [${got}], expected [${shape}] from config.json`);
  }
  const extra = [...found.keys()].filter((n) => !expected.has(n));
  if (extra.length)
    throw new WeightsError(`unexpected tensor${extra.length > 1 ? "s" : ""} not used by this config: ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? `, and ${extra.length - 5} more` : ""}${extra.includes("lm_head.weight") ? " (config.json says share_input_output_layers: true)" : ""}`);
}

/** How weights are placed while they load. */
export interface LoadOptions {
  /** Storage type for the matrices (see placement); default: whatever each file holds. Norm weights are always f32. */
  dtype?: WeightType;
  /** Tensors loaded so far, of all. */
  onProgress?: (done: number, total: number) => void;
}

/** Storage type of one tensor: matrices as asked (or as stored), norm weights always f32. */
export type Placement = (name: string, shape: number[]) => DType;

const storedType = (dtypeOf: Placement, name: string, shape: number[]): DType => (shape.length === 2 ? dtypeOf(name, shape) : "f32");
const sizeOf = (dtype: DType, shape: number[]) => tensorBytes(dtype, shape);

/** Memories one model may use: 16 × 4 GiB. */
export const MAX_MEMORIES = 16;

/** Bytes for messages: "512.0 MiB", "6.12 GiB". */
export const formatBytes = (b: number) => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 2 ** 30).toFixed(2)} GiB`);

export class MemoryPlanError extends RangeError {
  override name = "MemoryPlanError";
}

/**
 * Which wasm32 memory (4 GiB each) every layer goes in: embeddings, final norm and output head in the
 * first, then the layers in order with their KV caches of `positions`, opening a new memory when one is
 * full. `reserve`: bytes every memory keeps for mirrored buffers (activations, RoPE tables). Sizes are
 * checked here, before anything is allocated, with advice on what would make the model fit.
 */
export function planMemories(c: OpenELMConfig, dtypeOf: Placement, kvBytes: (layer: number) => number, reserve: number, positions: number, memoryBytes = MAX_MEMORY_BYTES): { memories: number; layerMemory: number[] } {
  const budget = memoryBytes - (1 << 16) - reserve;
  // bytes of each layer's tensors, and of the rest (embeddings, final norm, output head)
  const layerBytes = new Array<number>(c.numLayers).fill(0);
  let rest = 0;
  for (const [name, shape] of expectedTensors(c)) {
    const b = sizeOf(storedType(dtypeOf, name, shape), shape) + 64, layer = /^transformer\.layers\.(\d+)\./.exec(name);
    if (layer) layerBytes[Number(layer[1])]! += b;
    else rest += b;
  }
  const fits = `more than one ${formatBytes(memoryBytes)} WebAssembly memory holds`;
  const smaller = dtypeOf("transformer.token_embeddings.weight", [c.vocabSize, c.modelDim]) === "f32" ? " (--dtype bf16 halves it)" : "";
  if (budget <= 0) throw new MemoryPlanError(`the work buffers and RoPE tables for ${positions} positions need ${formatBytes(reserve)}, ${fits}; use --context N for fewer positions`);
  let memory = 0, used = rest;
  if (used > budget)
    throw new MemoryPlanError(`the embeddings and output head (vocab_size ${c.vocabSize} × model_dim ${c.modelDim}) need ${formatBytes(used)}${c.shareInputOutput ? "" : " (embeddings and a separate lm_head)"}, ${fits}${smaller}`);
  const layerMemory = Array.from({ length: c.numLayers }, (_, l) => {
    const weights = layerBytes[l]!, kv = kvBytes(l), need = weights + kv;
    if (need > budget)
      throw new MemoryPlanError(`layer ${l} needs ${formatBytes(need)} (weights ${formatBytes(weights)}, KV cache for ${positions} positions ${formatBytes(kv)}), ${fits}; ${kv > weights ? "use --context N for fewer positions" : `the layer is too wide${smaller}`}`);
    if (used + need > budget) {
      memory++;
      used = 0;
    }
    used += need;
    return memory;
  });
  if (memory + 1 > MAX_MEMORIES) {
    const total = rest + layerBytes.reduce((a, b, l) => a + b + kvBytes(l), 0);
    throw new MemoryPlanError(`the model needs ${formatBytes(total)} (${memory + 1} memories of ${formatBytes(memoryBytes)}), more than the ${MAX_MEMORIES} openelm uses${smaller}; use --context N if the KV cache is large`);
  }
  return { memories: memory + 1, layerMemory };
}

/** Allocate every tensor of the config in the arena (layer l in memory layerMemory[l]); returns the weights and the list to fill. */
export function allocateWeights(c: OpenELMConfig, arena: Arena, dtypeOf: Placement, layerMemory: number[] = []): { weights: Weights; tensors: { name: string; tensor: Tensor }[] } {
  const shapes = expectedTensors(c), tensors: { name: string; tensor: Tensor }[] = [];
  const place = (name: string, layer?: number): Tensor => {
    const shape = shapes.get(name)!;
    const dtype = storedType(dtypeOf, name, shape);
    const tensor = { ptr: arena.alloc(sizeOf(dtype, shape), name, layer === undefined ? 0 : (layerMemory[layer] ?? 0)), dtype, shape };
    tensors.push({ name, tensor });
    return tensor;
  };
  const tokenEmbeddings = place("transformer.token_embeddings.weight");
  const layers = Array.from({ length: c.numLayers }, (_, l): LayerWeights => {
    const p = `transformer.layers.${l}.`;
    return {
      attnNorm: place(p + "attn_norm.weight", l),
      qkvProj: place(p + "attn.qkv_proj.weight", l),
      qNorm: c.normalizeQk ? place(p + "attn.q_norm.weight", l) : undefined,
      kNorm: c.normalizeQk ? place(p + "attn.k_norm.weight", l) : undefined,
      outProj: place(p + "attn.out_proj.weight", l),
      ffnNorm: place(p + "ffn_norm.weight", l),
      proj1: place(p + "ffn.proj_1.weight", l),
      proj2: place(p + "ffn.proj_2.weight", l),
    };
  });
  const norm = place("transformer.norm.weight");
  const lmHead = c.shareInputOutput ? tokenEmbeddings : place("lm_head.weight");
  return { weights: { tokenEmbeddings, layers, norm, lmHead }, tensors };
}

const CHUNK = 1 << 22; // bytes read at a time when converting between storage types

/** Check the checkpoint, allocate every tensor in the arena, read the file bytes directly into place, and check they are finite. */
export async function loadWeights(c: OpenELMConfig, found: Map<string, TensorEntry>, arena: Arena, kernels: Kernels, opts: LoadOptions = {}, layerMemory: number[] = []): Promise<Weights> {
  checkTensors(c, found);
  const { weights, tensors } = allocateWeights(c, arena, placement(c, opts.dtype, (name) => found.get(name)!.dtype), layerMemory);
  const total = tensors.reduce((a, t) => a + found.get(t.name)!.bytes, 0);
  let done = 0;
  for (const { name, tensor } of tensors) {
    const entry = found.get(name)!;
    if (entry.dtype === tensor.dtype) {
      await entry.read(0, arena.bytes(tensor.ptr, entry.bytes));
    } else {
      // Convert a few rows at a time through a small buffer: no full-size intermediate copy.
      const k = tensor.shape[tensor.shape.length - 1]!, rows = entry.bytes / rowBytes(entry.dtype, k)!;
      const inRow = rowBytes(entry.dtype, k)!, outRow = rowBytes(tensor.dtype, k)!, per = Math.max(1, Math.floor(CHUNK / inRow));
      const scratch = new Uint8Array(Math.min(rows, per) * inRow);
      for (let r = 0; r < rows; r += per) {
        const n = Math.min(per, rows - r), src = scratch.subarray(0, n * inRow);
        await entry.read(r * inRow, src);
        convertRows(src, entry.dtype, arena.bytes(tensor.ptr + r * outRow, n * outRow), tensor.dtype, n, k);
      }
    }
    checkFinite(name, kernels, arena, tensor, entry.dtype);
    done += entry.bytes;
    opts.onProgress?.(done, total);
  }
  return weights;
}

/**
 * Storage type of each matrix: as each file holds it, or `type` for every matrix, or for "q4_k_m" the type
 * llama-quantize gives it in a Q4_K_M file of this architecture: Q6_K for the embeddings (also the output
 * head) and for proj_2 (ffn_down) in the first and last eighth of the layers and every third layer between,
 * Q5_K for the fused QKV projection, Q4_K for the rest. K-quants need rows of a multiple of 256 values;
 * other rows fall back to Q8_0 (llama.cpp falls back to Q5_0/Q5_1, which openelm does not implement).
 */
export function placement(c: OpenELMConfig, type: WeightType | undefined, stored?: (name: string) => DType): Placement {
  const eighth = Math.floor(c.numLayers / 8), last = Math.floor((7 * c.numLayers) / 8); // C's integer division
  const moreBits = (i: number) => i < eighth || i >= last || (i - eighth) % 3 === 2;
  const q4km = (name: string): DType => {
    const layer = /^transformer\.layers\.(\d+)\./.exec(name);
    return !layer ? "q6_k" : name.endsWith("qkv_proj.weight") ? "q5_k" : name.endsWith("proj_2.weight") && moreBits(Number(layer[1])) ? "q6_k" : "q4_k";
  };
  return (name, shape) => {
    const t = type === undefined ? (stored?.(name) ?? "f32") : type === "q4_k_m" ? q4km(name) : type;
    return isKQuant(t) && shape[shape.length - 1]! % 256 !== 0 ? "q8_0" : t;
  };
}

/**
 * Refuse a tensor holding NaN or ±infinity, naming it and its first bad element: a broken file, or (stored
 * as f16 from a wider type) a value beyond the f16 range. The SIMD kernels also widen f16 assuming it is finite.
 */
function checkFinite(name: string, kernels: Kernels, arena: Arena, t: Tensor, fileType: DType): void {
  const count = t.shape.reduce((a, b) => a * b, 1), step = 1 << 28; // kernel calls count in i32
  if (isQuantized(t.dtype)) {
    const block = firstNonFiniteBlock(t.dtype, arena.bytes(t.ptr, tensorBytes(t.dtype, t.shape)));
    if (block < 0) return;
    throw new WeightsError(isQuantized(fileType)
      ? `tensor ${name} has a NaN or infinite scale (block ${block}): the checkpoint is corrupt`
      : `tensor ${name} has values too large for ${t.dtype}'s f16 scales (block ${block}); keep it as bf16 or f32 (--dtype)`);
  }
  for (let at = 0; at < count; at += step) {
    const i = kernels.firstNonFinite(t.ptr + at * BYTES[t.dtype as FloatType], t.dtype, Math.min(step, count - at));
    if (i < 0) continue;
    throw new WeightsError(t.dtype === "f16" && fileType !== "f16"
      ? `tensor ${name} has values beyond the f16 range (±65504), e.g. element ${at + i}; keep it as bf16 or f32 (--dtype)`
      : `tensor ${name} holds NaN or infinity (element ${at + i}): the checkpoint is corrupt`);
  }
}
