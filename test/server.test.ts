// openelm serve, driven by the official `openai` client over HTTP on 127.0.0.1: greedy text equal to
// TextGenerator's and the CLI's, alone and in a full batch; streaming, stop strings, log probabilities,
// usage, aborts, queueing, every error status in OpenAI's shape, CORS; property tests of the request
// reader and of the HTTP layer.
import { spawn, spawnSync } from "node:child_process";
import { request } from "node:http";
import { createInterface } from "node:readline";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import fc from "fast-check";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderChat, type ChatMessage } from "../src/generation/chat.js";
import { TextGenerator } from "../src/generation/stream.js";
import type { OpenELM } from "../src/model.js";
import { loadModelFromFolder, loadTokenizerFromFolder } from "../src/node/index.js";
import { openaiApp, type ServerOptions } from "../src/server/app.js";
import { ApiError, parseChatRequest, parseCompletionRequest } from "../src/server/protocol.js";
import { Scheduler, type SchedulerOptions } from "../src/server/scheduler.js";
import type { Tokenizer } from "../src/tokenizer.js";
import { ORACLE, ROOT, loadOracle } from "./helpers/oracle.js";

const MODEL_ID = "elm-tiny-32k";
let model: OpenELM, tokenizer: Tokenizer, generator: TextGenerator;

interface Running {
  url: string;
  client: OpenAI;
  scheduler: Scheduler;
  close: () => Promise<void>;
}

/** The server on a free port of 127.0.0.1, over the shared model. */
async function start(opts: Partial<ServerOptions> & SchedulerOptions = {}): Promise<Running> {
  const scheduler = new Scheduler(model, tokenizer, opts);
  const app = openaiApp(scheduler, { modelId: MODEL_ID, ...opts });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((ok) => server.once("listening", ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? "unused", maxRetries: 0 });
  const close = () => new Promise<void>((done) => {
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => done());
  });
  return { url, client, scheduler, close };
}

const chatPrompt = (messages: ChatMessage[]) => renderChat(messages, { template: tokenizer.chatTemplate });
const greedy = (prompt: string | number[], maxNewTokens: number) => generator.complete(prompt, { maxNewTokens, temperature: 0 });
const user = (content: string): ChatMessage[] => [{ role: "user", content }];
/** The server's /health figures. */
const health = async (s: Running) => (await (await fetch(`${s.url}/health`)).json()) as { busy: number; queued: number; tokens: number };

let main: Running;
beforeAll(async () => {
  model = await loadOracle("elm-tiny-32k", { threads: 1 });
  tokenizer = await loadTokenizerFromFolder(join(ORACLE, "elm-tiny-32k"));
  generator = new TextGenerator(model, tokenizer);
  main = await start({ parallel: 4 });
});
afterAll(async () => {
  await main?.close();
  main?.scheduler.close();
  await model?.close();
});

