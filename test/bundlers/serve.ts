// A static server on 127.0.0.1 with byte ranges and the headers that make a page cross-origin isolated (so
// threads work), as a user would put an esbuild bundle behind one. `missing` names files to answer 404 for.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".json": "application/json", ".wasm": "application/wasm" };

/** Serve `root`; resolves to the base URL and a function that stops the server. */
export async function serveStatic(root: string, missing: string[] = []): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url!, "http://localhost").pathname)).replace(/\/$/, "/index.html");
    try {
      if (missing.includes(path)) throw new Error("hidden");
      const body = await readFile(join(root, path));
      // one byte range, as openelm's URL loader asks for ("bytes=START-" or "bytes=START-END")
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      const start = range ? Number(range[1]) : 0, end = range?.[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      res.writeHead(range ? 206 : 200, {
        "content-type": TYPES[extname(path)] ?? "application/octet-stream", "content-length": end - start + 1, "accept-ranges": "bytes",
        ...(range ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}),
        "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp",
      });
      res.end(req.method === "HEAD" ? undefined : body.subarray(start, end + 1));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, close: () => new Promise((r) => server.close(() => r())) };
}
