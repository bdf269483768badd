// Models by hub id, through a mock hub on 127.0.0.1 (test/helpers/mock-hub.ts) into temporary Hugging Face
// caches: the layout Python's huggingface_hub makes (refs, relative links into blobs/ named by etag), only
// the files a model needs, resumed and verified downloads, offline use, a cache made by hand as Python
// makes it, revisions, gated repos, GGUF files by quantization, the CLI, and openModel of a hub URL.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, sep } from "node:path";
import fc from "fast-check";
import { downloadFileToCacheDir, fileDownloadInfo } from "@huggingface/hub";
import { webApp } from "../src/node/commands/web.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readConfig } from "../src/load.js";
import { readCheckpoint } from "../src/formats/safetensors.js";
import { ggufFile } from "../src/formats/gguf-export.js";
import { TextGenerator } from "../src/generation/stream.js";
import { folderFiles, hubRepoFolder, kernelBuild, loadModelFromFolder, loadTokenizerFromFolder, readCheckpointAt, resolveHubModel, type HubDownloadProgress, type HubOptions } from "../src/node/index.js";
import { HubError, chooseGGUF, hubFileUrl, hubModelUrl, parseHubId } from "../src/web/hub.js";
import { openModel } from "../src/web/open.js";
import { MockHub, gitBlobSha, sha256 } from "./helpers/mock-hub.js";
import { ORACLE, ROOT } from "./helpers/oracle.js";

const node = { wasm: kernelBuild, threads: 1 };
const read = (dir: string, ...names: string[]) => Object.fromEntries(names.map((n) => [n, new Uint8Array(readFileSync(join(ORACLE, dir, n)))]));
const TINY = { ...read("elm-tiny-32k", "config.json", "model.safetensors", "cases.json", "logits-0.npy"), "tokenizer.json": new Uint8Array(readFileSync(join(ROOT, "dist/tokenizer.json"))), "README.md": new TextEncoder().encode("# OpenELM-tiny\n") };
const SHARDED = read("elm-tiny-bf16-sharded", "config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");
const WEIGHTS = TINY["model.safetensors"]!;
const PROMPT = "Once upon a time";

let hub: MockHub, scratch: string, reference: number[];
const cache = () => mkdtempSync(join(scratch, "cache-"));
/** Options that reach the mock hub only, whatever HF_* variables the environment has. */
const at = (cacheDir: string, more: HubOptions = {}): HubOptions => ({ cacheDir, endpoint: hub.url, token: "", offline: false, ...more });

async function gguf(type: "f32" | "f16"): Promise<Uint8Array> {
  const dir = await folderFiles(join(ORACLE, "elm-tiny-32k")), parts: Uint8Array[] = [];
  for await (const c of ggufFile(await readConfig(dir), await readCheckpoint(dir), { type, tokenizer: JSON.parse(readFileSync(join(ROOT, "dist/tokenizer.json"), "utf8")) })) parts.push(c);
  return new Uint8Array(Buffer.concat(parts));
}

async function greedyIds(path: string, hubOpts: HubOptions = {}): Promise<number[]> {
  const model = await loadModelFromFolder(path, { ...node, ...hubOpts });
  try {
    return (await new TextGenerator(model, await loadTokenizerFromFolder(path, hubOpts)).complete(PROMPT, { maxNewTokens: 8, ignoreEos: true })).ids;
  } finally {
    await model.close();
  }
}

