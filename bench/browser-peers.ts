// The engines of bench:peers that run in Debian's Chromium (headless, driven by playwright-core):
// - wllama: llama.cpp compiled to WebAssembly (from npm), the peer an embedder would otherwise ship. Its
//   speeds are llama.cpp's own timings of the completion (llama-server's prompt_per_second and
//   predicted_per_second), so the page's message passing is outside them.
// - openelm-web: openelm's built core (dist/) in the same browser, timed by measureSpeed as in Node.
// A local server gives the page cross-origin isolation (COOP/COEP), so both take their multi-threaded
// paths (Web Workers), and serves the model file by URL.
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const BROWSER_ENGINES = ["wllama", "openelm-web"] as const;
export type BrowserEngine = (typeof BROWSER_ENGINES)[number];

const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // the repository (this file runs from dist/bench)
const WLLAMA = join(dirname(createRequire(import.meta.url).resolve("@wllama/wllama/package.json")), "esm");

// wllama takes prompts as text (token id arrays fail in its message passing): "the the the ..." is BOS
// and one token per word in OpenELM's (LLaMA's) vocabulary, so a prompt of n tokens is n - 1 words. Its
// message passing also fails on text that is not whole UTF-8, which random weights produce from the byte
// tokens <0x00>..<0xFF> (ids 3 to 258): a logit bias keeps greedy decoding off them.
const WLLAMA_PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import { Wllama } from "/wllama/index.js";
window.run = async (threads, prefill, decode) => {
  const w = new Wllama({ default: "/wllama/wasm/wllama.wasm" }, { suppressNativeLog: true });
  await w.loadModelFromUrl(location.origin + "/model.gguf", { useCache: false, n_threads: threads, n_ctx: prefill + decode + 16, n_batch: prefill, n_ubatch: prefill, n_gpu_layers: 0 });
  if (threads > 1 && !w.isMultithread()) throw new Error("wllama did not start its threads");
  if (w.getNumThreads() !== threads) throw new Error("wllama runs " + w.getNumThreads() + " threads, not " + threads);
  const prompt = Array(prefill - 1).fill("the").join(" ");
  const logit_bias = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [3 + i, -1000]));
  const complete = (n) => w.createCompletion({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, cache_prompt: false, logit_bias });
  await complete(2); // warm-up
  const t = (await complete(decode)).timings;
  if (t.prompt_n !== prefill || t.predicted_n !== decode) throw new Error("wllama ran " + t.prompt_n + " prompt and " + t.predicted_n + " new tokens");
  return { prefill_tok_s: t.prompt_per_second, decode_tok_s: t.predicted_per_second };
};
window.ready = true;
</script>`;

// openelm as an embedder loads it: the core from dist/ with an import map for its two dependencies
const OPENELM_PAGE = `<!doctype html><meta charset="utf-8">
<script type="importmap">{ "imports": {
  "@huggingface/tokenizers": "/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs",
  "@huggingface/jinja": "/node_modules/@huggingface/jinja/dist/index.js"
} }</script>
<script type="module">
import { loadGGUFModel, bytesSource, measureSpeed } from "/dist/index.js";
window.run = async (threads, prefill, decode, dtype) => {
  const bytes = new Uint8Array(await (await fetch("/model.gguf")).arrayBuffer());
  const model = await loadGGUFModel(bytesSource("model.gguf", bytes), { threads, ...(dtype ? { dtype } : {}) });
  if (model.kernels.threads !== threads) throw new Error("openelm runs on " + model.kernels.name + ", not " + threads + " threads");
  measureSpeed(model, { prefill, decode: 2 }); // warm-up
  const s = measureSpeed(model, { prefill, decode });
  await model.close();
  return { prefill_tok_s: s.prefill_tok_s, decode_tok_s: s.decode_tok_s };
};
window.ready = true;
</script>`;

const TYPES: Record<string, string> = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** Prefill and decode tokens/s of `engine` on `file` with `threads` threads in headless Chromium. */
export async function runInChromium(engine: BrowserEngine, file: string, threads: number, prefill: number, decode: number, dtype?: string): Promise<{ prefill_tok_s: number; decode_tok_s: number }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${engine} runs in Chromium, and ${CHROMIUM} is missing: apt-get install chromium (or leave ${engine} out of --engines)`);
  const headers = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cross-origin-resource-policy": "same-origin" };
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url!, "http://x").pathname));
    if (path === "/") return res.writeHead(200, { ...headers, "content-type": "text/html" }).end(engine === "wllama" ? WLLAMA_PAGE : OPENELM_PAGE);
    const local = path === "/model.gguf" ? file
      : path.startsWith("/wllama/") ? join(WLLAMA, path.slice(8))
      : path.startsWith("/dist/") || path.startsWith("/node_modules/") ? join(ROOT, path) : undefined;
    if (!local || !existsSync(local) || !statSync(local).isFile()) return res.writeHead(404, headers).end();
    res.writeHead(200, { ...headers, "content-type": TYPES[local.slice(local.lastIndexOf("."))] ?? "application/octet-stream", "content-length": statSync(local).size });
    if (req.method === "HEAD") return res.end();
    createReadStream(local).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    type Run = (t: number, p: number, d: number, dtype?: string) => Promise<{ prefill_tok_s: number; decode_tok_s: number }>;
    return await page.evaluate(([t, p, d, dt]) => (window as unknown as { run: Run }).run(t, p, d, dt), [threads, prefill, decode, dtype] as const);
  } finally {
    await browser.close();
    server.close();
  }
}
