// The package in a bundled web app, as a user builds one: the app in test/bundlers/ imports "openelm" from
// the packed tarball installed in an empty project, and is served by the Vite dev server, built by Vite, or
// bundled by esbuild with the entry points the README gives; in Chromium, on two threads of a
// cross-origin isolated page, it opens the demo model by URL (openModel) and decodes the ids Node decodes.
// Without openelm's files beside an esbuild bundle, the page gets an error naming the missing file.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { basename, join } from "node:path";
import { type Browser } from "playwright-core";
import { launchChromium } from "./helpers/chromium.js";
import { build, createServer, preview } from "vite";
import { build as esbuild } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TextGenerator } from "../src/generation/stream.js";
import { loadModelFromFolder, loadTokenizerFromFolder } from "../src/node/index.js";
import { ORACLE, ROOT } from "./helpers/oracle.js";
import { installedProject } from "./bundlers/project.js";
import { serveStatic } from "./bundlers/serve.js";

interface AppResult {
  ids?: number[];
  kernels?: string;
  isolated?: boolean;
  error?: string;
}

const DEMO = join(ORACLE, "elm-tiny-32k");
let app = "", browser: Browser, expected: number[];

beforeAll(async () => {
  app = installedProject().dir;
  // the app's files, the model it fetches (public/ is what Vite serves and copies), and the bundlers as a user's dev dependencies
  for (const f of ["index.html", "main.js", "vite.config.js", "esbuild.mjs"]) cpSync(join(ROOT, "test/bundlers", f), join(app, f));
  mkdirSync(join(app, "public/model"), { recursive: true });
  for (const f of ["config.json", "model.safetensors"]) cpSync(join(DEMO, f), join(app, "public/model", f));
  for (const dep of ["vite", "esbuild"]) if (!existsSync(join(app, "node_modules", dep))) symlinkSync(join(ROOT, "node_modules", dep), join(app, "node_modules", dep));
  const model = await loadModelFromFolder(DEMO, { threads: 2 });
  expected = (await new TextGenerator(model, await loadTokenizerFromFolder(DEMO)).complete("Once upon a time", { maxNewTokens: 16, ignoreEos: true })).ids;
  await model.close();
  browser = await launchChromium();
}, 300_000);

afterAll(async () => {
  await browser?.close();
});

/** Open the app at `url` and wait for its result. */
async function runApp(url: string): Promise<AppResult> {
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await page.waitForFunction(() => (window as { result?: unknown }).result !== undefined, null, { timeout: 60_000 });
    return await page.evaluate(() => (window as unknown as { result: AppResult }).result);
  } finally {
    await page.close();
  }
}

const TWO_THREADS = { kernels: "wasm-relaxed-shared ×2 threads", isolated: true };
const viteConfig = () => ({ root: app, configFile: join(app, "vite.config.js"), logLevel: "silent" as const });

describe("bundlers", () => {
  it("Vite dev server: openelm's literal new URL paths survive dependency pre-bundling, with no optimizeDeps setting", async () => {
    const server = await createServer({ ...viteConfig(), server: { host: "127.0.0.1", port: 0 } });
    await server.listen();
    try {
      const r = await runApp(server.resolvedUrls!.local[0]!);
      expect(r).toMatchObject({ ...TWO_THREADS, ids: expected });
      expect(readFileSync(join(app, "node_modules/.vite/deps/openelm.js"), "utf8")).toContain('new URL("../../openelm/dist/kernels-relaxed-shared.wasm", import.meta.url)');
    } finally {
      await server.close();
    }
  });

  it("Vite production build, served by vite preview: the kernels and the worker are emitted as assets", async () => {
    rmSync(join(app, "dist"), { recursive: true, force: true });
    await build(viteConfig());
    const server = await preview({ ...viteConfig(), preview: { host: "127.0.0.1", port: 0 } });
    try {
      const r = await runApp(server.resolvedUrls!.local[0]!);
      expect(r).toMatchObject({ ...TWO_THREADS, ids: expected });
    } finally {
      await new Promise<void>((resolve, reject) => server.httpServer.close((e) => (e ? reject(e) : resolve())));
    }
  });

  it("esbuild with the README's entry points for the worker and the kernel builds", async () => {
    const out = join(app, "out");
    rmSync(out, { recursive: true, force: true });
    execFileSync(process.execPath, ["esbuild.mjs"], { cwd: app, stdio: "pipe" });
    cpSync(join(app, "index.html"), join(out, "index.html"));
    cpSync(join(app, "public/model"), join(out, "model"), { recursive: true });
    const server = await serveStatic(out);
    try {
      expect(await runApp(server.url)).toMatchObject({ ...TWO_THREADS, ids: expected });
    } finally {
      await server.close();
    }
    // the same bundle with the worker script missing: the page is told which file to serve
    const broken = await serveStatic(out, ["/kernels/web-worker.js"]);
    try {
      expect((await runApp(broken.url)).error).toMatch(/^worker thread 1 failed to start: its script kernels\/web-worker\.js could not be loaded: it must be served beside dist\/load\.js or the bundle that holds it \(README: "Bundlers"\)/);
    } finally {
      await broken.close();
    }
  });

  it("esbuild without them: an error naming the kernel file's URL, not WebAssembly's magic-word message", async () => {
    const out = join(app, "out-bare");
    await esbuild({ absWorkingDir: app, entryPoints: ["main.js"], bundle: true, format: "esm", outdir: out, logLevel: "silent" });
    for (const f of ["index.html", "node_modules/openelm/dist/tokenizer.json"]) cpSync(join(app, f), join(out, basename(f)));
    cpSync(join(app, "public/model"), join(out, "model"), { recursive: true });
    const server = await serveStatic(out);
    try {
      expect((await runApp(server.url)).error).toBe(`cannot fetch the kernels ${server.url}kernels-relaxed-shared.wasm: HTTP 404 (the kernel builds must be served beside dist/load.js or the bundle that holds it (README: "Bundlers"), or given as KernelOptions.wasm)`);
    } finally {
      await server.close();
    }
  });
});
