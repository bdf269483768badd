// The OpenAI-compatible HTTP API as a Hono app: it runs wherever Hono does (Node through @hono/node-server,
// Deno, Bun), so nothing here imports a Node built-in. Generation goes through a Scheduler (continuous
// batching); this file turns requests into jobs and the jobs' tokens into OpenAI's response shapes.
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { renderChat } from "../generation/chat.js";
import { ContextError } from "../model.js";
import { TextStream } from "../tokenizer.js";
import { ApiError, parseChatRequest, parseCompletionRequest, type RequestOptions } from "./protocol.js";
import { QueueFullError, type JobResult, type Scheduler, type TokenEvent, type TokenLogprob } from "./scheduler.js";

/** Options of the API server. */
export interface ServerOptions {
  /** The id clients give as `model` (and GET /v1/models lists). */
  modelId: string;
  /** Clients must send `Authorization: Bearer <apiKey>` to /v1/ (default: no key). */
  apiKey?: string;
  /** Allow cross-origin requests from this origin ("*": any); default: none. */
  cors?: string;
  /** Largest request body in bytes (default 1 MiB). */
  maxBody?: number;
  /** Chat template (default: the tokenizer's, else OpenELM-Instruct's). */
  template?: string;
}

/** OpenAI's finish_reason for how a job ended (an aborted job's client is gone and reads none). */
const FINISH: Record<JobResult["finishReason"], "stop" | "length" | null> = { stop: "stop", length: "length", abort: null };