/** A port nothing listens on: a hub that cannot be reached. */
async function deadEndpoint(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "openelm-hub-"));
  hub = await new MockHub({
    "apple/OpenELM-tiny": { revisions: { main: TINY, sharded: SHARDED } },
    "apple/OpenELM-gated": { revisions: { main: TINY }, gated: true },
    "test/OpenELM-tiny-GGUF": { revisions: { main: { "OpenELM-tiny-F32.gguf": await gguf("f32"), "OpenELM-tiny-F16.gguf": await gguf("f16"), "README.md": TINY["README.md"]! } } },
  }).start();
  reference = await greedyIds(join(ORACLE, "elm-tiny-32k"));
}, 60_000);
afterAll(async () => {
  await hub.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe("the Hugging Face cache", () => {
  it("downloads only what the model needs, laid out as huggingface_hub lays it out, and loads with the local folder's ids", async () => {
    const dir = cache(), commit = hub.commit("apple/OpenELM-tiny"), last = new Map<string, HubDownloadProgress>();
    const snapshot = await resolveHubModel("apple/OpenELM-tiny", at(dir, { onDownload: (p) => last.set(p.file, p) }));
    expect([...last.values()].sort((a, b) => a.file.localeCompare(b.file))).toEqual(["config.json", "model.safetensors", "tokenizer.json"].map((f) => ({ file: f, loaded: TINY[f]!.byteLength, total: TINY[f]!.byteLength })));
    const repo = join(dir, "models--apple--OpenELM-tiny");
    expect(snapshot).toBe(join(repo, "snapshots", commit));
    expect(readFileSync(join(repo, "refs", "main"), "utf8")).toBe(commit);
    expect(readdirSync(snapshot).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
      const bytes = TINY[f]!, etag = f.endsWith(".safetensors") ? sha256(bytes) : gitBlobSha(bytes);
      expect(lstatSync(join(snapshot, f)).isSymbolicLink(), f).toBe(true);
      expect(readlinkSync(join(snapshot, f)), f).toBe(`../../blobs/${etag}`);
      expect(createHash("sha256").update(readFileSync(join(snapshot, f))).digest("hex")).toBe(sha256(bytes));
    }
    expect(readdirSync(join(repo, "blobs")).sort()).toEqual([sha256(WEIGHTS), gitBlobSha(TINY["config.json"]!), gitBlobSha(TINY["tokenizer.json"]!)].sort());
    // loading by id: the same cache, nothing downloaded again (no request reaches a file)
    hub.log = [];
    expect(await greedyIds("apple/OpenELM-tiny", at(dir))).toEqual(reference);
    expect(hub.log.filter((r) => r.url.includes("/resolve/") || r.url.startsWith("/cdn/"))).toEqual([]);
  });

  it("a dropped connection resumes with a Range request; a partial file from an earlier run is resumed too", async () => {
    let dir = cache();
    hub.dropAfter(WEIGHTS, 100_000);
    hub.log = [];
    const snapshot = await resolveHubModel("apple/OpenELM-tiny", at(dir));
    const gets = hub.log.filter((r) => r.url === `/cdn/${sha256(WEIGHTS)}`);
    // the second request asks for the rest from what reached the disk (at most the 100,000 bytes sent)
    expect(gets.map((r) => r.range)).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    const from = Number(/\d+/.exec(gets[1]!.range!)![0]);
    expect(from > 0 && from <= 100_000, `resumed from ${from}`).toBe(true);
    expect(readFileSync(join(snapshot, "model.safetensors")).equals(WEIGHTS)).toBe(true);

    dir = cache();
    const blobs = join(hubRepoFolder("apple/OpenELM-tiny", dir), "blobs");
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha256(WEIGHTS)}.incomplete`), WEIGHTS.subarray(0, 5000));
    hub.log = [];
    expect(await greedyIds("apple/OpenELM-tiny", at(dir))).toEqual(reference);
    expect(hub.log.filter((r) => r.url.startsWith("/cdn/")).map((r) => r.range)).toEqual(["bytes=5000-"]);
    expect(readdirSync(blobs).filter((f) => f.endsWith(".incomplete"))).toEqual([]);
  });

  it("loads of one model at once in one process share its downloads", async () => {
    const dir = cache();
    hub.log = [];
    const [a, b] = await Promise.all([resolveHubModel("apple/OpenELM-tiny", at(dir)), resolveHubModel("apple/OpenELM-tiny", at(dir))]);
    expect(a).toBe(b);
    expect(hub.log.filter((r) => r.url.startsWith("/cdn/"))).toHaveLength(1);
    expect(readFileSync(join(a, "model.safetensors")).equals(WEIGHTS)).toBe(true);
  });

  it("bytes that do not hash to the listed sha256 are refused and removed, whether served so or left corrupted on disk", async () => {
    const dir = cache(), repo = hubRepoFolder("apple/OpenELM-tiny", dir), blob = join(repo, "blobs", sha256(WEIGHTS));
    hub.corruptFile(WEIGHTS);
    try {
      await expect(resolveHubModel("apple/OpenELM-tiny", at(dir))).rejects.toThrow(`model.safetensors of apple/OpenELM-tiny: the downloaded bytes hash to`);
    } finally {
      hub.corruptFile(WEIGHTS, false);
    }
    expect([existsSync(blob), existsSync(`${blob}.incomplete`), existsSync(join(repo, "snapshots", hub.commit("apple/OpenELM-tiny"), "model.safetensors"))]).toEqual([false, false, false]);
    const bad = WEIGHTS.slice(0, 5000);
    bad[10] ^= 1;
    writeFileSync(`${blob}.incomplete`, bad);
    await expect(resolveHubModel("apple/OpenELM-tiny", at(dir))).rejects.toThrow(`the hub lists ${sha256(WEIGHTS)}`);
    expect(existsSync(`${blob}.incomplete`)).toBe(false);
    await resolveHubModel("apple/OpenELM-tiny", at(dir)); // the next run starts afresh
    expect(readFileSync(blob).equals(WEIGHTS)).toBe(true);
  });

  it("offline (HF_HUB_OFFLINE=1) no request reaches the hub; an unreachable hub falls back to the cache; neither invents a missing model", async () => {
    const dir = cache(), snapshot = await resolveHubModel("apple/OpenELM-tiny", at(dir));
    hub.log = [];
    process.env["HF_HUB_OFFLINE"] = "1";
    try {
      expect(await resolveHubModel("apple/OpenELM-tiny", { cacheDir: dir, endpoint: hub.url })).toBe(snapshot);
      await expect(resolveHubModel("apple/OpenELM-gated", { cacheDir: dir, endpoint: hub.url }))
        .rejects.toThrow(`HF_HUB_OFFLINE is set, and the cache ${join(dir, "models--apple--OpenELM-gated")} lacks refs/main (the revision's commit) of apple/OpenELM-gated: download it once online`);
    } finally {
      delete process.env["HF_HUB_OFFLINE"];
    }
    expect(hub.log).toEqual([]);
    const dead = await deadEndpoint();
    expect(await greedyIds("apple/OpenELM-tiny", at(dir, { endpoint: dead }))).toEqual(reference);
    await expect(resolveHubModel("apple/OpenELM-tiny@sharded", at(dir, { endpoint: dead }))).rejects.toThrow(`${dead} cannot be reached`);
    // a snapshot that lost a file (its blob removed) is not taken for complete
    rmSync(join(dir, "models--apple--OpenELM-tiny", "blobs", sha256(WEIGHTS)));
    await expect(resolveHubModel("apple/OpenELM-tiny", at(dir, { offline: true }))).rejects.toThrow("lacks model.safetensors of apple/OpenELM-tiny");
  });

  it("a cache laid out by hand as huggingface_hub lays it out (refs, links into blobs/) loads with no hub, by branch and by commit", async () => {
    const dir = cache(), repo = join(dir, "models--someone--OpenELM-hand"), commit = "0123456789abcdef0123456789abcdef01234567";
    mkdirSync(join(repo, "blobs"), { recursive: true });
    mkdirSync(join(repo, "snapshots", commit), { recursive: true });
    mkdirSync(join(repo, "refs"));
    writeFileSync(join(repo, "refs", "main"), commit);
    for (const f of ["config.json", "model.safetensors"]) {
      const etag = f.endsWith(".safetensors") ? sha256(TINY[f]!) : gitBlobSha(TINY[f]!);
      writeFileSync(join(repo, "blobs", etag), TINY[f]!);
      symlinkSync(`../../blobs/${etag}`, join(repo, "snapshots", commit, f));
    }
    const dead = { ...at(dir), endpoint: await deadEndpoint() };
    expect(await greedyIds("someone/OpenELM-hand", dead)).toEqual(reference);
    hub.log = [];
    expect(await resolveHubModel(`someone/OpenELM-hand@${commit}`, at(dir))).toBe(join(repo, "snapshots", commit)); // complete: the hub is not asked
    expect(hub.log).toEqual([]);
  });

  it("@revision: a branch gets its refs file and its own snapshot (a sharded checkpoint); a commit hash gets no refs file", async () => {
    const dir = cache(), repo = hubRepoFolder("apple/OpenELM-tiny", dir), sharded = hub.commit("apple/OpenELM-tiny", "sharded");
    hub.pageSize = 2; // @huggingface/hub's listFiles follows the Link headers of a listing in pages
    const snapshot = await resolveHubModel("apple/OpenELM-tiny@sharded", at(dir)).finally(() => (hub.pageSize = 1000));
    expect(snapshot).toBe(join(repo, "snapshots", sharded));
    expect(readFileSync(join(repo, "refs", "sharded"), "utf8")).toBe(sharded);
    expect(readdirSync(snapshot).sort()).toEqual(Object.keys(SHARDED).sort());
    expect(readFileSync(join(snapshot, "model-00002-of-00002.safetensors")).equals(SHARDED["model-00002-of-00002.safetensors"]!)).toBe(true);
    const main = hub.commit("apple/OpenELM-tiny");
    expect(await resolveHubModel(`apple/OpenELM-tiny@${main}`, at(dir))).toBe(join(repo, "snapshots", main));
    expect(readdirSync(join(repo, "refs"))).toEqual(["sharded"]);
    await expect(resolveHubModel("apple/OpenELM-tiny@nope", at(dir))).rejects.toThrow(`${hub.url} has no apple/OpenELM-tiny@nope`);
    await expect(resolveHubModel("apple/OpenELM-absent", at(dir))).rejects.toThrow("HTTP 404");
  });

  it("a gated repo needs HF_TOKEN: without it, or with a token it does not accept, the error says what to do", async () => {
    const dir = cache();
    await expect(resolveHubModel("apple/OpenELM-gated", at(dir))).rejects.toThrow("HTTP 401 from " + hub.url + ": apple/OpenELM-gated is gated, private or does not exist; set HF_TOKEN to a token and accept the model's licence on its page");
    await expect(resolveHubModel("apple/OpenELM-gated", at(dir, { token: "hf_other" }))).rejects.toThrow("HTTP 403");
    await expect(resolveHubModel("apple/OpenELM-gated", at(dir, { token: "not-a-token" }))).rejects.toThrow("HF_TOKEN is not a Hugging Face access token");
    await expect(resolveHubModel("apple/OpenELM-gated", at(dir, { endpoint: "ftp://mirror.example" }))).rejects.toThrow('hub endpoint "ftp://mirror.example" is not an http(s) URL');
    hub.log = [];
    process.env["HF_TOKEN"] = "hf_good";
    try {
      const snapshot = await resolveHubModel("apple/OpenELM-gated", { cacheDir: dir, endpoint: hub.url, offline: false });
      expect(readdirSync(snapshot)).toContain("model.safetensors");
    } finally {
      delete process.env["HF_TOKEN"];
    }
    const files = hub.log.filter((r) => r.url.includes("/resolve/"));
    expect(files.length).toBe(3);
    expect(files.every((r) => r.authorization === "Bearer hf_good")).toBe(true);
  });

  it("GGUF repositories: :QUANT picks the one .gguf file it names, and only that file is downloaded; no or several matches list the files", async () => {
    const dir = cache(), id = "test/OpenELM-tiny-GGUF";
    const file = await resolveHubModel(`${id}:f32`, at(dir));
    expect(file).toBe(join(hubRepoFolder(id, dir), "snapshots", hub.commit(id), "OpenELM-tiny-F32.gguf"));
    expect(readdirSync(join(hubRepoFolder(id, dir), "snapshots", hub.commit(id)))).toEqual(["OpenELM-tiny-F32.gguf"]);
    expect(await greedyIds(`${id}:F32`, at(dir))).toEqual(reference);
    const local = await readCheckpoint(await folderFiles(join(ORACLE, "elm-tiny-32k"))); // openelm convert's reader, by id
    expect([...(await readCheckpointAt(`${id}:F32`, at(dir))).tensors.keys()].sort()).toEqual([...local.keys()].sort());
    await expect(resolveHubModel(`${id}:Q4_K_M`, at(dir))).rejects.toThrow(`${id}:Q4_K_M: no .gguf file matches Q4_K_M (it has OpenELM-tiny-F16.gguf, OpenELM-tiny-F32.gguf)`);
    await expect(resolveHubModel(`${id}:F`, at(dir))).rejects.toThrow("several .gguf files match F (OpenELM-tiny-F16.gguf, OpenELM-tiny-F32.gguf)");
    await expect(resolveHubModel(id, at(dir))).rejects.toThrow("several .gguf files; choose one by its quantization, e.g. :Q4_K_M");
    // offline, the cached file is chosen among the snapshot's files
    expect(await resolveHubModel(`${id}:F32`, at(dir, { offline: true }))).toBe(file);
    await expect(resolveHubModel(`${id}:F16`, at(dir, { offline: true }))).rejects.toThrow("no .gguf file matches F16 (it has OpenELM-tiny-F32.gguf)");
  });

  it("a local path always wins over a hub id; a name that is neither says both were tried", async () => {
    const dir = cache(), local = join(scratch, "apple", "OpenELM-tiny");
    mkdirSync(local, { recursive: true });
    for (const f of ["config.json", "model.safetensors"]) writeFileSync(join(local, f), TINY[f]!);
    const cwd = process.cwd();
    process.chdir(scratch);
    try {
      hub.log = [];
      expect(await greedyIds("apple/OpenELM-tiny", at(dir))).toEqual(reference);
      expect(hub.log).toEqual([]);
      await expect(loadModelFromFolder("apple/OpenELM-nothing", { ...node, ...at(dir) })).rejects.toThrow("apple/OpenELM-nothing is no local file or folder; as a hub id: looking up apple/OpenELM-nothing: HTTP 404");
      await expect(loadModelFromFolder("no/such/folder", { ...node, ...at(dir) })).rejects.toThrow('model folder or file no/such/folder does not exist, and it is not a hub id either ("no/such/folder" is not a hub id');
    } finally {
      process.chdir(cwd);
    }
  });

  it("openelm generate --model org/name downloads through HF_ENDPOINT into HF_HUB_CACHE, and prints the local folder's text", async () => {
    const dir = cache(), cli = join(ROOT, "dist/node/cli.js");
    const run = (model: string, env: Record<string, string>) => new Promise<{ code: number | null; out: string; err: string }>((done) => {
      const p = spawn(process.execPath, [cli, "generate", "--model", model, "-p", PROMPT, "-n", "8", "--ignore-eos", "-t", "1"], { env: { ...process.env, HF_HUB_OFFLINE: "", HF_TOKEN: "", ...env } });
      let out = "", err = "";
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (err += d));
      p.on("close", (code) => done({ code, out, err }));
    });
    const [fromHub, local] = await Promise.all([run("apple/OpenELM-tiny", { HF_ENDPOINT: hub.url, HF_HUB_CACHE: dir }), run(join(ORACLE, "elm-tiny-32k"), {})]);
    expect(fromHub.err).not.toMatch(/error/i);
    expect([fromHub.code, fromHub.out]).toEqual([0, local.out]);
    expect(existsSync(join(dir, "models--apple--OpenELM-tiny", "refs", "main"))).toBe(true);
    const offline = await run("apple/OpenELM-absent", { HF_ENDPOINT: hub.url, HF_HUB_CACHE: dir, HF_HUB_OFFLINE: "1" });
    expect(offline.code).not.toBe(0);
    expect(offline.err).toContain("apple/OpenELM-absent is no local file or folder; as a hub id: HF_HUB_OFFLINE is set, and the cache");
  });
});

