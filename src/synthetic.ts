// Models with random weights and the exact shapes of a config, built in memory: for benchmarks at the
// real sizes without the real weights (speed does not depend on the values).
import type { Arena } from "./arena.js";
import type { OpenELMConfig } from "./config.js";
import { tensorBytes, type DType, type WeightType } from "./dtype.js";
import { convertRows } from "./formats/blocks.js";
import { seededRandom } from "./generation/sampler.js";
import type { TensorEntry } from "./formats/safetensors.js";
import { allocateWeights, expectedTensors, placement, type Weights } from "./weights.js";

const BLOCK = 1 << 20; // random values made once, then tiled over every tensor

function randomBlocks(seed: number) {
  const random = seededRandom(seed);
  const block = new Float32Array(BLOCK).map(() => (random() - 0.5) * 0.07); // about the spread of trained weights
  const norms = new Float32Array(BLOCK).map(() => 0.5 + random());
  return { block, norms };
}

/** Random weights stored as `type` (one type, or a mix such as q4_k_m: see placement). */
export function randomWeights(c: OpenELMConfig, arena: Arena, type: WeightType, layerMemory: number[] = [], seed = 42): Weights {
  const { block, norms } = randomBlocks(seed);
  // BLOCK values in each storage type (a whole number of blocks of any type), tiled over every matrix
  const encoded = new Map<DType, Uint8Array>();
  const encode = (dtype: DType) => {
    const bytes = new Uint8Array(tensorBytes(dtype, [BLOCK]));
    convertRows(new Uint8Array(block.buffer), "f32", bytes, dtype, 1, BLOCK);
    return bytes;
  };
  const { weights, tensors } = allocateWeights(c, arena, placement(c, type), layerMemory);
  for (const { tensor } of tensors) {
    const isNorm = tensor.shape.length === 1;
    if (!isNorm && !encoded.has(tensor.dtype)) encoded.set(tensor.dtype, encode(tensor.dtype));
    const src = isNorm ? new Uint8Array(norms.buffer) : encoded.get(tensor.dtype)!;
    const bytes = tensorBytes(tensor.dtype, tensor.shape);
    for (let at = 0; at < bytes; at += src.length) arena.bytes(tensor.ptr + at, Math.min(src.length, bytes - at)).set(src.subarray(0, Math.min(src.length, bytes - at)));
  }
  return weights;
}

/** The same random values as an f32 checkpoint that is never held whole: each tensor's bytes are made as they are read (to write GGUF files for benchmarks). */
export function randomCheckpoint(c: OpenELMConfig, seed = 42): Map<string, TensorEntry> {
  const { block, norms } = randomBlocks(seed);
  const bytes = { matrix: new Uint8Array(block.buffer), norm: new Uint8Array(norms.buffer) };
  return new Map([...expectedTensors(c)].map(([name, shape]) => {
    const src = shape.length === 1 ? bytes.norm : bytes.matrix;
    const read = async (at: number, into: Uint8Array) => {
      for (let done = 0; done < into.length;) {
        const from = (at + done) % src.length, n = Math.min(src.length - from, into.length - done);
        into.set(src.subarray(from, from + n), done);
        done += n;
      }
    };
    return [name, { name, dtype: "f32", shape, bytes: shape.reduce((a, b) => a * b, 4), read }];
  }));
}
