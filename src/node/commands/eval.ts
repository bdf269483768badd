// `openelm perplexity` and `openelm eval`: the paper's zero-shot tasks and perplexity, from local data,
// both read as streams so that a file of any size is processed in bounded memory.
import { stat } from "node:fs/promises";
import { WEIGHT_TYPES, type WeightType } from "../../dtype.js";
import { Divergence } from "../../eval/divergence.js";
import { Accuracy } from "../../eval/evaluate.js";
import { Scorer } from "../../eval/loglikelihood.js";
import { StridedPerplexity } from "../../eval/perplexity.js";
import { TASKS, TaskDataError, parseDocument } from "../../eval/tasks.js";
import { loadTokenizerFromFolder } from "../index.js";
import { parseHubId } from "../../web/hub.js";
import type { Tokenizer } from "../../tokenizer.js";
import { textLines, textPieces } from "../text.js";
import { DEMO_MODEL, MODEL_HELP, UsageError, loadModel, parse, parseInteger, progressBar } from "./args.js";

export const HELP = {
  perplexity: `openelm perplexity [--model DIR] --file TEXT [--context N] [--stride S] [--kl-base T|PATH] [--json]
  Negative log-likelihood, perplexity and bits per byte of a UTF-8 text file (encoded with BOS), in windows
  of N tokens (default: max_context_length) every S tokens (default N); each token is scored once, with the
  window before it as context. The file is read as a stream, so any size works. --json prints
  {"tokens", "nll", "ppl", "bits_per_byte", ...}.
  --kl-base compares the model (as --dtype stores it) with a base model over the same windows, as
  llama.cpp's --kl-divergence does: the same model stored as T (e.g. f32), or another model folder or
  .gguf file with the same vocabulary. It prints both perplexities, the KL divergence of the base's
  next-token distribution from the model's (mean, median, 99th percentile, max) and how often their most
  likely tokens agree.`,
  eval: `openelm eval [--model DIR] --task ${Object.keys(TASKS).join("|")} --data FILE.jsonl [--limit N] [--json]
  Zero-shot accuracy as lm-evaluation-harness computes it (add_bos_token=True): acc and acc_norm (by the
  byte length of each choice) with standard errors. FILE.jsonl holds one document per line in the
  Hugging Face dataset's fields (see README); --limit N scores the first N documents.`,
};

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** --context and --stride: the window and its step (undefined: the scorer's defaults). */
function windowOptions(v: { context?: string; stride?: string }) {
  const context = parseInteger("context", v.context, undefined, 2), stride = parseInteger("stride", v.stride, undefined, 1);
  if (context !== undefined && stride !== undefined && stride > context) throw new UsageError(`--stride: ${stride} is longer than the window (--context ${context})`);
  return { context, stride };
}

/** Stream a text file into a windowed scorer as token ids (the first piece with BOS); returns its bytes. */
async function feedText(file: string, tokenizer: Tokenizer, vocabSize: number, scorer: { push(ids: number[]): void }, label: string): Promise<number> {
  const progress = progressBar(label, mib);
  let bytes = 0, first = true;
  for await (const piece of textPieces(file)) {
    const ids = first ? tokenizer.encode(piece.text) : tokenizer.encodeContinuation(piece.text);
    first = false;
    scorer.push(tokenizer.checkIds(ids, vocabSize));
    bytes = piece.bytesRead;
    progress?.(piece.bytesRead, piece.size);
  }
  return bytes;
}

export async function perplexity(args: string[]) {
  const v = parse(args, { file: { type: "string" }, stride: { type: "string" }, "kl-base": { type: "string" }, json: { type: "boolean" } });
  if (v.help) return console.log(`${HELP.perplexity}\n\n${MODEL_HELP}`);
  if (v["kl-base"] !== undefined) return divergence(v as typeof v & { "kl-base": string });
  if (!v.file) throw new UsageError("--file TEXT is required");
  const windows = windowOptions(v);
  const model = await loadModel({ ...v, context: undefined });
  const scorer = new StridedPerplexity(model, windows);
  const bytes = await feedText(v.file, await loadTokenizerFromFolder(v.model ?? DEMO_MODEL), model.config.vocabSize, scorer, "scoring");
  const r = scorer.finish();
  const result = { tokens: r.tokens, nll: r.nll, ppl: r.ppl, bits_per_byte: r.nll / Math.LN2 / bytes, bytes, context: scorer.context, stride: scorer.stride };
  if (v.json) return console.log(JSON.stringify(result));
  console.log(`${v.file}: ${bytes} bytes, ${r.tokens} tokens scored (window ${result.context}, stride ${result.stride})`);
  console.log(`nll ${r.nll.toFixed(3)} nats (${(r.nll / r.tokens).toFixed(4)} per token)   perplexity ${r.ppl.toFixed(3)}   bits per byte ${result.bits_per_byte.toFixed(4)}`);
}

const isHubId = (s: string) => {
  try {
    return Boolean(parseHubId(s));
  } catch {
    return false;
  }
};

/** `perplexity --kl-base`: the model against a base model, token by token. */
async function divergence(v: { file?: string; stride?: string; context?: string; model?: string; dtype?: string; kernels?: string; threads?: string; "kl-base": string; json?: boolean }) {
  if (!v.file) throw new UsageError("--file TEXT is required");
  const base = v["kl-base"], sameModel = WEIGHT_TYPES.includes(base as WeightType);
  if (!sameModel && !(await stat(base).catch(() => undefined)) && !isHubId(base))
    throw new UsageError(`--kl-base: "${base}" is neither a storage type (${WEIGHT_TYPES.join(", ")}) nor a model folder, .gguf file or hub id`);
  const windows = windowOptions(v);
  const model = await loadModel({ ...v, context: undefined });
  const baseModel = await loadModel(sameModel ? { ...v, dtype: base, context: undefined } : { ...v, model: base, dtype: undefined, context: undefined, adapter: undefined }, "loading the base");
  const scorer = new Divergence(model, baseModel, windows);
  await feedText(v.file, await loadTokenizerFromFolder(v.model ?? DEMO_MODEL), model.config.vocabSize, scorer, "comparing");
  const r = scorer.finish(), what = `${v.model ?? DEMO_MODEL}${v.dtype ? ` as ${v.dtype}` : ""}`, against = sameModel ? `the same weights as ${base}` : base;
  if (v.json) return console.log(JSON.stringify({ model: what, base: against, context: scorer.context, stride: scorer.stride, ...r }));
  const f = (x: number, d = 4) => x.toFixed(d);
  console.log(`${what} against ${against}: ${r.tokens} tokens of ${v.file} (window ${scorer.context}, stride ${scorer.stride})`);
  console.log(`perplexity ${f(r.ppl)} (base ${f(r.basePpl)}), ln(ppl / base ppl) ${f(r.lnPplRatio, 5)}`);
  console.log(`KL divergence per token: mean ${f(r.kl.mean, 6)} ± ${f(r.kl.stderr, 6)}, median ${f(r.kl.median, 6)}, 99% ${f(r.kl.p99, 6)}, max ${f(r.kl.max, 6)}`);
  console.log(`same most likely token: ${f(r.sameTop.fraction * 100, 2)}% ± ${f(r.sameTop.stderr * 100, 2)}%`);
}

export async function evalTask(args: string[]) {
  const v = parse(args, { task: { type: "string" }, data: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } });
  if (v.help) return console.log(`${HELP.eval}\n\n${MODEL_HELP}`);
  if (!v.task) throw new UsageError(`--task is required: ${Object.keys(TASKS).join(", ")}`);
  if (!TASKS[v.task]) throw new UsageError(`--task: unknown task "${v.task}" (tasks: ${Object.keys(TASKS).join(", ")})`);
  if (!v.data) throw new UsageError("--data FILE.jsonl is required");
  const limit = parseInteger("limit", v.limit, Infinity, 1);
  const model = await loadModel(v);
  const scorer = new Scorer(model, await loadTokenizerFromFolder(v.model ?? DEMO_MODEL));
  const accuracy = new Accuracy(), progress = progressBar(v.task, mib);
  for await (const { line, number, bytesRead, size } of textLines(v.data)) {
    const request = parseDocument(v.task, line, `${v.data} line ${number}`);
    if (request) accuracy.add(scorer, request);
    progress?.(bytesRead, size);
    if (accuracy.n >= limit!) break;
  }
  if (accuracy.n === 0) throw new TaskDataError(`${v.data}: no documents`);
  const r = accuracy.result();
  if (v.json) return console.log(JSON.stringify({ task: v.task, ...r }));
  const f = (x: number) => x.toFixed(4);
  console.log(`task              n      acc   stderr   acc_norm   stderr`);
  console.log(`${v.task.padEnd(14)} ${String(r.n).padStart(4)}   ${f(r.acc)}   ${f(r.acc_stderr)}     ${f(r.acc_norm)}   ${f(r.acc_norm_stderr)}`);
}
