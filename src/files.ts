// How the core reads a model folder without Node built-ins: the host (src/node/ for Node, a File list or
// fetch in a browser) supplies these two small interfaces.

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
  /** The text of a file, or undefined if the folder has no such file. */
  text(name: string): Promise<string | undefined>;
  /** A byte source for a file, or undefined if the folder has no such file. */
  open(name: string): Promise<ByteSource | undefined>;
}

/** A ByteSource over bytes already in memory (a fetched file, a File's arrayBuffer, a test). */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, into) {
      if (offset + into.byteLength > bytes.byteLength)
        throw new RangeError(`${name}: read of ${into.byteLength} bytes at ${offset} is past the end (${bytes.byteLength} bytes)`);
      into.set(bytes.subarray(offset, offset + into.byteLength));
    },
  };
}

/** A ModelFiles over in-memory files, e.g. `{ "config.json": ..., "model.safetensors": ... }`. */
export function memoryFiles(files: Record<string, Uint8Array | string>, location = "memory"): ModelFiles {
  const enc = new TextEncoder(), dec = new TextDecoder();
  return {
    location,
    async text(name) {
      const f = files[name];
      return f === undefined ? undefined : typeof f === "string" ? f : dec.decode(f);
    },
    async open(name) {
      const f = files[name];
      return f === undefined ? undefined : bytesSource(name, typeof f === "string" ? enc.encode(f) : f);
    },
  };
}
