// The tensors an OpenELM checkpoint must hold (Hugging Face names and shapes, derived from the config),
// checked against what the files hold, then read straight into the arena in the chosen storage type.
import type { Arena } from "./arena.js";
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

/** Allocate every tensor of the config in the arena; returns the weights and the list to fill. */
export function allocateWeights(c: OpenELMConfig, arena: Arena, dtypeOf: Placement): { weights: Weights; tensors: { name: string; tensor: Tensor }[] } {
  const shapes = expectedTensors(c), tensors: { name: string; tensor: Tensor }[] = [];
  const place = (name: string): Tensor => {
    const shape = shapes.get(name)!;
    const dtype: DType = shape.length === 2 ? dtypeOf(name, shape) : "f32";
    const tensor = { ptr: arena.alloc(shape.reduce((a, b) => a * b, 1) * BYTES[dtype], name), dtype, shape };
    tensors.push({ name, tensor });
    return tensor;
  };
  const tokenEmbeddings = place("transformer.token_embeddings.weight");
  const layers = Array.from({ length: c.numLayers }, (_, l): LayerWeights => {
    const p = `transformer.layers.${l}.`;
    return {
      attnNorm: place(p + "attn_norm.weight"),
      qkvProj: place(p + "attn.qkv_proj.weight"),
      qNorm: c.normalizeQk ? place(p + "attn.q_norm.weight") : undefined,
      kNorm: c.normalizeQk ? place(p + "attn.k_norm.weight") : undefined,
      outProj: place(p + "attn.out_proj.weight"),
      ffnNorm: place(p + "ffn_norm.weight"),
      proj1: place(p + "ffn.proj_1.weight"),
      proj2: place(p + "ffn.proj_2.weight"),
    };
  });
  const norm = place("transformer.norm.weight");
  const lmHead = c.shareInputOutput ? tokenEmbeddings : place("lm_head.weight");
  return { weights: { tokenEmbeddings, layers, norm, lmHead }, tensors };
}

const CHUNK = 1 << 22; // bytes read at a time when converting between storage types

/** Check the checkpoint, allocate every tensor in the arena, then read the file bytes directly into place. */
export async function loadWeights(c: OpenELMConfig, found: Map<string, TensorEntry>, arena: Arena, opts: LoadOptions = {}): Promise<Weights> {
  checkTensors(c, found);
  const { weights, tensors } = allocateWeights(c, arena, (name) => opts.dtype ?? found.get(name)!.dtype);
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

/** The SIMD kernels widen f16 weights assuming they are finite; an infinity or NaN means a broken file or an overflow. */
function checkFiniteF16(name: string, arena: Arena, t: Tensor, fileType: DType): void {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const bits = new Uint16Array(arena.memory.buffer, t.ptr, count);
  for (let i = 0; i < count; i++) {
    if ((bits[i]! & 0x7c00) !== 0x7c00) continue;
    throw new WeightsError(fileType === "f16"
      ? `tensor ${name} holds an f16 infinity or NaN (element ${i}): the checkpoint is corrupt`
      : `tensor ${name} has values beyond the f16 range (±65504), e.g. element ${i}; keep it as bf16 or f32 (--dtype)`);
  }
}
