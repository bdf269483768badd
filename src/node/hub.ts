// Models by hub id in Node, through the standard Hugging Face cache, laid out as Python's huggingface_hub
// lays it out (file_download.py), so that each reuses what the other downloaded:
//   {cache}/models--org--name/refs/{revision}          the commit hash the revision pointed to, no newline
//   {cache}/models--org--name/blobs/{etag}             a file's bytes; etag = LFS sha256, else git blob sha1
//   {cache}/models--org--name/snapshots/{commit}/{path} a relative link to ../../blobs/{etag} (a copy
//                                                       where links cannot be made)
// @huggingface/hub gives the cache folder (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub), the
// revision's commit (modelInfo) and the file listing with hashes (listFiles). Its downloadFileToCacheDir
// is not used: it names snapshots by each file's last commit rather than the revision's, writes no refs,
// and neither resumes, checks what it downloaded, nor reports progress. That part is here.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable, Transform } from "node:stream";
import { HubApiError, getHFHubCachePath, getRepoFolderName, listFiles, modelInfo } from "@huggingface/hub";
import { readIndex } from "../formats/safetensors.js";
import { COMMIT, HubError, chooseGGUF, checkTree, hubEndpoint, hubIdText, httpError, isGGUFId, parseHubId, hubResolveUrl, type HubId, type TreeEntry } from "../web/hub.js";

/** Byte progress of one file being downloaded into the cache. */
export interface HubDownloadProgress {
  file: string;
  loaded: number;
  total: number;
}

/** Where the cache and the hub are; each option defaults to the environment variable Python's huggingface_hub reads. */
export interface HubOptions {
  /** The cache folder (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** The hub or a mirror (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Access token for gated and private repositories (default: HF_TOKEN). */
  token?: string;
  /** Use the cache only, never the network (default: HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Byte progress of each file downloaded. */
  onDownload?: (p: HubDownloadProgress) => void;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
}

/** Files a model folder may have besides config.json and the weights; fetched when the repository has them. */
const OPTIONAL = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"];
const INDEX = "model.safetensors.index.json";
/** Attempts at one file while the connection keeps dropping, each resuming where the last stopped. */
const ATTEMPTS = 5;
/** A response that sends nothing for this long is given up (and resumed by the next attempt). */
const IDLE_MS = 30_000;

const truthy = (v: string | undefined) => /^(1|on|yes|true)$/i.test(v ?? "");

/** fetch itself failed (no connection, no answer in time): the hub cannot be reached, so the cache may answer. */
class Unreachable extends Error {}

function settings(opts: HubOptions) {
  return {
    cache: opts.cacheDir ?? getHFHubCachePath(),
    endpoint: hubEndpoint(opts.endpoint ?? (process.env["HF_ENDPOINT"] || undefined)),
    token: opts.token ?? (process.env["HF_TOKEN"] || undefined),
    offline: opts.offline ?? truthy(process.env["HF_HUB_OFFLINE"]),
    // API calls get a deadline; downloads bring their own signal (see fetchInto)
    fetch: ((input, init) => (opts.fetch ?? globalThis.fetch)(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(IDLE_MS) }).catch((e: Error) => {
      throw new Unreachable((e.cause as Error | undefined)?.message ?? e.message);
    })) as typeof fetch,
    onDownload: opts.onDownload,
  };
}
type Settings = ReturnType<typeof settings>;

/** The cache folder of a repository: {cache}/models--org--name. */
export function hubRepoFolder(repo: string, cacheDir = getHFHubCachePath()): string {
  return join(cacheDir, getRepoFolderName({ type: "model", name: repo }));
}

/**
 * The local path of a hub model: its snapshot folder in the cache, or for a GGUF id ("org/name:Q4_K_M") the
 * chosen .gguf file there. Missing files are downloaded (only those the model needs), resumed if a
 * download was interrupted, and checked against the hub's hashes. Offline, or when the hub cannot be
 * reached, the cache alone answers.
 */
