// Loading a model folder into a runnable model: config, weights into the arena, kernels, tokenizer.
import { Arena } from "./arena.js";
import { ConfigError, MAX, parseConfig, type OpenELMConfig } from "./config.js";
import type { WeightType } from "./dtype.js";
import { readText, type ByteSource, type ModelFiles } from "./files.js";
import { readGGUF, type GGUFFile } from "./formats/gguf.js";
import { chatTemplateFromGGUF, configFromGGUF, tensorsFromGGUF } from "./formats/gguf-model.js";
import { tokenizerFromGGUF } from "./formats/gguf-tokenizer.js";
import { parseJsonObject } from "./formats/json.js";
import { mergeAdapter, readAdapter } from "./formats/peft.js";
import type { Kernels } from "./kernels/types.js";
import { ReferenceKernels } from "./kernels/reference.js";
import { WasmKernels, type KernelBuild } from "./kernels/wasm.js";
import { ThreadPool, type WorkerLike } from "./kernels/pool.js";
import { OpenELM } from "./model.js";
import { readCheckpoint, type TensorEntry } from "./formats/safetensors.js";
import { Tokenizer } from "./tokenizer.js";
import { TemplateError, compileTemplate } from "./generation/chat.js";
import { expectedTensors, loadWeights, placement, planMemories, type Placement } from "./weights.js";
import { ShardedKernels } from "./kernels/sharded.js";

/** How the kernels run: which implementation, how many threads, and where their files come from. */
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

/** Options for loading a model: the kernels' options, weight storage type, context cap, memory and progress. */
export interface ModelOptions extends KernelOptions {
  /** Storage type for weight matrices (default: as in the files; see placement in weights.ts). */
  dtype?: WeightType;
  /**
   * Cap on the positions a sequence may hold. Without it a sequence may run past max_context_length, as in
   * Apple's code (with one warning), its KV cache growing as needed.
   */
  contextLength?: number;
  /** Bytes one memory may hold (default: 4 GiB, the wasm32 limit); smaller values spread a model over more memories (tests). */
  memoryBytes?: number;
  /** Called as weights load, with bytes done and bytes in all. */
  onProgress?: (done: number, total: number) => void;
  /** A LoRA adapter folder in peft's layout (adapter_config.json, adapter_model.safetensors), merged into the weights as they load. */
  adapter?: ModelFiles;
}

/** The folder's config.json, parsed, checked and derived into per-layer lists. */
export async function readConfig(files: ModelFiles): Promise<OpenELMConfig> {
  const text = await readText(files, "config.json");
  if (text === undefined) throw new ConfigError(`${files.location}: no config.json`);
  return parseConfig(parseJsonObject(text, "config.json", { uniqueKeys: true }));
}

// dist/load.js sits beside dist/kernels-BUILD.wasm and dist/kernels/web-worker.js. Each location is a literal
// `new URL("./file", import.meta.url)`, the form bundlers (Vite, webpack, Rollup, Parcel) find and emit as assets.
const BUILD_URLS: Record<KernelBuild, URL> = {
  simd: new URL("./kernels-simd.wasm", import.meta.url),
  relaxed: new URL("./kernels-relaxed.wasm", import.meta.url),
  "simd-shared": new URL("./kernels-simd-shared.wasm", import.meta.url),
  "relaxed-shared": new URL("./kernels-relaxed-shared.wasm", import.meta.url),
};

const SERVE_BESIDE = 'the kernel builds must be served beside dist/load.js or the bundle that holds it (README: "Bundlers"), or given as KernelOptions.wasm';

async function fetchBuild(build: KernelBuild): Promise<ArrayBuffer> {
  const url = BUILD_URLS[build];
  const response = await fetch(url).catch((e: Error) => {
    throw new Error(`cannot fetch the kernels ${url}: ${e.message} (in Node, load through openelm/node; elsewhere pass KernelOptions.wasm)`);
  });
  if (!response.ok) throw new Error(`cannot fetch the kernels ${url}: HTTP ${response.status} (${SERVE_BESIDE})`);
  const bytes = await response.arrayBuffer(), magic = new Uint8Array(bytes, 0, Math.min(4, bytes.byteLength));
  // a server that answers a missing file with its HTML page (as dev servers do) would give WebAssembly's cryptic "magic word" error
  if (String.fromCharCode(...magic) !== "\0asm")
    throw new Error(`${url} is not WebAssembly (${response.headers.get("content-type") ?? "no content type"}, ${bytes.byteLength} bytes): ${SERVE_BESIDE}`);
  return bytes;
}

/** A module Web Worker running the kernel loop (browsers); bundlers emit web-worker.js and its imports as a worker chunk. */
function webWorker(): Worker {
  const worker = new Worker(new URL("./kernels/web-worker.js", import.meta.url), { type: "module" });
  // a script that cannot be loaded gives an error event with no message: say which file is missing
  worker.addEventListener("error", (e) => (e as ErrorEvent).message || Object.defineProperty(e, "message", {
    value: 'its script kernels/web-worker.js could not be loaded: it must be served beside dist/load.js or the bundle that holds it (README: "Bundlers"), or give KernelOptions.spawnWorker',
  }));
  return worker;
}

