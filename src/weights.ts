// The tensors an OpenELM checkpoint must hold (Hugging Face names and shapes, derived from the config),
// checked against what the files hold, then read straight into the arena in the chosen storage type.
import { MAX_MEMORY_BYTES, type Arena } from "./arena.js";
import type { OpenELMConfig } from "./config.js";
import { BYTES, convert, type DType } from "./dtype.js";
import type { TensorEntry } from "./safetensors.js";

/** A tensor in the arena. */
export interface Tensor {
  ptr: number;
  dtype: DType;
  shape: number[];
}

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

export interface Weights {
  tokenEmbeddings: Tensor; // [vocab, modelDim]
  layers: LayerWeights[];
  norm: Tensor; // [modelDim]
  lmHead: Tensor; // [vocab, modelDim]: the embeddings themselves when shared
}

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

export interface LoadOptions {
  /** Storage type for the matrices; default: whatever each file holds. Norm weights are always f32. */
  dtype?: DType;
  onProgress?: (done: number, total: number) => void;
}

/** Storage type of one tensor: matrices as asked (or as stored), norm weights always f32. */
export type Placement = (name: string, shape: number[]) => DType;

const storedType = (dtypeOf: Placement, name: string, shape: number[]): DType => (shape.length === 2 ? dtypeOf(name, shape) : "f32");
const sizeOf = (dtype: DType, shape: number[]) => shape.reduce((a, b) => a * b, 1) * BYTES[dtype];

/**
 * Which wasm32 memory (4 GiB each) every layer goes in: embeddings, final norm and output head in the
 * first, then the layers in order with their KV caches, opening a new memory when one is full.
 * `reserve`: bytes every memory keeps for mirrored buffers (activations, RoPE tables).
 */
export function planMemories(c: OpenELMConfig, dtypeOf: Placement, kvBytes: (layer: number) => number, reserve: number, memoryBytes = MAX_MEMORY_BYTES): { memories: number; layerMemory: number[] } {
  const shapes = expectedTensors(c), budget = memoryBytes - (1 << 16) - reserve;
  const bytes = (inPart: (name: string) => boolean) => [...shapes].filter(([n]) => inPart(n))
    .reduce((a, [n, shape]) => a + sizeOf(storedType(dtypeOf, n, shape), shape) + 64, 0);
  let memory = 0, used = bytes((n) => !n.startsWith("transformer.layers."));
  const layerMemory = Array.from({ length: c.numLayers }, (_, l) => {
    const need = bytes((n) => n.startsWith(`transformer.layers.${l}.`)) + kvBytes(l);
    if (used + need > budget) {
      memory++;
      used = 0;
    }
    if (need > budget) throw new RangeError(`layer ${l} alone needs ${(need / 2 ** 30).toFixed(2)} GiB, more than one memory holds`);
    used += need;
    return memory;
  });
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

/** Check the checkpoint, allocate every tensor in the arena, then read the file bytes directly into place. */
export async function loadWeights(c: OpenELMConfig, found: Map<string, TensorEntry>, arena: Arena, opts: LoadOptions = {}, layerMemory: number[] = []): Promise<Weights> {
  checkTensors(c, found);
  const { weights, tensors } = allocateWeights(c, arena, fileTypes(found, opts.dtype), layerMemory);
  const total = tensors.reduce((a, t) => a + found.get(t.name)!.bytes, 0);
  let done = 0;
  for (const { name, tensor } of tensors) {
    const entry = found.get(name)!;
    const count = entry.bytes / BYTES[entry.dtype];
    if (entry.dtype === tensor.dtype) {
      await entry.source.read(entry.offset, arena.bytes(tensor.ptr, entry.bytes));
    } else {
      // Convert through a small buffer: no full-size intermediate copy.
      const per = CHUNK / 4;
      const scratch = new Uint8Array(Math.min(count, per) * BYTES[entry.dtype]);
      for (let i = 0; i < count; i += per) {
        const n = Math.min(per, count - i);
        const src = scratch.subarray(0, n * BYTES[entry.dtype]);
        await entry.source.read(entry.offset + i * BYTES[entry.dtype], src);
        convert(src, entry.dtype, arena.bytes(tensor.ptr + i * BYTES[tensor.dtype], n * BYTES[tensor.dtype]), tensor.dtype, n);
      }
    }
    if (tensor.dtype === "f16") checkFiniteF16(name, arena, tensor, entry.dtype);
    done += entry.bytes;
    opts.onProgress?.(done, total);
  }
  return weights;
}

/** Storage types for a checkpoint: `dtype` for every matrix, or else as each file holds it. */
export const fileTypes = (found: Map<string, TensorEntry>, dtype?: DType): Placement => (name) => dtype ?? found.get(name)!.dtype;

/** The SIMD kernels widen f16 weights assuming they are finite; an infinity or NaN means a broken file or an overflow. */
function checkFiniteF16(name: string, arena: Arena, t: Tensor, fileType: DType): void {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const raw = arena.bytes(t.ptr, count * 2), bits = new Uint16Array(raw.buffer, raw.byteOffset, count);
  for (let i = 0; i < count; i++) {
    if ((bits[i]! & 0x7c00) !== 0x7c00) continue;
    throw new WeightsError(fileType === "f16"
      ? `tensor ${name} holds an f16 infinity or NaN (element ${i}): the checkpoint is corrupt`
      : `tensor ${name} has values beyond the f16 range (±65504), e.g. element ${i}; keep it as bf16 or f32 (--dtype)`);
  }
}