describe("openelm web --model org/name", () => {
  it("serves the hub model's snapshot to the page, labelled by its id", async () => {
    // a hub of its own, whose connections end with it: the keep-alive sockets of this process's fetch stay the shared hub's
    const own = await new MockHub({ "apple/OpenELM-tiny": { revisions: { main: TINY } } }).start();
    const env = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
    Object.assign(process.env, { HF_ENDPOINT: own.url, HF_HUB_CACHE: cache(), HF_HUB_OFFLINE: "" });
    try {
      const app = await webApp("apple/OpenELM-tiny");
      expect(await (await app.request("/models.json")).json()).toContainEqual({ url: "models/local/", label: "--model OpenELM-tiny", default: true });
      expect(new Uint8Array(await (await app.request("/models/local/model.safetensors")).arrayBuffer())).toEqual(WEIGHTS);
    } finally {
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
      await own.close();
    }
  });
});

describe("the mock hub", () => {
  it("answers @huggingface/hub's own download into a cache (paths-info, resolve with Range bytes=0-0, the redirect to the CDN)", async () => {
    const dir = cache();
    const pointer = await downloadFileToCacheDir({ repo: "apple/OpenELM-tiny", path: "model.safetensors", hubUrl: hub.url, cacheDir: dir });
    expect(readFileSync(pointer).equals(WEIGHTS)).toBe(true);
    expect(readlinkSync(pointer)).toBe(`../../blobs/${sha256(WEIGHTS)}`);
    const info = await fileDownloadInfo({ repo: "apple/OpenELM-tiny", path: "config.json", hubUrl: hub.url });
    expect([info?.etag, info?.size]).toEqual([`"${gitBlobSha(TINY["config.json"]!)}"`, TINY["config.json"]!.byteLength]);
    expect(await fileDownloadInfo({ repo: "apple/OpenELM-tiny", path: "nope.json", hubUrl: hub.url })).toBe(null);
    // Python's huggingface_hub reads the file's metadata from a HEAD that does not follow the redirect
    const head = await fetch(`${hub.url}/apple/OpenELM-tiny/resolve/main/model.safetensors`, { method: "HEAD", redirect: "manual" });
    expect([head.status, head.headers.get("x-repo-commit"), head.headers.get("x-linked-etag"), head.headers.get("x-linked-size"), head.headers.get("location")])
      .toEqual([302, hub.commit("apple/OpenELM-tiny"), `"${sha256(WEIGHTS)}"`, String(WEIGHTS.byteLength), `${hub.url}/cdn/${sha256(WEIGHTS)}`]);
  });
});

