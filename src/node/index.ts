// The Node adapter: read a model folder from disk with the compiled kernels, worker threads and the
// bundled tokenizer.
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { createKernels, loadModel, loadTokenizer, type KernelOptions, type ModelOptions } from "../load.js";
import type { OpenELM } from "../model.js";
import type { Tokenizer } from "../tokenizer.js";
import type { KernelBuild } from "../kernels/wasm.js";
import { folderFiles } from "./files.js";
import { configureV8 } from "./v8-flags.js";

export { folderFiles } from "./files.js";
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
  threads: availableParallelism(),
  wasm: kernelBuild,
  spawnWorker,
  ...opts,
});

export const createNodeKernels = (opts: KernelOptions = {}, memories = 1) => createKernels(nodeKernelOptions(opts), memories);

export async function loadModelFromFolder(dir: string, opts: ModelOptions = {}): Promise<OpenELM> {
  return loadModel(await folderFiles(dir), { ...nodeKernelOptions(), ...opts });
}

export async function loadTokenizerFromFolder(dir: string): Promise<Tokenizer> {
  return loadTokenizer(await folderFiles(dir), bundledTokenizer);
}
