// A mock Hugging Face hub on 127.0.0.1, answering what @huggingface/hub (modelInfo, listFiles, pathsInfo,
// fileDownloadInfo) and Python's huggingface_hub (file_download.py: HEAD resolve, then GET with Range to
// resume) ask, as the hub answers it:
// - GET  /api/models/{org}/{name}/revision/{rev}   model info with "sha", the revision's commit
// - GET  /api/models/{org}/{name}/tree/{rev}        file entries {type, path, size, oid, lfs?}; paginated by a
//                                                     Link rel="next" header when `pageSize` is set
// - POST /api/models/{org}/{name}/paths-info/{rev}  the entries of the paths asked for
// - HEAD/GET /{org}/{name}/resolve/{rev}/{path}     X-Repo-Commit and ETag (the git blob sha1); LFS files
//   (*.safetensors, *.gguf, *.npy) answer 302 to {url}/cdn/{sha256} with X-Linked-Etag and X-Linked-Size, and
//   the CDN path serves the bytes with Range (206, Content-Range), as the hub's storage does
// - 404 with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound; a gated repo's info and tree are
//   public but its files answer 401 without a token and 403 with one it does not accept, as on the hub.
// Faults to order: a connection dropped after N bytes of a file, a file served with a byte flipped, a
// listing replaced by any JSON. Every request is logged.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/** A repository: branches (and tags) by name, each with its files; `gated` repos want a token from `tokens`. */
export interface MockRepo {
  revisions: Record<string, Record<string, Uint8Array>>;
  gated?: boolean;
}

export interface HubRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

interface Commit {
  sha: string;
  files: Map<string, Uint8Array>;
}

