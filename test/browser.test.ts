// The core in a real browser (Debian's Chromium, driven by playwright-core): SIMD kernels on Web Worker
// threads when the page is cross-origin isolated, one thread (with a console note) when it is not,
// tracing returning Float32Arrays, and seeded sampling giving the ids Node gives.
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { type Browser } from "playwright-core";
import { launchChromium } from "./helpers/chromium.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TextGenerator } from "../src/generation/stream.js";
import { loadTokenizerFromFolder } from "../src/node/index.js";
import { ORACLE, ROOT, loadOracle } from "./helpers/oracle.js";

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wasm": "application/wasm" };
let server: Server, browser: Browser, base = "";

beforeAll(async () => {
  // A static server over the repository. The page is cross-origin isolated when its own response carries
  // COOP and COEP (?isolated); every other response carries COEP and CORP, as workers and fetches need.
  server = createServer(async (req, res) => {
    const url = new URL(req.url!, "http://localhost");
    const path = normalize(decodeURIComponent(url.pathname));
    const isolate = !path.endsWith(".html") || url.searchParams.has("isolated");
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, {
        "content-type": TYPES[extname(path)] ?? "application/octet-stream",
        ...(isolate ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } : {}),
        "cross-origin-resource-policy": "same-origin",
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
});

async function open(isolated: boolean) {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on("console", (m) => console.push(m.text()));
  await page.goto(`${base}/test/browser/page.html${isolated ? "?isolated" : ""}`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return { page, console };
}

describe("in Chromium", () => {
  it("cross-origin isolated: threads on Web Workers, and a trace equal to the PyTorch reference", async () => {
    const { page } = await open(true);
    const r = await page.evaluate(() => (window as unknown as { runTrace: (n: string, k: number, t: number) => Promise<Record<string, unknown>> }).runTrace("elm-tiny-gqa", 2, 2));
    expect(r).toMatchObject({ isolated: true, taps: 63, allFloat32: true, firstDivergence: null, kernels: "wasm-relaxed-shared ×2 threads" });
    expect(r.worstRel).toBeLessThan(1e-4);
  });

  it("not isolated: one thread, and the page is told why", async () => {
    const { page, console } = await open(false);
    const r = await page.evaluate(() => (window as unknown as { runTrace: (n: string, k: number, t: number) => Promise<Record<string, unknown>> }).runTrace("elm-tiny-fp16", 1, 2));
    expect(r).toMatchObject({ isolated: false, firstDivergence: null, kernels: "wasm-relaxed" });
    expect(console.join("\n")).toMatch(/SharedArrayBuffer is unavailable \(a page needs cross-origin isolation: COOP\/COEP headers\); running on one thread/);
  });

  it("the same seed samples the same ids as in Node", async () => {
    const { page } = await open(false);
    const browserIds = await page.evaluate(() => (window as unknown as { runSample: (s: number) => Promise<{ ids: number[] }> }).runSample(12));
    const node = await new TextGenerator(await loadOracle("elm-tiny-32k", { threads: 1 }), await loadTokenizerFromFolder(join(ORACLE, "elm-tiny-32k")))
      .complete("Once upon a time", { maxNewTokens: 16, temperature: 0.9, topK: 40, seed: 12, ignoreEos: true });
    expect(browserIds.ids).toEqual(node.ids);
  });
});
