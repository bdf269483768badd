// Downloaded model files kept in the origin private file system (OPFS), so that a second visit reads them
// from disk. A file is keyed by its URL and the validator its server gives (ETag, else Last-Modified and
// size), so a changed file is downloaded again. Each entry is two files: the data, then a small record
// written only once the data is complete, so an interrupted download is never taken for a whole one.
import { FileError, type ByteSource } from "../files.js";
import { blobSource } from "./local.js";
import type { RemoteFile, WebLoadOptions } from "./http.js";

const DIR = "openelm-cache";
/** Bytes copied from the network to OPFS at a time. */
const PIECE = 4 << 20;

/** A file in the cache, as `listModelCache` reports it. */
export interface CachedFile {
  url: string;
  /** The server's ETag, else its Last-Modified date with the size. */
  validator: string;
  size: number;
  /** When it was downloaded (ISO 8601). */
  saved: string;
}

// Handle methods missing from TypeScript's DOM library (async iteration) or present only in some hosts.
type Directory = FileSystemDirectoryHandle & { values(): AsyncIterable<FileSystemHandle> };
interface SyncHandle {
  truncate(n: number): void;
  write(b: Uint8Array, o: { at: number }): number;
  flush(): void;
  close(): void;
}
type FileHandle = FileSystemFileHandle & { createWritable?: () => Promise<FileSystemWritableFileStream>; createSyncAccessHandle?: () => Promise<SyncHandle> };

/** The cache folder, or undefined where there is no OPFS (Node, Deno, some browsers, private windows). */
async function cacheDir(): Promise<Directory | undefined> {
  const storage = (globalThis as { navigator?: { storage?: Partial<StorageManager> } }).navigator?.storage;
  if (!storage?.getDirectory || !globalThis.crypto?.subtle) return undefined;
  try {
    return (await (await storage.getDirectory()).getDirectoryHandle(DIR, { create: true })) as Directory;
  } catch {
    return undefined;
  }
}

/** The entry's file name: a hash of URL and validator (OPFS names cannot hold every character of a URL). */
async function keyOf(url: string, validator: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${url}\n${validator}`));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readRecord(dir: Directory, name: string): Promise<CachedFile | undefined> {
  try {
    return JSON.parse(await (await (await dir.getFileHandle(name)).getFile()).text()) as CachedFile;
  } catch {
    return undefined;
  }
}

/** The cached data of this URL and validator, if a complete copy is there. */
async function lookup(dir: Directory, key: string, remote: RemoteFile, validator: string): Promise<File | undefined> {
  const record = await readRecord(dir, `${key}.json`);
  if (record?.url !== remote.url.href || record.validator !== validator || record.size !== remote.size) return undefined;
  const file = await dir.getFileHandle(`${key}.data`).then((h) => h.getFile(), () => undefined);
  return file?.size === remote.size ? file : undefined;
}

type Write = (bytes: Uint8Array<ArrayBuffer>, at: number) => Promise<unknown>;

/** Write a file with `fill`, which calls `write(bytes, at)` in order: by a writable stream, or in a worker by a sync access handle. */
async function writeFile(handle: FileHandle, fill: (write: Write) => Promise<unknown>): Promise<void> {
  if (handle.createWritable) {
    // a writable stream commits on close(), so an aborted one leaves the file as it was
    const w = await handle.createWritable();
    try {
      await fill((bytes) => w.write(bytes));
      await w.close();
    } catch (e) {
      await w.abort().catch(() => {});
      throw e;
    }
  } else if (handle.createSyncAccessHandle) {
    const h = await handle.createSyncAccessHandle(); // workers only, in browsers without createWritable
    try {
      h.truncate(0);
      await fill(async (bytes, at) => h.write(bytes, { at }));
      h.flush();
    } finally {
      h.close();
    }
  } else {
    throw new Error("this OPFS has no way to write a file here");
  }
}

/** Copy the whole remote file, a piece at a time. */
const download = (remote: RemoteFile) => async (write: Write) => {
  const buf = new Uint8Array(Math.min(PIECE, remote.size));
  for (let at = 0; at < remote.size; at += buf.byteLength) {
    const piece = buf.subarray(0, Math.min(buf.byteLength, remote.size - at));
    await remote.read(at, piece);
    await write(piece, at);
  }
};

/**
 * `remote` read through the cache: from OPFS when a complete copy of this URL and validator is there (one
 * progress event with fromCache), else downloaded whole into OPFS first. Without OPFS or a validator, or
 * when OPFS fails (e.g. out of quota), the remote file itself.
 */
export async function cachedSource(remote: RemoteFile, validator: string | undefined, opts: WebLoadOptions): Promise<ByteSource> {
  const dir = validator === undefined ? undefined : await cacheDir();
  if (!dir || validator === undefined) return remote;
  const key = await keyOf(remote.url.href, validator);
  let file = await lookup(dir, key, remote, validator);
  if (file) {
    opts.onDownload?.({ file: remote.name, loaded: remote.size, total: remote.size, fromCache: true });
    return blobSource(file, remote.name);
  }
  try {
    await dir.removeEntry(`${key}.json`).catch(() => {});
    const handle: FileHandle = await dir.getFileHandle(`${key}.data`, { create: true });
    await writeFile(handle, download(remote));
    file = await handle.getFile();
    const record: CachedFile = { url: remote.url.href, validator, size: remote.size, saved: new Date().toISOString() };
    const text = new TextEncoder().encode(JSON.stringify(record));
    await writeFile(await dir.getFileHandle(`${key}.json`, { create: true }), (write) => write(text, 0));
  } catch (e) {
    await dir.removeEntry(`${key}.data`).catch(() => {});
    if (e instanceof FileError || (e as Error).name === "AbortError") throw e; // the network's fault, or the user's wish
    console.warn(`openelm: cannot keep ${remote.url} in the browser's storage (${(e as Error).message}); reading it from the network`);
    return remote;
  }
  return blobSource(file, remote.name);
}

/** The model files kept in this origin's cache (none where there is no OPFS). */
export async function listModelCache(): Promise<CachedFile[]> {
  const dir = await cacheDir(), out: CachedFile[] = [];
  if (!dir) return out;
  for await (const h of dir.values()) {
    const record = h.kind === "file" && h.name.endsWith(".json") ? await readRecord(dir, h.name) : undefined;
    if (record) out.push(record);
  }
  return out.sort((a, b) => a.url.localeCompare(b.url));
}

/**
 * Remove cached model files: those downloaded from `url` (any version), or all of them (with any download
 * left unfinished). Returns how many cached files were removed.
 */
export async function clearModelCache(url?: string | URL): Promise<number> {
  const dir = await cacheDir();
  if (!dir) return 0;
  const href = url === undefined ? undefined : new URL(url, (globalThis as { location?: { href: string } }).location?.href).href, names: string[] = [];
  for await (const h of dir.values()) if (h.kind === "file") names.push(h.name);
  const keys: string[] = [];
  for (const name of names.filter((n) => n.endsWith(".json")))
    if (href === undefined || (await readRecord(dir, name))?.url === href) keys.push(name.slice(0, -".json".length));
  const doomed = href === undefined ? names : keys.flatMap((k) => [`${k}.json`, `${k}.data`]);
  for (const name of doomed) await dir.removeEntry(name).catch(() => {});
  return keys.length;
}
