// `openelm serve`: the OpenAI-compatible server (src/server/) on Node, through @hono/node-server.
import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { basename, resolve } from "node:path";
import { serve as listen, type ServerType } from "@hono/node-server";
import { openaiApp } from "../../server/app.js";
import { Scheduler } from "../../server/scheduler.js";
import { loadTokenizerFromFolder } from "../index.js";
import { DEMO_MODEL, MODEL_HELP, UsageError, loadModel, parse, parseInteger } from "./args.js";

/** The command's help text (openelm serve --help, and in openelm --help). */
export const HELP = {
  serve: `openelm serve [-m MODEL] [--host H] [--port P] [--parallel N] [--queue N] [--api-key KEY] [--cors ORIGIN]
                [--max-body BYTES] [--prefill-chunk N] [--name ID]
  An OpenAI-compatible server: POST /v1/chat/completions (in the model's chat template) and /v1/completions,
  streamed (server-sent events) or not, GET /v1/models and /health. --parallel N requests (default 4) are
  decoded together with continuous batching: a new request joins the running batch at the next step, and
  long prompts are prefilled --prefill-chunk tokens per step (default 16) between the others' tokens;
  --queue N more may wait (default 64; then 503). --api-key requires Authorization: Bearer KEY; --cors
  allows browsers from ORIGIN (or *); --max-body caps a request (default 1048576 bytes, then 413). --name
  is the model id clients send (default: the model folder's or file's name, or the hub id). --port (default 8080; 0 picks a free
  one), --host (default 127.0.0.1). Ctrl-C stops it.`,
};

const serveOptions = {
  host: { type: "string" },
  port: { type: "string", short: "p" },
  parallel: { type: "string" },
  queue: { type: "string" },
  "api-key": { type: "string" },
  cors: { type: "string" },
  "max-body": { type: "string" },
  "prefill-chunk": { type: "string" },
  name: { type: "string" },
} as const;

/** Listen on host:port; a port in use or an address that cannot be bound is a usage error naming the option. */
async function start(fetch: (r: Request) => Response | Promise<Response>, host: string, port: number): Promise<ServerType> {
  const server = listen({ fetch, port, hostname: host });
  await new Promise<void>((ok, fail) => {
    server.once("listening", ok);
    server.once("error", (e: NodeJS.ErrnoException) =>
      fail(e.code === "EADDRINUSE" ? new UsageError(`--port: ${port} is in use (--port 0 picks a free port)`) : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" ? new UsageError(`--host: cannot listen on ${host} (${e.code})`) : e));
  });
  return server;
}

/** Run the server until SIGINT or SIGTERM. */
export async function serve(args: string[]) {
  const v = parse(args, serveOptions);
  if (v.help) return console.log(`${HELP.serve}\n\n${MODEL_HELP}`);
  const port = parseInteger("port", v.port, 8080, 0, 65535)!, host = v.host ?? "127.0.0.1";
  if (host.trim() === "") throw new UsageError("--host: empty (give an address such as 127.0.0.1 or 0.0.0.0)");
  const parallel = parseInteger("parallel", v.parallel, 4, 1, 64)!;
  const queue = parseInteger("queue", v.queue, 64, 0, 1 << 20)!;
  const maxBody = parseInteger("max-body", v["max-body"], 1 << 20, 1, 1 << 30)!;
  const prefillChunk = parseInteger("prefill-chunk", v["prefill-chunk"], 16, 1, 64)!;
  for (const name of ["api-key", "cors", "name"] as const) if (v[name] === "") throw new UsageError(`--${name}: empty`);
  const model = await loadModel(v);
  const scheduler = new Scheduler(model, await loadTokenizerFromFolder(v.model ?? DEMO_MODEL), { parallel, queue, prefillChunk });
  // a folder or file is known by its name, a hub id (org/name) as given
  const modelId = v.name ?? (v.model === undefined ? "openelm-demo" : existsSync(v.model) ? basename(resolve(v.model)) : v.model);
  const app = openaiApp(scheduler, { modelId, apiKey: v["api-key"], cors: v.cors, maxBody });
  const server = await start(app.fetch, host, port);
  const { port: real } = server.address() as AddressInfo;
  console.log(`openelm serve: ${modelId} at http://${host.includes(":") ? `[${host}]` : host}:${real}/v1  (${parallel} slots; Ctrl-C stops)`);
  await new Promise<void>((done) => {
    const stop = () => {
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      server.close(() => done());
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  scheduler.close();
  await model.close();
}
