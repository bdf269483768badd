#!/usr/bin/env node
// The openelm command line. The forms `logits`, `generate --ids ... --json` and `info` are the
// conformance interface other ports drive; keep them stable.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { readFile } from "node:fs/promises";
import { PRESETS, parameterCount, parseConfig } from "../config.js";
import { KernelProfile, measureBandwidth, measureSpeed, weightBytesPerToken } from "../bench.js";
import { OpenELM as Model } from "../model.js";
import { randomWeights } from "../synthetic.js";
import { planModel } from "../load.js";
import { DTYPES, type DType } from "../dtype.js";
import { decode } from "../generate.js";
import { encodeNpy } from "../npy.js";
import type { OpenELM } from "../model.js";
import { TextStream } from "../tokenizer.js";
import { createNodeKernels, loadModelFromFolder, loadTokenizerFromFolder } from "./index.js";

/** The model that ships with the package, used when --model is not given (random weights; see README). */
const DEMO_MODEL = fileURLToPath(new URL("../../ref/oracle/elm-tiny-32k", import.meta.url));

class UsageError extends Error {}

const common = {
  model: { type: "string" },
  dtype: { type: "string" },
  kernels: { type: "string", default: "wasm" },
  context: { type: "string" },
  threads: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const HELP: Record<string, string> = {
  logits: `openelm logits --model DIR --ids 1,5,9 --out FILE.npy
  Write the logits at every position of one full forward pass as float32 .npy, shape (ids, vocab).`,
  generate: `openelm generate [--model DIR] (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--temperature T]
                 [--seed S] [--ignore-eos] [--json]
  Decode with the KV cache (greedy at temperature 0, the default). Streams text for --prompt;
  --json prints one line {"ids": [...new ids...], ...} instead.`,
  bench: `openelm bench --shape 270M|450M|1_1B|3B|config.json [--dtype bf16] [--threads N] [--prefill 128] [--decode 64]
              [--context C] [--profile] [--json]
  Build a model of that shape with random weights in memory (no file), run one prefill and the decode
  steps after it (from cache length C if given), and report tokens/s, the measured memory bandwidth
  and the bound it sets on decoding; --profile adds the time per kernel in a decode step.`,
  info: `openelm info [--model DIR]
  Print the derived architecture: per-layer heads and FFN widths, parameters, dtype, memory.`,
};
const OPTIONS = `Options for every command:
  --model DIR       Hugging Face OpenELM folder (config.json + safetensors); default: the bundled demo model
  --dtype T         keep weight matrices as f32, f16 or bf16 in memory (default: as stored)
  --kernels K       wasm (SIMD, default) or typescript (the readable reference kernels)
  --context N       cap the context (KV cache) below max_context_length
  --threads N       threads for the SIMD kernels (default: all cores)`;
const USAGE = `usage: openelm <command> [options]

${Object.values(HELP).join("\n\n")}

${OPTIONS}`;

function parse<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...common, ...options }, allowPositionals: false, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function parseIds(s: string | undefined): number[] {
  if (s === undefined) throw new UsageError("--ids is required (comma-separated token ids, e.g. --ids 1,5,9)");
  const ids = s.split(",").map((t) => t.trim());
  for (const t of ids) if (!/^\d+$/.test(t)) throw new UsageError(`--ids: "${t}" is not a token id (comma-separated non-negative integers)`);
  return ids.map(Number);
}

function parseInt(name: string, s: string | undefined, fallback?: number): number | undefined {
  if (s === undefined) return fallback;
  if (!/^\d+$/.test(s)) throw new UsageError(`--${name}: "${s}" is not a non-negative integer`);
  return Number(s);
}

function parseNumber(name: string, s: string | undefined, fallback: number): number {
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isFinite(v) || v < 0) throw new UsageError(`--${name}: "${s}" is not a non-negative number`);
  return v;
}

async function load(v: { model?: string; dtype?: string; kernels?: string; context?: string; threads?: string }): Promise<OpenELM> {
  if (v.dtype !== undefined && !DTYPES.includes(v.dtype as DType)) throw new UsageError(`--dtype: "${v.dtype}" is not one of ${DTYPES.join(", ")}`);
  if (v.kernels !== "wasm" && v.kernels !== "typescript") throw new UsageError(`--kernels: "${v.kernels}" is not wasm or typescript`);
  return loadModelFromFolder(v.model ?? DEMO_MODEL, {
    dtype: v.dtype as DType | undefined,
    kernels: v.kernels,
    contextLength: parseInt("context", v.context),
    ...(v.threads !== undefined ? { threads: parseInt("threads", v.threads) } : {}),
  });
}

async function logits(args: string[]) {
  const v = parse(args, { ids: { type: "string" }, out: { type: "string" } });
  if (v.help) return console.log(HELP.logits + "\n\n" + OPTIONS);
  const ids = parseIds(v.ids);
  if (!v.out) throw new UsageError("--out FILE.npy is required");
  const model = await load(v);
  const out = model.forward(model.newCache(), ids, { allPositions: true });
  await writeFile(v.out, encodeNpy(out, [ids.length, model.config.vocabSize]));
}

