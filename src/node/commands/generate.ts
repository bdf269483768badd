// `openelm generate` (one prompt, streamed or as JSON) and `openelm chat` (an interactive conversation).
import { createInterface } from "node:readline";
import type { GenerateChunk, GenerateOptions } from "../../generation/stream.js";
import { TextGenerator } from "../../generation/stream.js";
import { renderChat } from "../../generation/chat.js";
import { loadTokenizerFromFolder } from "../index.js";
import { MODEL_HELP, SAMPLING_HELP, UsageError, checkLogitBias, generationDefaults, loadModel, parse, resolveModel, parseIds, parseInteger, parseSampling, samplingOptions } from "./args.js";

export const HELP = {
  generate: `openelm generate [-m DIR] (-p TEXT | --ids 1,5,9) [sampling options] [--chat] [--system TEXT]
                 [--prompt-lookup N] [--draft-model DIR] [--draft-tokens N] [--json]
  Generate with the KV cache, streaming text for --prompt (then speed on stderr). --chat wraps the prompt
  in the model's chat template (OpenELM-Instruct's by default). --prompt-lookup N guesses N tokens from
  earlier in the context; --draft-model DIR guesses with a smaller OpenELM; either way the model checks the
  guesses in one pass and the output is exactly what it would give alone. --json prints one line
  {"ids": [...new ids...], "text", "finish_reason", "timings", "speculation"}.`,
  chat: `openelm chat [--model DIR] [--system TEXT] [sampling options]
  Talk to an OpenELM-Instruct model in its chat template; the conversation keeps its KV cache between
  turns, and when it outgrows the context (--context, or max_context_length) its oldest turns are dropped
  with a notice. Type a message and Enter; /help lists the commands (/reset, /exit), Ctrl-C stops a reply.`,
};

const generateOptions = {
  ...samplingOptions,
  ids: { type: "string" },
  prompt: { type: "string", short: "p" },
  chat: { type: "boolean" },
  system: { type: "string" },
  "prompt-lookup": { type: "string" },
  "draft-model": { type: "string" },
  "draft-tokens": { type: "string" },
  json: { type: "boolean" },
} as const;

const f = (x: number | undefined, digits = 1) => (x === undefined ? "-" : x.toFixed(digits));

export async function generate(args: string[]) {
  const v = parse(args, generateOptions);
  if (v.help) return console.log(`${HELP.generate}\n\n${SAMPLING_HELP}\n\n${MODEL_HELP}`);
  if ((v.ids === undefined) === (v.prompt === undefined)) throw new UsageError("give exactly one of --prompt TEXT or --ids 1,5,9");
  if (v["prompt-lookup"] !== undefined && v["draft-model"] !== undefined) throw new UsageError("--prompt-lookup and --draft-model are alternatives; give one");
  const path = await resolveModel(v); // a hub id is downloaded once, here
  const opts: GenerateOptions = {
    ...parseSampling(v, await generationDefaults(path)),
    promptLookup: parseInteger("prompt-lookup", v["prompt-lookup"], undefined, 1, 256),
    draftTokens: parseInteger("draft-tokens", v["draft-tokens"], undefined, 1, 256),
  };
  const model = await loadModel({ ...v, model: path });
  checkLogitBias(opts.logitBias, model.config.vocabSize);
  // the draft model runs on this thread only: it is small, and its calls alternate with the model's
  if (v["draft-model"]) opts.draft = await loadModel({ ...v, model: v["draft-model"], threads: "1" }, "loading draft");
  const tokenizer = await loadTokenizerFromFolder(path);
  const generator = new TextGenerator(model, tokenizer);
  let prompt: string | number[] = v.ids !== undefined ? parseIds(v.ids) : v.prompt!;
  if (v.chat) {
    if (typeof prompt !== "string") throw new UsageError("--chat needs --prompt TEXT");
    prompt = renderChat([...(v.system ? [{ role: "system" as const, content: v.system }] : []), { role: "user", content: prompt }], { template: tokenizer.chatTemplate });
  }

  const stream = !v.json && typeof prompt === "string";
  if (stream && !v.chat) process.stdout.write(prompt as string);
  const ids: number[] = [];
  let text = "", last: GenerateChunk | undefined;
  for await (const chunk of generator.generate(prompt, opts)) {
    ids.push(...chunk.ids);
    text += chunk.text;
    if (stream) process.stdout.write(chunk.text);
    last = chunk;
  }
  const t = last!.timings!, s = last!.speculation;
  const speculation = s && { proposed: s.proposed, accepted: s.accepted, acceptance_rate: s.proposed ? s.accepted / s.proposed : 0, passes: s.passes };
  if (v.json) {
    const timings = { prompt_tokens: t.promptTokens, prefill_ms: t.prefillMs, new_tokens: t.newTokens, decode_ms: t.decodeMs, decode_tok_s: t.decodeTokensPerSecond };
    console.log(JSON.stringify({ ids, ...(typeof prompt === "string" ? { text } : {}), finish_reason: last!.finishReason, timings, ...(speculation ? { speculation } : {}) }));
    return;
  }
  process.stdout.write(stream ? "\n" : ids.join(",") + "\n");
  process.stderr.write(
    `openelm: prompt ${t.promptTokens} tokens in ${f(t.prefillMs)} ms (${f(t.promptTokens / (t.prefillMs / 1000))} tok/s); ` +
      `generated ${t.newTokens} tokens, ${f(t.decodeTokensPerSecond)} tok/s decoding [${model.kernels.name}]; stopped: ${last!.finishReason}` +
      (speculation ? `; guesses accepted ${speculation.accepted}/${speculation.proposed} (${f(speculation.acceptance_rate * 100, 0)}%) in ${speculation.passes} passes` : "") + "\n",
  );
}

