// The web loaders in Debian's Chromium (playwright-core), against a real HTTP server with Range requests:
// a model from a URL gives Node's greedy ids, the second visit reads it from the OPFS cache with no
// download, an aborted download is not cached, a worker without createWritable caches through a sync access
// handle; a picked folder and directory handles load the same model; a file larger than 4 GiB reads right
// past 2^31 and 2^32 both by URL and as a File.
import { closeSync, ftruncateSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import { type Browser, type BrowserContext, type Page } from "playwright-core";
import { launchChromium } from "./helpers/chromium.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TextGenerator } from "../src/generation/stream.js";
import { kernelBuild, loadTokenizerFromFolder } from "../src/node/index.js";
import { ORACLE, ROOT, loadOracle, oracleCases } from "./helpers/oracle.js";
import { RangeServer, WELL } from "./browser/range-server.js";

const MODEL = "elm-tiny-32k", FOLDER = `/ref/oracle/${MODEL}`, SHARDED = "elm-tiny-bf16-sharded";
const BIG = join(tmpdir(), `openelm-big-${process.pid}.bin`), BIG_SIZE = 4.5 * 2 ** 30;
/** Known bytes at offsets around and past 2^31 and 2^32 of the sparse file (the rest reads as zeros). */
const MARKS = [2 ** 31 - 8, 2 ** 32 - 3, 2 ** 32 + 1234567, BIG_SIZE - 16];
const mark = (at: number) => Array.from({ length: 16 }, (_, i) => (at * 31 + i * 7) & 255);

/** Where the README's URL example (test/browser/readme-url.js) finds its model, relative to the page. */
const EXAMPLE_FOLDER = "/test/browser/models/OpenELM-270M-Instruct/";

const server = new RangeServer((path) => {
  if (path === "/big.bin") return { path: BIG };
  const file = path.startsWith(EXAMPLE_FOLDER) ? join(ORACLE, MODEL, normalize(path.slice(EXAMPLE_FOLDER.length))) : join(ROOT, normalize(path));
  return file.startsWith(ROOT) && statSync(file, { throwIfNoEntry: false })?.isFile() ? { path: file } : undefined;
});
let browser: Browser, context: BrowserContext, nodeIds: number[], shardedIds: number[];

/** The sharded model has a 1000-token vocabulary: it is prompted with the ids of its first oracle case. */
const SHARDED_PROMPT = oracleCases(SHARDED)[0]!.ids;

/** Greedy ids of an oracle model loaded from disk in Node (its folder has no tokenizer: the bundled one). */
async function greedyInNode(name: string, prompt: string | number[]): Promise<number[]> {
  const model = await loadOracle(name, { wasm: kernelBuild, threads: 1 });
  const r = await new TextGenerator(model, await loadTokenizerFromFolder(join(ORACLE, name))).complete(prompt, { maxNewTokens: 12, ignoreEos: true });
  await model.close();
  return r.ids;
}

beforeAll(async () => {
  const fd = openSync(BIG, "w");
  ftruncateSync(fd, BIG_SIZE); // sparse: takes no disk space but the marks
  for (const at of MARKS) writeSync(fd, new Uint8Array(mark(at)), 0, 16, at);
  closeSync(fd);
  await server.start();
  browser = await launchChromium();
  context = await browser.newContext();
  [nodeIds, shardedIds] = [await greedyInNode(MODEL, "Once upon a time"), await greedyInNode(SHARDED, SHARDED_PROMPT)];
}, 60_000);

afterAll(async () => {
  rmSync(BIG, { force: true });
  await browser?.close();
  await server.close();
});

async function page(): Promise<Page> {
  const p = await context.newPage();
  await p.goto(`${server.url}/test/browser/web-loaders.html`);
  await p.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return p;
}

type Run = { ids: number[]; progress: Record<string, { loaded: number; total: number; fromCache: boolean }> };
const call = <T>(p: Page, name: string, ...args: unknown[]) =>
  p.evaluate(([name, args]) => (window as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name as string]!(...(args as unknown[])), [name, args] as const) as Promise<T>;
const modelGets = () => server.log.filter((l) => l.method === "GET" && l.path.startsWith(FOLDER)).map((l) => l.path.slice(FOLDER.length + 1));
const size = (name: string) => statSync(join(ORACLE, MODEL, name)).size;

describe("web loaders in Chromium", () => {
  it("from a URL: Node's greedy ids; an aborted download is not cached; the second visit downloads nothing", async () => {
    const p = await page();
    server.set(WELL);
    const aborted = await call<{ name: string; message: string; cached: { url: string }[] }>(p, "abortAfter", `${server.url}${FOLDER}`, 1 << 20);
    expect(aborted.name).toBe("AbortError");
    expect(aborted.message).toBe(`${server.url}${FOLDER}/model.safetensors: aborted`);
    expect(aborted.cached.map((c) => c.url)).toEqual([`${server.url}${FOLDER}/config.json`]); // tokenizer.json: none in the folder (404)

    server.set(WELL);
    const first = await call<Run>(p, "fromUrl", `${server.url}${FOLDER}/`);
    expect(first.ids).toEqual(nodeIds);
    expect(first.progress).toEqual({
      "config.json": { file: "config.json", loaded: size("config.json"), total: size("config.json"), fromCache: true },
      "model.safetensors": { file: "model.safetensors", loaded: size("model.safetensors"), total: size("model.safetensors"), fromCache: false },
    });
    expect(modelGets()).toEqual(["model.safetensors"]); // downloaded once, whole, then read from OPFS

    server.set(WELL);
    const second = await call<Run>(await page(), "fromUrl", `${server.url}${FOLDER}/`);
    expect(second.ids).toEqual(nodeIds);
    expect(Object.values(second.progress).map((e) => e.fromCache)).toEqual([true, true]);
    expect(modelGets()).toEqual([]); // only HEAD requests, to compare validators
    expect(server.log.filter((l) => l.path.startsWith(FOLDER)).map((l) => l.method)).toEqual(["HEAD", "HEAD", "HEAD", "HEAD", "HEAD"]);

    expect(await call<number>(p, "clearCache")).toBe(2);
    expect(await call<unknown[]>(p, "listCache")).toEqual([]);
  });

  it("in a worker without createWritable, the cache writes through a sync access handle", async () => {
    const p = await page();
    server.set(WELL);
    const bytes = readFileSync(join(ORACLE, MODEL, "model.safetensors")); // more than one 4 MiB piece
    const checksum = bytes.reduce((h, b, i) => (h + b * ((i % 251) + 1)) >>> 0, 0);
    expect(await call(p, "cacheInWorker", `${server.url}${FOLDER}/model.safetensors`)).toEqual({
      visits: [{ fromCache: [false], checksum }, { fromCache: [true], checksum }],
      cleared: 1,
    });
    expect(modelGets()).toEqual(["model.safetensors"]);
  });

  it("from a picked folder (<input webkitdirectory>) and from directory handles, flat and with shards in a subfolder", async () => {
    const p = await page();
    await p.setInputFiles("#folder", join(ORACLE, MODEL));
    expect((await call<Run>(p, "fromPicked")).ids).toEqual(nodeIds);
    const flat = Object.fromEntries(readdirSync(join(ORACLE, MODEL)).map((n) => [n, { url: `${server.url}${FOLDER}/${n}` }]));
    expect((await call<Run>(p, "fromDirectoryHandle", flat)).ids).toEqual(nodeIds);
    // the sharded model with its shards moved to parts/, as its index now says
    const dir = join(ORACLE, SHARDED), index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    for (const t of Object.keys(index.weight_map)) index.weight_map[t] = `parts/${index.weight_map[t]}`;
    const nested: Record<string, object> = { "model.safetensors.index.json": { text: JSON.stringify(index) }, "config.json": { url: `${server.url}/ref/oracle/${SHARDED}/config.json` } };
    for (const shard of readdirSync(dir).filter((n) => n.endsWith(".safetensors"))) nested[`parts/${shard}`] = { url: `${server.url}/ref/oracle/${SHARDED}/${shard}` };
    expect((await call<Run>(p, "fromDirectoryHandle", nested, SHARDED_PROMPT)).ids).toEqual(shardedIds);
  });

  it("the README's examples: a model from a URL, streamed, and from a picked folder give Node's text", async () => {
    const model = await loadOracle(MODEL, { wasm: kernelBuild, threads: 1 });
    const { text } = await new TextGenerator(model, await loadTokenizerFromFolder(join(ORACLE, MODEL))).complete("Once upon a time", { maxNewTokens: 24 });
    await model.close();
    expect(text.length).toBeGreaterThan(20);
    const example = async (name: string) => {
      const p = await context.newPage();
      await p.goto(`${server.url}/test/browser/readme-examples.html?example=${name}`);
      await p.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
      return p;
    };
    expect(await (await example("url")).textContent("output")).toBe(text);
    const p = await example("folder");
    await p.setInputFiles("input[webkitdirectory]", join(ORACLE, MODEL));
    await p.waitForFunction(() => document.querySelector("output")!.textContent !== "");
    expect(await p.textContent("output")).toBe(text);
  });

  it("a file larger than 4 GiB reads right past 2^31 and 2^32, by URL with ranges and as a File", async () => {
    const p = await page();
    const want = { size: BIG_SIZE, bytes: MARKS.map(mark) };
    server.set(WELL);
    expect(await call(p, "readUrlAt", `${server.url}/big.bin`, MARKS, 16)).toEqual(want);
    expect(server.log.filter((l) => l.method === "GET").map((l) => l.range)).toEqual(MARKS.map((at) => `bytes=${at}-`));
    await p.setInputFiles("#one", BIG);
    expect(await call(p, "readFileAt", MARKS, 16)).toEqual(want);
  });
});
