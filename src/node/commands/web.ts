// `openelm web`: the demo page (dist/demo, built by npm run build:web) and the models it may open, served
// with the headers that make the page cross-origin isolated, so that the kernels can run on threads.
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono, type MiddlewareHandler } from "hono";
import type { ModelFiles } from "../../files.js";
import { FolderError, folderFiles } from "../files.js";
import { localModelPath } from "../index.js";
import { DEMO_MODEL, UsageError, parseInteger } from "./args.js";

/** The command's help text (openelm web --help, and in openelm --help). */
export const HELP = {
  web: `openelm web [--port P] [--host H] [--model DIR|FILE.gguf] [--adapter DIR]
  Serve the demo page: chat with a model in its Instruct template (streaming, stop, sampling settings,
  tokens/s and memory) and look inside it (layer-wise scaling, attention maps, logit lens), the engine
  running in a Web Worker with SIMD WebAssembly on threads. It offers the bundled demo model, --model
  (a Hugging Face folder or a .gguf file, served with Range requests), any URL, and local folders or files
  dropped on the page. --adapter serves a LoRA adapter (peft's layout) that the page merges into --model (or
  the demo model) as it loads. --port (default 8080; 0 picks a free one) and --host (default 127.0.0.1;
  0.0.0.0 serves the network). Ctrl-C stops it.`,
};

// Both src/node/commands/ (tests) and dist/node/commands/ (the package) sit three levels below the root.
const PAGE = fileURLToPath(new URL("../../../dist/demo/", import.meta.url));

/** Every response carries these: COOP and COEP make the page cross-origin isolated (SharedArrayBuffer), CORP lets it load our files. */
const ISOLATION = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** A model the page can open: its URL under /models/, how it is labelled, and the adapter to merge into it. */
interface Served {
  url: string;
  label: string;
  default: boolean;
  adapter?: string;
}

/**
 * Serve the files of a model folder under `prefix`: each name is checked as the Node loader checks it
 * (relative, no "..", links followed and kept inside the folder) before serveStatic sends it with Range support.
 */
function modelFolder(app: Hono, prefix: string, dir: string, files: ModelFiles): void {
  const guard: MiddlewareHandler = async (c, next) => {
    let name: string;
    try {
      name = decodeURIComponent(c.req.path.slice(prefix.length));
    } catch {
      return c.text("bad file name", 400);
    }
    const found = name === "" ? "missing" : await files.open(name).then((f) => (f ? "found" : "missing"), () => "refused");
    if (found === "refused") return c.text(`${name} is not a file of the model folder`, 403);
    if (found === "missing") return c.text(`no file ${name} in the model folder`, 404);
    await next();
  };
  app.on(["GET", "HEAD"], `${prefix}*`, guard, serveStatic({ root: dir, rewriteRequestPath: (p) => p.slice(prefix.length - 1) }));
}

/** Check --model: a folder with config.json, or a .gguf file. */
async function checkModel(path: string): Promise<"folder" | "gguf"> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new UsageError(`--model: ${path} does not exist`);
  if (s.isFile() && path.toLowerCase().endsWith(".gguf")) return "gguf";
  if (!s.isDirectory()) throw new UsageError(`--model: ${path} is neither a model folder nor a .gguf file`);
  if (!existsSync(resolve(path, "config.json"))) throw new UsageError(`--model: ${path} has no config.json (a Hugging Face OpenELM folder has config.json and model.safetensors)`);
  return "folder";
}

/** The web app: page, model list, models, and an adapter for the default one. */
export async function webApp(model?: string, adapter?: string): Promise<Hono> {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(ISOLATION)) c.res.headers.set(k, v);
  });
  const served: Served[] = [{ url: "models/demo/", label: "Demo model (elm-sotu)", default: model === undefined }];
  modelFolder(app, "/models/demo/", DEMO_MODEL, await folderFiles(DEMO_MODEL));
  if (model !== undefined) {
    const local = await localModelPath(model).catch((e: Error) => {
      throw e instanceof FolderError ? new UsageError(`--model: ${e.message}`) : e;
    });
    const path = resolve(local), name = basename(path);
    if ((await checkModel(path)) === "gguf") {
      const url = `/models/local/${encodeURIComponent(name)}`;
      app.on(["GET", "HEAD"], url, serveStatic({ path }));
      served.push({ url: url.slice(1), label: `--model ${basename(model)}`, default: true });
    } else {
      modelFolder(app, "/models/local/", path, await folderFiles(path));
      served.push({ url: "models/local/", label: `--model ${basename(model)}`, default: true });
    }
  }
  if (adapter !== undefined) {
    const dir = resolve(adapter);
    if (!existsSync(resolve(dir, "adapter_config.json"))) throw new UsageError(`--adapter: ${adapter} has no adapter_config.json (an adapter folder holds adapter_config.json and adapter_model.safetensors)`);
    modelFolder(app, "/models/adapter/", dir, await folderFiles(dir));
    const target = served.find((s) => s.default)!;
    Object.assign(target, { adapter: "models/adapter/", label: `${target.label} + adapter ${basename(dir)}` });
  }
  app.get("/models.json", (c) => c.json(served));
  app.use("/*", serveStatic({ root: PAGE }));
  return app;
}

/** Run the server until SIGINT (Ctrl-C). */
export async function web(args: string[]) {
  let v;
  try {
    v = parseArgs({ args, options: { port: { type: "string", short: "p" }, host: { type: "string" }, model: { type: "string", short: "m" }, adapter: { type: "string" }, help: { type: "boolean", short: "h" } }, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
  if (v.help) return console.log(HELP.web);
  const port = parseInteger("port", v.port, 8080, 0, 65535)!, host = v.host ?? "127.0.0.1";
  if (host.trim() === "") throw new UsageError("--host: empty (give an address such as 127.0.0.1 or 0.0.0.0)");
  if (!existsSync(resolve(PAGE, "index.html"))) throw new Error(`the demo page is not built (${PAGE}index.html is missing): run npm run build:web`);
  const app = await webApp(v.model, v.adapter);
  const server = serve({ fetch: app.fetch, port, hostname: host });
  await new Promise<void>((ok, fail) => {
    server.once("listening", ok);
    server.once("error", (e: NodeJS.ErrnoException) =>
      fail(e.code === "EADDRINUSE" ? new UsageError(`--port: ${port} is in use (--port 0 picks a free port)`) : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" ? new UsageError(`--host: cannot listen on ${host} (${e.code})`) : e));
  });
  const { port: real } = server.address() as AddressInfo;
  console.log(`openelm web: http://${host.includes(":") ? `[${host}]` : host}:${real}/  (Ctrl-C stops)`);
  await new Promise<void>((done) =>
    process.once("SIGINT", () => {
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      server.close(() => done());
    }));
}
