// Loading a model folder into a runnable model: config, weights into the arena, kernels, tokenizer.
import { Arena } from "./arena.js";
import { ConfigError, parseConfig, type OpenELMConfig } from "./config.js";
import type { DType } from "./dtype.js";
import type { ModelFiles } from "./files.js";
import type { Kernels } from "./kernels/types.js";
import { ReferenceKernels } from "./kernels/reference.js";
import { WasmKernels, type KernelBuild } from "./kernels/wasm.js";
import { ThreadPool, type WorkerLike } from "./kernels/pool.js";
import { OpenELM } from "./model.js";
import { readCheckpoint } from "./safetensors.js";
import { Tokenizer } from "./tokenizer.js";
import { loadWeights } from "./weights.js";

export interface KernelOptions {
  /** "wasm" (default: SIMD kernels) or "typescript" (the readable specification, one thread). */
  kernels?: "wasm" | "typescript";
  /** Threads for the SIMD kernels (default 1); more than one needs SharedArrayBuffer and `spawnWorker`. */
  threads?: number;
  /** Bytes of a kernel build (dist/kernels-BUILD.wasm); by default fetched beside this module. */
  wasm?: (build: KernelBuild) => Promise<BufferSource>;
  /** Start a worker running src/kernels/worker.ts (Node: src/node/worker.ts; browsers: web-worker.ts). */
  spawnWorker?: () => WorkerLike;
  /** Use plain SIMD even where relaxed SIMD (fused multiply-add) is available. */
  noRelaxed?: boolean;
  /** Multiply-adds below which a kernel call stays on one thread (default 32768; tests use 0). */
  minParallelWork?: number;
}

export interface ModelOptions extends KernelOptions {
  /** Storage type for weight matrices (default: as in the files). */
  dtype?: DType;
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

const fetchBuild = async (build: KernelBuild) => (await fetch(new URL(`../kernels-${build}.wasm`, import.meta.url))).arrayBuffer();

/** Can this host share memory between threads? (Browsers need cross-origin isolation.) */
function canShareMemory(): boolean {
  return typeof SharedArrayBuffer !== "undefined" && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

/** An arena and the kernels over it: SIMD (relaxed where the host validates it) with threads, or TypeScript. */
export async function createKernels(opts: KernelOptions = {}): Promise<{ arena: Arena; kernels: Kernels }> {
  if (opts.kernels === "typescript") {
    const arena = new Arena();
    return { arena, kernels: new ReferenceKernels(arena) };
  }
  let threads = Math.max(1, Math.floor(opts.threads ?? 1));
  if (threads > 1 && (!canShareMemory() || !opts.spawnWorker)) {
    console.warn(`openelm: ${opts.spawnWorker ? "SharedArrayBuffer is unavailable (a page needs cross-origin isolation: COOP/COEP headers)" : "no way to start workers was given"}; running on one thread`);
    threads = 1;
  }
  const shared = threads > 1 ? "-shared" : "";
  const load = opts.wasm ?? fetchBuild;
  const relaxedBytes = opts.noRelaxed ? undefined : await load(`relaxed${shared}` as KernelBuild);
  const relaxed = relaxedBytes !== undefined && WebAssembly.validate(relaxedBytes);
  const build = `${relaxed ? "relaxed" : "simd"}${shared}` as KernelBuild;
  const module = await WebAssembly.compile(relaxed ? relaxedBytes! : await load(build));
  const arena = new Arena(threads > 1);
  const pool = threads > 1 ? await ThreadPool.start(threads, opts.spawnWorker!, module, [arena.memory]) : undefined;
  return { arena, kernels: new WasmKernels(module, arena.memory, build, pool, opts.minParallelWork) };
}

/** Load config.json and the safetensors weights of a model folder. */
export async function loadModel(files: ModelFiles, opts: ModelOptions = {}): Promise<OpenELM> {
  const config = await readConfig(files);
  const tensors = await readCheckpoint(files);
  const contextLength = Math.min(opts.contextLength ?? config.maxContextLength, config.maxContextLength);
  const { arena, kernels } = await createKernels(opts);
  const weights = await loadWeights(config, tensors, arena, opts);
  return new OpenELM(config, weights, arena, kernels, contextLength);
}

/** The folder's tokenizer.json (and tokenizer_config.json) if it has one, else `fallback`. */
export async function loadTokenizer(files: ModelFiles, fallback: () => Promise<object>): Promise<Tokenizer> {
  const own = await files.text("tokenizer.json");
  const cfg = await files.text("tokenizer_config.json");
  return new Tokenizer(own ? JSON.parse(own) : await fallback(), cfg ? JSON.parse(cfg) : {});
}