const CHAT_COMMANDS = `/help   this list
/reset  forget the conversation (the system prompt stays)
/exit   leave (also /quit, Ctrl-D); Ctrl-C stops a reply`;

export async function chat(args: string[]) {
  const v = parse(args, { ...samplingOptions, system: { type: "string" } });
  if (v.help) return console.log(`${HELP.chat}\n\n${SAMPLING_HELP}\n\n${MODEL_HELP}`);
  const path = await resolveModel(v), defaults = await generationDefaults(path);
  const opts = parseSampling(v, { ...defaults, maxNewTokens: defaults.maxNewTokens ?? 256 });
  const model = await loadModel({ ...v, model: path });
  checkLogitBias(opts.logitBias, model.config.vocabSize);
  const generator = new TextGenerator(model, await loadTokenizerFromFolder(path));
  // whatever goes to the terminal starts on a line of its own, never after "openelm> " or typed text
  let midLine = false;
  const say = (text: string) => {
    process.stdout.write(`${midLine ? "\n" : ""}${text}\n`);
    midLine = false;
  };
  model.onWarning = (m) => say(`(${m})`);
  const onDrop = (dropped: unknown[]) => say(`(the conversation outgrew the context of ${conversation.contextLength} tokens: its oldest ${dropped.length} messages were dropped)`);
  const conversation = generator.conversation({ system: v.system, onDrop });
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  let replying: AbortController | undefined;
  rl.on("SIGINT", () => (replying ? replying.abort() : rl.close()));
  say(`openelm chat: ${v.model ?? "the bundled demo model (random weights)"}; /help for commands`);
  // a prompt only for a person at a terminal; piped input gets the replies alone
  const prompt = () => process.stdin.isTTY && rl.prompt();
  rl.setPrompt("you> ");
  prompt();
  // lines typed (or piped) while a reply streams wait in the iterator's queue
  for await (const line of rl) {
    const text = line.trim();
    if (/^\/\w+$/.test(text)) {
      // commands are handled here and never sent to the model
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        conversation.reset();
        say("(history cleared)");
      } else say(text === "/help" ? CHAT_COMMANDS : `(unknown command ${text}; /help lists them)`);
      prompt();
      continue;
    }
    if (!text) {
      prompt();
      continue;
    }
    replying = new AbortController();
    try {
      process.stdout.write("openelm> ");
      midLine = true;
      let last: GenerateChunk | undefined;
      for await (const chunk of conversation.send(text, { ...opts, signal: replying.signal })) {
        process.stdout.write(chunk.text);
        last = chunk;
      }
      const t = last?.timings;
      say(`(${t?.newTokens ?? 0} tokens, ${f(t?.decodeTokensPerSecond)} tok/s${last?.finishReason === "abort" ? ", stopped" : last?.finishReason === "context" ? ", the context is full" : ""})`);
    } catch (e) {
      say(`openelm: error: ${(e as Error).message}`);
    } finally {
      replying = undefined;
    }
    prompt();
  }
  rl.close();
  conversation.close();
}
