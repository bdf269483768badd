// The demo page as a user meets it: `openelm web` (the built CLI) serving the Vite-built page, driven in
// Debian's Chromium. Greedy chat gives Node's ids, Stop stops mid-stream, the look-inside views hold the
// model's real numbers, and a page without cross-origin isolation says so and runs on one thread.
// Screenshots go to test-results/demo/.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type Browser, type Page } from "playwright-core";
import { launchChromium } from "./helpers/chromium.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { argmax } from "../src/generation/sampler.js";
import { TextGenerator } from "../src/generation/stream.js";
import { folderFiles, loadModelFromFolder, loadTokenizerFromFolder } from "../src/node/index.js";
import { initAdapter } from "../src/train/lora.js";
import { encodeAdapter } from "../src/formats/peft.js";
import { webApp } from "../src/node/commands/web.js";
import { parseSettings } from "../src/web/demo/settings.js";
import { trace } from "../src/trace.js";
import { ORACLE, ROOT } from "./helpers/oracle.js";

const DEMO = join(ROOT, "ref/trained/elm-sotu"); // the model the page opens by default (DEMO_MODEL)
const TINY = join(ORACLE, "elm-tiny-32k"); // a reference checkpoint, for local folders and files
const SHOTS = join(ROOT, "test-results/demo");
const tmp = mkdtempSync(join(tmpdir(), "openelm-demo-"));
const SECRET = "not for the web";
const GGUF = join(tmp, "elm-tiny-32k.gguf");
let server: ChildProcess, browser: Browser, base = "";

