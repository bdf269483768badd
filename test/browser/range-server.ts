// A real HTTP server on 127.0.0.1 for the web loader tests: HEAD, Range requests and ETags as static file
// servers give them, a log of every request, and faults to order (Range ignored, wrong Content-Range,
// short or long bodies, error statuses, a connection dropped mid-body), each from the n-th request on.
import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { extname } from "node:path";

export type Fault = "none" | "ignore-range" | "wrong-start" | "wrong-total" | "short" | "long" | "404" | "500" | "drop";

export interface Behaviour {
  fault: Fault;
  /** Requests (HEAD or GET) served well before the fault starts. */
  faultFrom: number;
  /** HEAD answers with the length, without it, or 405. */
  head: "length" | "no-length" | "405";
  /** Sizes of the pieces a body is written in (cycled). */
  chunks: number[];
}

export const WELL: Behaviour = { fault: "none", faultFrom: 0, head: "length", chunks: [1 << 16] };

/** What a path holds: bytes in memory, or a file on disk (streamed, so it may be larger than memory). */
export type Content = Uint8Array | { path: string };

export interface Logged {
  method: string;
  path: string;
  range?: string;
}

/** Room in the socket again, or the client went away (then writes are dropped). */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((r) => {
    const done = () => (res.off("drain", done).off("close", done), r());
    res.on("drain", done).on("close", done);
  });
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wasm": "application/wasm" };

export class RangeServer {
  behaviour: Behaviour = WELL;
  log: Logged[] = [];
  private requests = 0;
  private server: Server;
  url = "";

  constructor(private readonly content: (path: string) => Content | undefined) {
    this.server = createServer((req, res) => void this.serve(req, res).catch(() => res.destroy()));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  /** Serve with `b` from now on, counting GETs afresh. */
  set(b: Behaviour): void {
    this.behaviour = b;
    this.requests = 0;
    this.log = [];
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url!, "http://x").pathname);
    this.log.push({ method: req.method!, path, range: req.headers.range });
    const b = this.behaviour, fault = this.requests++ >= b.faultFrom ? b.fault : "none";
    const content = this.content(path);
    if (!content || fault === "404") return void res.writeHead(404).end();
    if (fault === "500") return void res.writeHead(500).end();
    const size = content instanceof Uint8Array ? content.byteLength : statSync(content.path).size;
    const headers: Record<string, string | number> = { etag: `"${size}-${path.length}"`, "content-type": TYPES[extname(path)] ?? "application/octet-stream", "accept-ranges": "bytes" };
    if (req.method === "HEAD") {
      if (b.head === "405") return void res.writeHead(405).end();
      return void res.writeHead(200, b.head === "length" ? { ...headers, "content-length": size } : headers).end();
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let [start, end, status] = [0, size - 1, 200];
    if (m && fault !== "ignore-range") {
      [start, end, status] = [Number(m[1]), m[2] ? Math.min(Number(m[2]), size - 1) : size - 1, 206];
      if (start >= size) return void res.writeHead(416, { "content-range": `bytes */${size}` }).end();
      const shown = fault === "wrong-start" ? `bytes ${start + 1}-${end}/${size}` : fault === "wrong-total" ? `bytes ${start}-${end}/${size + 1}` : `bytes ${start}-${end}/${size}`;
      headers["content-range"] = shown;
    }
    // a body meant to end early or run long is chunked, so that only its length is wrong, not its framing
    if (fault !== "short" && fault !== "long") headers["content-length"] = end - start + 1;
    res.writeHead(status, headers);
    const count = fault === "short" ? Math.max(0, end - start) : end - start + 1; // one byte short
    await this.body(res, content, start, count, fault === "drop" ? count >> 1 : undefined);
    if (fault === "drop") return void res.destroy();
    if (fault === "long") res.write(new Uint8Array(3).fill(7));
    res.end();
  }

  /** Write `count` bytes from `start` in the behaviour's chunk sizes, stopping after `stop` bytes if given. */
  private async body(res: ServerResponse, content: Content, start: number, count: number, stop = count): Promise<void> {
    if (!(content instanceof Uint8Array)) {
      if (stop === 0) return;
      const stream = createReadStream(content.path, { start, end: start + stop - 1 });
      for await (const chunk of stream) {
        if (res.destroyed) return void stream.destroy();
        if (!res.write(chunk)) await drained(res);
      }
      return;
    }
    const chunks = this.behaviour.chunks;
    for (let at = 0, i = 0; at < stop && !res.destroyed; i++) {
      const n = Math.min(chunks[i % chunks.length]!, stop - at);
      if (!res.write(content.subarray(start + at, start + at + n))) await drained(res);
      at += n;
    }
  }
}