async function generate(args: string[]) {
  const v = parse(args, {
    ids: { type: "string" },
    prompt: { type: "string" },
    "max-new-tokens": { type: "string" },
    temperature: { type: "string" },
    seed: { type: "string" },
    "ignore-eos": { type: "boolean" },
    json: { type: "boolean" },
  });
  if (v.help) return console.log(HELP.generate + "\n\n" + OPTIONS);
  if ((v.ids === undefined) === (v.prompt === undefined)) throw new UsageError("give exactly one of --prompt TEXT or --ids 1,5,9");
  const opts = {
    maxNewTokens: parseInt("max-new-tokens", v["max-new-tokens"], 64)!,
    temperature: parseNumber("temperature", v.temperature, 0),
    seed: parseInt("seed", v.seed, 0),
    ignoreEos: v["ignore-eos"] ?? false,
  };
  const model = await load(v);
  const tokenizer = v.prompt !== undefined ? await loadTokenizerFromFolder(v.model ?? DEMO_MODEL) : undefined;
  const promptIds = tokenizer ? tokenizer.encode(v.prompt!) : parseIds(v.ids);
  const cache = model.newCache();
  if (promptIds.length > cache.capacity)
    throw new RangeError(`prompt too long: ${promptIds.length} tokens, but the context holds ${cache.capacity} (max_context_length)`);
  const room = cache.capacity - promptIds.length + 1; // the last new token needs no cache slot
  if (opts.maxNewTokens > room) process.stderr.write(`openelm: note: the context holds ${cache.capacity} tokens; stopping after ${room} new tokens\n`);
  const stream = tokenizer && !v.json ? new TextStream(tokenizer, promptIds[promptIds.length - 1]) : undefined;
  if (stream) process.stdout.write(v.prompt!);

  const ids: number[] = [];
  const t0 = performance.now();
  let tFirst = t0;
  for (const id of decode(model, cache, promptIds, { ...opts, maxNewTokens: Math.min(opts.maxNewTokens, room) })) {
    if (ids.length === 0) tFirst = performance.now();
    ids.push(id);
    if (stream) process.stdout.write(stream.push(id));
  }
  const t1 = performance.now();
  const timings = {
    prompt_tokens: promptIds.length,
    prefill_s: (tFirst - t0) / 1000,
    prefill_tok_s: promptIds.length / ((tFirst - t0) / 1000),
    new_tokens: ids.length,
    decode_s: (t1 - tFirst) / 1000,
    decode_tok_s: ids.length > 1 ? (ids.length - 1) / ((t1 - tFirst) / 1000) : undefined,
  };
  if (v.json) {
    console.log(JSON.stringify({ ids, ...(tokenizer ? { text: tokenizer.decode(ids) } : {}), timings }));
    return;
  }
  if (stream) process.stdout.write(stream.flush() + "\n");
  else console.log(ids.join(","));
  const f = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));
  process.stderr.write(
    `openelm: prompt ${timings.prompt_tokens} tokens in ${f(timings.prefill_s * 1000)} ms (${f(timings.prefill_tok_s)} tok/s); ` +
      `generated ${ids.length} tokens, ${f(timings.decode_tok_s)} tok/s decoding [${model.kernels.name}]\n`,
  );
}

async function info(args: string[]) {
  const v = parse(args, {});
  if (v.help) return console.log(HELP.info + "\n\n" + OPTIONS);
  const model = await load(v);
  const c = model.config, w = model.weights;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const dtypes = [...new Set([w.tokenEmbeddings, ...w.layers.flatMap((l) => [l.qkvProj, l.outProj, l.proj1, l.proj2])].map((t) => t.dtype))];
  const lines = [
    `model        ${v.model ?? DEMO_MODEL}`,
    `layers       ${c.numLayers}   model_dim ${c.modelDim}   head_dim ${c.headDim}   vocab ${c.vocabSize}   context ${c.maxContextLength}`,
    `attention    ${c.numGqaGroups === 1 ? "multi-head" : `grouped-query, ${c.numGqaGroups} query heads per kv head`}; QK-norm ${c.normalizeQk ? "yes" : "no"}; RoPE base ${c.ropeFreqConstant}`,
    `ffn          ${c.ffnWithGlu ? "gated (GLU)" : "plain"} ${c.activation}; embeddings ${c.shareInputOutput ? "shared with the output head" : "separate lm_head"}`,
    `parameters   ${parameterCount(c).toLocaleString("en-US")}`,
    `weights      ${dtypes.join(", ")} (norms f32)   kernels ${model.kernels.name}`,
    `memory       ${mib(model.arena.used)} in the arena (weights, activations, RoPE tables)`,
    ``,
    `layer  q_heads  kv_heads  ffn_mult  ffn_dim`,
    ...c.numQueryHeads.map((q, l) =>
      `${String(l).padStart(5)}  ${String(q).padStart(7)}  ${String(c.numKvHeads[l]).padStart(8)}  ${c.ffnMultipliers[l]!.toFixed(2).padStart(8)}  ${String(c.ffnDims[l]).padStart(7)}`),
  ];
  console.log(lines.join("\n"));
}