describe("completions through the openai client", () => {
  it("non-streaming chat: the greedy reply of TextGenerator for the same prompt, with usage", async () => {
    const messages = user("What is a llama?");
    const want = await greedy(chatPrompt(messages), 24);
    const r = await main.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 24, temperature: 0 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]!.message).toMatchObject({ role: "assistant", content: want.text });
    expect(r.choices[0]!.finish_reason).toBe(want.finishReason === "length" ? "length" : "stop");
    expect(r.usage).toEqual({ prompt_tokens: generator.encode(chatPrompt(messages)).length, completion_tokens: want.ids.length, total_tokens: generator.encode(chatPrompt(messages)).length + want.ids.length });
  });

  it("streaming chat: role first, deltas that add up to the same text, finish_reason, then usage (include_usage) and [DONE]", async () => {
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }, ...user("Name three colors.")];
    const want = await greedy(chatPrompt(messages), 20);
    const stream = await main.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(want.text);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: generator.encode(chatPrompt(messages)).length, completion_tokens: 20, total_tokens: generator.encode(chatPrompt(messages)).length + 20 });
    expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe("length");
  });

  it("text completions, streamed and not, from text or token ids", async () => {
    const want = await greedy("Once upon a time", 16);
    const r = await main.client.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 16, temperature: 0 });
    expect(r.object).toBe("text_completion");
    expect(r.choices[0]!.text).toBe(want.text);
    const ids = generator.encode("Once upon a time");
    const streamed = await main.client.completions.create({ model: MODEL_ID, prompt: ids, max_tokens: 16, temperature: 0, stream: true });
    let text = "";
    for await (const chunk of streamed) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(want.text);
  });

  it("greedy text is TextGenerator's for each of 6 concurrent requests on 4 slots (a full batch, a queue, a prompt prefilled in chunks)", async () => {
    const prompts = ["Hello", "The capital of France is", "one two three four five six seven ".repeat(20), "Why?", "A B C D", "1, 2, 3,"];
    expect(generator.encode(prompts[2]!).length).toBeGreaterThan(2 * model.maxRows);
    const want = [];
    for (const p of prompts) want.push((await greedy(p, 12)).text);
    const before = main.scheduler.stats;
    const got = await Promise.all(prompts.map((prompt) => main.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 12, temperature: 0 })));
    expect(got.map((r) => r.choices[0]!.text)).toEqual(want);
    // they ran together: fewer steps than tokens
    const after = main.scheduler.stats;
    expect(after.tokens - before.tokens).toBe(6 * 12);
    expect(after.steps - before.steps).toBeLessThan(3 * 12);
  });

  it("the same text as openelm generate --chat --json (the command line)", async () => {
    const r = spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "generate", "--model", join(ORACLE, "elm-tiny-32k"), "--prompt", "Tell me a story.", "--chat", "--json", "-n", "16", "--threads", "1"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const cli = JSON.parse(r.stdout) as { text: string };
    const reply = await main.client.chat.completions.create({ model: MODEL_ID, messages: user("Tell me a story."), max_tokens: 16, temperature: 0 });
    expect(reply.choices[0]!.message.content).toBe(cli.text);
  });

  it("sampling with temperature, top_p and seed gives TextGenerator's sample for that seed", async () => {
    const want = await generator.complete("The weather today", { maxNewTokens: 16, temperature: 0.9, topP: 0.95, seed: 1234 });
    const r = await main.client.completions.create({ model: MODEL_ID, prompt: "The weather today", max_tokens: 16, temperature: 0.9, top_p: 0.95, seed: 1234 });
    expect(r.choices[0]!.text).toBe(want.text);
    expect(want.text).not.toBe((await greedy("The weather today", 16)).text);
  });

  it("stop strings end the text before the first of them, streamed or not (finish_reason stop)", async () => {
    const want = (await greedy("Once upon a time", 30)).text;
    const stop = want.slice(Math.floor(want.length / 2), Math.floor(want.length / 2) + 3);
    const expected = want.slice(0, want.indexOf(stop));
    const r = await main.client.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 30, temperature: 0, stop: ["never in this text \u0000", stop] });
    expect(r.choices[0]).toMatchObject({ text: expected, finish_reason: "stop" });
    const stream = await main.client.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 30, temperature: 0, stop, stream: true });
    let text = "", reason;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      reason = chunk.choices[0]?.finish_reason ?? reason;
    }
    expect([text, reason]).toEqual([expected, "stop"]);
  });

  it("log probabilities are the log-softmax of the model's logits (chat and completions shapes)", async () => {
    const ids = generator.encode("Once upon a time");
    const r = await main.client.completions.create({ model: MODEL_ID, prompt: ids, max_tokens: 6, temperature: 0, logprobs: 3 });
    // the model's own logits, one token at a time
    const cache = model.newCache(64);
    let logits = model.forward(cache, ids);
    const want: number[] = [], chosen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const max = Math.max(...logits), lse = max + Math.log(logits.reduce((a, x) => a + Math.exp(x - max), 0));
      const id = logits.indexOf(max);
      want.push(max - lse);
      chosen.push(id);
      logits = model.forward(cache, [id]);
    }
    model.releaseCache(cache);
    const lp = r.choices[0]!.logprobs!;
    lp.token_logprobs!.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 4));
    expect(lp.tokens!.join("")).toBe(r.choices[0]!.text);
    for (const [i, top] of lp.top_logprobs!.entries()) {
      expect(Object.keys(top!)).toHaveLength(3);
      expect(Math.max(...Object.values(top!))).toBeCloseTo(want[i]!, 4); // greedy: the chosen token is the most likely
    }
    expect(lp.text_offset![1]).toBe(lp.tokens![0]!.length);

    const chat = await main.client.chat.completions.create({ model: MODEL_ID, messages: user("Hi"), max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
    const content = chat.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(4);
    expect(content.map((c) => c.token).join("")).toBe(chat.choices[0]!.message.content);
    for (const c of content) {
      expect(c.top_logprobs).toHaveLength(2);
      expect(c.top_logprobs[0]!.logprob).toBeCloseTo(c.logprob, 6);
      expect(c.bytes).toEqual(Array.from(new TextEncoder().encode(c.token)));
      expect(c.logprob).toBeLessThan(0);
    }
  });
});

