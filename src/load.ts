// Loading a model folder into a runnable model: config, weights into the arena, kernels, tokenizer.
import { Arena } from "./arena.js";
import { ConfigError, parseConfig, type OpenELMConfig } from "./config.js";
import type { DType } from "./dtype.js";
import type { ModelFiles } from "./files.js";
import type { Kernels } from "./kernels/types.js";
import { ReferenceKernels } from "./kernels/reference.js";
import { WasmKernels } from "./kernels/wasm.js";
import { OpenELM } from "./model.js";
import { readCheckpoint } from "./safetensors.js";
import { Tokenizer } from "./tokenizer.js";
import { loadWeights } from "./weights.js";

export interface ModelOptions {
  /** Storage type for weight matrices (default: as in the files). */
  dtype?: DType;
  /** "wasm" (default: SIMD kernels, needs `wasm`) or "typescript" (the readable specification). */
  kernels?: "wasm" | "typescript";
  /** The compiled kernels: bytes of dist/kernels.wasm or a compiled WebAssembly.Module. */
  wasm?: BufferSource | WebAssembly.Module;
  /** Cap the context below max_context_length to save KV-cache memory. */
  contextLength?: number;
  onProgress?: (done: number, total: number) => void;
}

export async function readConfig(files: ModelFiles): Promise<OpenELMConfig> {
  const text = await files.text("config.json");
  if (text === undefined) throw new ConfigError(`${files.location}: no config.json`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config.json: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw);
}

export async function createKernels(arena: Arena, opts: ModelOptions): Promise<Kernels> {
  if (opts.kernels === "typescript") return new ReferenceKernels(arena);
  if (!opts.wasm) throw new Error('kernels "wasm" need the compiled module: pass `wasm` (the bytes of kernels.wasm)');
  return WasmKernels.create(arena, opts.wasm);
}

/** Load config.json and the safetensors weights of a model folder. */
export async function loadModel(files: ModelFiles, opts: ModelOptions = {}): Promise<OpenELM> {
  const config = await readConfig(files);
  const tensors = await readCheckpoint(files);
  const contextLength = Math.min(opts.contextLength ?? config.maxContextLength, config.maxContextLength);
  const arena = new Arena();
  const kernels = await createKernels(arena, opts);
  const weights = await loadWeights(config, tensors, arena, opts);
  return new OpenELM(config, weights, arena, kernels, contextLength);
}

/** The folder's tokenizer.json (and tokenizer_config.json) if it has one, else `fallback`. */
export async function loadTokenizer(files: ModelFiles, fallback: () => Promise<object>): Promise<Tokenizer> {
  const own = await files.text("tokenizer.json");
  const cfg = await files.text("tokenizer_config.json");
  return new Tokenizer(own ? JSON.parse(own) : await fallback(), cfg ? JSON.parse(cfg) : {});
}