async function bench(args: string[]) {
  const v = parse(args, {
    shape: { type: "string" },
    prefill: { type: "string" },
    decode: { type: "string" },
    profile: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (v.help) return console.log(HELP.bench + "\n\n" + OPTIONS);
  if (!v.shape) throw new UsageError(`--shape is required: ${Object.keys(PRESETS).join(", ")} or a config.json`);
  const raw = PRESETS[v.shape] ?? JSON.parse(await readFile(v.shape, "utf8").catch(() => {
    throw new UsageError(`--shape: "${v.shape}" is neither a preset (${Object.keys(PRESETS).join(", ")}) nor a readable config.json`);
  }));
  const config = parseConfig(raw);
  const dtype = (v.dtype ?? "bf16") as DType;
  if (!DTYPES.includes(dtype)) throw new UsageError(`--dtype: "${v.dtype}" is not one of ${DTYPES.join(", ")}`);
  const prefill = parseInt("prefill", v.prefill, 128)!, decodeSteps = parseInt("decode", v.decode, 64)!;
  const context = parseInt("context", v.context);
  const threads = parseInt("threads", v.threads);
  const contextLength = Math.min(config.maxContextLength, Math.max(prefill, context ?? 0) + decodeSteps);
  const plan = planModel(config, () => dtype, contextLength);
  const { arena, kernels } = await createNodeKernels({
    ...(v.kernels === "typescript" ? { kernels: "typescript" as const } : {}),
    ...(threads !== undefined ? { threads } : {}),
  }, plan.memories);
  const profile = v.profile ? new KernelProfile(kernels, config.vocabSize) : undefined;
  const weights = randomWeights(config, arena, dtype, plan.layerMemory);
  const model = new Model(config, weights, arena, profile?.kernels ?? kernels, contextLength);
  const bandwidth = measureBandwidth(model);
  let speed = measureSpeed(model, { prefill, decode: Math.min(decodeSteps, 2), context }); // warm-up
  speed = measureSpeed(model, { prefill, decode: decodeSteps, context, beforeDecode: () => profile?.totals.clear() });
  const bytesPerToken = weightBytesPerToken(weights);
  const bound = bandwidth ? bandwidth * 1e9 / bytesPerToken : undefined;
  const result = {
    shape: v.shape,
    dtype,
    threads: (kernels as { threads?: number }).threads ?? 1,
    memories: plan.memories,
    kernels: kernels.name,
    parameters: parameterCount(config),
    ...speed,
    weight_bytes_per_token: bytesPerToken,
    bandwidth_gb_s: bandwidth,
    decode_bound_tok_s: bound,
    decode_fraction_of_bound: bound ? speed.decode_tok_s / bound : undefined,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    ...(profile ? { profile: profileTable(profile, decodeSteps) } : {}),
  };
  if (v.json) return console.log(JSON.stringify(result));
  const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
  console.log(`${v.shape} ${dtype} on ${result.kernels}: ${result.parameters.toLocaleString("en-US")} parameters`);
  console.log(`prefill ${prefill} tokens: ${f(speed.prefill_tok_s)} tok/s`);
  console.log(`decode ${decodeSteps} tokens from context ${speed.decode_context}: ${f(speed.decode_tok_s)} tok/s`);
  console.log(`bandwidth ${f(bandwidth)} GB/s; ${f(bytesPerToken / 2 ** 20)} MiB of weights per token; bound ${f(bound)} tok/s; reached ${f((result.decode_fraction_of_bound ?? NaN) * 100, 0)}%`);
  console.log(`peak RSS ${f(result.peak_rss_mb, 0)} MB`);
  if (result.profile) {
    console.log(`\nper decode step (mean of ${decodeSteps}):`);
    for (const row of result.profile) console.log(`  ${row.kernel.padEnd(22)} ${row.ms_per_step.toFixed(3).padStart(8)} ms  ${String(row.calls_per_step).padStart(4)} calls  ${(row.share * 100).toFixed(1).padStart(5)}%`);
  }
}

/** Per-kernel time per decode step, largest first; "other" is the step time outside kernels. */
function profileTable(p: KernelProfile, steps: number) {
  const rows = [...p.totals].map(([kernel, t]) => ({ kernel, ms_per_step: t.ms / steps, calls_per_step: Math.round(t.calls / steps) }));
  const total = rows.reduce((a, r) => a + r.ms_per_step, 0);
  return rows.sort((a, b) => b.ms_per_step - a.ms_per_step).map((r) => ({ ...r, share: r.ms_per_step / total }));
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { logits, generate, info, bench };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(", ")})`);
  await run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    const err = e as Error;
    process.stderr.write(`openelm: ${err instanceof UsageError ? "usage" : "error"}: ${err.message ?? String(e)}\n`);
    if (process.env.OPENELM_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
