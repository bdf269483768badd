// The web loaders in Node, against a real HTTP server on 127.0.0.1: every read returns the file's bytes or
// an error naming the URL, whatever the server does (drawn by fast-check); consecutive reads share one
// response; whole models load through urlFiles and openModel with the logits of a load from disk; abort
// and progress work.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileError } from "../src/files.js";
import { readCheckpoint } from "../src/formats/safetensors.js";
import { ggufFile } from "../src/formats/gguf-export.js";
import { readConfig, loadModel } from "../src/load.js";
import { TextGenerator } from "../src/generation/stream.js";
import { folderFiles, kernelBuild, loadTokenizerFromFolder } from "../src/node/index.js";
import { openModel } from "../src/web/open.js";
import { urlFiles, urlSource, type DownloadProgress } from "../src/web/http.js";
import { blobSource, fileListFiles } from "../src/web/local.js";
import { ORACLE, ROOT, loadOracle, oracleCases, relError } from "./helpers/oracle.js";
import { RangeServer, WELL, type Behaviour, type Content, type Fault } from "./browser/range-server.js";

const node = { wasm: kernelBuild, threads: 1 };
let gguf: Uint8Array;
const files = new Map<string, Content>();
const server = new RangeServer((path) => files.get(path) ?? (path.startsWith("/oracle/") ? diskFile(path) : undefined));

/** Files of ref/oracle, and the bundled tokenizer as if it were in each folder. */
function diskFile(path: string): Content | undefined {
  const p = path.endsWith("/tokenizer.json") ? join(ROOT, "dist/tokenizer.json") : join(ORACLE, path.slice("/oracle/".length));
  return statSync(p, { throwIfNoEntry: false })?.isFile() ? { path: p } : undefined;
}

beforeAll(async () => {
  await server.start();
  const dir = await folderFiles(join(ORACLE, "elm-tiny-32k"));
  const parts: Uint8Array[] = [];
  const tokenizer = JSON.parse(readFileSync(join(ROOT, "dist/tokenizer.json"), "utf8"));
  for await (const c of ggufFile(await readConfig(dir), await readCheckpoint(dir), { type: "f32", tokenizer })) parts.push(c);
  gguf = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  parts.reduce((at, p) => (gguf.set(p, at), at + p.byteLength), 0);
  files.set("/elm.gguf", gguf);
});
afterAll(() => server.close());

