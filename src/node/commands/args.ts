// Shared pieces of the command line: option parsing with one-line usage errors, model loading with a
// progress bar, and the sampling options every generating command takes.
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { MAX } from "../../config.js";
import { WEIGHT_TYPES, type WeightType } from "../../dtype.js";
import { MAX_THREADS } from "../../load.js";
import type { GenerateOptions } from "../../generation/stream.js";
import type { OpenELM } from "../../model.js";
import { readText, type ModelFiles } from "../../files.js";
import { parseGenerationConfig, type GenerationDefaults } from "../../generation/generation-config.js";
import { folderFiles, loadModelFromFolder, localModelPath, type HubDownloadProgress } from "../index.js";

export class UsageError extends Error {}

/** The model that ships with the package, used when --model is not given (trained here on State of the Union addresses; see README). */
export const DEMO_MODEL = fileURLToPath(new URL("../../../ref/trained/elm-sotu", import.meta.url));

export const modelOptions = {
  model: { type: "string", short: "m" },
  dtype: { type: "string" },
  kernels: { type: "string", default: "wasm" },
  context: { type: "string" },
  threads: { type: "string", short: "t" },
  adapter: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const MODEL_HELP = `Model options:
  -m, --model M     a Hugging Face OpenELM folder (config.json + safetensors), a .gguf file, or a hub id
                    org/name[@revision] (org/name:Q4_K_M: a GGUF repository's file of that quantization),
                    downloaded into the Hugging Face cache as Python's huggingface_hub does (HF_HUB_CACHE,
                    HF_HOME, HF_TOKEN, HF_ENDPOINT; HF_HUB_OFFLINE=1: the cache only); default: the bundled
                    demo model
  --dtype T         store weight matrices as f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k or q4_k_m
                    (llama.cpp's mix), converted while loading (default: as the files hold them)
  --kernels K       wasm (SIMD, default) or typescript (the readable reference kernels)
  --context N       cap a sequence at N positions (default: no cap; past max_context_length the model
                    goes on as Apple's code does, with a warning, and the KV cache grows as needed)
  -t, --threads N   threads for the SIMD kernels, 1 to ${MAX_THREADS} (default: all cores)
  --adapter DIR     a LoRA adapter in peft's layout (openelm finetune writes one), merged as the weights load`;

export const samplingOptions = {
  "max-new-tokens": { type: "string", short: "n" },
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

export const SAMPLING_HELP = `Sampling options (defaults from the model folder's generation_config.json when it has one,
as transformers takes them; an option given here wins):
  -n, --max-new-tokens N    stop after N new tokens (default 64)
  --temperature T           0 (default) is greedy; above 0 samples from softmax(logits / T)
  --top-k K, --top-p P, --min-p P    restrict sampling to the K most likely tokens, the nucleus of mass P,
                            tokens at least P times as likely as the best
  --repetition-penalty R    Hugging Face semantics over the context (the OpenELM card suggests 1.2)
  --frequency-penalty F, --presence-penalty P    subtract F per occurrence / P once, for generated tokens
                            (-2 to 2, as in the OpenAI API)
  --logit-bias ID:B,...     add B to the logit of token ID (-inf bans it)
  --seed S                  random seed, 0 to 4294967295 (default 0): same seed, same text
  --stop TEXT               stop before TEXT (repeatable)
  --ignore-eos              keep going after the end-of-sequence token`;

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T) {
  const all = { ...modelOptions, ...options };
  // "--frequency-penalty -1": a negative number right after an option that takes a value is that value
  const takesValue = (a: string) => a.startsWith("--") && !a.includes("=") && (all as Record<string, { type: string }>)[a.slice(2)]?.type === "string";
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++)
    joined.push(takesValue(args[i]!) && /^-(\d|\.\d|inf)/i.test(args[i + 1] ?? "") ? `${args[i]}=${args[++i]}` : args[i]!);
  try {
    return parseArgs({ args: joined, options: all, allowPositionals: false, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
}

/** An integer option from `min` to `max` (default: any non-negative safe integer). */
export function parseInteger(name: string, s: string | undefined, fallback?: number, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!/^\+?\d+$/.test(s.trim()) || !Number.isSafeInteger(v) || v < min || v > max)
    throw new UsageError(`--${name}: ${JSON.stringify(s)} is not an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max.toLocaleString("en-US")}`}`);
  return v;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A finite number option in [min, max] (`open`: min itself excluded). */
export function parseNumber(name: string, s: string | undefined, fallback?: number, min = 0, max = Infinity, open = false): number | undefined {
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!DECIMAL.test(s.trim()) || !Number.isFinite(v) || v < min || (open && v === min) || v > max) {
    const range = max === Infinity ? `${open ? "above" : "at least"} ${min}` : `in ${open ? "(" : "["}${min}, ${max}]`;
    throw new UsageError(`--${name}: ${JSON.stringify(s)} is not a number ${range}`);
  }
  return v;
}

export function parseIds(s: string | undefined): number[] {
  if (s === undefined) throw new UsageError("--ids is required (comma-separated token ids, e.g. --ids 1,5,9)");
  const ids = s.split(",").map((t) => t.trim());
  for (const t of ids) if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t))) throw new UsageError(`--ids: "${t}" is not a token id (comma-separated non-negative integers)`);
  return ids.map(Number);
}

type SamplingValues = { [K in keyof typeof samplingOptions]?: (typeof samplingOptions)[K] extends { multiple: true } ? string[] : (typeof samplingOptions)[K] extends { type: "boolean" } ? boolean : string };

/** `--logit-bias 13:-inf,450:2.5`: integer ids (checked against the vocabulary once the model is loaded), finite biases or ±inf. */
function parseLogitBias(s: string | undefined): Record<number, number> {
  const bias: Record<number, number> = {};
  for (const pair of s?.split(",") ?? []) {
    const m = /^\s*(\d+)\s*:\s*(\S+)\s*$/.exec(pair);
    const value = m && (/^[+-]?inf(inity)?$/i.test(m[2]!) ? (m[2]!.startsWith("-") ? -Infinity : Infinity) : DECIMAL.test(m[2]!) ? Number(m[2]) : NaN);
    if (!m || !Number.isSafeInteger(Number(m[1])) || Number.isNaN(value))
      throw new UsageError(`--logit-bias: ${JSON.stringify(pair)} is not ID:BIAS with an integer id and a number or ±inf (e.g. 13:-inf,450:2.5)`);
    bias[Number(m[1])] = value!;
  }
  return bias;
}

export function parseSampling(v: SamplingValues, defaults: GenerationDefaults = {}): GenerateOptions & { maxNewTokens: number } {
  for (const stop of v.stop ?? []) if (stop === "") throw new UsageError("--stop: an empty stop string would stop before the first token");
  return {
    maxNewTokens: parseInteger("max-new-tokens", v["max-new-tokens"], defaults.maxNewTokens ?? 64)!,
    temperature: parseNumber("temperature", v.temperature, defaults.temperature ?? 0),
    topK: parseInteger("top-k", v["top-k"], defaults.topK),
    topP: parseNumber("top-p", v["top-p"], defaults.topP, 0, 1, true),
    minP: parseNumber("min-p", v["min-p"], defaults.minP, 0, 1),
    repetitionPenalty: parseNumber("repetition-penalty", v["repetition-penalty"], defaults.repetitionPenalty, 0, Infinity, true),
    frequencyPenalty: parseNumber("frequency-penalty", v["frequency-penalty"], undefined, -2, 2),
    presencePenalty: parseNumber("presence-penalty", v["presence-penalty"], undefined, -2, 2),
    logitBias: parseLogitBias(v["logit-bias"]),
    seed: parseInteger("seed", v.seed, 0, 0, 2 ** 32 - 1),
    stop: v.stop,
    ignoreEos: v["ignore-eos"] ?? false,
  };
}

/** The sampling defaults of a local model folder's generation_config.json, if it has one (options given on the command line win). */
export async function generationDefaults(path: string): Promise<GenerationDefaults> {
  if (!(await stat(path).then((s) => s.isDirectory(), () => false))) return {};
  const text = await readText(await folderFiles(path), "generation_config.json");
  return text === undefined ? {} : parseGenerationConfig(text, `${path}/generation_config.json`);
}

/** Token ids of a --logit-bias must be in the model's vocabulary. */
export function checkLogitBias(bias: Record<number, number> | undefined, vocabSize: number): void {
  const bad = Object.keys(bias ?? {}).map(Number).find((id) => id >= vocabSize);
  if (bad !== undefined) throw new UsageError(`--logit-bias: token id ${bad} is not in the model's vocabulary (0 to ${vocabSize - 1})`);
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

/** A progress bar on stderr for each file downloaded from the hub, redrawn at most ten times a second. */
function downloadBars(): (p: HubDownloadProgress) => void {
  let file = "", bar: ReturnType<typeof progressBar>, drawn = 0;
  return (p) => {
    if (p.file !== file) {
      const unit = p.total < 2 ** 20 ? (b: number) => `${(b / 1024).toFixed(0)} KiB` : (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
      [file, bar] = [p.file, progressBar(`downloading ${p.file}`, unit)];
    }
    if (p.loaded < p.total && performance.now() - drawn < 100) return;
    drawn = performance.now();
    bar?.(p.loaded, p.total);
  };
}

type ModelValues = { model?: string; dtype?: string; kernels?: string; context?: string; threads?: string; adapter?: string };

function checkModelOptions(v: ModelValues): void {
  if (v.dtype !== undefined && !WEIGHT_TYPES.includes(v.dtype as WeightType)) throw new UsageError(`--dtype: "${v.dtype}" is not one of ${WEIGHT_TYPES.join(", ")}`);
  if (v.kernels !== "wasm" && v.kernels !== "typescript") throw new UsageError(`--kernels: "${v.kernels}" is not wasm or typescript`);
}

/** --model as a local path, a hub id downloaded first (with progress bars), once its options are checked. */
export async function resolveModel(v: ModelValues): Promise<string> {
  checkModelOptions(v);
  return localModelPath(v.model ?? DEMO_MODEL, { onDownload: downloadBars() });
}

export async function loadModel(v: ModelValues, label = "loading"): Promise<OpenELM> {
  checkModelOptions(v);
  const threads = parseInteger("threads", v.threads, undefined, 1, MAX_THREADS);
  return loadModelFromFolder(v.model ?? DEMO_MODEL, {
    dtype: v.dtype as WeightType | undefined,
    kernels: v.kernels as "wasm" | "typescript",
    contextLength: parseInteger("context", v.context, undefined, 1, MAX.context),
    ...(threads !== undefined ? { threads } : {}),
    onProgress: progressBar(label, (b) => `${(b / 2 ** 20).toFixed(0)} MiB`),
    onDownload: downloadBars(),
    ...(v.adapter !== undefined ? { adapter: await adapterFolder(v.adapter) } : {}),
  });
}

/** An adapter folder given by --adapter, checked to exist. */
export async function adapterFolder(path: string): Promise<ModelFiles> {
  if (!(await stat(path).then((s) => s.isDirectory(), () => false))) throw new UsageError(`--adapter: ${path} is not a folder (an adapter folder holds adapter_config.json and adapter_model.safetensors)`);
  return folderFiles(path);
}

/** For commands that load no model's weights: --adapter would be silently ignored, so it is refused. */
export function refuseAdapter(v: { adapter?: string }, command: string): void {
  if (v.adapter !== undefined) throw new UsageError(`--adapter: openelm ${command} loads no model weights to merge an adapter into`);
}