/** The OpenAI API over `scheduler`: POST /v1/chat/completions and /v1/completions, GET /v1/models and /health. */
export function openaiApp(scheduler: Scheduler, opts: ServerOptions): Hono {
  const { tokenizer } = scheduler, app = new Hono();
  const created = Math.floor(Date.now() / 1000);
  const tokenText = (id: number) => {
    const s = new TextStream(tokenizer);
    return s.push(id) + s.flush();
  };
  const encoder = new TextEncoder();

  app.onError((e, c) => {
    const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e.message}`);
    return c.json(err.toJSON(), err.status);
  });
  app.notFound((c) => c.json(new ApiError(404, `no route ${c.req.method} ${c.req.path}`, null, "not_found").toJSON(), 404));
  if (opts.cors) app.use(cors({ origin: opts.cors }));
  app.get("/health", (c) => c.json({ status: "ok", ...scheduler.stats }));
  app.use("/v1/*", async (c, next) => {
    if (opts.apiKey !== undefined && c.req.header("authorization") !== `Bearer ${opts.apiKey}`)
      throw new ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)", null, "invalid_api_key");
    await next();
  });
  const maxBody = opts.maxBody ?? 1 << 20;
  app.post("/v1/*", bodyLimit({ maxSize: maxBody, onError: () => { throw new ApiError(413, `the request body is larger than ${maxBody} bytes (--max-body)`, null, "request_too_large"); } }));

  const model = { id: opts.modelId, object: "model", created, owned_by: "openelm" };
  app.get("/v1/models", (c) => c.json({ object: "list", data: [model] }));
  app.get("/v1/models/:id{.+}", (c) => {
    if (c.req.param("id") !== opts.modelId) throw new ApiError(404, `The model '${c.req.param("id")}' does not exist`, "model", "model_not_found");
    return c.json(model);
  });

  /** The body as JSON, or a 400 saying it is not. */
  const json = async (c: Context): Promise<unknown> => {
    const text = await c.req.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON (${(e as Error).message.slice(0, 100)})`, null, "invalid_json");
    }
  };

  const checkModel = (req: RequestOptions) => {
    if (req.model !== opts.modelId) throw new ApiError(404, `The model '${req.model}' does not exist (this server has '${opts.modelId}')`, "model", "model_not_found");
  };

  app.post("/v1/chat/completions", async (c) => {
    const req = parseChatRequest(await json(c));
    checkModel(req);
    let text: string;
    try {
      text = renderChat(req.messages, { template: opts.template ?? tokenizer.chatTemplate, addGenerationPrompt: true });
    } catch (e) {
      throw new ApiError(400, `messages: ${(e as Error).message}`, "messages");
    }
    const logprob = (t: TokenEvent) => {
      const entry = (x: TokenLogprob) => {
        const token = tokenText(x.id);
        return { token, logprob: x.logprob, bytes: Array.from(encoder.encode(token)) };
      };
      return { ...entry({ id: t.id, logprob: t.logprob! }), top_logprobs: t.top!.map(entry) };
    };
    return run(c, req, tokenizer.encode(text), {
      id: `chatcmpl-${crypto.randomUUID()}`,
      object: "chat.completion",
      first: { delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
      end: { delta: {}, logprobs: null },
      chunk: (text, tokens) => ({ delta: { content: text }, logprobs: req.logprobs === undefined ? null : { content: tokens.map(logprob) } }),
      whole: (text, tokens, r) => ({
        message: { role: "assistant", content: text, refusal: null },
        logprobs: req.logprobs === undefined ? null : { content: tokens.map(logprob) },
        finish_reason: FINISH[r.finishReason],
      }),
    });
  });

  app.post("/v1/completions", async (c) => {
    const req = parseCompletionRequest(await json(c));
    checkModel(req);
    let offset = 0;
    const logprobs = (tokens: TokenEvent[]) => {
      if (req.logprobs === undefined) return null;
      const strings = tokens.map((t) => tokenText(t.id));
      const text_offset = strings.map((s) => (offset += s.length) - s.length);
      const top_logprobs = tokens.map((t) => Object.fromEntries(t.top!.map((x) => [tokenText(x.id), x.logprob])));
      return { tokens: strings, token_logprobs: tokens.map((t) => t.logprob!), top_logprobs, text_offset };
    };
    return run(c, req, typeof req.prompt === "string" ? tokenizer.encode(req.prompt) : req.prompt, {
      id: `cmpl-${crypto.randomUUID()}`,
      object: "text_completion",
      end: { text: "", logprobs: null },
      chunk: (text, tokens) => ({ text, logprobs: logprobs(tokens) }),
      whole: (text, tokens, r) => ({ text, logprobs: logprobs(tokens), finish_reason: FINISH[r.finishReason] }),
    });
  });

  /** How an endpoint shapes its choices: a streamed piece (and an optional first one), or the whole reply. */
  interface Shape {
    id: string;
    object: "chat.completion" | "text_completion";
    first?: object;
    /** The last streamed choice, beside finish_reason. */
    end: object;
    chunk: (text: string, tokens: TokenEvent[]) => object;
    whole: (text: string, tokens: TokenEvent[], result: JobResult) => object;
  }

  /** Run a request through the scheduler and answer in one JSON body or as server-sent events. */
  function run(c: Context, req: RequestOptions, ids: number[], shape: Shape): Response | Promise<Response> {
    // a client that goes away cancels its job: the request's signal (Node adapter) or the stream's cancel
    const abort = new AbortController(), onAbort = () => abort.abort();
    c.req.raw.signal.addEventListener("abort", onAbort, { once: true });
    const usage = (r: JobResult) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens });
    const object = req.stream && shape.object === "chat.completion" ? "chat.completion.chunk" : shape.object;
    const envelope = (choices: object[], extra: object = {}) => ({ id: shape.id, object, created: Math.floor(Date.now() / 1000), model: opts.modelId, system_fingerprint: null, choices, ...extra });
    const real = (tokens: TokenEvent[]) => tokens.filter((t) => !t.eos); // log probabilities leave out the end-of-sequence token

    let send: (data: string) => void = () => {};
    const submit = (onToken: (t: TokenEvent) => void) => {
      try {
        const job = scheduler.submit({
          ids, maxTokens: req.maxTokens, stop: req.stop, logprobs: req.logprobs, signal: abort.signal, onToken,
          sampling: { temperature: req.temperature, topP: req.topP, frequencyPenalty: req.frequencyPenalty, presencePenalty: req.presencePenalty, seed: req.seed },
        });
        // Node's Request keeps its signal (and so its listeners) alive after the request: let go of the job's
        // whole stream when it ends (measured: 22 KB per request otherwise)
        const detach = () => c.req.raw.signal.removeEventListener("abort", onAbort);
        job.then(detach, detach);
        return job;
      } catch (e) {
        c.req.raw.signal.removeEventListener("abort", onAbort);
        if (e instanceof ContextError) throw new ApiError(400, `${e.message}: shorten the prompt`, shape.object === "chat.completion" ? "messages" : "prompt", "context_length_exceeded");
        if (e instanceof QueueFullError) throw new ApiError(503, `the server is busy: ${e.message}; retry later`, null, "server_busy");
        if (e instanceof RangeError) throw new ApiError(400, e.message, shape.object === "chat.completion" ? "messages" : "prompt");
        throw e;
      }
    };

    if (!req.stream) {
      let text = "";
      const tokens: TokenEvent[] = [];
      return submit((t) => {
        text += t.text;
        tokens.push(t);
      }).then((r) => c.json(envelope([{ index: 0, ...shape.whole(text, real(tokens), r) }], { usage: usage(r) })));
    }

    const extra = req.includeUsage ? { usage: null } : {};
    // submit first, so that a refused job is an HTTP error; its tokens come at a later step, once send is set
    const job = submit((t) => {
      const tokens = real([t]);
      if (t.text || tokens.length) send(JSON.stringify(envelope([{ index: 0, ...shape.chunk(t.text, tokens), finish_reason: null }], extra)));
    });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let open = true;
        send = (data) => open && controller.enqueue(encoder.encode(`data: ${data}\n\n`));
        const end = () => {
          send("[DONE]");
          if (open) controller.close();
          open = false;
        };
        abort.signal.addEventListener("abort", () => (open = false), { once: true });
        if (shape.first) send(JSON.stringify(envelope([{ index: 0, ...shape.first }], extra)));
        job.then(
          (r) => {
            if (r.finishReason === "abort") return void (open = false);
            send(JSON.stringify(envelope([{ index: 0, ...shape.end, finish_reason: FINISH[r.finishReason] }], extra)));
            if (req.includeUsage) send(JSON.stringify(envelope([], { usage: usage(r) })));
            end();
          },
          (e: Error) => {
            send(JSON.stringify(new ApiError(500, `generation failed: ${e.message}`).toJSON()));
            end();
          },
        );
      },
      cancel: () => abort.abort(),
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" } });
  }

  return app;
}
