// npm run bench:serve [-- --threads 2 --parallel 8 --tokens 64 --prefill-chunk 16 --rounds 3 --soak SECONDS]
// A bounded load test of `openelm serve` on a 270M-shape model with random weights (speed does not depend
// on the values), driven by the official openai client: for 1, 2, 4 and 8 concurrent greedy streams, the
// aggregate tokens/s, time per output token (TPOT) and the decode throughput it gives, time to first
// token p50/p99 and errors; the two targets of continuous batching (4 streams decoding together against
// 1, and the first token of a short request that arrives while a 1,000-token prompt prefills); and with
// --soak, mixed requests with aborts for that many seconds, with the server's RSS.
// `openelm bench` first measures plain single-stream decoding, the yardstick on a machine shared with
// others; --rounds N repeats the levels in turn (medians), so that drift falls on all of them alike.
// Every phase has a fixed number of requests (or a fixed time), so the run stops by itself.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { seededRandom } from "openelm";
import { randomGGUF } from "./random-gguf.js";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    parallel: { type: "string", default: "8" },
    tokens: { type: "string", default: "64" },
    "prefill-chunk": { type: "string", default: "16" },
    soak: { type: "string", default: "0" },
    rounds: { type: "string", default: "3" },
  },
});
const tokens = Number(values.tokens), soakSeconds = Number(values.soak), rounds = Number(values.rounds);
const CLI = fileURLToPath(new URL("../node/cli.js", import.meta.url));

const server = spawn(process.execPath, [CLI, "serve", "--model", await randomGGUF("270M", "f16"), "--dtype", "bf16", "--threads", values.threads!, "--parallel", values.parallel!,
  "--prefill-chunk", values["prefill-chunk"]!, "--port", "0", "--name", "m"], { stdio: ["ignore", "pipe", "inherit"] });
const line = await new Promise<string>((ok, fail) => {
  createInterface({ input: server.stdout! }).once("line", ok);
  server.once("exit", (code) => fail(new Error(`openelm serve exited with ${code}`)));
});
const baseURL = /(http:\/\/\S+\/v1)/.exec(line)![1]!;
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 600_000 });
const random = seededRandom(7);
/** A prompt of `n` token ids (BOS, then random ordinary tokens): exact lengths, no tokenizer needed. */
const promptIds = (n: number) => [1, ...Array.from({ length: n - 1 }, () => 300 + Math.floor(random() * 29000))];

/**
 * One greedy streamed completion: time to first token, time per output token after the first (TPOT, as
 * vLLM and llama.cpp's server report it), tokens received, or the error.
 */
