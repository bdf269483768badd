// Opening the model the page chose (in the engine worker), through the package's web loaders.
import { openModel, urlFiles, type ModelOptions, type OpenELM, type Tokenizer, type WebLoadOptions } from "openelm";
import type { ModelSource } from "./protocol.js";

/** A short name of a source for the page. */
function sourceName(source: ModelSource): string {
  if (source.kind === "url") return decodeURIComponent(new URL(source.url).pathname.split("/").filter(Boolean).pop() ?? source.url);
  if (source.kind === "directory") return source.handle.name;
  return source.files.length === 1 ? source.files[0]!.name : (source.files[0]?.webkitRelativePath.split("/")[0] || "files");
}

/** The model and tokenizer of a source: a URL (folder or .gguf), files, or a directory handle. */
export async function loadFrom(source: ModelSource, opts: ModelOptions & WebLoadOptions): Promise<{ model: OpenELM; tokenizer: Tokenizer; name: string }> {
  const where = source.kind === "url" ? source.url : source.kind === "files" ? source.files : source.handle;
  const adapter = source.kind === "url" && source.adapter ? { adapter: urlFiles(source.adapter, opts) } : {};
  return { ...(await openModel(where, { ...opts, ...adapter })), name: sourceName(source) };
}