describe("in a browser (openModel of a hub URL), run in Node against the mock hub", () => {
  it("hubModelUrl gives the folder's resolve URL and hubFileUrl a GGUF file's; both load and generate the local folder's ids", async () => {
    expect(hubModelUrl("apple/OpenELM-tiny")).toBe("https://huggingface.co/apple/OpenELM-tiny/resolve/main/");
    expect(hubModelUrl("apple/OpenELM-tiny@refs/pr/1", { endpoint: "https://mirror.example/" })).toBe("https://mirror.example/apple/OpenELM-tiny/resolve/refs%2Fpr%2F1/");
    expect(() => hubModelUrl("test/OpenELM-tiny-GGUF:F32")).toThrow("use await hubFileUrl(id)");
    hub.pageSize = 1; // the listing comes in pages joined by Link headers
    const ggufUrl = await hubFileUrl("test/OpenELM-tiny-GGUF:F32", { endpoint: hub.url });
    hub.pageSize = 1000;
    expect(ggufUrl).toBe(`${hub.url}/test/OpenELM-tiny-GGUF/resolve/main/OpenELM-tiny-F32.gguf`);
    await expect(hubFileUrl("apple/OpenELM-gated:Q8_0", { endpoint: hub.url })).rejects.toThrow("no .gguf file matches Q8_0 (it has no .gguf files)");
    for (const url of [hubModelUrl("apple/OpenELM-tiny", { endpoint: hub.url }), ggufUrl]) {
      const { model, tokenizer } = await openModel(url, { ...node, cache: false });
      expect((await new TextGenerator(model, tokenizer).complete(PROMPT, { maxNewTokens: 8, ignoreEos: true })).ids, url).toEqual(reference);
      await model.close();
    }
  });
});

