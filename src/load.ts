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
import { loadWeights, planMemories, type Placement } from "./weights.js";
import { ShardedKernels } from "./kernels/sharded.js";

export interface KernelOptions {
  /** "wasm" (default: SIMD kernels) or "typescript" (the readable specification, one thread). */
  kernels?: "wasm" | "typescript";
  /** Threads for the SIMD kernels (default 1); more than one needs SharedArrayBuffer and `spawnWorker`. */
  threads?: number;
  /** Bytes of a kernel build (dist/kernels-BUILD.wasm); by default fetched beside this module. */
  wasm?: (build: KernelBuild) => Promise<BufferSource>;
  /** Start a worker running src/kernels/worker.ts (Node: src/node/worker.ts; default in browsers: a module Web Worker of web-worker.ts). */
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
  /** Bytes one memory may hold (default: 4 GiB, the wasm32 limit); smaller values spread a model over more memories (tests). */
  memoryBytes?: number;
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

// dist/load.js sits beside dist/kernels-BUILD.wasm
const fetchBuild = async (build: KernelBuild) => (await fetch(new URL(`./kernels-${build}.wasm`, import.meta.url))).arrayBuffer();

/** A module Web Worker running the kernel loop (browsers). */
const webWorker = () => new Worker(new URL("./kernels/web-worker.js", import.meta.url), { type: "module" });

/** Can this host share memory between threads? (Browsers need cross-origin isolation.) */
function canShareMemory(): boolean {
  return typeof SharedArrayBuffer !== "undefined" && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

/**
 * An arena of `memories` wasm32 memories and the kernels over it: SIMD (relaxed where the host validates
 * it) with threads, or TypeScript.
 */
export async function createKernels(opts: KernelOptions = {}, memories = 1): Promise<{ arena: Arena; kernels: Kernels }> {
  if (opts.kernels === "typescript") {
    if (memories > 1) throw new RangeError("this model needs more than one 4 GiB memory, which only the SIMD kernels support (drop --kernels typescript, or use --dtype bf16)");
    const arena = new Arena();
    return { arena, kernels: new ReferenceKernels(arena) };
  }
  let threads = Math.max(1, Math.floor(opts.threads ?? 1));
  const spawn = opts.spawnWorker ?? (typeof Worker !== "undefined" ? webWorker : undefined);
  if (threads > 1 && (!canShareMemory() || !spawn)) {
    console.warn(`openelm: ${spawn ? "SharedArrayBuffer is unavailable (a page needs cross-origin isolation: COOP/COEP headers)" : "no way to start workers was given"}; running on one thread`);
    threads = 1;
  }
  const shared = threads > 1 ? "-shared" : "";
  const load = opts.wasm ?? fetchBuild;
  const relaxedBytes = opts.noRelaxed ? undefined : await load(`relaxed${shared}` as KernelBuild);
  const relaxed = relaxedBytes !== undefined && WebAssembly.validate(relaxedBytes);
  const build = `${relaxed ? "relaxed" : "simd"}${shared}` as KernelBuild;
  const module = await WebAssembly.compile(relaxed ? relaxedBytes! : await load(build));
  const arena = new Arena(threads > 1, memories);
  const pool = threads > 1 ? await ThreadPool.start(threads, spawn!, module, arena.memories) : undefined;
  const sets = arena.memories.map((m, i) => new WasmKernels(module, m, build, pool, opts.minParallelWork, i));
  return { arena, kernels: sets.length === 1 ? sets[0]! : new ShardedKernels(arena, sets) };
}

/** How many memories a model needs and which layer goes where (see planMemories). */
export function planModel(config: OpenELMConfig, dtypeOf: Placement, contextLength: number, memoryBytes?: number) {
  const reserve = OpenELM.bufferBytes(config, contextLength) + (memoryBytes === undefined ? 16 << 20 : 0);
  return planMemories(config, dtypeOf, (l) => OpenELM.kvBytes(config, l, contextLength), reserve, memoryBytes);
}

/** Load config.json and the safetensors weights of a model folder. */
export async function loadModel(files: ModelFiles, opts: ModelOptions = {}): Promise<OpenELM> {
  const config = await readConfig(files);
  const tensors = await readCheckpoint(files);
  const contextLength = Math.min(opts.contextLength ?? config.maxContextLength, config.maxContextLength);
  const plan = planModel(config, (name) => opts.dtype ?? tensors.get(name)?.dtype ?? "f32", contextLength, opts.memoryBytes);
  const { arena, kernels } = await createKernels(opts, plan.memories);
  const weights = await loadWeights(config, tensors, arena, opts, plan.layerMemory);
  return new OpenELM(config, weights, arena, kernels, contextLength);
}

/** The folder's tokenizer.json (and tokenizer_config.json) if it has one, else `fallback`. */
export async function loadTokenizer(files: ModelFiles, fallback: () => Promise<object>): Promise<Tokenizer> {
  const own = await files.text("tokenizer.json");
  const cfg = await files.text("tokenizer_config.json");
  return new Tokenizer(own ? JSON.parse(own) : await fallback(), cfg ? JSON.parse(cfg) : {});
}