describe("cancellation and load", () => {
  it("a client that aborts mid-stream frees its slot at once; a stream beside it finishes with its greedy text", async () => {
    const want = await greedy("Beside it", 40);
    const before = await health(main);
    const ac = new AbortController();
    // the client's stream ends quietly when aborted: it sees 3 pieces of text and no finish_reason
    const aborted = (async () => {
      const stream = await main.client.chat.completions.create({ model: MODEL_ID, messages: user("Go on forever"), max_tokens: 200, temperature: 0, stream: true }, { signal: ac.signal });
      const seen: string[] = [];
      for await (const chunk of stream) {
        if (chunk.choices[0]?.finish_reason) seen.push(chunk.choices[0].finish_reason);
        if (chunk.choices[0]?.delta.content && seen.push("text") === 3) ac.abort();
      }
      return seen;
    })();
    const beside = main.client.completions.create({ model: MODEL_ID, prompt: "Beside it", max_tokens: 40, temperature: 0 });
    expect(await aborted).toEqual(["text", "text", "text"]);
    expect((await beside).choices[0]!.text).toBe(want.text);
    let h = await health(main);
    for (let i = 0; i < 50 && h.busy > 0; i++) h = await new Promise((r) => setTimeout(r, 20)).then(() => health(main));
    expect(h.busy).toBe(0);
    // the aborted stream stopped far short of its 200 tokens
    expect(h.tokens - before.tokens).toBeLessThan(40 + 100);
  });

  it("requests beyond the slots and the queue get 503 (queue full) in OpenAI's shape; the others complete", async () => {
    const s = await start({ parallel: 1, queue: 1 });
    try {
      const results = await Promise.allSettled([0, 1, 2].map(() => s.client.completions.create({ model: MODEL_ID, prompt: "Hello", max_tokens: 30, temperature: 0 })));
      const refused = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as InstanceType<typeof OpenAI.APIError>);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(2);
      expect(refused).toHaveLength(1);
      expect(refused[0]).toBeInstanceOf(OpenAI.InternalServerError);
      expect([refused[0]!.status, refused[0]!.code]).toEqual([503, "server_busy"]);
    } finally {
      await s.close();
      s.scheduler.close();
    }
  });
});

describe("the scheduler", () => {
  it("a job whose receiver throws fails alone; the job beside it gives its greedy ids", async () => {
    const scheduler = new Scheduler(model, tokenizer, { parallel: 2 });
    const ids = generator.encode("Side by side"), want = await greedy(ids, 10);
    const got: number[] = [];
    const [bad, good] = await Promise.allSettled([
      scheduler.submit({ ids, maxTokens: 10, sampling: {}, stop: [], onToken: () => { throw new Error("receiver gone"); } }),
      scheduler.submit({ ids, maxTokens: 10, sampling: {}, stop: [], onToken: (t) => got.push(t.id) }),
    ]);
    expect(bad).toMatchObject({ status: "rejected", reason: { message: "receiver gone" } });
    expect(good).toMatchObject({ status: "fulfilled", value: { finishReason: "length", completionTokens: 10 } });
    expect(got).toEqual(want.ids);
    expect(scheduler.stats).toMatchObject({ busy: 0, queued: 0 });
    scheduler.close();
  });
});

