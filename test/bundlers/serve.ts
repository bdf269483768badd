// A static server on 127.0.0.1 with the headers that make a page cross-origin isolated (so threads work),
// as a user would put an esbuild bundle behind one. `missing` names files to answer 404 for (error tests).
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
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, close: () => new Promise((r) => server.close(() => r())) };
}
