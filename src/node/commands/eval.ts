// `openelm perplexity` and `openelm eval`: the paper's zero-shot tasks and perplexity, from local data.
import { readFile } from "node:fs/promises";
import { evaluate } from "../../eval/evaluate.js";
import { Scorer } from "../../eval/loglikelihood.js";
import { perplexity as measurePerplexity } from "../../eval/perplexity.js";
import { TASKS, readTask } from "../../eval/tasks.js";
import { loadTokenizerFromFolder } from "../index.js";
import { DEMO_MODEL, MODEL_HELP, UsageError, loadModel, parse, parseInteger, progressBar } from "./args.js";

export const HELP = {
  perplexity: `openelm perplexity [--model DIR] --file TEXT [--context N] [--stride S] [--json]
  Negative log-likelihood, perplexity and bits per byte of a UTF-8 text file (encoded with BOS), in windows
  of N tokens (default: the context) every S tokens (default N); each token is scored once, with the
  window before it as context. --json prints {"tokens", "nll", "ppl", "bits_per_byte", ...}.`,
  eval: `openelm eval [--model DIR] --task ${Object.keys(TASKS).join("|")} --data FILE.jsonl [--limit N] [--json]
  Zero-shot accuracy as lm-evaluation-harness computes it (add_bos_token=True): acc and acc_norm (by the
  byte length of each choice) with standard errors. FILE.jsonl holds one document per line in the
  Hugging Face dataset's fields (see README).`,
};

const readText = (file: string) => readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
  throw new UsageError(`cannot read ${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
});

export async function perplexity(args: string[]) {
  const v = parse(args, { file: { type: "string" }, stride: { type: "string" }, json: { type: "boolean" } });
  if (v.help) return console.log(`${HELP.perplexity}\n\n${MODEL_HELP}`);
  if (!v.file) throw new UsageError("--file TEXT is required");
  const text = await readText(v.file);
  const model = await loadModel({ ...v, context: undefined });
  const tokenizer = await loadTokenizerFromFolder(v.model ?? DEMO_MODEL);
  const ids = tokenizer.encode(text);
  const context = parseInteger("context", v.context, model.contextLength)!;
  const r = measurePerplexity(model, ids, { context, stride: parseInteger("stride", v.stride), onProgress: progressBar("scoring", (n) => `${n} tokens`) });
  const bytes = new TextEncoder().encode(text).length;
  const result = { tokens: r.tokens, nll: r.nll, ppl: r.ppl, bits_per_byte: r.nll / Math.LN2 / bytes, bytes, context, stride: parseInteger("stride", v.stride, context) };
  if (v.json) return console.log(JSON.stringify(result));
  console.log(`${v.file}: ${bytes} bytes, ${r.tokens} tokens scored (window ${result.context}, stride ${result.stride})`);
  console.log(`nll ${r.nll.toFixed(3)} nats (${(r.nll / r.tokens).toFixed(4)} per token)   perplexity ${r.ppl.toFixed(3)}   bits per byte ${result.bits_per_byte.toFixed(4)}`);
}

export async function evalTask(args: string[]) {
  const v = parse(args, { task: { type: "string" }, data: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } });
  if (v.help) return console.log(`${HELP.eval}\n\n${MODEL_HELP}`);
  if (!v.task) throw new UsageError(`--task is required: ${Object.keys(TASKS).join(", ")}`);
  if (!TASKS[v.task]) throw new UsageError(`--task: unknown task "${v.task}" (tasks: ${Object.keys(TASKS).join(", ")})`);
  if (!v.data) throw new UsageError("--data FILE.jsonl is required");
  let requests = readTask(v.task, await readText(v.data), v.data);
  const limit = parseInteger("limit", v.limit);
  if (limit !== undefined) requests = requests.slice(0, limit);
  const model = await loadModel(v);
  const scorer = new Scorer(model, await loadTokenizerFromFolder(v.model ?? DEMO_MODEL));
  const r = evaluate(scorer, requests, progressBar(v.task, (n) => `${n} docs`));
  if (v.json) return console.log(JSON.stringify({ task: v.task, ...r }));
  const f = (x: number) => x.toFixed(4);
  console.log(`task              n      acc   stderr   acc_norm   stderr`);
  console.log(`${v.task.padEnd(14)} ${String(r.n).padStart(4)}   ${f(r.acc)}   ${f(r.acc_stderr)}     ${f(r.acc_norm)}   ${f(r.acc_norm_stderr)}`);
}
