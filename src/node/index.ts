// The Node adapter: read a model folder from disk with the compiled kernels, worker threads and the
// bundled tokenizer.
import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { MAX_THREADS, createKernels, loadGGUFModel, loadGGUFTokenizer, loadModel, loadTokenizer, readConfig, type KernelOptions, type ModelOptions } from "../load.js";
import { readGGUF, type GGUFFile } from "../formats/gguf.js";
import { chatTemplateFromGGUF, configFromGGUF, tensorsFromGGUF } from "../formats/gguf-model.js";
import { tokenizerFromGGUF } from "../formats/gguf-tokenizer.js";
import { parseJsonObject } from "../formats/json.js";
import { readCheckpoint, type TensorEntry } from "../formats/safetensors.js";
import type { OpenELMConfig } from "../config.js";
import { readText } from "../files.js";
import { OPENELM_INSTRUCT_TEMPLATE } from "../generation/chat.js";
import { expectedTensors } from "../weights.js";
import type { OpenELM } from "../model.js";
import type { Tokenizer } from "../tokenizer.js";
import type { KernelBuild } from "../kernels/wasm.js";
import { FolderError, fileSource, folderFiles } from "./files.js";
import { resolveHubModel, type HubOptions } from "./hub.js";
import { configureV8 } from "./v8-flags.js";
import { parseHubId } from "../web/hub.js";

export { folderFiles } from "./files.js";
export { resolveHubModel, hubRepoFolder, type HubOptions, type HubDownloadProgress } from "./hub.js";
export { configureV8 } from "./v8-flags.js";

configureV8();

// Both src/node/ (tests) and dist/node/ (the package) sit two levels below the package root.
const dist = (name: string) => new URL(`../../dist/${name}`, import.meta.url);

/** A compiled kernel build (dist/kernels-BUILD.wasm, made by `npm install`). */
export const kernelBuild = (build: KernelBuild) => readFile(dist(`kernels-${build}.wasm`));

/** The bundled Llama-2 tokenizer.json. */
export const bundledTokenizer = async () => JSON.parse(await readFile(dist("tokenizer.json"), "utf8")) as object;

/** A worker thread running the kernel loop; unref'd so that it never keeps the process alive. */
function spawnWorker() {
  const worker = new Worker(dist("node/worker.js"));
  worker.unref();
  return worker;
}

/** Node defaults: every core, kernels read from dist/, workers from dist/node/worker.js. */
export const nodeKernelOptions = (opts: KernelOptions = {}): KernelOptions => ({
  threads: Math.min(availableParallelism(), MAX_THREADS),
  wasm: kernelBuild,
  spawnWorker,
  ...opts,
});

/** `createKernels` with the Node defaults of `nodeKernelOptions`. */
export const createNodeKernels = (opts: KernelOptions = {}, memories = 1) => createKernels(nodeKernelOptions(opts), memories);

/** The parsed header of a GGUF file at `path`, or undefined when `path` is a folder (read once per path). */
const headers = new Map<string, Promise<GGUFFile>>();
async function ggufAt(path: string): Promise<GGUFFile | undefined> {
  if (!(await stat(path).then((s) => s.isFile(), () => false))) return undefined;
  if (!headers.has(path)) headers.set(path, fileSource(path, basename(path)).then(readGGUF));
  return headers.get(path)!;
}

/**
 * A model's local path: `path` itself when it exists, else the hub id it is ("org/name[@revision][:quant]")
 * resolved through the Hugging Face cache, downloading what is missing (see resolveHubModel).
 */
export async function localModelPath(path: string, hub: HubOptions = {}): Promise<string> {
  if (await stat(path).then(() => true, () => false)) return path;
  try {
    parseHubId(path);
  } catch (e) {
    throw new FolderError(`model folder or file ${path} does not exist, and it is not a hub id either (${(e as Error).message})`);
  }
  return resolveHubModel(path, hub).catch((e: Error) => {
    e.message = `${path} is no local file or folder; as a hub id: ${e.message}`;
    throw e;
  });
}

/** The config, tensors, tokenizer.json and chat template of a folder, a .gguf file or a hub id, without loading anything (for conversion). */
export async function readCheckpointAt(path: string, hub: HubOptions = {}): Promise<{ config: OpenELMConfig; tensors: Map<string, TensorEntry>; tokenizer: Record<string, unknown>; chatTemplate: string }> {
  path = await localModelPath(path, hub);
  const gguf = await ggufAt(path);
  if (gguf) {
    const config = configFromGGUF(gguf);
    return { config, tensors: tensorsFromGGUF(gguf, expectedTensors(config).keys()), tokenizer: tokenizerFromGGUF(gguf.metadata, gguf.source.name) as Record<string, unknown>,
      chatTemplate: chatTemplateFromGGUF(gguf.metadata) ?? OPENELM_INSTRUCT_TEMPLATE };
  }
  const files = await folderFiles(path), own = await readText(files, "tokenizer.json");
  return {
    config: await readConfig(files), tensors: await readCheckpoint(files),
    tokenizer: own === undefined ? (await bundledTokenizer()) as Record<string, unknown> : parseJsonObject(own, `${path}/tokenizer.json`),
    chatTemplate: (await loadTokenizer(files, bundledTokenizer)).chatTemplate ?? OPENELM_INSTRUCT_TEMPLATE,
  };
}

/** A model from a Hugging Face folder, a .gguf file, or a hub id ("org/name[@revision][:quant]", see localModelPath). */
export async function loadModelFromFolder(path: string, opts: ModelOptions & HubOptions = {}): Promise<OpenELM> {
  path = await localModelPath(path, opts);
  const options = { ...nodeKernelOptions(), ...opts }, gguf = await ggufAt(path);
  return gguf ? loadGGUFModel(gguf, options) : loadModel(await folderFiles(path), options);
}

/** The tokenizer of a Hugging Face folder (its own, or the bundled Llama-2 one), of a .gguf file, or of a hub id. */
export async function loadTokenizerFromFolder(path: string, hub: HubOptions = {}): Promise<Tokenizer> {
  path = await localModelPath(path, hub);
  const gguf = await ggufAt(path);
  return gguf ? loadGGUFTokenizer(gguf) : loadTokenizer(await folderFiles(path), bundledTokenizer);
}
