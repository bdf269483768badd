// One call to go from wherever a model is to the model and its tokenizer, for pages and workers: a URL (a folder
// or a .gguf file), files the user chose or dropped, or a directory handle.
import { FileError, type ByteSource, type ModelFiles } from "../files.js";
import { readGGUF } from "../formats/gguf.js";
import { parseJsonObject } from "../formats/json.js";
import { loadGGUFModel, loadGGUFTokenizer, loadModel, loadTokenizer, type ModelOptions } from "../load.js";
import type { OpenELM } from "../model.js";
import type { Tokenizer } from "../tokenizer.js";
import { abortError, resolveUrl, urlFiles, urlSource, type WebLoadOptions } from "./http.js";
import { blobSource, directoryFiles, fileListFiles } from "./local.js";

/** Where a model can be: a URL (of a folder or a .gguf file), chosen or dropped files, or a directory handle. */
export type ModelLocation = string | URL | File | FileList | File[] | FileSystemDirectoryHandle;

/** The Llama-2 tokenizer bundled with the package (dist/web/open.js -> dist/tokenizer.json), checked as it arrives. */
async function bundledTokenizer(opts: WebLoadOptions): Promise<object> {
  const url = new URL("../tokenizer.json", import.meta.url), what = `the bundled tokenizer ${url}`;
  const r = await (opts.fetch ?? globalThis.fetch)(url, { signal: opts.signal }).catch((e: Error) => {
    throw opts.signal?.aborted ? abortError(url.href) : new FileError(`cannot fetch ${what}: ${e.message}`);
  });
  const hint = "(serve dist/tokenizer.json beside dist/web/, or put a tokenizer.json in the model folder)";
  if (!r.ok) throw new FileError(`cannot fetch ${what}: HTTP ${r.status} ${hint}`);
  const text = await r.text();
  try {
    return parseJsonObject(text, url.href);
  } catch (e) {
    throw new FileError(`${(e as Error).message}: ${r.headers.get("content-type") ?? "no content type"}, ${text.length} characters, is not the tokenizer ${hint}`);
  }
}

/** Local files have no download to abort, so their reads check the signal instead. */
function abortable(files: ModelFiles, signal: AbortSignal | undefined): ModelFiles {
  if (!signal) return files;
  return {
    location: files.location,
    async open(name) {
      const src = await files.open(name);
      return src && abortableSource(src, signal);
    },
  };
}

function abortableSource(src: ByteSource, signal: AbortSignal | undefined): ByteSource {
  return !signal ? src : {
    name: src.name,
    size: src.size,
    read: async (offset, into) => {
      if (signal.aborted) throw abortError(src.name);
      await src.read(offset, into);
      if (signal.aborted) throw abortError(src.name);
    },
  };
}

async function fromFolder(files: ModelFiles, opts: ModelOptions & WebLoadOptions) {
  const tokenizer = await loadTokenizer(files, () => bundledTokenizer(opts)); // small: its errors show before the download
  return { model: await loadModel(files, opts), tokenizer };
}

async function fromGGUF(src: ByteSource, opts: ModelOptions & WebLoadOptions) {
  const g = await readGGUF(src);
  const tokenizer = await loadGGUFTokenizer(g);
  return { model: await loadGGUFModel(g, opts), tokenizer };
}

const isGGUF = (name: string) => name.toLowerCase().endsWith(".gguf");

/**
 * Load a model and its tokenizer from wherever it is. A URL ending in .gguf, a single .gguf File, or the
 * one .gguf file of a folder without config.json is a GGUF file (with its own tokenizer); anything else is a Hugging Face model folder, with its tokenizer.json or
 * else the bundled Llama-2 tokenizer. Downloads stream with Range requests and are cached in OPFS (see
 * WebLoadOptions); `signal` aborts both downloading and loading.
 */
export async function openModel(where: ModelLocation, opts: ModelOptions & WebLoadOptions = {}): Promise<{ model: OpenELM; tokenizer: Tokenizer }> {
  if (typeof where === "string" || where instanceof URL) {
    const url = resolveUrl(where);
    return isGGUF(url.pathname) ? fromGGUF(await urlSource(url, opts), opts) : fromFolder(urlFiles(url, opts), opts);
  }
  if ("kind" in where && where.kind === "directory") return fromFolder(abortable(directoryFiles(where), opts.signal), opts);
  const files = where instanceof Blob ? [where as File] : Array.from(where as ArrayLike<File>);
  // a .gguf file alone, or the only one in a folder without config.json
  const ggufs = files.filter((f) => isGGUF(f.name)), only = files.length === 1 ? files[0]! : undefined;
  if (ggufs.length === 1 && (only || !files.some((f) => f.name === "config.json"))) return fromGGUF(abortableSource(blobSource(ggufs[0]!, ggufs[0]!.name), opts.signal), opts);
  if (only && !only.webkitRelativePath)
    throw new FileError(`${only.name} is not a .gguf file: to open a Hugging Face model, choose its whole folder (config.json and the safetensors files)`);
  if (files.length === 0) throw new FileError("no files were chosen");
  return fromFolder(abortable(fileListFiles(files), opts.signal), opts);
}