beforeAll(async () => {
  expect(existsSync(join(ROOT, "dist/demo/index.html")), "the demo page is not built: run npm run build:web").toBe(true);
  mkdirSync(SHOTS, { recursive: true });
  // --model: the demo weights with a long context, so that a reply can run long enough to be stopped
  const long = join(tmp, "elm-tiny-long");
  mkdirSync(long);
  copyFileSync(join(TINY, "model.safetensors"), join(long, "model.safetensors"));
  writeFileSync(join(long, "config.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(TINY, "config.json"), "utf8")), max_context_length: 4096 }));
  const convert = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "convert", "--model", TINY, "--out", GGUF, "--type", "f32"], { encoding: "utf8" });
  expect(convert.status, convert.stderr).toBe(0);
  // a link out of the model folder, which must never be served
  writeFileSync(join(tmp, "outside.txt"), SECRET);
  symlinkSync(join(tmp, "outside.txt"), join(long, "secret.txt"));
  server = spawn(process.execPath, [join(ROOT, "dist/node/cli.js"), "web", "--port", "0", "--model", long], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  base = await new Promise<string>((ok, fail) => {
    server.stdout!.on("data", (d) => {
      out += d;
      const m = /openelm web: (http:\/\/\S+)/.exec(out);
      if (m) ok(m[1]!);
    });
    server.stderr!.on("data", (d) => (out += d));
    server.once("exit", (code) => fail(new Error(`openelm web exited with ${code}: ${out}`)));
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGINT"); // the way a user stops it: it must exit by itself
    await exited;
  }
  rmSync(tmp, { recursive: true, force: true });
});

/** The page (from `at`, default the CLI's server), with a model loaded: "models/demo/", "models/local/", or what a function picks. */
async function open(model: string | ((page: Page) => Promise<void>), isolated = true, at = base): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  if (!isolated) {
    // as a plain static server would: the page without COOP/COEP, and no model list (its fallback page instead)
    await page.route(base, async (route) => {
      const response = await route.fetch();
      const headers = Object.fromEntries(Object.entries(response.headers()).filter(([k]) => !k.startsWith("cross-origin-")));
      await route.fulfill({ response, headers });
    });
    await page.route(`${base}models.json`, (route) => route.fulfill({ contentType: "text/html", body: "<!doctype html><p>index</p>" }));
  }
  await page.goto(at);
  await (typeof model === "string" ? page.selectOption("#model-choice", model) : model(page));
  await page.click("#load");
  await page.waitForSelector("#model-status:is([data-state=loaded], [data-state=error])", { timeout: 30_000 });
  expect(errors).toEqual([]);
  expect(await page.getAttribute("#model-status", "data-state"), await page.textContent("#model-status") ?? "").toBe("loaded");
  return page;
}

async function settings(page: Page, s: { temperature: number; maxTokens: number; ignoreEos: boolean }) {
  await page.fill("#temperature", String(s.temperature));
  await page.fill("#max-tokens", String(s.maxTokens));
  await page.setChecked("#ignore-eos", s.ignoreEos);
}

/** Send the n-th message (from 1) and return the selector of its reply. */
async function chat(page: Page, text: string, n: number): Promise<string> {
  await page.fill("#prompt", text);
  await page.click("#send");
  return `#messages > :nth-child(${n} of .message.assistant)`;
}

/** Node's reply to the first message of a chat with the model at `path` (folder or .gguf), greedy, ignoring EOS. */
async function nodeReply(path: string, text: string, maxNewTokens: number, adapter?: string): Promise<{ ids: number[]; text: string }> {
  const model = await loadModelFromFolder(path, { threads: 1, ...(adapter ? { adapter: await folderFiles(adapter) } : {}) });
  const chat = new TextGenerator(model, await loadTokenizerFromFolder(path)).conversation(), reply = { ids: [] as number[], text: "" };
  for await (const chunk of chat.send(text, { temperature: 0, maxNewTokens, ignoreEos: true })) {
    reply.ids.push(...chunk.ids);
    reply.text += chunk.text;
  }
  await model.close();
  return reply;
}

/** Drop the served .gguf file on the page, as a file dragged from the desktop. */
async function drop(page: Page): Promise<void> {
  const dataTransfer = await page.evaluateHandle(async () => {
    const bytes = await (await fetch("models/local/elm-tiny-32k.gguf")).blob(), dt = new DataTransfer();
    dt.items.add(new File([bytes], "dropped.gguf"));
    return dt;
  });
  await page.dispatchEvent("#messages", "drop", { dataTransfer });
  await page.waitForSelector("#model-choice option[value=local]", { state: "attached" });
}

const idsOf = async (page: Page, reply: string) => ((await page.getAttribute(reply, "data-ids")) ?? "").split(",").filter(Boolean).map(Number);

describe("openelm web in Chromium", () => {
  it("chats greedily in the Instruct template with the ids Node gives, on threads", async () => {
    const page = await open("models/demo/");
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.isVisible("#isolation")).toBe(false);
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    expect(await page.textContent("#stat-kernels")).toBe(cores > 1 ? `wasm-relaxed-shared ×${cores} threads` : "wasm-relaxed");
    await settings(page, { temperature: 0, maxTokens: 24, ignoreEos: true });
    const reply = await chat(page, "What is a llama?", 1);
    await page.waitForSelector(`${reply}[data-finish]`, { timeout: 20_000 });
    const expected = await nodeReply(DEMO, "What is a llama?", 24);
    expect(await idsOf(page, reply)).toEqual(expected.ids);
    expect(await page.textContent(reply)).toBe(expected.text);
    expect(await page.getAttribute(reply, "data-finish")).toBe("length");
    expect(Number(await page.getAttribute("#stat-ttft", "data-ms"))).toBeGreaterThan(0);
    expect(await page.textContent("#stat-speed")).toMatch(/^[\d.]+ tokens\/s \(24 tokens\)$/);
    expect(await page.textContent("#stat-arena")).toMatch(/^[\d.]+ MiB$/);
    await page.screenshot({ path: join(SHOTS, "chat.png") });
    await page.close();
  }, 60_000);

  it("merges the adapter of openelm web --adapter into the model, as Node's --adapter does", async () => {
    // an adapter for the 32000-token tiny model, with B not zero so that it changes the replies
    const tiny = join(ORACLE, "elm-tiny-32k");
    const model = await loadModelFromFolder(tiny, { dtype: "f32", kernels: "typescript" }), adapter = join(tmp, "adapter");
    const lora = initAdapter(model, { rank: 4, alpha: 8, dropout: 0, targets: ["qkv_proj", "proj_2"] }, 9);
    await model.close();
    lora.pairs.forEach((p) => p.b.forEach((_, i) => (p.b[i] = 0.3 * Math.sin(7 * i + 1))));
    mkdirSync(adapter, { recursive: true });
    for (const [name, data] of Object.entries(encodeAdapter(lora))) writeFileSync(join(adapter, name), data);
    const app = serve({ fetch: (await webApp(tiny, adapter)).fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((r) => app.once("listening", r));
    try {
      const at = `http://127.0.0.1:${(app.address() as AddressInfo).port}/`;
      const page = await open(async (p) => {
        expect(await p.textContent("#model-choice option:checked")).toBe("--model elm-tiny-32k + adapter adapter");
      }, true, at);
      await settings(page, { temperature: 0, maxTokens: 8, ignoreEos: true });
      const reply = await chat(page, "What is a llama?", 1);
      await page.waitForSelector(`${reply}[data-finish]`, { timeout: 20_000 });
      const expected = await nodeReply(tiny, "What is a llama?", 8, adapter);
      expect(await idsOf(page, reply)).toEqual(expected.ids);
      expect(expected.ids).not.toEqual((await nodeReply(tiny, "What is a llama?", 8)).ids);
      await page.close();
    } finally {
      app.close();
    }
  }, 60_000);

  it("opens a local folder, a local .gguf file (picked or dropped), and a .gguf file given to --model", async () => {
    // the server of `openelm web --model FILE.gguf`, in this process
    const ggufServer = serve({ fetch: (await webApp(GGUF)).fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((r) => ggufServer.once("listening", r));
    const served = `http://127.0.0.1:${(ggufServer.address() as AddressInfo).port}/`;
    const picks: [string, (page: Page) => Promise<void>, string][] = [
      [TINY, (page) => page.setInputFiles("#folder-input", TINY), base],
      [GGUF, (page) => page.setInputFiles("#file-input", GGUF), base],
      [GGUF, (page) => page.selectOption("#model-choice", "models/local/elm-tiny-32k.gguf").then(() => {}), served],
      [GGUF, drop, served],
    ];
    for (const [path, pick, at] of picks) {
      const page = await open(pick, true, at);
      expect(await page.textContent("#model-choice option:checked")).toMatch(pick === drop ? /^Local: dropped.gguf$/ : at === base ? /^Local: / : /^--model elm-tiny-32k.gguf$/);
      await settings(page, { temperature: 0, maxTokens: 8, ignoreEos: true });
      const reply = await chat(page, "What is a llama?", 1);
      await page.waitForSelector(`${reply}[data-finish]`, { timeout: 20_000 });
      expect(await idsOf(page, reply), path).toEqual((await nodeReply(path, "What is a llama?", 8)).ids);
      await page.close();
    }
    await new Promise((r) => ggufServer.close(r));
  }, 60_000);

  it("Stop ends a long reply mid-stream, and the chat goes on", async () => {
    const page = await open("models/local/");
    await settings(page, { temperature: 0.8, maxTokens: 3000, ignoreEos: true });
    const reply = await chat(page, "Tell me a long story.", 1);
    await page.waitForFunction((sel) => (document.querySelector(sel)?.getAttribute("data-ids")?.split(",").length ?? 0) >= 5, ".message.assistant");
    expect(await page.isEnabled("#send")).toBe(false);
    await page.click("#stop");
    await page.waitForSelector(`${reply}[data-finish]`, { timeout: 10_000 });
    expect(await page.getAttribute(reply, "data-finish")).toBe("abort");
    const stopped = (await idsOf(page, reply)).length;
    expect(stopped).toBeGreaterThanOrEqual(5);
    expect(stopped).toBeLessThan(3000);
    // usable again: the next turn runs to its length
    await settings(page, { temperature: 0, maxTokens: 4, ignoreEos: true });
    const next = await chat(page, "Shorter, please.", 2);
    await page.waitForSelector(`${next}[data-finish]`, { timeout: 10_000 });
    expect(await page.getAttribute(next, "data-finish")).toBe("length");
    expect(await idsOf(page, next)).toHaveLength(4);
    await page.close();
  }, 60_000);

  it("looks inside: layer-wise scaling, an attention map the model's own attention agrees with, and a logit lens", async () => {
    const page = await open("models/demo/");
    const config = parseConfig(JSON.parse(readFileSync(join(DEMO, "config.json"), "utf8")));
    await page.click("#tab-inside");
    const bars = await page.$$eval("#layer-chart g.layer", (gs) => gs.map((g) => ({ q: Number(g.dataset.q), kv: Number(g.dataset.kv), ffn: Number(g.dataset.ffn) })));
    expect(bars).toEqual(config.numQueryHeads.map((q, l) => ({ q, kv: config.numKvHeads[l], ffn: config.ffnDims[l] })));

    const text = "The llama is a domesticated South American camelid.", layer = 1, head = 3;
    await page.selectOption("#layer", String(layer));
    await page.selectOption("#head", String(head));
    await page.fill("#inspect-text", text);
    await page.click("#inspect");
    await page.waitForSelector(`#attention[data-layer="${layer}"][data-head="${head}"]`, { timeout: 20_000 });
    const weights = JSON.parse((await page.getAttribute("#attention", "data-weights"))!) as number[][];

    const tokenizer = await loadTokenizerFromFolder(DEMO), ids = tokenizer.encode(text), T = ids.length;
    expect(weights).toHaveLength(T);
    weights.forEach((row, i) => {
      expect(row).toHaveLength(T);
      expect(row.slice(i + 1).every((w) => w === 0)).toBe(true); // causal
      expect(row.slice(0, i + 1).every((w) => w > 0 && w <= 1)).toBe(true);
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
    });
    // the weights applied to the values give the model's own attention output for that head
    const model = await loadModelFromFolder(DEMO, { threads: 1 });
    const taps = trace(model, ids, (n) => n === `layers.${layer}.v` || n === `layers.${layer}.attn`);
    const hd = config.headDim, nq = config.numQueryHeads[layer]!, nkv = config.numKvHeads[layer]!, kv = Math.floor(head / (nq / nkv));
    const v = taps[`layers.${layer}.v`]!.data, attn = taps[`layers.${layer}.attn`]!.data;
    let worst = 0, scale = 0;
    for (let i = 0; i < T; i++)
      for (let d = 0; d < hd; d++) {
        const mixed = weights[i]!.reduce((a, w, j) => a + w * v[(j * nkv + kv) * hd + d]!, 0), want = attn[i * nq * hd + head * hd + d]!;
        worst = Math.max(worst, Math.abs(mixed - want));
        scale = Math.max(scale, Math.abs(want));
      }
    expect(worst / scale).toBeLessThan(1e-4);

    // one lens row per layer; the last layer's best guess is the model's own next token
    const lens = await page.$$eval("#lens tbody tr", (rows) => rows.map((r) => ({ layer: Number(r.dataset.layer), ids: r.dataset.ids!.split(",").map(Number) })));
    expect(lens.map((r) => r.layer)).toEqual(config.numQueryHeads.map((_, l) => l));
    expect(lens.every((r) => r.ids.length === 5)).toBe(true);
    expect(lens.at(-1)!.ids[0]).toBe(argmax(model.forward(model.newCache(), ids)));
    await page.screenshot({ path: join(SHOTS, "inside.png"), fullPage: true });
    await page.close();
  }, 60_000);

  it("from a plain server: a notice, one thread, and a model by its URL", async () => {
    const byUrl = async (page: Page) => {
      expect(await page.$$eval("#model-choice option", (os) => os.map((o) => o.value))).toEqual(["url"]);
      await page.fill("#model-url", `${base}models/demo/`);
    };
    const page = await open(byUrl, false);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
    expect(await page.textContent("#isolation")).toMatch(/not cross-origin isolated .* runs on one thread/);
    expect(await page.textContent("#stat-kernels")).toBe("wasm-relaxed");
    expect([await page.inputValue("#threads"), await page.isDisabled("#threads")]).toEqual(["1", true]);
    // a setting out of range is named, and nothing is sent
    await page.fill("#top-p", "0");
    await page.fill("#prompt", "Hello");
    await page.click("#send");
    expect(await page.textContent(".message.error")).toBe('top-p: "0", but it must be a number above 0, at most 1');
    expect(await page.$$(".message.assistant")).toHaveLength(0);
    await page.fill("#top-p", "0.9");
    await settings(page, { temperature: 0, maxTokens: 4, ignoreEos: true });
    const reply = await chat(page, "Hello", 1);
    await page.waitForSelector(`${reply}[data-finish]`, { timeout: 20_000 });
    expect(await idsOf(page, reply)).toHaveLength(4);
    await page.screenshot({ path: join(SHOTS, "not-isolated.png") });
    await page.close();
  }, 60_000);
});

/** A GET of `path` exactly as written (no URL normalisation), with optional headers. */
function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((ok, fail) => {
    const req = request({ hostname, port, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on("error", fail);
    req.end();
  });
}

const ISOLATING = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cross-origin-resource-policy": "same-origin" };

describe("the page's sampling settings (fast-check)", () => {
  const keys = ["temperature", "topK", "topP", "maxNewTokens", "seed"] as const;
  const names = { temperature: "temperature", topK: "top-k", topP: "top-p", maxNewTokens: "max tokens", seed: "seed" };
  const valid = { temperature: (v: number) => v >= 0, topK: (v: number) => Number.isSafeInteger(v) && v >= 0, topP: (v: number) => v > 0 && v <= 1,
    maxNewTokens: (v: number) => Number.isSafeInteger(v) && v >= 1, seed: (v: number) => Number.isSafeInteger(v) && v >= 0 && v < 2 ** 32 };
  const field = fc.oneof(fc.string({ maxLength: 8 }), fc.double().map(String), fc.integer({ min: -5, max: 2 ** 33 }).map(String), fc.constantFrom("", " 1 ", "0.5", "1e3", "Infinity", "NaN", "0x10", "-0"));

  it("give finite values in range, or an error naming the first bad setting", () => {
    fc.assert(fc.property(fc.record({ temperature: field, topK: field, topP: field, maxNewTokens: field, seed: field }), fc.boolean(), (text, ignoreEos) => {
      const bad = keys.find((k) => text[k].trim() === "" || !Number.isFinite(Number(text[k])) || !valid[k](Number(text[k])));
      if (bad === undefined) expect(parseSettings(text, ignoreEos)).toEqual({ ...Object.fromEntries(keys.map((k) => [k, Number(text[k])])), ignoreEos });
      else expect(() => parseSettings(text, ignoreEos)).toThrow(new RegExp(`^${names[bad]}: `));
    }), { numRuns: 2000 });
  });
});

describe("openelm web serves", () => {
  const page = join(ROOT, "dist/demo"), long = join(tmp, "elm-tiny-long");
  /** Every file it may send: the page's, the demo model's and the --model folder's own. */
  const allowed = () => [
    ...readdirSync(page, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name)),
    ...readdirSync(DEMO).map((f) => join(DEMO, f)),
    join(long, "config.json"), join(long, "model.safetensors"),
  ].map((f) => readFileSync(f));

  it("the page, a model list and the models, every response with the isolation headers", async () => {
    for (const path of ["/", "/models.json", "/models/demo/config.json", "/models/local/config.json", "/no-such-file", "/models/demo/nothing"]) {
      const r = await get(path);
      expect(r.headers, path).toMatchObject(ISOLATING);
      expect(r.status, path).toBe(path.includes("no") ? 404 : 200);
    }
    expect(JSON.parse((await get("/models.json")).body.toString())).toEqual([
      { url: "models/demo/", label: "Demo model (elm-sotu)", default: false },
      { url: "models/local/", label: "--model elm-tiny-long", default: true },
    ]);
    expect((await get("/models/demo/model.safetensors")).body.equals(readFileSync(join(DEMO, "model.safetensors")))).toBe(true);
  });

  it("byte ranges of model files, as the web loaders ask for them (fast-check)", async () => {
    const file = readFileSync(join(long, "model.safetensors"));
    await fc.assert(fc.asyncProperty(fc.nat(file.length - 1), fc.nat(1 << 16), async (start, n) => {
      const end = Math.min(file.length - 1, start + n), r = await get("/models/local/model.safetensors", { range: `bytes=${start}-${end}` });
      expect(r.status).toBe(206);
      expect(r.headers["content-range"]).toBe(`bytes ${start}-${end}/${file.length}`);
      expect(r.body.equals(file.subarray(start, end + 1))).toBe(true);
    }), { numRuns: 60 });
  });

  it("nothing outside the served folders, whatever the path (fast-check)", async () => {
    const files = allowed();
    expect((await get("/models/local/secret.txt")).status).toBe(403); // the link out of the folder
    const segment = fc.oneof(
      fc.constantFrom("..", ".", "", "%2e%2e", "%2E%2E", "..%2f", "%2f", "..%5c", "%5c", "%00", "models", "demo", "local", "assets", "config.json", "model.safetensors", "secret.txt", "outside.txt", "etc", "passwd"),
      fc.string({ maxLength: 6 }).map(encodeURIComponent),
    );
    await fc.assert(fc.asyncProperty(fc.array(segment, { maxLength: 7 }), async (segments) => {
      const r = await get(`/${segments.join("/")}`);
      expect(r.headers).toMatchObject(ISOLATING);
      expect(r.body.includes(SECRET)).toBe(false);
      if (r.status === 200) expect(files.some((f) => f.equals(r.body)), segments.join("/")).toBe(true);
      else expect([400, 403, 404]).toContain(r.status);
    }), { numRuns: 300 });
  });

  it("options are checked, each error naming its option", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "web", ...args], { encoding: "utf8" });
    for (const [args, message] of [
      [["--port", "65536"], /--port: "65536" is not an integer from 0 to 65,535/],
      [["--port", "1.5"], /--port: "1.5" is not an integer/],
      [["--model", join(tmp, "missing")], /--model: model folder or file .*missing does not exist, and it is not a hub id either/],
      [["--model", tmp], /--model: .* has no config.json/],
      [["--model", join(tmp, "outside.txt")], /--model: .*outside.txt is neither a model folder nor a .gguf file/],
      [["--host", ""], /--host: empty/],
      [["--adapter", tmp], /--adapter: .* has no adapter_config.json/],
      [["--port", String(new URL(base).port)], /--port: \d+ is in use/],
    ] as const) {
      const r = run(...args);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.status).toBe(2);
    }
    const help = run("--help");
    expect([help.status, help.stdout]).toEqual([0, expect.stringMatching(/^openelm web \[--port P\] \[--host H\] \[--model DIR\|FILE.gguf\] \[--adapter DIR\]\n/)]);
  });
});