export async function resolveHubModel(id: string, opts: HubOptions = {}): Promise<string> {
  const h = parseHubId(id), s = settings(opts), folder = hubRepoFolder(h.repo, s.cache);
  if (s.offline) return fromCache(h, folder, "HF_HUB_OFFLINE is set");
  // a commit's snapshot never changes: once complete in the cache, the hub need not be asked
  if (COMMIT.test(h.revision)) {
    const cached = await fromCache(h, folder, "").catch(() => undefined);
    if (cached) return cached;
  }
  let commit: string, files: Map<string, TreeEntry>;
  try {
    commit = COMMIT.test(h.revision) ? h.revision : await revisionCommit(h, s);
    files = await listing(h, commit, s);
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e; // as in Python, an unreachable hub leaves the cache to answer
    return fromCache(h, folder, `${s.endpoint} cannot be reached (${e.message})`);
  }
  const snapshot = join(folder, "snapshots", commit);
  const get = (path: string) => download(h, folder, commit, files.get(path)!, s);
  let result: string;
  if (isGGUFId(h) || (!files.has("config.json") && [...files.keys()].some((p) => p.toLowerCase().endsWith(".gguf")))) {
    const path = chooseGGUF(h, [...files.keys()]);
    await get(path);
    result = join(snapshot, path);
  } else {
    if (!files.has("config.json")) throw new HubError(`${hubIdText(h)} has no config.json: not a model folder (it has ${[...files.keys()].join(", ") || "no files"})`);
    for (const path of ["config.json", ...OPTIONAL]) if (files.has(path)) await get(path);
    for (const path of files.has("model.safetensors") ? ["model.safetensors"] : await shards(h, snapshot, files, get)) await get(path);
    result = snapshot;
  }
  if (h.revision !== commit) await writeRef(folder, h.revision, commit);
  return result;
}

/** The commit a branch or tag points to (GET /api/models/{repo}/revision/{revision}). */
async function revisionCommit(h: HubId, s: Settings): Promise<string> {
  const info = await hubCall(h, s, `looking up ${hubIdText(h)}`, () =>
    modelInfo({ name: h.repo, revision: h.revision, additionalFields: ["sha"], hubUrl: s.endpoint, accessToken: s.token, fetch: s.fetch }));
  if (typeof info.sha !== "string" || !COMMIT.test(info.sha)) throw new HubError(`${s.endpoint}: the revision ${h.revision} of ${h.repo} has no valid commit hash (${JSON.stringify(info.sha)})`);
  return info.sha;
}

/** The files of the repository at `commit`, checked: names inside the snapshot, etags that are hashes. */
async function listing(h: HubId, commit: string, s: Settings): Promise<Map<string, TreeEntry>> {
  const entries = await hubCall(h, s, `listing ${hubIdText(h)}`, () =>
    collect(listFiles({ repo: h.repo, revision: commit, recursive: true, hubUrl: s.endpoint, accessToken: s.token, fetch: s.fetch })));
  const where = `${s.endpoint}/api/models/${h.repo}/tree/${commit}`;
  const files = checkTree(entries, where).filter((e) => e.type === "file");
  for (const e of files) if (!/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(etag(e))) throw new HubError(`${where}: ${e.path} has the hash ${JSON.stringify(etag(e))}, neither a git nor an LFS hash: refused`);
  return new Map(files.map((e) => [e.path, e]));
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Python's blob name: the LFS sha256 for LFS files, else the git blob sha1. */
const etag = (e: TreeEntry) => String(e.lfs?.oid ?? e.oid);

/** Run a call of @huggingface/hub, its HTTP errors turned into ones that say what to do (set HF_TOKEN...). */
async function hubCall<T>(h: HubId, s: Settings, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof HubApiError) throw httpError(e.statusCode, what, h, s.endpoint, !!s.token);
    if (e instanceof TypeError && /must start with 'hf_'/.test(e.message)) throw new HubError(`HF_TOKEN is not a Hugging Face access token (they start with hf_)`);
    if (e instanceof Unreachable || e instanceof HubError) throw e;
    throw new HubError(`${what}: ${s.endpoint} answered what the hub does not (${(e as Error).message})`);
  }
}

