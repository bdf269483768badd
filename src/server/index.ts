// The OpenAI-compatible server: request reading, continuous batching and the Hono app (no Node built-ins).
export { openaiApp, type ServerOptions } from "./app.js";
export { ApiError, parseChatRequest, parseCompletionRequest, type ChatRequest, type CompletionRequest, type RequestOptions } from "./protocol.js";
export { Scheduler, QueueFullError, logprobs, type Job, type JobResult, type SchedulerOptions, type SchedulerStats, type TokenEvent, type TokenLogprob } from "./scheduler.js";
