// Models by their Hugging Face hub id ("org/name[@revision][:quant]") in any JS host: parsing an id, the
// hub's resolve URL of a model folder (which openModel reads with Range requests), and choosing a .gguf
// file of a repository by its quantization, as llama.cpp's `-hf org/name:Q4_K_M` does. The Node side
// (src/node/hub.ts) builds the standard cache on disk on top of these.
import { unsafeName } from "../files.js";
import { parseJson } from "../formats/json.js";

/** The public hub; `HF_ENDPOINT` (Node) or `HubUrlOptions.endpoint` names a mirror instead. */
export const HUB_ENDPOINT = "https://huggingface.co";

/** A hub id that is not one, a hub answer that cannot be used, or a model the hub or the cache does not have. */
export class HubError extends Error {
  override name = "HubError";
}

/** A parsed hub id: `repo` is "org/name", `revision` a branch, tag or commit hash ("main" when not given). */
export interface HubId {
  repo: string;
  revision: string;
  /** The quantization a .gguf file's name must contain (from ":Q4_K_M"), if given. */
  quant?: string;
}

// The hub's own rules for names (huggingface_hub's validate_repo_id): word characters, "-" and ".", at most
// 96, neither starting nor ending with "-" or ".", no "--" or "..". So a name never leaves the cache folder.
const NAME = /^(?![-.])(?!.*(--|\.\.))[\w.-]{1,96}(?<![-.])$/;
// Branch and tag names: such segments joined by "/" (refs/pr/1); they name files under refs/ in the cache.
const SEGMENT = /^(?!\.)(?!.*\.\.)[\w.-]{1,100}(?<!\.lock)$/;
const QUANT = /^[\w-]{1,32}$/;
/** A full commit hash, the only revision that names a snapshot folder by itself. */
export const COMMIT = /^[0-9a-f]{40}$/;

/** Parse "org/name[@revision][:quant]"; anything else gives a HubError saying what is wrong. */
export function parseHubId(id: string): HubId {
  // matches any string: the id up to "@" or ":", the revision up to ":", the quantization after it
  const [, repo = "", revision, quant] = /^([^@:]*)(?:@([^:]*))?(?::(.*))?$/s.exec(id)!;
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => NAME.test(p)))
    throw new HubError(`${JSON.stringify(id)} is not a hub id: org/name[@revision][:QUANT], org and name of letters, digits, "_", "-" and "." (at most 96, no "--" or "..")`);
  if (revision !== undefined && !revision.split("/").every((s) => SEGMENT.test(s)))
    throw new HubError(`${JSON.stringify(id)}: revision ${JSON.stringify(revision)} is not a branch, tag or commit hash (letters, digits, "_", "-", "." and "/" between parts)`);
  if (quant !== undefined && !QUANT.test(quant))
    throw new HubError(`${JSON.stringify(id)}: ${JSON.stringify(quant)} is not a quantization (letters, digits, "_" and "-", e.g. Q4_K_M)`);
  return { repo, revision: revision ?? "main", ...(quant !== undefined ? { quant } : {}) };
}

/** The id written back, for messages: "org/name@revision:quant" with the parts that were given. */
export const hubIdText = (h: HubId) => `${h.repo}${h.revision === "main" ? "" : `@${h.revision}`}${h.quant ? `:${h.quant}` : ""}`;

const isGGUF = (path: string) => path.toLowerCase().endsWith(".gguf");

/**
 * The .gguf file of a repository to load: the one whose name contains `id.quant` (case-insensitive), or
 * without a quantization the only .gguf file there is. Otherwise a HubError listing the files to choose from.
 */
export function chooseGGUF(id: HubId, paths: readonly string[]): string {
  const ggufs = paths.filter(isGGUF).sort();
  const have = ggufs.length ? `it has ${ggufs.join(", ")}` : "it has no .gguf files";
  if (id.quant === undefined) {
    if (ggufs.length === 1) return ggufs[0]!;
    throw new HubError(`${hubIdText(id)}: ${ggufs.length ? "several .gguf files; choose one by its quantization, e.g. :Q4_K_M" : "neither config.json nor a .gguf file"} (${have})`);
  }
  const q = id.quant.toLowerCase(), matches = ggufs.filter((p) => p.slice(p.lastIndexOf("/") + 1).toLowerCase().includes(q));
  if (matches.length === 1) return matches[0]!;
  throw new HubError(matches.length ? `${hubIdText(id)}: several .gguf files match ${id.quant} (${matches.join(", ")}); give more of the name` : `${hubIdText(id)}: no .gguf file matches ${id.quant} (${have})`);
}

/** Is this id a GGUF file of a repository (has a quantization) rather than a model folder? */
export const isGGUFId = (h: HubId) => h.quant !== undefined;