/** Can this host share memory between threads? (Browsers need cross-origin isolation.) */
function canShareMemory(): boolean {
  return typeof SharedArrayBuffer !== "undefined" && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

/** Kernel threads at most: each is a worker with its own stack, and past the cores they only contend. */
export const MAX_THREADS = 256;

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
  let threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) throw new RangeError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`);
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
  const positions = OpenELM.plannedPositions(config, contextLength);
  const reserve = OpenELM.bufferBytes(config, positions) + (memoryBytes === undefined ? 16 << 20 : 0);
  return planMemories(config, dtypeOf, (l) => OpenELM.kvBytes(config, l, positions), reserve, positions, memoryBytes);
}

/** Load config.json and the safetensors weights of a Hugging Face model folder. */
export async function loadModel(files: ModelFiles, opts: ModelOptions = {}): Promise<OpenELM> {
  return buildModel(await readConfig(files), await readCheckpoint(files), opts);
}

/** Load a model from a GGUF file (llama.cpp's openelm architecture; a parsed header is used as it is). */
export async function loadGGUFModel(file: ByteSource | GGUFFile, opts: ModelOptions = {}): Promise<OpenELM> {
  const g = "metadata" in file ? file : await readGGUF(file);
  const config = configFromGGUF(g);
  return buildModel(config, tensorsFromGGUF(g, expectedTensors(config).keys()), opts);
}

/** The tokenizer a GGUF file carries (tokenizer.ggml.*), with its chat template. */
export async function loadGGUFTokenizer(file: ByteSource | GGUFFile): Promise<Tokenizer> {
  const g = "metadata" in file ? file : await readGGUF(file);
  const template = chatTemplateFromGGUF(g.metadata);
  if (template !== undefined) compileTemplate(template, `${g.source.name} metadata tokenizer.chat_template`);
  return new Tokenizer(tokenizerFromGGUF(g.metadata, g.source.name), { chat_template: template }, `${g.source.name} (GGUF tokenizer)`);
}

/** Plan memory, create the kernels and load the weights of a checkpoint, in any format. */
async function buildModel(config: OpenELMConfig, tensors: Map<string, TensorEntry>, opts: ModelOptions): Promise<OpenELM> {
  const contextLength = opts.contextLength ?? Infinity;
  if (contextLength !== Infinity && !(Number.isInteger(contextLength) && contextLength >= 1 && contextLength <= MAX.context))
    throw new RangeError(`the context length must be an integer from 1 to ${MAX.context}, got ${contextLength}`);
  const place = placement(config, opts.dtype, (name) => tensors.get(name)?.dtype ?? "f32");
  // an adapter merges into each weight in the type it is placed as: exact for f32, and a float weight placed as a quantized type is quantized once, after merging
  if (opts.adapter) tensors = mergeAdapter(tensors, await readAdapter(opts.adapter, config), (name) => place(name, tensors.get(name)!.shape));
  const plan = planModel(config, place, contextLength, opts.memoryBytes);
  const { arena, kernels } = await createKernels(opts, plan.memories);
  // a load that fails or is aborted must not leave the kernels' worker threads running
  const weights = await loadWeights(config, tensors, arena, kernels, opts, plan.layerMemory).catch(async (e: unknown) => {
    await kernels.close();
    throw e;
  });
  return new OpenELM(config, weights, arena, kernels, contextLength);
}

/** The chat template of a tokenizer_config.json: a string, or a list of named ones whose "default" is used. */
function chatTemplateOf(cfg: Record<string, unknown>): string | undefined {
  const t = cfg.chat_template, where = "tokenizer_config.json field chat_template";
  if (t === undefined || t === null) return undefined;
  const source = Array.isArray(t) ? (t.find((x) => (x as { name?: unknown })?.name === "default") as { template?: unknown } | undefined)?.template : t;
  if (typeof source !== "string") throw new TemplateError(`${where}: ${Array.isArray(t) ? 'the list has no {"name": "default", "template": "..."} entry' : "not a string"}`);
  compileTemplate(source, where); // a syntax error shows now, not at the first message
  return source;
}

/** The folder's tokenizer.json (and tokenizer_config.json) if it has one, else `fallback` (the bundled tokenizer). */
export async function loadTokenizer(files: ModelFiles, fallback: () => Promise<object>): Promise<Tokenizer> {
  const own = await readText(files, "tokenizer.json");
  const cfgText = await readText(files, "tokenizer_config.json");
  const cfg = cfgText === undefined ? {} : parseJsonObject(cfgText, "tokenizer_config.json");
  const json = own === undefined ? await fallback() : parseJsonObject(own, `${files.location}/tokenizer.json`);
  const source = own === undefined ? "the bundled Llama-2 tokenizer" : `${files.location}/tokenizer.json`;
  return new Tokenizer(json, { ...cfg, chat_template: chatTemplateOf(cfg) }, source);
}
