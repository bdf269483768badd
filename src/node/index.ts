// The Node adapter: read a model folder from disk with the compiled kernels and the bundled tokenizer.
import { readFile } from "node:fs/promises";
import { loadModel, loadTokenizer, type ModelOptions } from "../load.js";
import type { OpenELM } from "../model.js";
import type { Tokenizer } from "../tokenizer.js";
import { folderFiles } from "./files.js";

export { folderFiles } from "./files.js";

// Both src/node/ (tests) and dist/node/ (the package) sit two levels below the package root.
const dist = (name: string) => new URL(`../../dist/${name}`, import.meta.url);

/** The compiled SIMD kernels (dist/kernels.wasm, built by `npm install`). */
export const kernelsWasm = () => readFile(dist("kernels.wasm"));

/** The bundled Llama-2 tokenizer.json. */
export const bundledTokenizer = async () => JSON.parse(await readFile(dist("tokenizer.json"), "utf8")) as object;

export async function loadModelFromFolder(dir: string, opts: ModelOptions = {}): Promise<OpenELM> {
  const files = await folderFiles(dir);
  return loadModel(files, { ...opts, wasm: opts.kernels === "typescript" ? undefined : (opts.wasm ?? (await kernelsWasm())) });
}

export async function loadTokenizerFromFolder(dir: string): Promise<Tokenizer> {
  return loadTokenizer(await folderFiles(dir), bundledTokenizer);
}
