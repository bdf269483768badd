// The engine worker: loads a model, chats in its template with streaming, stops on request, and runs the
// look-inside views. Requests run one at a time, in order; "stop" acts at once, between two tokens.
import { TextGenerator, renderChat, type Conversation, type OpenELM, type Tokenizer } from "openelm";
import { loadFrom } from "./source.js";
import { inspect } from "./inspect.js";
import type { ModelInfo, Request, Response } from "./protocol.js";

let engine: { model: OpenELM; tokenizer: Tokenizer; generator: TextGenerator; info: ModelInfo } | undefined;
let conversation: Conversation | undefined;
/** The ids of the last chat turn (prompt and reply): the text the look-inside view shows by default. */
let lastIds: number[] = [];
/** Cancels the reply or the load under way (the Stop button). */
let stopping: AbortController | undefined;
let queue = Promise.resolve();
/** Tokens the look-inside view shows at most (its attention map is tokens × tokens). */
const INSPECT_TOKENS = 128;

const post = (r: Response) => postMessage(r);

addEventListener("message", (e: MessageEvent<Request>) => {
  const request = e.data;
  if (request.type === "stop") return stopping?.abort();
  queue = queue.then(() => handle(request)).catch((err: unknown) =>
    post({ type: "error", during: request.type, message: (err as Error).message ?? String(err), aborted: (err as Error).name === "AbortError" }));
});

async function handle(r: Request): Promise<void> {
  if (r.type === "load") return load(r);
  if (!engine) throw new Error("no model is loaded yet");
  if (r.type === "reset") return void conversation?.reset();
  if (r.type === "send") return send(r, engine.generator);
  if (r.type === "inspect") {
    // a causal model computes a prefix exactly as in the whole text, so a long text is cut, not windowed
    const ids = (r.text ? engine.generator.encode(r.text) : lastIds).slice(0, INSPECT_TOKENS);
    if (ids.length === 0) throw new Error("there is no text to look inside yet: chat first, or type a text");
    post({ type: "inspected", inspection: inspect(engine.model, engine.tokenizer, ids, r.layer, r.head) });
  }
}

async function load(r: Extract<Request, { type: "load" }>): Promise<void> {
  conversation?.close();
  await engine?.model.close();
  engine = conversation = undefined;
  lastIds = [];
  stopping = new AbortController();
  const { model, tokenizer, name } = await loadFrom(r.source, {
    threads: r.threads,
    signal: stopping.signal,
    onDownload: (p) => post({ type: "download", ...p }),
    onProgress: (done, total) => post({ type: "weights", done, total }),
  }).finally(() => (stopping = undefined));
  const c = model.config;
  const info: ModelInfo = {
    name, modelDim: c.modelDim, headDim: c.headDim, vocabSize: c.vocabSize, contextLength: c.maxContextLength,
    layers: c.numQueryHeads.map((q, l) => ({ queryHeads: q, kvHeads: c.numKvHeads[l]!, ffnDim: c.ffnDims[l]! })),
    kernels: model.kernels.name, arenaBytes: model.arena.used,
  };
  engine = { model, tokenizer, generator: new TextGenerator(model, tokenizer), info };
  model.onWarning = (m) => console.warn(`openelm: ${m}`);
  post({ type: "loaded", info });
}

async function send(r: Extract<Request, { type: "send" }>, generator: TextGenerator): Promise<void> {
  const chat = (conversation ??= generator.conversation({ system: r.system || undefined }));
  const s = r.settings;
  stopping = new AbortController();
  const reply: number[] = [];
  try {
    const options = { temperature: s.temperature, topK: s.topK || undefined, topP: s.topP, maxNewTokens: s.maxNewTokens, seed: s.seed, ignoreEos: s.ignoreEos, signal: stopping.signal };
    for await (const chunk of chat.send(r.text, options)) {
      reply.push(...chunk.ids);
      const tokensPerSecond = chunk.timings?.decodeTokensPerSecond;
      post({ type: "chunk", text: chunk.text, ids: chunk.ids, done: chunk.done, finishReason: chunk.finishReason, tokensPerSecond, arenaBytes: generator.model.arena.used });
    }
  } finally {
    stopping = undefined;
  }
  // this turn's prompt (as rendered before the reply joined the history) and the reply
  const before = chat.messages.slice(0, -1);
  lastIds = [...generator.encode(renderChat(before, { template: generator.tokenizer.chatTemplate })), ...reply];
}