async function stream(prompt: number[], maxTokens: number, signal?: AbortSignal, arrivals?: number[]): Promise<{ ttftMs: number; tpotMs: number; tokens: number; error?: string }> {
  const t0 = performance.now();
  let ttftMs = NaN, last = NaN, count = 0;
  try {
    const s = await client.completions.create({ model: "m", prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }, { signal });
    for await (const chunk of s) {
      if (chunk.choices[0]) last = performance.now() - t0;
      if (chunk.choices[0]) arrivals?.push(performance.now());
      if (chunk.choices[0] && Number.isNaN(ttftMs)) ttftMs = last;
      if (chunk.usage) count = chunk.usage.completion_tokens;
    }
    return { ttftMs, tpotMs: count > 1 ? (last - ttftMs) / (count - 1) : NaN, tokens: count };
  } catch (e) {
    return { ttftMs, tpotMs: NaN, tokens: count, error: (e as Error).message };
  }
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const f = (x: number, d = 1) => x.toFixed(d);

const plain = spawnSync(process.execPath, [CLI, "bench", "--shape", "270M", "--dtype", "bf16", "--threads", values.threads!, "--prefill", "16", "--decode", String(tokens), "--json"], { encoding: "utf8" });
const yardstick = (JSON.parse(plain.stdout) as { decode_tok_s: number }).decode_tok_s;
await stream(promptIds(16), 4); // warm-up: first allocations, JIT
console.log(`openelm serve, OpenELM-270M shape (random weights, BF16), ${values.threads} threads, --parallel ${values.parallel}, --prefill-chunk ${values["prefill-chunk"]}; ${tokens} greedy tokens per request, 16-token prompts`);
console.log(`plain single-stream decoding (openelm bench) just before: ${f(yardstick)} tok/s`);
const levels = [1, 2, 4, 8], runs = new Map<number, { seconds: number; results: Awaited<ReturnType<typeof stream>>[] }[]>();
for (let round = 0; round < rounds; round++) for (const streams of levels) {
  // each client runs its requests one after another; the phase ends when all have
  const perClient = Math.max(1, Math.round(8 / streams));
  const t0 = performance.now();
  const results = (await Promise.all(Array.from({ length: streams }, async () => {
    const out = [];
    for (let i = 0; i < perClient; i++) out.push(await stream(promptIds(16), tokens));
    return out;
  }))).flat();
  runs.set(streams, [...(runs.get(streams) ?? []), { seconds: (performance.now() - t0) / 1000, results }]);
}
// aggregate tok/s: all tokens over the phase's wall time (prompts included); decode tok/s: streams ÷ TPOT p50
console.log(`streams  requests  tokens  aggregate tok/s  TPOT p50 ms  decode tok/s  TTFT p50 ms  TTFT p99 ms  errors   (medians of ${rounds} rounds)`);
const decode: Record<number, number> = {};
for (const streams of levels) {
  const r = runs.get(streams)!, all = r.flatMap((x) => x.results), ttft = all.map((x) => x.ttftMs).filter((x) => !Number.isNaN(x));
  const rates = r.map((x) => x.results.reduce((a, y) => a + y.tokens, 0) / x.seconds), tpot = pct(all.map((x) => x.tpotMs).filter((x) => !Number.isNaN(x)), 50);
  decode[streams] = (streams * 1000) / tpot;
  console.log(`${String(streams).padStart(7)} ${String(all.length).padStart(9)} ${String(all.reduce((a, y) => a + y.tokens, 0)).padStart(7)} ${f(pct(rates, 50)).padStart(16)} ${f(tpot).padStart(12)} ${f(decode[streams]!).padStart(13)} ${f(pct(ttft, 50), 0).padStart(12)} ${f(pct(ttft, 99), 0).padStart(12)} ${String(all.filter((x) => x.error).length).padStart(7)}`);
}

/**
 * Steady decoding of `streams` requests started together (`steadyTokens` tokens each): the tokens that
 * arrive while all of them decode (from the moment the last one has its first token plus 8 steps, to
 * the moment the first one ends) over that window's length. Prompts and ramp-up are outside the window.
 */
const steadyTokens = 4 * tokens;
async function steady(streams: number): Promise<number> {
  const arrivals = Array.from({ length: streams }, () => [] as number[]);
  await Promise.all(arrivals.map((a) => stream(promptIds(16), steadyTokens, undefined, a)));
  const from = Math.max(...arrivals.map((a) => a[Math.min(8, a.length - 1)]!)), to = Math.min(...arrivals.map((a) => a[a.length - 1]!));
  const inside = arrivals.reduce((n, a) => n + a.filter((t) => t > from && t <= to).length, 0);
  return (inside * 1000) / (to - from);
}
const steadyRates: Record<number, number[]> = { 1: [], 4: [] };
for (let round = 0; round < rounds; round++) for (const streams of [1, 4]) steadyRates[streams]!.push(await steady(streams));
const [one, four] = [pct(steadyRates[1]!, 50), pct(steadyRates[4]!, 50)];
console.log(`\nsteady decoding, ${steadyTokens} tokens per stream started together (medians of ${rounds}): 1 stream ${f(one)} tok/s, 4 streams ${f(four)} tok/s`);
console.log(`target: decode throughput of 4 concurrent streams ÷ 1 stream = ${f(four / one, 2)}× (≥ 2.5×); with the levels' prompts joining mid-stream (TPOT above) ${f(decode[4]! / decode[1]!, 2)}×`);

// a short request that arrives while a 1,000-token prompt is prefilling
const waits = [];
for (let round = 0; round < 3; round++) {
  const long = stream(promptIds(1000), 1);
  await new Promise((r) => setTimeout(r, 150)); // its prefill is under way
  const short = await stream(promptIds(16), 1);
  const l = await long;
  waits.push(short.ttftMs);
  console.log(`round ${round + 1}: short request's TTFT ${f(short.ttftMs, 0)} ms while the 1,000-token prompt took ${f(l.ttftMs, 0)} ms to its first token`);
}
console.log(`target: TTFT of a short request during a 1,000-token prefill, worst of 3 = ${f(Math.max(...waits), 0)} ms (< 1000 ms)`);

/** The server's resident memory in MiB (ps, so that it works on Linux and macOS). */
const rss = () => Number(spawnSync("ps", ["-o", "rss=", "-p", String(server.pid)], { encoding: "utf8" }).stdout.trim()) / 1024;

if (soakSeconds > 0) {
  // 8 clients, mixed requests (chat or text, streamed or not, 4 to 48 tokens), a fifth of them aborted
  const start = performance.now(), end = start + soakSeconds * 1000, samples: [number, number][] = [];
  const sample = () => samples.push([Math.round((performance.now() - start) / 1000), rss()]);
  let done = 0, aborted = 0;
  const errors: string[] = [];
  const sampler = setInterval(sample, 10_000);
  sample();
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (performance.now() < end) {
      const ac = new AbortController(), abort = random() < 0.2, maxTokens = 4 + Math.floor(random() * 45), prompt = promptIds(8 + Math.floor(random() * 120));
      const timer = abort ? setTimeout(() => ac.abort(), 100 + random() * 1500) : undefined;
      try {
        if (random() < 0.5) {
          const r = await stream(prompt, maxTokens, ac.signal);
          if (r.error && !ac.signal.aborted) errors.push(r.error);
        } else {
          await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: `Question ${Math.floor(random() * 1000)}: why?` }], max_tokens: maxTokens, temperature: random() }, { signal: ac.signal });
        }
      } catch (e) {
        if (!ac.signal.aborted) errors.push((e as Error).message);
      } finally {
        clearTimeout(timer);
        if (ac.signal.aborted) aborted++;
        else done++;
      }
    }
  }));
  clearInterval(sampler);
  sample(); // after the requests in flight at the end
  const health = await (await fetch(baseURL.replace(/\/v1$/, "/health"))).json();
  console.log(`\nsoak: ${soakSeconds} s, 8 clients: ${done} requests completed, ${aborted} aborted, ${errors.length} errors${errors.length ? ` (first: ${errors[0]})` : ""}; afterwards ${JSON.stringify(health)}`);
  console.log(`server RSS MiB over time (s: MiB): ${samples.map(([t, m]) => `${t}: ${f(m, 0)}`).join(", ")}`);
}

server.kill("SIGTERM");
await once(server, "exit");