/** Settle within `ms`, or fail naming what hung. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} hung`)), ms)))]).finally(() => clearTimeout(timer));
}

describe("urlSource against any server behaviour", () => {
  const FAULTS: Fault[] = ["none", "ignore-range", "wrong-start", "wrong-total", "short", "long", "404", "500", "drop"];
  const behaviour = fc.record<Behaviour>({
    fault: fc.constantFrom(...FAULTS),
    faultFrom: fc.nat(4),
    head: fc.constantFrom("length", "no-length", "405"),
    chunks: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 }),
  });
  // reads that continue where the last one ended, or jump anywhere (also past the end)
  const read = fc.oneof(
    fc.record({ jump: fc.constant(false), offset: fc.constant(0), length: fc.nat(900) }),
    fc.record({ jump: fc.constant(true), offset: fc.nat(5200), length: fc.nat(900) }),
  );

  it("each read gives exactly the file's bytes or an error naming the URL, and nothing hangs", async () => {
    const seen = { read: 0, failed: 0 };
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 5000, size: "max" }), behaviour, fc.array(read, { minLength: 1, maxLength: 12 }), async (bytes, b, reads) => {
        files.set("/f.bin", bytes);
        server.set(b);
        const url = `${server.url}/f.bin`;
        const benign = b.fault === "none" || b.fault === "ignore-range";
        const src = await bounded(urlSource(url), 5000, "opening").catch((e: Error) => e);
        if (src instanceof Error) {
          expect(src).toBeInstanceOf(FileError);
          expect(src.message).toContain(url);
          expect(benign).toBe(false);
          return;
        }
        // a server may lie about the size from the first response on; only the last bytes can then tell
        if (benign) expect(src.size).toBe(bytes.byteLength);
        let next = 0;
        for (const r of reads) {
          const offset = r.jump ? r.offset : next, into = new Uint8Array(r.length);
          next = offset + r.length;
          const error = await bounded(src.read(offset, into), 5000, `reading ${r.length} bytes at ${offset}`).then(() => undefined, (e: Error) => e);
          if (offset + r.length > src.size) {
            expect(error?.message).toBe(`${url}: truncated: wanted ${r.length} bytes at offset ${offset}, the file has ${src.size}`);
          } else if (error || offset + r.length > bytes.byteLength) {
            expect(error).toBeInstanceOf(FileError);
            expect(error!.message).toContain(url);
            expect(benign, error!.message).toBe(false);
            seen.failed++;
          } else {
            expect(into).toEqual(bytes.subarray(offset, offset + r.length));
            seen.read++;
          }
        }
      }),
      { numRuns: 250 },
    );
    expect(seen.read).toBeGreaterThan(30); // the runs exercised both outcomes (typically ~370 and ~110)
    expect(seen.failed).toBeGreaterThan(30);
  });

  it("each kind of fault gives its own message, naming the byte range", async () => {
    const bytes = new Uint8Array(3000).map((_, i) => i * 7);
    files.set("/f.bin", bytes);
    const url = `${server.url}/f.bin`;
    const messages: Partial<Record<Fault, RegExp>> = {
      "wrong-start": /f\.bin: the server sent Content-Range bytes 1-2999\/3000 \(asked for bytes 0-2999\)$/,
      "wrong-total": /f\.bin: Content-Range bytes 0-2999\/3001 gives a total other than the 3000 bytes first announced/,
      short: /f\.bin: the response for bytes 0-2999 ended after 2999 bytes$/,
      long: /f\.bin: the response for bytes 0-2999 holds more than its 3000 bytes$/,
      "404": /f\.bin: not found \(HTTP 404\) \(asked for bytes 0-2999\)$/,
      "500": /f\.bin: HTTP 500 Internal Server Error \(asked for bytes 0-2999\)$/,
      drop: /f\.bin: reading bytes 0-2999 failed: /,
    };
    for (const [fault, message] of Object.entries(messages)) {
      server.set({ ...WELL, fault: fault as Fault, faultFrom: 1, chunks: [100] }); // HEAD answered well, then the fault
      const src = await urlSource(url);
      await expect(src.read(0, new Uint8Array(3000)), fault).rejects.toThrow(message);
    }
    server.set({ ...WELL, fault: "404" });
    await expect(urlSource(url)).rejects.toThrow(`${url}: not found (HTTP 404)`);
    await expect(urlFiles(server.url).open("f.bin")).resolves.toBeUndefined();
    await expect(urlSource("f.bin")).rejects.toThrow('"f.bin" is not a URL (outside a page, give an absolute URL)');
  });

  it("consecutive reads share one response; a long jump starts another; a server ignoring Range is read forward", async () => {
    const bytes = new Uint8Array(3 << 20).map((_, i) => i * 13);
    files.set("/big.bin", bytes);
    const gets = () => server.log.filter((l) => l.method === "GET").map((l) => l.range);
    const check = async (offset: number, n: number, src: Awaited<ReturnType<typeof urlSource>>) => {
      const into = new Uint8Array(n);
      await src.read(offset, into);
      expect(Buffer.compare(into, bytes.subarray(offset, offset + n))).toBe(0); // toEqual takes seconds on megabytes
    };
    server.set(WELL);
    const src = await urlSource(`${server.url}/big.bin`);
    for (let at = 0; at < 1 << 20; at += 4099) await check(at, 4099, src); // consecutive
    await check(4099 * 256 + 5000, 10, src); // a short skip forward is read through
    expect(gets()).toEqual(["bytes=0-"]);
    await check(1000, 100, src); // backwards
    await check((5 << 19) + 10, 100, src); // more than 1 MiB ahead
    expect(gets()).toEqual(["bytes=0-", "bytes=1000-", `bytes=${(5 << 19) + 10}-`]);

    server.set({ ...WELL, fault: "ignore-range" });
    const whole = await urlSource(`${server.url}/big.bin`);
    await check(2 << 20, 1000, whole);
    await check(1 << 20, 1000, whole);
    await check((3 << 20) - 5, 5, whole); // forward: read through
    expect(gets()).toEqual([`bytes=${2 << 20}-`, `bytes=${1 << 20}-`]);
  });

  it("learns the size from a one-byte range when HEAD gives none, and an empty file has size 0", async () => {
    files.set("/f.bin", new Uint8Array(1234));
    files.set("/empty.bin", new Uint8Array(0));
    for (const head of ["no-length", "405"] as const) {
      server.set({ ...WELL, head });
      expect((await urlSource(`${server.url}/f.bin`)).size).toBe(1234);
      expect((await urlSource(`${server.url}/empty.bin`)).size).toBe(0);
      expect(server.log.filter((l) => l.method === "GET").map((l) => l.range)).toEqual(["bytes=0-0", "bytes=0-0"]);
    }
  });
});

describe("a dev server's fallback page", () => {
  it("a 200 text/html answer for a model file (Vite answers a missing file with index.html) is a missing file", async () => {
    const page = "<!doctype html>";
    const spa = createServer((req, res) => res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length }).end(req.method === "HEAD" ? undefined : page));
    await new Promise<void>((r) => spa.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(spa.address() as { port: number }).port}`;
    try {
      expect(await urlFiles(`${url}/model/`).open("tokenizer_config.json")).toBeUndefined();
      await expect(urlSource(`${url}/model.gguf`)).rejects.toThrow(`${url}/model.gguf: not found`);
    } finally {
      await new Promise((r) => spa.close(r));
    }
  });
});

describe("files handed to a page", () => {
  it("blobSource gives exactly the bytes asked for, or a truncation error naming the file", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000, size: "max" }), fc.array(fc.tuple(fc.nat(3200), fc.nat(1000)), { maxLength: 8 }), async (bytes, reads) => {
        const src = blobSource(new Blob([bytes]), "model.safetensors");
        expect(src.size).toBe(bytes.byteLength);
        for (const [offset, n] of reads) {
          const into = new Uint8Array(n), read = src.read(offset, into);
          if (offset + n > bytes.byteLength) await expect(read).rejects.toThrow(`model.safetensors: truncated: wanted ${n} bytes at offset ${offset}, the file has ${bytes.byteLength}`);
          else await read.then(() => expect(into).toEqual(bytes.subarray(offset, offset + n)));
        }
      }),
      { numRuns: 200 },
    );
    // a read larger than the pieces a Blob is sliced in
    const big = new Uint8Array(40 << 20).map((_, i) => i * 29), into = new Uint8Array((40 << 20) - 10);
    await blobSource(new Blob([big]), "big").read(3, into);
    expect(Buffer.compare(into, big.subarray(3, 3 + into.byteLength))).toBe(0);
  });

  it("fileListFiles names files by their path in the picked folder and refuses names that leave it", async () => {
    const segment = fc.constantFrom("config.json", "model.safetensors", "sub", "a b", "..", ".", "", "x\\y", "C:");
    const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(path, { maxLength: 5 }), path, async (paths, asked) => {
        const picked = paths.map((p, i) => Object.assign(new File([String(i)], p.split("/").pop()!), { webkitRelativePath: `elm/${p}` }));
        const files = fileListFiles(picked);
        expect(files.location).toBe(paths.length ? "elm" : "the chosen files");
        const opened = await files.open(asked).then((s) => s, (e: Error) => e);
        const safe = !asked.split("/").some((s) => ["", ".", ".."].includes(s) || s.includes("\\")) && !/^[A-Za-z]:/.test(asked);
        if (!safe) {
          expect((opened as Error).message.startsWith(`${JSON.stringify(asked)} `)).toBe(true);
          expect((opened as Error).message).toContain(`: files are named relative to the model folder ${files.location}`);
        } else if (!paths.includes(asked)) expect(opened).toBeUndefined();
        else {
          const into = new Uint8Array(1);
          await (opened as { read: (o: number, i: Uint8Array) => Promise<void> }).read(0, into);
          expect(String.fromCharCode(into[0]!)).toBe(String(paths.indexOf(asked)));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("models over HTTP", () => {
  it("a folder through urlFiles gives the logits of the same folder on disk, single-file and sharded", async () => {
    for (const name of ["elm-tiny-gqa", "elm-tiny-bf16-sharded"]) {
      server.set(WELL);
      const fromDisk = await loadOracle(name, node), fromUrl = await loadModel(urlFiles(`${server.url}/oracle/${name}`), node);
      const c = oracleCases(name)[0]!;
      const a = fromUrl.forward(fromUrl.newCache(), c.ids, { allPositions: true });
      expect(a).toEqual(fromDisk.forward(fromDisk.newCache(), c.ids, { allPositions: true }));
      expect(relError(a, c.logits)).toBeLessThan(name.includes("bf16") ? 1e-2 : 1e-4);
      // the headers and the tensors in loading order (not file order) take a request per jump, not per read
      const tensors = (await readCheckpoint(await folderFiles(join(ORACLE, name)))).size;
      const gets = server.log.filter((l) => l.method === "GET" && l.path.endsWith(".safetensors"));
      expect(gets.length).toBeLessThan(tensors / 2);
      await Promise.all([fromDisk.close(), fromUrl.close()]);
    }
  });

  it("openModel of a folder URL, a .gguf URL and a chosen .gguf File generates the greedy ids of a load from disk", async () => {
    const dir = join(ORACLE, "elm-tiny-32k");
    const reference = await new TextGenerator(await loadOracle("elm-tiny-32k", node), await loadTokenizerFromFolder(dir)).complete("Once upon a time", { maxNewTokens: 12, ignoreEos: true });
    for (const where of [`${server.url}/oracle/elm-tiny-32k/`, `${server.url}/elm.gguf`]) {
      server.set(WELL);
      const { model, tokenizer } = await openModel(where, node);
      const r = await new TextGenerator(model, tokenizer).complete("Once upon a time", { maxNewTokens: 12, ignoreEos: true });
      expect(r.ids, where).toEqual(reference.ids);
      await model.close();
    }
    // a chosen .gguf File, alone or as the one GGUF of a folder without config.json
    const file = new File([gguf as Uint8Array<ArrayBuffer>], "elm.gguf"), readme = Object.assign(new File(["hi"], "README.md"), { webkitRelativePath: "elm/README.md" });
    for (const where of [file, [Object.assign(file, { webkitRelativePath: "elm/elm.gguf" }), readme]]) {
      const { model, tokenizer } = await openModel(where, node);
      expect((await new TextGenerator(model, tokenizer).complete("Once upon a time", { maxNewTokens: 12, ignoreEos: true })).ids).toEqual(reference.ids);
      await model.close();
    }
    await expect(openModel(new File(["{}"], "config.json"), node)).rejects.toThrow("config.json is not a .gguf file: to open a Hugging Face model, choose its whole folder");
  });

  it("progress ends at each file's size; abort rejects with an AbortError and stops the download", async () => {
    server.set(WELL);
    const last = new Map<string, DownloadProgress>();
    const { model } = await openModel(`${server.url}/oracle/elm-tiny-bf16-sharded`, { ...node, onDownload: (p) => last.set(p.file, p) });
    await model.close();
    const dir = join(ORACLE, "elm-tiny-bf16-sharded");
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".json") || f.endsWith(".safetensors")).filter((f) => f !== "cases.json")) {
      const size = statSync(join(dir, f)).size;
      expect(last.get(f), f).toEqual({ file: f, loaded: size, total: size, fromCache: false });
    }
    expect(last.get("tokenizer.json")?.total).toBe(statSync(join(ROOT, "dist/tokenizer.json")).size);

    const stop = new AbortController();
    let after = 0;
    const loading = openModel(`${server.url}/elm.gguf`, { ...node, signal: stop.signal, onDownload: (p) => p.loaded > gguf.byteLength / 2 && (after++, stop.abort()) });
    await expect(loading).rejects.toMatchObject({ name: "AbortError", message: `${server.url}/elm.gguf: aborted` });
    expect(after).toBe(1); // no byte was delivered after the abort
    const early = new AbortController();
    early.abort();
    await expect(urlSource(`${server.url}/elm.gguf`, { signal: early.signal })).rejects.toMatchObject({ name: "AbortError" });
  });
});
