// Shared pieces of the command line: option parsing with one-line usage errors, model loading with a
// progress bar, and the sampling options every generating command takes.
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { DTYPES, type DType } from "../../dtype.js";
import type { GenerateOptions } from "../../generation/stream.js";
import type { OpenELM } from "../../model.js";
import { loadModelFromFolder } from "../index.js";

export class UsageError extends Error {}

/** The model that ships with the package, used when --model is not given (random weights; see README). */
export const DEMO_MODEL = fileURLToPath(new URL("../../../ref/oracle/elm-tiny-32k", import.meta.url));

export const modelOptions = {
  model: { type: "string" },
  dtype: { type: "string" },
  kernels: { type: "string", default: "wasm" },
  context: { type: "string" },
  threads: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const MODEL_HELP = `Model options:
  --model DIR       Hugging Face OpenELM folder (config.json + safetensors); default: the bundled demo model
  --dtype T         keep weight matrices as f32, f16 or bf16 in memory (default: as stored)
  --kernels K       wasm (SIMD, default) or typescript (the readable reference kernels)
  --context N       cap the context (KV cache) below max_context_length
  --threads N       threads for the SIMD kernels (default: all cores)`;

export const samplingOptions = {
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repetition-penalty": { type: "string" },
  "frequency-penalty": { type: "string" },
  "presence-penalty": { type: "string" },
  "logit-bias": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  "ignore-eos": { type: "boolean" },
} as const;

export const SAMPLING_HELP = `Sampling options:
  --max-new-tokens N        stop after N new tokens (default 64)
  --temperature T           0 (default) is greedy; above 0 samples from softmax(logits / T)
  --top-k K, --top-p P, --min-p P    restrict sampling to the K most likely tokens, the nucleus of mass P,
                            tokens at least P times as likely as the best
  --repetition-penalty R    Hugging Face semantics over the context (the OpenELM card suggests 1.2)
  --frequency-penalty F, --presence-penalty P    subtract F per occurrence / P once, for generated tokens
  --logit-bias ID:B,...     add B to the logit of token ID (-inf bans it)
  --seed S                  random seed (default 0): same seed, same text
  --stop TEXT               stop before TEXT (repeatable)
  --ignore-eos              keep going after the end-of-sequence token`;

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...modelOptions, ...options }, allowPositionals: false, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function parseInteger(name: string, s: string | undefined, fallback?: number): number | undefined {
  if (s === undefined) return fallback;
  if (!/^\d+$/.test(s)) throw new UsageError(`--${name}: "${s}" is not a non-negative integer`);
  return Number(s);
}

export function parseNumber(name: string, s: string | undefined, fallback?: number): number | undefined {
  if (s === undefined) return fallback;
  const v = Number(s);
  if (s.trim() === "" || !Number.isFinite(v) || v < 0) throw new UsageError(`--${name}: "${s}" is not a non-negative number`);
  return v;
}

export function parseIds(s: string | undefined): number[] {
  if (s === undefined) throw new UsageError("--ids is required (comma-separated token ids, e.g. --ids 1,5,9)");
  const ids = s.split(",").map((t) => t.trim());
  for (const t of ids) if (!/^\d+$/.test(t)) throw new UsageError(`--ids: "${t}" is not a token id (comma-separated non-negative integers)`);
  return ids.map(Number);
}

type SamplingValues = { [K in keyof typeof samplingOptions]?: (typeof samplingOptions)[K] extends { multiple: true } ? string[] : (typeof samplingOptions)[K] extends { type: "boolean" } ? boolean : string };

export function parseSampling(v: SamplingValues): GenerateOptions & { maxNewTokens: number } {
  const bias: Record<number, number> = {};
  for (const pair of v["logit-bias"]?.split(",") ?? []) {
    const m = /^\s*(\d+)\s*:\s*(-?(?:inf|[\d.e+-]+))\s*$/i.exec(pair);
    if (!m) throw new UsageError(`--logit-bias: "${pair}" is not ID:BIAS (e.g. 13:-inf,450:2.5)`);
    bias[Number(m[1])] = /inf/i.test(m[2]!) ? (m[2]!.startsWith("-") ? -Infinity : Infinity) : Number(m[2]);
  }
  const topP = parseNumber("top-p", v["top-p"]);
  if (topP !== undefined && (topP <= 0 || topP > 1)) throw new UsageError(`--top-p: ${topP} is not in (0, 1]`);
  const minP = parseNumber("min-p", v["min-p"]);
  if (minP !== undefined && minP > 1) throw new UsageError(`--min-p: ${minP} is not in [0, 1]`);
  const rep = parseNumber("repetition-penalty", v["repetition-penalty"]);
  if (rep === 0) throw new UsageError("--repetition-penalty: must be above 0");
  return {
    maxNewTokens: parseInteger("max-new-tokens", v["max-new-tokens"], 64)!,
    temperature: parseNumber("temperature", v.temperature, 0),
    topK: parseInteger("top-k", v["top-k"]),
    topP,
    minP,
    repetitionPenalty: rep,
    frequencyPenalty: parseNumber("frequency-penalty", v["frequency-penalty"]),
    presencePenalty: parseNumber("presence-penalty", v["presence-penalty"]),
    logitBias: bias,
    seed: parseInteger("seed", v.seed, 0),
    stop: v.stop,
    ignoreEos: v["ignore-eos"] ?? false,
  };
}

/**
 * A progress bar on stderr with elapsed time and ETA (only on a terminal, so logs stay clean).
 * `unit` formats the counts, e.g. bytes as MiB.
 */
export function progressBar(label: string, unit: (n: number) => string = String): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = performance.now();
  return (done, total) => {
    const width = 30, filled = Math.round((done / total) * width), s = (performance.now() - t0) / 1000;
    const eta = done > 0 && done < total ? ` ETA ${((s * (total - done)) / done).toFixed(0)} s` : "";
    process.stderr.write(`\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${unit(done)}/${unit(total)} ${s.toFixed(1)} s${eta}   `);
    if (done === total) process.stderr.write("\n");
  };
}

export async function loadModel(v: { model?: string; dtype?: string; kernels?: string; context?: string; threads?: string }, label = "loading"): Promise<OpenELM> {
  if (v.dtype !== undefined && !DTYPES.includes(v.dtype as DType)) throw new UsageError(`--dtype: "${v.dtype}" is not one of ${DTYPES.join(", ")}`);
  if (v.kernels !== "wasm" && v.kernels !== "typescript") throw new UsageError(`--kernels: "${v.kernels}" is not wasm or typescript`);
  const threads = parseInteger("threads", v.threads);
  return loadModelFromFolder(v.model ?? DEMO_MODEL, {
    dtype: v.dtype as DType | undefined,
    kernels: v.kernels,
    contextLength: parseInteger("context", v.context),
    ...(threads !== undefined ? { threads } : {}),
    onProgress: progressBar(label, (b) => `${(b / 2 ** 20).toFixed(0)} MiB`),
  });
}