describe("what comes from outside (fast-check)", () => {
  it("any string is a parsed id whose cache paths stay inside the cache, or a HubError", () => {
    const root = resolve("/cache");
    const piece = fc.constantFrom("a", "Z", "0", "_", "-", ".", "..", "/", "@", ":", "--", "\\", "~", " ", "\0", "é", "refs", "main", "Q4_K_M");
    const id = fc.oneof(fc.string(), fc.array(piece, { maxLength: 12 }).map((p) => p.join("")), fc.tuple(fc.array(piece, { maxLength: 4 }), fc.array(piece, { maxLength: 4 }), fc.array(piece, { maxLength: 5 })).map(([o, n, r]) => `${o.join("") || "o"}/${n.join("") || "n"}@${r.join("")}`));
    fc.assert(fc.property(id, (s) => {
      let h;
      try {
        h = parseHubId(s);
      } catch (e) {
        expect(e).toBeInstanceOf(HubError);
        expect((e as Error).message).toContain(JSON.stringify(s).slice(0, 20));
        return;
      }
      const folder = hubRepoFolder(h.repo, root);
      expect(folder.startsWith(root + sep) && !folder.slice(root.length + 1).includes(sep)).toBe(true);
      expect(resolve(folder, "refs", h.revision).startsWith(join(folder, "refs") + sep)).toBe(true);
      expect(h.repo.split("/")).toHaveLength(2);
    }), { numRuns: 3000 });
    expect(parseHubId("apple/OpenELM-270M-Instruct@v1.0:q8_0")).toEqual({ repo: "apple/OpenELM-270M-Instruct", revision: "v1.0", quant: "q8_0" });
    expect(parseHubId("apple/OpenELM-270M")).toEqual({ repo: "apple/OpenELM-270M", revision: "main" });
  });

  it("chooseGGUF returns one of the listed .gguf files containing the quantization, or a HubError listing them", () => {
    fc.assert(fc.property(fc.array(fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}(\.gguf)?$/), { maxLength: 6 }), fc.option(fc.stringMatching(/^[\w-]{1,6}$/), { nil: undefined }), (paths, quant) => {
      try {
        const f = chooseGGUF({ repo: "o/n", revision: "main", quant }, paths);
        expect(paths).toContain(f);
        expect(f.toLowerCase()).toMatch(/\.gguf$/);
        if (quant) expect(f.toLowerCase()).toContain(quant.toLowerCase());
      } catch (e) {
        expect(e).toBeInstanceOf(HubError);
      }
    }), { numRuns: 500 });
  });

  it("a listing whose names leave the snapshot folder, or whose hashes are not hashes, is refused before anything is written", async () => {
    const dir = cache(), good = { type: "file", path: "config.json", size: TINY["config.json"]!.byteLength, oid: gitBlobSha(TINY["config.json"]!) };
    const badPath = fc.constantFrom("../evil", "/etc/passwd", "a/../../evil", "C:\\evil", "a\\..\\evil", "", "a//b", "./x", "x\0y");
    const badHash = fc.oneof(fc.constantFrom("../../etc/x", "abc/def", "", "g".repeat(40)), fc.string(), fc.stringMatching(/^[0-9a-f]{1,39}$/));
    const listing = fc.oneof(
      badPath.map((path) => [good, { ...good, path }]),
      badHash.map((oid) => [{ ...good, oid }]),
      badHash.map((oid) => [good, { type: "file", path: "model.safetensors", size: 1, oid: good.oid, lfs: { oid, size: 1 } }]),
      fc.constantFrom({ not: "an array" }, [null], [{ type: "file", path: "x" }], [{ type: "file", path: "x", size: -1, oid: good.oid }]),
    );
    await fc.assert(fc.asyncProperty(listing, async (json) => {
      hub.setTree("apple/OpenELM-tiny", json);
      try {
        await expect(resolveHubModel("apple/OpenELM-tiny", at(dir))).rejects.toThrow(HubError);
      } finally {
        hub.setTree("apple/OpenELM-tiny", undefined);
      }
      expect(existsSync(join(dir, "models--apple--OpenELM-tiny"))).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    }), { numRuns: 60 });
    expect(existsSync(join(scratch, "evil"))).toBe(false);
  });
});