/** The shards a sharded checkpoint's index names, after downloading the index. */
async function shards(h: HubId, snapshot: string, files: Map<string, TreeEntry>, get: (path: string) => Promise<void>): Promise<string[]> {
  if (!files.has(INDEX)) throw new HubError(`${hubIdText(h)} has neither model.safetensors nor ${INDEX}`);
  await get(INDEX);
  // the loader's own reader of the index: the same checks of every shard name
  const names = [...new Set(readIndex(await readFile(join(snapshot, INDEX), "utf8")).values())];
  for (const n of names) if (!files.has(n)) throw new HubError(`${hubIdText(h)}/${INDEX} names the shard ${n}, which the repository does not have`);
  return [INDEX, ...names];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Blobs being downloaded by this process: a second load of the same model waits for the first's download. */
const downloading = new Map<string, Promise<void>>();

/** Make snapshots/{commit}/{path} lead to blobs/{etag}: downloaded (or resumed) and checked if missing. */
async function download(h: HubId, folder: string, commit: string, entry: TreeEntry, s: Settings): Promise<void> {
  const pointer = join(folder, "snapshots", commit, entry.path), blob = join(folder, "blobs", etag(entry));
  if (await exists(pointer)) return;
  if (!downloading.has(blob)) downloading.set(blob, fetchBlob(h, blob, commit, entry, s).finally(() => downloading.delete(blob)));
  await downloading.get(blob);
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true }); // a dangling link left by a removed blob
  await symlink(relative(dirname(pointer), blob), pointer).catch(() => copyFile(blob, pointer));
}

/** blobs/{etag}, unless it is there: downloaded into {etag}.incomplete (resumed), checked, then renamed. */
async function fetchBlob(h: HubId, blob: string, commit: string, entry: TreeEntry, s: Settings): Promise<void> {
  const size = entry.lfs?.size ?? entry.size, url = hubResolveUrl({ ...h, revision: commit }, entry.path, s.endpoint);
  if ((await stat(blob).catch(() => undefined))?.size === size) return;
  await mkdir(dirname(blob), { recursive: true });
  for (let attempt = 1; ; attempt++) {
    try {
      await fetchInto(`${blob}.incomplete`, url, size, entry.path, h, s);
      break;
    } catch (e) {
      if (e instanceof HubError) throw e; // an answer that another attempt would not change
      if (attempt === ATTEMPTS) throw new HubError(`${entry.path} of ${hubIdText(h)}: ${(e as Error).message} (run again to resume the download)`);
    }
  }
  await verify(`${blob}.incomplete`, entry, h);
  await rename(`${blob}.incomplete`, blob);
}

