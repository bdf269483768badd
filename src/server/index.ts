// openelm/server: the OpenAI-compatible server, with request reading, continuous batching and the Hono app
// (no Node built-ins, so Deno and Bun serve it too). A separate entry point, so that the core stays free of Hono.
export { openaiApp, type ServerOptions } from "./app.js";
export { ApiError, parseChatRequest, parseCompletionRequest, type ChatRequest, type CompletionRequest, type RequestOptions } from "./protocol.js";
export { Scheduler, QueueFullError, logprobs, type Job, type JobResult, type SchedulerOptions, type SchedulerStats, type TokenEvent, type TokenLogprob } from "./scheduler.js";
