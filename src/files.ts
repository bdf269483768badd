// How the core reads a model folder without Node built-ins: the host (src/node/ for Node, a File list or
// fetch in a browser) supplies these two small interfaces. Names that a folder's own files mention (the
// shards of an index) are checked here, before any host resolves them.

/** Random access to one file's bytes. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Fill `into` with the bytes starting at `offset`; rejects if the file is shorter. */
  read(offset: number, into: Uint8Array): Promise<void>;
}

/** A model folder: config.json, safetensors files, optionally tokenizer.json. */
export interface ModelFiles {
  /** Where the files come from, for messages. */
  readonly location: string;
  /** A byte source for a file of the folder (a checked relative name), or undefined if it has no such file. */
  open(name: string): Promise<ByteSource | undefined>;
}

export class FileError extends Error {
  override name = "FileError";
}

/** Size caps for files that are small by nature: read whole, so checked before they are read. */
export const TEXT_LIMITS: Record<string, number> = {
  "config.json": 1 << 20,
  "model.safetensors.index.json": 16 << 20,
  "tokenizer_config.json": 16 << 20,
  "tokenizer.json": 64 << 20,
};

/**
 * Is `name` a relative path inside the folder: no absolute path, drive or backslash, no empty, "." or
 * ".." segment, no NUL? Returns the reason it is not, or undefined.
 */
export function unsafeName(name: unknown): string | undefined {
  if (typeof name !== "string" || name === "") return "not a file name";
  if (name.includes("\0")) return "contains a NUL character";
  if (name.includes("\\")) return "contains a backslash";
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) return "is an absolute path";
  if (name.split("/").some((s) => s === "" || s === "." || s === "..")) return "leaves the folder or has an empty segment";
  return undefined;
}

/** The text of a small file of the folder, or undefined if there is none; its size is checked first. */
export async function readText(files: ModelFiles, name: string, maxBytes = TEXT_LIMITS[name] ?? 1 << 20): Promise<string | undefined> {
  const src = await files.open(name);
  if (!src) return undefined;
  if (src.size > maxBytes) throw new FileError(`${name}: ${src.size.toLocaleString("en-US")} bytes, more than the ${(maxBytes / 2 ** 20).toFixed(0)} MiB such a file may have`);
  const bytes = new Uint8Array(src.size);
  await src.read(0, bytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FileError(`${name}: not UTF-8 text`);
  }
}

/** A ByteSource over bytes already in memory (a fetched file, a File's arrayBuffer, a test). */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, into) {
      if (offset + into.byteLength > bytes.byteLength)
        throw new FileError(`${name}: truncated: wanted ${into.byteLength} bytes at offset ${offset}, the file has ${bytes.byteLength}`);
      into.set(bytes.subarray(offset, offset + into.byteLength));
    },
  };
}

/** A ModelFiles over in-memory files, e.g. `{ "config.json": ..., "model.safetensors": ... }`. */
export function memoryFiles(files: Record<string, Uint8Array | string>, location = "memory"): ModelFiles {
  const enc = new TextEncoder();
  return {
    location,
    async open(name) {
      const why = unsafeName(name);
      if (why) throw new FileError(`${JSON.stringify(name)} ${why}: files are named relative to the model folder`);
      const f = Object.hasOwn(files, name) ? files[name] : undefined;
      return f === undefined ? undefined : bytesSource(name, typeof f === "string" ? enc.encode(f) : f);
    },
  };
}