/** Append to `partial` the bytes it lacks of the file at `url` (a Range request from its size). */
async function fetchInto(partial: string, url: string, size: number, file: string, h: HubId, s: Settings): Promise<void> {
  let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (have > size) await truncate(partial, (have = 0));
  const report = (loaded: number) => s.onDownload?.({ file, loaded, total: size });
  if (have === size) return report(size);
  // a server that stops answering, before or during the body, is given up after IDLE_MS of silence
  const idle = new AbortController();
  let timer = setTimeout(() => idle.abort(), IDLE_MS);
  const alive = () => (clearTimeout(timer), (timer = setTimeout(() => idle.abort(), IDLE_MS)));
  try {
    const headers: Record<string, string> = { ...(s.token ? { Authorization: `Bearer ${s.token}` } : {}), ...(have > 0 ? { Range: `bytes=${have}-` } : {}) };
    const r = await s.fetch(url, { headers, signal: idle.signal });
    if (r.status === 206) {
      const start = /^bytes (\d+)-/.exec(r.headers.get("content-range") ?? "")?.[1];
      if (Number(start) !== have) throw new HubError(`${url}: asked for bytes from ${have}, the server sent Content-Range ${r.headers.get("content-range")}`);
    } else if (r.status === 200) have = 0; // the server ignored Range: the body is the whole file
    else throw httpError(r.status, `downloading ${file} of ${hubIdText(h)}`, h, s.endpoint, !!s.token);
    if (!r.body) throw new HubError(`${url}: HTTP ${r.status} without a body`);
    let loaded = have;
    const count = new Transform({
      transform(chunk: Buffer, _, done) {
        alive();
        loaded += chunk.byteLength;
        if (loaded > size) return done(new HubError(`${url}: the server sent more than the ${size} bytes the hub lists`));
        report(loaded);
        done(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(r.body as never), count, createWriteStream(partial, { flags: have > 0 ? "a" : "w" }));
    if (loaded !== size) throw new Error(`the connection closed after ${loaded} of ${size} bytes`);
  } finally {
    clearTimeout(timer);
  }
}

/** Check a downloaded file against the hub's listing: size, and the LFS sha256 or the git blob sha1. */
async function verify(path: string, entry: TreeEntry, h: HubId): Promise<void> {
  const size = entry.lfs?.size ?? entry.size, want = etag(entry);
  const hash = want.length === 64 ? createHash("sha256") : createHash("sha1").update(`blob ${size}\0`);
  await pipeline(createReadStream(path), hash);
  const got = hash.digest("hex");
  if (got !== want) {
    await rm(path, { force: true });
    throw new HubError(`${entry.path} of ${hubIdText(h)}: the downloaded bytes hash to ${got}, the hub lists ${want}: corrupted in transit or on the server; the partial file was removed, run again`);
  }
}

/** refs/{revision} holds the commit, as Python writes it (no newline). */
async function writeRef(folder: string, revision: string, commit: string): Promise<void> {
  const ref = join(folder, "refs", revision);
  if ((await readFile(ref, "utf8").catch(() => ""))?.trim() === commit) return;
  await mkdir(dirname(ref), { recursive: true });
  await writeFile(ref, commit);
}

/** All files under `dir`, as paths relative to it with "/" between parts. */
async function filesUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true }).catch(() => []);
  const isFile = await Promise.all(names.map((n) => stat(join(dir, n)).then((st) => st.isFile(), () => false))); // links followed; dangling ones skipped
  return names.filter((_, i) => isFile[i]).map((n) => n.split(sep).join("/"));
}

/** The model from the cache alone: refs/{revision} gives the commit, the snapshot must hold what loading needs. */
async function fromCache(h: HubId, folder: string, why: string): Promise<string> {
  const missing = (what: string) => new HubError(`${why}, and the cache ${folder} lacks ${what} of ${hubIdText(h)}: download it once online`);
  const commit = COMMIT.test(h.revision) ? h.revision : (await readFile(join(folder, "refs", h.revision), "utf8").catch(() => undefined))?.trim();
  if (commit === undefined) throw missing(`refs/${h.revision} (the revision's commit)`);
  if (!COMMIT.test(commit)) throw new HubError(`${join(folder, "refs", h.revision)} holds ${JSON.stringify(commit.slice(0, 80))}, not a commit hash`);
  const snapshot = join(folder, "snapshots", commit), files = await filesUnder(snapshot);
  if (files.length === 0) throw missing(`the snapshot ${commit}`);
  if (isGGUFId(h) || (!files.includes("config.json") && files.some((p) => p.toLowerCase().endsWith(".gguf")))) return join(snapshot, chooseGGUF(h, files));
  const need = ["config.json"];
  if (!files.includes("model.safetensors")) {
    if (!files.includes(INDEX)) need.push("model.safetensors");
    else need.push(...new Set(readIndex(await readFile(join(snapshot, INDEX), "utf8")).values()));
  }
  const lacking = need.filter((f) => !files.includes(f));
  if (lacking.length) throw missing(lacking.join(", "));
  return snapshot;
}
