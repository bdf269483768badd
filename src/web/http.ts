// Model files at a URL, read with HTTP Range requests. One ranged response streams from the current
// position and serves consecutive reads, so loading a file front to back costs one request; a read that
// jumps elsewhere starts a new one. Bytes go from the response straight into the caller's array (a view of
// WebAssembly memory): no second full copy of a file is ever held. Every response is checked against what
// was asked, so a server that ignores, shortens or lengthens a range gives an error naming the URL, never
// shifted weights.
import { FileError, unsafeName, type ByteSource, type ModelFiles } from "../files.js";
import { cachedSource } from "./cache.js";

/** Byte progress of one file: downloaded, or found in the cache (then `loaded` is `total` at once). */
export interface DownloadProgress {
  /** The file's name in its folder (or its URL, for `urlSource`). */
  file: string;
  loaded: number;
  total: number;
  fromCache: boolean;
}

/** How model files are fetched in a browser (or any host with `fetch`). */
export interface WebLoadOptions {
  /** Aborts downloads and loading: pending reads reject with a DOMException named "AbortError". */
  signal?: AbortSignal;
  /** Byte progress per file (ModelOptions.onProgress stays the weight-loading progress). */
  onDownload?: (p: DownloadProgress) => void;
  /**
   * Keep downloaded files in the origin private file system (OPFS), so a second visit does not download
   * them again (see `listModelCache`, `clearModelCache`). Default true; without OPFS (Node, Deno, some
   * browsers) files are streamed with ranges instead.
   */
  cache?: boolean;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
}

/** What a first look at a URL tells: its size, and the validator naming this version of it (for the cache). */
interface Probe {
  size: number;
  validator?: string;
}

/** Forward jumps up to this many bytes are read through and discarded rather than costing a new request. */
const SKIP = 1 << 20;
/** An open response left unread this long is closed, so a finished load leaves no connection hanging. */
const IDLE_MS = 2000;

/** The AbortError every aborted read rejects with, whatever reason was given to `abort()`. */
export function abortError(what: string): DOMException {
  return new DOMException(`${what}: aborted`, "AbortError");
}

/** An absolute URL; a relative one is taken relative to the page (or worker) when there is one. */
export function resolveUrl(url: string | URL): URL {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return new URL(url, page);
  } catch {
    throw new FileError(`${JSON.stringify(String(url))} is not a URL${page ? "" : " (outside a page, give an absolute URL)"}`);
  }
}

const number = (s: string | null) => (s !== null && /^\d+$/.test(s) ? Number(s) : undefined);

/** The parts of a Content-Range header "bytes START-END/TOTAL" (TOTAL may be "*"). */
function contentRange(header: string | null): { start: number; end: number; total?: number } | undefined {
  const m = header === null ? null : /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header.trim());
  return m ? { start: Number(m[1]), end: Number(m[2]), total: number(m[3]!) } : undefined;
}

/** A header a cross-origin server must expose for it to be readable; said when it is missing. */
const exposeHint = "(a server on another origin must list it in Access-Control-Expose-Headers)";

/**
 * One fetch, with transport failures and aborts turned into errors that name the URL. The browser's HTTP
 * cache is bypassed: it would keep a second copy of every model (OPFS is the cache) and rewrite ranges.
 */
