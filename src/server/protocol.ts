// The OpenAI API's request bodies, read strictly: a body is either a request this server can run or an
// ApiError naming the first bad field (OpenAI's `param`), never an exception from deep inside. Fields the
// server does not know are ignored, as OpenAI ignores them.
import type { ChatMessage } from "../generation/chat.js";

/** An error in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with its HTTP status. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: 400 | 401 | 404 | 405 | 413 | 500 | 503,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  /** OpenAI's error type for the status. */
  get type(): string {
    return this.status === 401 ? "authentication_error" : this.status === 404 ? "not_found_error" : this.status >= 500 ? "server_error" : "invalid_request_error";
  }

  /** The response body. */
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** What both endpoints share: sampling, limits, stop strings, log probabilities and streaming. */
export interface RequestOptions {
  model: string;
  /** Most new tokens (undefined: as many as the context holds). */
  maxTokens?: number;
  temperature: number;
  topP?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed: number;
  stop: string[];
  /** How many most likely alternatives to report per token; undefined: no log probabilities at all. */
  logprobs?: number;
  stream: boolean;
  /** Send a last chunk with the usage figures (stream_options.include_usage). */
  includeUsage: boolean;
}

/** A POST /v1/chat/completions body. */
export interface ChatRequest extends RequestOptions {
  messages: ChatMessage[];
}

/** A POST /v1/completions body: a prompt as text or as token ids. */
export interface CompletionRequest extends RequestOptions {
  prompt: string | number[];
}

type Json = Record<string, unknown>;

const bad = (param: string, message: string) => new ApiError(400, `${param}: ${message}`, param);

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A number field in [min, max] (absent or null: undefined); `integer` also refuses fractions. */
function number(body: Json, name: string, min: number, max: number, integer = false): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v)) || v < min || v > max)
    throw bad(name, `must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

function boolean(body: Json, name: string): boolean {
  const v = body[name];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw bad(name, `must be true or false, got ${JSON.stringify(v).slice(0, 40)}`);
  return v;
}

/** `top_p` in (0, 1]: a nucleus of mass 0 would hold no token. */
function topP(body: Json): number | undefined {
  const p = number(body, "top_p", 0, 1);
  if (p === 0) throw bad("top_p", "must be above 0 (and at most 1)");
  return p;
}

/** `stop`: a string or a list of up to 4 non-empty strings, as OpenAI allows. */
function stops(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === "string" && s.length > 0))
    throw bad("stop", "must be a non-empty string or a list of up to 4 non-empty strings");
  return list as string[];
}

/** The options both endpoints share; `logprobs` is read by each endpoint, as their shapes differ. */
function options(body: unknown, logprobs: number | undefined): RequestOptions {
  if (!isObject(body)) throw new ApiError(400, "the request body must be a JSON object");
  if (typeof body.model !== "string") throw bad("model", "required, a string naming the model (GET /v1/models lists it)");
  const n = number(body, "n", 1, 1, true);
  if (n !== undefined && n !== 1) throw bad("n", "only 1 choice per request is supported");
  const maxTokens = number(body, "max_completion_tokens", 1, 2 ** 31, true) ?? number(body, "max_tokens", 1, 2 ** 31, true);
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) throw bad("stream_options", "must be an object");
  const includeUsage = streamOptions ? boolean(streamOptions, "include_usage") : false;
  return {
    model: body.model,
    maxTokens,
    temperature: number(body, "temperature", 0, 2) ?? 1,
    topP: topP(body),
    frequencyPenalty: number(body, "frequency_penalty", -2, 2),
    presencePenalty: number(body, "presence_penalty", -2, 2),
    seed: number(body, "seed", -(2 ** 53), 2 ** 53, true) ?? 0,
    stop: stops(body.stop),
    logprobs,
    stream: boolean(body, "stream"),
    includeUsage,
  };
}

/** Message content: a string, or a list of text parts (the only kind a text model reads). */
function content(v: unknown, param: string): string {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) {
    return v.map((part, i) => {
      if (!isObject(part) || part.type !== "text" || typeof part.text !== "string") throw bad(`${param}[${i}]`, 'must be a text part {"type": "text", "text": "..."}');
      return part.text;
    }).join("");
  }
  throw bad(param, "must be a string or a list of text parts");
}

const ROLES: Record<string, ChatMessage["role"]> = { system: "system", developer: "system", user: "user", assistant: "assistant" };

/** Read a chat completions body, or throw an ApiError naming the bad field. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw new ApiError(400, "the request body must be a JSON object");
  // logprobs: true turns them on; top_logprobs (0 to 20) asks for alternatives, and needs logprobs
  const on = boolean(body, "logprobs"), top = number(body, "top_logprobs", 0, 20, true);
  if (top !== undefined && !on) throw bad("top_logprobs", "needs logprobs: true");
  const opts = options(body, on ? (top ?? 0) : undefined);
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw bad("messages", "required, a non-empty list of messages");
  const messages = body.messages.map((m: unknown, i): ChatMessage => {
    if (!isObject(m)) throw bad(`messages[${i}]`, "must be an object with role and content");
    const role = typeof m.role === "string" ? ROLES[m.role] : undefined;
    if (!role) throw bad(`messages[${i}].role`, `must be one of ${Object.keys(ROLES).join(", ")}, got ${JSON.stringify(m.role)?.slice(0, 40)}`);
    return { role, content: content(m.content, `messages[${i}].content`) };
  });
  return { ...opts, messages };
}

/** Read a (legacy) completions body, or throw an ApiError naming the bad field. */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  if (!isObject(body)) throw new ApiError(400, "the request body must be a JSON object");
  const opts = options(body, number(body, "logprobs", 0, 5, true));
  let prompt = body.prompt;
  // one prompt per request: a list of one string or of one token list is that prompt
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || Array.isArray(prompt[0]))) prompt = prompt[0];
  if (typeof prompt === "string") return { ...opts, prompt };
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((id) => Number.isSafeInteger(id) && (id as number) >= 0)) return { ...opts, prompt: prompt as number[] };
  throw bad("prompt", "required, one string or one non-empty list of token ids (one prompt per request)");
}