/** Where the hub is and how to ask it (browsers; Node reads HF_ENDPOINT and HF_TOKEN in src/node/hub.ts). */
export interface HubUrlOptions {
  /** The hub or a mirror (default https://huggingface.co). */
  endpoint?: string;
  /**
   * An access token for gated and private repositories, sent as "Authorization: Bearer" with the listing;
   * openModel's own requests need it too (give it a `fetch` that adds the header).
   */
  token?: string;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** `endpoint` without a trailing slash, checked to be an http(s) URL. */
export function hubEndpoint(endpoint = HUB_ENDPOINT): string {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) throw new HubError(`hub endpoint ${JSON.stringify(endpoint)} is not an http(s) URL`);
  return endpoint.replace(/\/+$/, "");
}

/** The URL of a file of a repository at a revision: `{endpoint}/{org}/{name}/resolve/{revision}/{path}`. */
export function hubResolveUrl(h: HubId, path: string, endpoint?: string): string {
  return `${hubEndpoint(endpoint)}/${h.repo}/resolve/${encodeURIComponent(h.revision)}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * The URL of a hub model folder, for `openModel`: `{endpoint}/{org}/{name}/resolve/{revision}/`. For a GGUF id
 * (":Q4_K_M") the file must be looked up first: use `hubFileUrl`.
 */
export function hubModelUrl(id: string, opts: { endpoint?: string } = {}): string {
  const h = parseHubId(id);
  if (isGGUFId(h)) throw new HubError(`${id} names a .gguf file by its quantization: its URL needs a look at the repository, use await hubFileUrl(id)`);
  return hubResolveUrl(h, "", opts.endpoint);
}

/** One entry of the hub's tree listing (GET /api/models/{repo}/tree/{revision}). */
export interface TreeEntry {
  type: string;
  path: string;
  size: number;
  /** The git blob hash (sha1). */
  oid?: string;
  /** For files stored with Git LFS (or Xet): the sha256 of the contents. */
  lfs?: { oid: string; size: number };
}

/** Entries of a tree listing as the hub sent them, checked: names inside the repository, sizes whole numbers. */
export function checkTree(json: unknown, where: string): TreeEntry[] {
  if (!Array.isArray(json)) throw new HubError(`${where}: the listing is not a JSON array`);
  return json.map((e: unknown) => {
    const entry = e as Partial<TreeEntry> | null;
    if (typeof entry !== "object" || entry === null || typeof entry.path !== "string" || typeof entry.type !== "string")
      throw new HubError(`${where}: a listing entry without a path and type`);
    const why = unsafeName(entry.path);
    if (why) throw new HubError(`${where}: the listing names ${JSON.stringify(entry.path)}, which ${why}: refused`);
    if (entry.type === "file" && !(Number.isSafeInteger(entry.size) && entry.size! >= 0)) throw new HubError(`${where}: ${entry.path} has no valid size`);
    return entry as TreeEntry;
  });
}

/** The hub's answer to a failed request, as an error that says what to do. */
export function httpError(status: number, what: string, h: HubId, endpoint: string, hasToken: boolean): HubError {
  if (status === 401 || status === 403)
    return new HubError(`${what}: HTTP ${status} from ${endpoint}: ${hubIdText(h)} is gated, private or does not exist; ${hasToken ? "check that your HF_TOKEN may read it" : "set HF_TOKEN to a token"} and accept the model's licence on its page`);
  if (status === 404) return new HubError(`${what}: HTTP 404: ${endpoint} has no ${hubIdText(h)} (or not this file or revision)`);
  return new HubError(`${what}: HTTP ${status} from ${endpoint}`);
}

/**
 * The URL `openModel` takes for any hub id: the folder's resolve URL, or for a GGUF id the chosen .gguf file's,
 * after listing the repository (GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true).
 */
export async function hubFileUrl(id: string, opts: HubUrlOptions = {}): Promise<string> {
  const h = parseHubId(id), endpoint = hubEndpoint(opts.endpoint);
  if (!isGGUFId(h)) return hubResolveUrl(h, "", endpoint);
  const paths: string[] = [];
  for (let url: string | undefined = `${endpoint}/api/models/${h.repo}/tree/${encodeURIComponent(h.revision)}?recursive=true`; url; ) {
    const r: Response = await (opts.fetch ?? globalThis.fetch)(url, { signal: opts.signal, headers: opts.token ? { Authorization: `Bearer ${opts.token}` } : {} });
    if (!r.ok) throw httpError(r.status, `listing ${hubIdText(h)}`, h, endpoint, !!opts.token);
    paths.push(...checkTree(parseJson(await r.text(), url), url).filter((e) => e.type === "file").map((e) => e.path));
    url = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get("link") ?? "")?.[1];
  }
  return hubResolveUrl(h, chooseGGUF(h, paths), endpoint);
}