async function get(url: URL, init: RequestInit, opts: WebLoadOptions): Promise<Response> {
  try {
    return await (opts.fetch ?? globalThis.fetch)(url, { ...init, cache: "no-store", signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw abortError(url.href);
    throw new FileError(`${url}: ${init.method ?? "GET"} failed: ${(e as Error).message}`);
  }
}

/**
 * Does this answer mean "no such file"? Besides 404 and 410: dev servers (Vite's, single-page apps) answer
 * a missing file with their index.html and a 200, and a model folder holds no HTML.
 */
const missing = (r: Response) => r.status === 404 || r.status === 410 || (r.ok && /^text\/html\b/i.test(r.headers.get("content-type") ?? ""));

/** Size and validator of the file at `url`, or undefined when there is none. */
async function probe(url: URL, opts: WebLoadOptions): Promise<Probe | undefined> {
  const head = await get(url, { method: "HEAD" }, opts);
  if (missing(head)) return undefined;
  const length = number(head.headers.get("content-length"));
  // a compressed length is not the file's; a server refusing HEAD may still serve GET
  if (head.ok && length !== undefined && !head.headers.get("content-encoding")) return { size: length, validator: validatorOf(head, length) };
  const r = await get(url, { headers: { range: "bytes=0-0" } }, opts);
  await r.body?.cancel().catch(() => {});
  if (missing(r)) return undefined;
  const range = contentRange(r.headers.get("content-range"));
  let size: number | undefined;
  if (r.status === 206 && range?.start === 0 && range.end === 0) size = range.total;
  else if (r.status === 416) size = /^bytes\s+\*\/0$/i.test(r.headers.get("content-range") ?? "") ? 0 : undefined; // an empty file has no byte 0
  else if (r.status === 200 && !r.headers.get("content-encoding")) size = number(r.headers.get("content-length"));
  if (!r.ok && r.status !== 416) throw new FileError(`${url}: HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ""}`);
  if (size === undefined)
    throw new FileError(`${url}: the server tells neither a Content-Length (HEAD) nor a Content-Range total (HTTP ${r.status} to "Range: bytes=0-0") ${exposeHint}`);
  return { size, validator: validatorOf(r, size) };
}

/** What identifies this version of a file: its ETag, else its Last-Modified date with its size. */
function validatorOf(r: Response, size: number): string | undefined {
  const etag = r.headers.get("etag"), modified = r.headers.get("last-modified");
  return etag ?? (modified ? `${modified}; ${size} bytes` : undefined);
}

/** The response being read: file bytes [pos, end) are still to come, `rest` holding the first of them. */
interface Body {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The first byte this response holds: `at` for a 206, 0 for a 200 that ignored Range. */
  start: number;
  ranged: boolean;
  pos: number;
  end: number;
  rest: Uint8Array;
}

/** A file at a URL of known size, read with Range requests. */
export class RemoteFile implements ByteSource {
  private body: Body | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private delivered = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly url: URL, readonly name: string, readonly size: number, private readonly opts: WebLoadOptions = {}) {}

  /** Reads run one at a time, in order, since they share the open response. */
  read(offset: number, into: Uint8Array): Promise<void> {
    const r = this.queue.then(() => this.readNow(offset, into));
    this.queue = r.catch(() => {});
    return r;
  }

  private async readNow(offset: number, into: Uint8Array): Promise<void> {
    clearTimeout(this.idle);
    const end = offset + into.byteLength;
    if (!Number.isSafeInteger(offset) || offset < 0 || end > this.size)
      throw new FileError(`${this.url}: truncated: wanted ${into.byteLength} bytes at offset ${offset}, the file has ${this.size}`);
    if (this.opts.signal?.aborted) throw abortError(this.url.href);
    try {
      for (let at = offset; at < end; ) {
        const b = await this.responseAt(at);
        const chunk = await this.take(b, end - at);
        into.set(chunk, at - offset);
        at += chunk.byteLength;
        this.delivered = Math.min(this.size, this.delivered + chunk.byteLength);
        this.opts.onDownload?.({ file: this.name, loaded: this.delivered, total: this.size, fromCache: false });
      }
    } catch (e) {
      this.close();
      if (this.opts.signal?.aborted) throw abortError(this.url.href);
      if (e instanceof FileError) throw e;
      throw new FileError(`${this.url}: reading bytes ${offset}-${end - 1} failed: ${(e as Error).message}`);
    }
    if (this.body) {
      this.idle = setTimeout(() => this.close(), IDLE_MS);
      (this.idle as { unref?: () => void }).unref?.(); // in Node, never keep the process alive
    }
  }

  /** The open response, positioned at byte `at`: the current one when `at` is just ahead, else a new one. */
  private async responseAt(at: number): Promise<Body> {
    let b = this.body;
    if (!b || at < b.pos || at >= b.end || (at - b.pos > SKIP && b.ranged)) b = await this.open(at);
    while (b.pos < at) await this.take(b, at - b.pos); // discard up to `at` (a response that ignored Range starts at 0)
    return b;
  }

  /** Ask for the bytes from `at` to the end of the file. */
  private async open(at: number): Promise<Body> {
    this.close();
    const range = `bytes ${at}-${this.size - 1}`;
    const r = await get(this.url, { headers: { range: `bytes=${at}-` } }, this.opts);
    const fail = (msg: string) => {
      void r.body?.cancel().catch(() => {});
      return new FileError(`${this.url}: ${msg} (asked for ${range})`);
    };
    let start: number, end: number;
    if (r.status === 206) {
      const header = r.headers.get("content-range"), cr = contentRange(header);
      if (!cr) throw fail(header === null ? `HTTP 206 without a Content-Range ${exposeHint}` : `HTTP 206 with a malformed Content-Range ${JSON.stringify(header)}`);
      if (cr.total !== this.size) throw fail(`Content-Range ${header} gives a total other than the ${this.size} bytes first announced: the file changed on the server, or the server is wrong`);
      if (cr.start !== at || cr.end < at || cr.end >= this.size) throw fail(`the server sent Content-Range ${header}`);
      [start, end] = [at, cr.end + 1];
    } else if (r.status === 200) {
      // the server ignored Range: its body is the whole file, read forward from byte 0
      const length = number(r.headers.get("content-length"));
      if (length !== undefined && length !== this.size) throw fail(`HTTP 200 with ${length} bytes, but the file was announced with ${this.size}`);
      [start, end] = [0, this.size];
    } else {
      throw fail(r.status === 404 ? "not found (HTTP 404)" : `HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ""}`);
    }
    if (!r.body) throw fail(`HTTP ${r.status} without a body`);
    return (this.body = { reader: r.body.getReader(), start, ranged: r.status === 206, pos: start, end, rest: new Uint8Array(0) });
  }

  /** Up to `n` bytes from the open response; at its end, check that nothing more follows. */
  private async take(b: Body, n: number): Promise<Uint8Array> {
    const asked = `bytes ${b.start}-${b.end - 1}`;
    while (b.rest.byteLength === 0) {
      const { done, value } = await b.reader.read();
      if (done) throw new FileError(`${this.url}: the response for ${asked} ended after ${b.pos - b.start} bytes`);
      b.rest = value;
    }
    const chunk = b.rest.subarray(0, Math.min(n, b.rest.byteLength, b.end - b.pos));
    b.rest = b.rest.subarray(chunk.byteLength);
    b.pos += chunk.byteLength;
    if (b.pos === b.end) {
      const more = b.rest.byteLength > 0 || !(await b.reader.read()).done;
      this.close();
      if (more) throw new FileError(`${this.url}: the response for ${asked} holds more than its ${b.end - b.start} bytes`);
    }
    return chunk;
  }

  private close(): void {
    clearTimeout(this.idle);
    void this.body?.reader.cancel().catch(() => {});
    this.body = undefined;
  }
}

/** A ByteSource over `url`, cached as the options say, or undefined when the server has no such file. */
async function openUrl(url: URL, name: string, opts: WebLoadOptions): Promise<ByteSource | undefined> {
  const found = await probe(url, opts);
  if (!found) return undefined;
  const remote = new RemoteFile(url, name, found.size, opts);
  return opts.cache === false ? remote : cachedSource(remote, found.validator, opts);
}

/**
 * One remote file, read with HTTP Range requests (or from the OPFS cache). Its size is learnt first (HEAD,
 * else a one-byte range); a missing file is a FileError naming the URL.
 */
export async function urlSource(url: string | URL, opts: WebLoadOptions = {}): Promise<ByteSource> {
  const where = resolveUrl(url);
  const src = await openUrl(where, where.href, opts);
  if (!src) throw new FileError(`${where}: not found (HTTP 404)`);
  return src;
}

/**
 * A Hugging Face-layout model folder at a URL (config.json, model.safetensors or its shards and
 * model.safetensors.index.json, optionally tokenizer.json and tokenizer_config.json), e.g.
 * `https://huggingface.co/apple/OpenELM-270M-Instruct/resolve/main/`. A file the server does not have
 * (404) is a file the folder does not have.
 */
export function urlFiles(base: string | URL, opts: WebLoadOptions = {}): ModelFiles {
  const folder = resolveUrl(base);
  if (!folder.pathname.endsWith("/")) folder.pathname += "/";
  return {
    location: folder.href,
    async open(name) {
      const why = unsafeName(name);
      if (why) throw new FileError(`${JSON.stringify(name)} ${why}: files are named relative to the model folder ${folder}`);
      return openUrl(new URL(name.split("/").map(encodeURIComponent).join("/"), folder), name, opts);
    },
  };
}
