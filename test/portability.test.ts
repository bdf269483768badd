// The core must run in any JS host: nothing outside src/node/ may import a Node built-in.
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { expect, it, vi } from "vitest";
import { Worker } from "node:worker_threads";
import { createKernels, loadModel } from "../src/load.js";
import { memoryFiles } from "../src/files.js";
import { nodeKernelOptions } from "../src/node/index.js";
import { OPENELM_INSTRUCT_TEMPLATE } from "../src/generation/chat.js";
import { ROOT } from "./helpers/oracle.js";

/** The TypeScript that runs in a browser: src/ but the Node adapter and the demo page's build configuration (run by Node). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "node" ? [] : sources(join(dir, e.name))) : e.name.endsWith(".ts") && e.name !== "vite.config.ts" ? [join(dir, e.name)] : []);
}

it("the package exports its bundled tokenizer and the instruct chat template, for bundlers and browsers", () => {
  const require = createRequire(import.meta.url);
  const tokenizer = JSON.parse(readFileSync(require.resolve("openelm/tokenizer.json"), "utf8"));
  expect(Object.keys(tokenizer.model.vocab)).toHaveLength(32000);
  const template = JSON.parse(readFileSync(require.resolve("openelm/chat-template.json"), "utf8"));
  expect(template.chat_template).toBe(OPENELM_INSTRUCT_TEMPLATE); // the file is the one the code renders
});

it("kernels fetched from a server that answers with a page or an error are refused with the URL, not WebAssembly's magic-word message", async () => {
  const serve = (body: string, status: number, type: string) => vi.stubGlobal("fetch", async () => new Response(body, { status, headers: { "content-type": type } }));
  try {
    serve("<!doctype html><p>the app", 200, "text/html");
    await expect(createKernels({ threads: 1 })).rejects.toThrow(/kernels-relaxed\.wasm is not WebAssembly \(text\/html, 25 bytes\): the kernel builds must be served beside dist\/load\.js/);
    serve("not found", 404, "text/plain");
    await expect(createKernels({ threads: 1 })).rejects.toThrow(/cannot fetch the kernels .*kernels-relaxed\.wasm: HTTP 404/);
  } finally {
    vi.unstubAllGlobals();
  }
});

it("a worker whose script throws fails the start at once, with its message, instead of waiting 30 s", async () => {
  const t0 = performance.now();
  await expect(createKernels({ ...nodeKernelOptions(), threads: 2, spawnWorker: () => new Worker("throw new Error('no kernels here')", { eval: true }) }))
    .rejects.toThrow("worker thread 1 failed to start: no kernels here");
  expect(performance.now() - t0).toBeLessThan(10_000);
});

it("a load that fails part way (a NaN in the weights) terminates the worker threads it started", async () => {
  const workers: Worker[] = [], dir = join(ROOT, "ref/oracle/elm-tiny-gqa");
  const weights = new Uint8Array(readFileSync(join(dir, "model.safetensors")));
  weights.fill(0xff, weights.length - 4); // NaN as f32, f16 or bf16: refused while the weights load
  const files = memoryFiles({ "config.json": readFileSync(join(dir, "config.json")), "model.safetensors": weights });
  const spawnWorker = () => (workers.push(new Worker(new URL("../dist/node/worker.js", import.meta.url))), workers.at(-1)!);
  await expect(loadModel(files, { ...nodeKernelOptions(), threads: 2, spawnWorker })).rejects.toThrow("tensor transformer.norm.weight holds");
  expect(workers).toHaveLength(1);
  expect(workers[0]!.threadId).toBe(-1); // terminated
});

it("the core entry does not pull in the server (and with it Hono): that is openelm/server", () => {
  expect(readFileSync(join(ROOT, "src/index.ts"), "utf8")).not.toMatch(/\.\/server\//);
});

it("src/ outside src/node/ imports no Node built-ins and no Node globals", () => {
  const files = sources(join(ROOT, "src"));
  expect(files.length).toBeGreaterThan(10);
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    const imports = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gm)].map((m) => m[1]!);
    // the demo page imports the package by its name, as an app does; the server (openelm/server) is built on Hono
    const page = relative(ROOT, f).startsWith("src/web/demo/"), server = relative(ROOT, f).startsWith("src/server/");
    const allowed = (spec: string) => spec.startsWith(".") || spec.startsWith("@huggingface/") || (page && spec === "openelm") || (server && /^hono(\/|$)/.test(spec));
    for (const spec of imports) expect(allowed(spec), `${relative(ROOT, f)} imports ${spec}`).toBe(true);
    expect(/(?<![.\w])(process\.|Buffer[.(]|require\(|__dirname)/.test(text), `${relative(ROOT, f)} uses a Node global`).toBe(false);
  }
});