const isLfs = (path: string) => /\.(safetensors|gguf|npy)$/.test(path);
/** Git's blob hash: sha1 of "blob {size}\0" and the bytes. */
export const gitBlobSha = (b: Uint8Array) => createHash("sha1").update(`blob ${b.byteLength}\0`).update(b).digest("hex");
export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export class MockHub {
  log: HubRequest[] = [];
  url = "";
  /** Tokens that may read gated repos. */
  tokens = new Set(["hf_good"]);
  /** Tree entries per page (the hub's default is large; small values test pagination). */
  pageSize = 1000;
  private server: Server;
  private repos = new Map<string, { gated: boolean; refs: Map<string, Commit> }>();
  private blobs = new Map<string, Uint8Array>();
  private drops = new Map<string, number>();
  private corrupt = new Set<string>();
  private trees = new Map<string, unknown>();

  constructor(repos: Record<string, MockRepo>) {
    for (const [name, repo] of Object.entries(repos)) {
      const refs = new Map<string, Commit>();
      for (const [rev, files] of Object.entries(repo.revisions)) {
        // a commit hash from the files, so that equal contents are the same commit
        const hash = createHash("sha1").update(name);
        for (const [p, b] of Object.entries(files).sort()) hash.update(p).update(gitBlobSha(b));
        const commit = { sha: hash.digest("hex"), files: new Map(Object.entries(files)) };
        refs.set(rev, commit).set(commit.sha, commit);
        for (const b of Object.values(files)) this.blobs.set(sha256(b), b);
      }
      this.repos.set(name, { gated: repo.gated ?? false, refs });
    }
    this.server = createServer((req, res) => void this.serve(req, res).catch((e: Error) => res.writeHead(500).end(e.message)));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** The commit hash a repo's revision points to. */
  commit(repo: string, rev = "main"): string {
    return this.repos.get(repo)!.refs.get(rev)!.sha;
  }

  /** The next download of `bytes` ends its connection after `after` bytes (once). */
  dropAfter(bytes: Uint8Array, after: number): void {
    this.drops.set(sha256(bytes), after);
  }

  /** Serve `bytes` with one byte flipped (the listing keeps the true hashes), until `heal`. */
  corruptFile(bytes: Uint8Array, on = true): void {
    if (on) this.corrupt.add(sha256(bytes));
    else this.corrupt.delete(sha256(bytes));
  }

  /** Answer the tree listing of `repo` with `json` instead (undefined: the real one again). */
  setTree(repo: string, json: unknown): void {
    if (json === undefined) this.trees.delete(repo);
    else this.trees.set(repo, json);
  }

  private entry(path: string, b: Uint8Array) {
    return { type: "file", path, size: b.byteLength, oid: gitBlobSha(b), ...(isLfs(path) ? { lfs: { oid: sha256(b), size: b.byteLength, pointerSize: 134 } } : {}) };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // one request per connection: a client in this process that reused a kept-alive socket raced its
    // closing and met ECONNRESET on a POST (which fetch does not retry); real hubs are not in-process
    res.setHeader("Connection", "close");
    const url = new URL(req.url!, this.url);
    this.log.push({ method: req.method!, url: req.url!, range: req.headers.range, authorization: req.headers.authorization });
    const fail = (status: number, code: string, message: string) =>
      void res.writeHead(status, { "Content-Type": "application/json", "X-Error-Code": code }).end(JSON.stringify({ error: message }));
    if (url.pathname.startsWith("/cdn/")) return this.send(req, res, url.pathname.slice(5));

    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)\/?$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const [repoName, revText] = api ? [api[1]!, api[3]!] : resolve ? [resolve[1]!, resolve[2]!] : [];
    if (repoName === undefined) return fail(404, "NotFound", `no route ${url.pathname}`);
    const repo = this.repos.get(repoName);
    if (!repo) return fail(404, "RepoNotFound", `Repository not found: ${repoName}`);
    const rev = decodeURIComponent(revText!), commit = repo.refs.get(rev === "HEAD" ? "main" : rev);
    if (!commit) return fail(404, "RevisionNotFound", `Invalid rev id: ${rev}`);

    if (api?.[2] === "revision") return this.json(res, { _id: repoName, id: repoName, sha: commit.sha, private: false, gated: repo.gated ? "manual" : false, downloads: 0, likes: 0, lastModified: "2024-04-24T00:00:00.000Z", siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })) });
    if (api?.[2] === "tree") {
      if (this.trees.has(repoName)) return this.json(res, this.trees.get(repoName));
      const all = [...commit.files].map(([p, b]) => this.entry(p, b)), from = Number(url.searchParams.get("cursor") ?? 0);
      const next = from + this.pageSize < all.length ? `<${this.url}${url.pathname}?recursive=true&cursor=${from + this.pageSize}>; rel="next"` : undefined;
      return this.json(res, all.slice(from, from + this.pageSize), next ? { Link: next } : {});
    }
    if (api?.[2] === "paths-info") {
      const body = JSON.parse(await text(req)) as { paths: string[] };
      return this.json(res, body.paths.filter((p) => commit.files.has(p)).map((p) => this.entry(p, commit.files.get(p)!)));
    }

    const auth = req.headers.authorization?.replace(/^Bearer /, "");
    if (repo.gated && !auth) return fail(401, "GatedRepo", `Access to model ${repoName} is restricted. You must be authenticated to access it.`);
    if (repo.gated && !this.tokens.has(auth!)) return fail(403, "GatedRepo", `Access to model ${repoName} is restricted and you are not in the authorized list.`);
    const path = decodeURIComponent(resolve![3]!), bytes = commit.files.get(path);
    if (!bytes) return fail(404, "EntryNotFound", `${path} does not exist on "${rev}"`);
    const headers = { "X-Repo-Commit": commit.sha, ETag: `"${gitBlobSha(bytes)}"` };
    if (isLfs(path)) {
      const oid = sha256(bytes);
      return void res.writeHead(302, { ...headers, "X-Linked-Etag": `"${oid}"`, "X-Linked-Size": String(bytes.byteLength), Location: `${this.url}/cdn/${oid}` }).end();
    }
    res.setHeader("X-Repo-Commit", commit.sha);
    return this.send(req, res, undefined, bytes, headers.ETag);
  }

  private json(res: ServerResponse, value: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(200, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(value));
  }

  /** Bytes with Range, as a CDN serves them; a drop or corruption ordered for them applies. */
  private send(req: IncomingMessage, res: ServerResponse, oid?: string, bytes = this.blobs.get(oid ?? ""), etag = `"${oid}"`): void {
    if (!bytes) return void res.writeHead(404).end();
    const key = sha256(bytes);
    if (this.corrupt.has(key)) (bytes = bytes.slice())[bytes.byteLength >> 1] ^= 0xff;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0, end = m && m[2] ? Math.min(Number(m[2]), bytes.byteLength - 1) : bytes.byteLength - 1;
    if (m && start >= bytes.byteLength) return void res.writeHead(416, { "Content-Range": `bytes */${bytes.byteLength}` }).end();
    res.writeHead(m ? 206 : 200, {
      "Accept-Ranges": "bytes", ETag: etag, "Content-Length": String(end - start + 1),
      ...(m ? { "Content-Range": `bytes ${start}-${end}/${bytes.byteLength}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();
    const drop = req.method === "GET" ? this.drops.get(key) : undefined;
    if (drop !== undefined) {
      this.drops.delete(key);
      // the client gets `drop` bytes of a body announced longer, then (once it has had time to store
      // them: a client drops what it has not yet read when the stream fails) the connection closes
      return void res.write(bytes.subarray(start, Math.min(end + 1, start + drop)), () => setTimeout(() => res.socket?.end(), 300));
    }
    res.end(bytes.subarray(start, end + 1));
  }
}

async function text(req: IncomingMessage): Promise<string> {
  let s = "";
  for await (const chunk of req) s += chunk;
  return s;
}