describe("errors in OpenAI's shape", () => {
  const expectError = async (p: Promise<unknown>, cls: new (...a: never[]) => Error, status: number, fields: { code?: string | null; param?: string | null }) => {
    const e = (await p.then(() => undefined, (e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(e).toBeInstanceOf(cls);
    expect(e.status).toBe(status);
    expect(e.error).toMatchObject({ type: expect.any(String), message: expect.any(String) });
    expect({ code: e.code, param: e.param }).toMatchObject(fields);
  };

  it("client errors: context too long 400, unknown model 404, n 400, out-of-range fields 400", async () => {
    const c = main.client;
    await expectError(c.chat.completions.create({ model: MODEL_ID, messages: user("word ".repeat(400)) }), OpenAI.BadRequestError, 400, { code: "context_length_exceeded", param: "messages" });
    await expectError(c.chat.completions.create({ model: "gpt-4o", messages: user("Hi") }), OpenAI.NotFoundError, 404, { code: "model_not_found", param: "model" });
    await expectError(c.chat.completions.create({ model: MODEL_ID, messages: user("Hi"), n: 2 }), OpenAI.BadRequestError, 400, { param: "n" });
    await expectError(c.chat.completions.create({ model: MODEL_ID, messages: user("Hi"), temperature: 5 }), OpenAI.BadRequestError, 400, { param: "temperature" });
    await expectError(c.completions.create({ model: MODEL_ID, prompt: [1, 99999] }), OpenAI.BadRequestError, 400, { param: "prompt" });
    await expectError(c.chat.completions.create({ model: MODEL_ID, messages: [{ role: "tool", content: "x", tool_call_id: "1" }] }), OpenAI.BadRequestError, 400, { param: "messages[0].role" });
  });

  it("malformed JSON 400, a body over --max-body 413, an unknown route 404 (raw HTTP)", async () => {
    const post = (body: string) => fetch(`${main.url}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const bad = await post("{\"model\": ");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });
    // on a connection of its own: the server answers before reading it all, then closes the connection
    const huge = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = request(`${main.url}/v1/chat/completions`, { method: "POST", agent: false, headers: { "Content-Type": "application/json" } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d)).on("end", () => ok({ status: res.statusCode!, body }));
      });
      req.on("error", fail);
      req.end(JSON.stringify({ model: MODEL_ID, messages: user("x".repeat(2 << 20)) }));
    });
    expect(huge.status).toBe(413);
    expect(JSON.parse(huge.body).error).toMatchObject({ code: "request_too_large" });
    const none = await fetch(`${main.url}/v1/embeddings`, { method: "POST", body: "{}" });
    expect(none.status).toBe(404);
    expect((await none.json()).error.message).toContain("/v1/embeddings");
  });

  it("--api-key: a wrong or missing key is 401 (AuthenticationError), the right one works, /health needs none", async () => {
    const s = await start({ apiKey: "sesame" });
    try {
      const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "open", maxRetries: 0 });
      await expectError(wrong.models.list(), OpenAI.AuthenticationError, 401, { code: "invalid_api_key" });
      expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
      expect((await s.client.models.list()).data.map((m) => m.id)).toEqual([MODEL_ID]);
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it("CORS is off unless --cors names an origin", async () => {
    const preflight = (url: string) => fetch(`${url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://app.example", "Access-Control-Request-Method": "POST" } });
    expect((await preflight(main.url)).headers.get("access-control-allow-origin")).toBeNull();
    expect((await fetch(`${main.url}/v1/models`, { headers: { Origin: "http://app.example" } })).headers.get("access-control-allow-origin")).toBeNull();
    const s = await start({ cors: "http://app.example" });
    try {
      expect((await preflight(s.url)).headers.get("access-control-allow-origin")).toBe("http://app.example");
      expect((await fetch(`${s.url}/v1/models`, { headers: { Origin: "http://app.example" } })).headers.get("access-control-allow-origin")).toBe("http://app.example");
    } finally {
      await s.close();
    }
  });
});

describe("property tests", () => {
  const field = fc.oneof(fc.constant(undefined), fc.constant(null), fc.boolean(), fc.double(), fc.integer({ min: -5, max: 300 }), fc.string({ maxLength: 8 }), fc.array(fc.string({ maxLength: 4 }), { maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }));
  const message = fc.oneof(fc.record({ role: fc.constantFrom("system", "user", "assistant", "developer", "tool", 7), content: fc.oneof(fc.string({ maxLength: 10 }), field) }, { requiredKeys: [] }), field);
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({
      model: fc.oneof(fc.constant(MODEL_ID), field), messages: fc.oneof(fc.array(message, { maxLength: 3 }), field), prompt: fc.oneof(fc.string({ maxLength: 10 }), fc.array(fc.integer({ min: -1, max: 40000 }), { maxLength: 4 }), field),
      temperature: field, top_p: field, max_tokens: field, max_completion_tokens: field, seed: field, stop: field, n: field, logprobs: field, top_logprobs: field,
      stream: field, stream_options: fc.oneof(fc.record({ include_usage: field }), field), frequency_penalty: field, presence_penalty: field, extra: field,
    }, { requiredKeys: [] }),
  );

  it("any JSON body gives a request within range or a 400 ApiError that names the bad field", () => {
    fc.assert(fc.property(body, (b) => {
      for (const parse of [parseChatRequest, parseCompletionRequest]) {
        let req;
        try {
          req = parse(b);
        } catch (e) {
          expect(e).toBeInstanceOf(ApiError);
          const err = e as ApiError;
          expect(err.status).toBe(400);
          // a body that is an object is refused by the name of a field, which the message starts with
          if (typeof b === "object" && b !== null && !Array.isArray(b)) expect(err.message.startsWith(`${err.param}: `)).toBe(true);
          continue;
        }
        expect(typeof req.model).toBe("string");
        expect(req.temperature >= 0 && req.temperature <= 2).toBe(true);
        expect(req.topP === undefined || (req.topP > 0 && req.topP <= 1)).toBe(true);
        expect(req.maxTokens === undefined || (Number.isSafeInteger(req.maxTokens) && req.maxTokens >= 1)).toBe(true);
        expect(req.stop.length <= 4 && req.stop.every((s) => typeof s === "string" && s.length > 0)).toBe(true);
        expect(req.logprobs === undefined || (Number.isInteger(req.logprobs) && req.logprobs >= 0 && req.logprobs <= 20)).toBe(true);
      }
    }), { numRuns: 2000 });
  });

  it("the HTTP layer answers random bodies and content types with a status and OpenAI's error shape, never a 500", async () => {
    const s = await start({ parallel: 2, maxBody: 4096 });
    try {
      const app = openaiApp(s.scheduler, { modelId: MODEL_ID, maxBody: 4096 });
      const raw = fc.oneof(fc.string({ maxLength: 64 }), body.map((b) => JSON.stringify(b) ?? ""), fc.integer({ min: 4097, max: 20000 }).map((n) => "[" + "1,".repeat(n >> 1) + "1]"));
      await fc.assert(fc.asyncProperty(raw, fc.constantFrom("/v1/chat/completions", "/v1/completions"), fc.constantFrom("application/json", "text/plain", "", "multipart/form-data"), async (text, path, type) => {
        // tokens are capped so that a body that happens to be valid stays quick
        const capped = text.replace(/"max_tokens":[^,}]*/, '"max_tokens":2');
        const res = await app.request(path, { method: "POST", headers: type ? { "Content-Type": type } : {}, body: capped });
        const out = (await res.text());
        if (res.status === 200) return;
        expect([400, 404, 413]).toContain(res.status);
        expect(JSON.parse(out).error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
        if (capped.length > 4096) expect(res.status).toBe(413);
      }), { numRuns: 150 });
    } finally {
      await s.close();
    }
  });
});

describe("openelm serve (the command)", () => {
  it("starts on a free port, answers the openai client with generate's text, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [join(ROOT, "dist/node/cli.js"), "serve", "--port", "0", "--parallel", "2", "--threads", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const line = await new Promise<string>((ok, fail) => {
        createInterface({ input: child.stdout! }).once("line", ok);
        child.once("exit", (code) => fail(new Error(`serve exited with ${code}`)));
      });
      const url = /(http:\/\/\S+\/v1)/.exec(line)![1]!;
      const client = new OpenAI({ baseURL: url, apiKey: "unused", maxRetries: 0 });
      expect((await client.models.list()).data[0]!.id).toBe("openelm-demo");
      const r = await client.chat.completions.create({ model: "openelm-demo", messages: user("Tell me a story."), max_tokens: 16, temperature: 0 });
      // the demo model, decoded in this process (plain greedy: the server takes no defaults from generation_config.json)
      const demoDir = join(ROOT, "ref/trained/elm-sotu"), demo = await loadModelFromFolder(demoDir, { threads: 1 });
      const want = await new TextGenerator(demo, await loadTokenizerFromFolder(demoDir)).complete(chatPrompt(user("Tell me a story.")), { maxNewTokens: 16, temperature: 0 });
      await demo.close();
      expect(r.choices[0]!.message.content).toBe(want.text);
    } finally {
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  });

  it("refuses bad options by name", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), "serve", ...args], { encoding: "utf8" });
    expect(run("--parallel", "0").stderr).toContain("--parallel");
    expect(run("--port", "70000").stderr).toContain("--port");
    expect(run("--max-body", "-1").stderr).toContain("--max-body");
    expect(run("--cors", "").stderr).toContain("--cors");
  });
});
