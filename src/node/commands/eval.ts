// `openelm perplexity` and `openelm eval`: the paper's zero-shot tasks and perplexity, from local data,
// both read as streams so that a file of any size is processed in bounded memory.
import { Accuracy } from "../../eval/evaluate.js";
import { Scorer } from "../../eval/loglikelihood.js";
import { StridedPerplexity } from "../../eval/perplexity.js";
import { TASKS, TaskDataError, parseDocument } from "../../eval/tasks.js";
import { loadTokenizerFromFolder } from "../index.js";
import { textLines, textPieces } from "../text.js";
import { DEMO_MODEL, MODEL_HELP, UsageError, loadModel, parse, parseInteger, progressBar } from "./args.js";

export const HELP = {
  perplexity: `openelm perplexity [--model DIR] --file TEXT [--context N] [--stride S] [--json]
  Negative log-likelihood, perplexity and bits per byte of a UTF-8 text file (encoded with BOS), in windows
  of N tokens (default: max_context_length) every S tokens (default N); each token is scored once, with the
  window before it as context. The file is read as a stream, so any size works. --json prints
  {"tokens", "nll", "ppl", "bits_per_byte", ...}.`,
  eval: `openelm eval [--model DIR] --task ${Object.keys(TASKS).join("|")} --data FILE.jsonl [--limit N] [--json]
  Zero-shot accuracy as lm-evaluation-harness computes it (add_bos_token=True): acc and acc_norm (by the
  byte length of each choice) with standard errors. FILE.jsonl holds one document per line in the
  Hugging Face dataset's fields (see README); --limit N scores the first N documents.`,
};

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

export async function perplexity(args: string[]) {
  const v = parse(args, { file: { type: "string" }, stride: { type: "string" }, json: { type: "boolean" } });
  if (v.help) return console.log(`${HELP.perplexity}\n\n${MODEL_HELP}`);
  if (!v.file) throw new UsageError("--file TEXT is required");
  const window = parseInteger("context", v.context, undefined, 2);
  const stride = parseInteger("stride", v.stride, undefined, 1);
  if (window !== undefined && stride !== undefined && stride > window) throw new UsageError(`--stride: ${stride} is longer than the window (--context ${window})`);
  const model = await loadModel({ ...v, context: undefined });
  const tokenizer = await loadTokenizerFromFolder(v.model ?? DEMO_MODEL);
  const scorer = new StridedPerplexity(model, { context: window, stride });
  const progress = progressBar("scoring", mib);
  let bytes = 0, first = true;
  for await (const piece of textPieces(v.file)) {
    const ids = first ? tokenizer.encode(piece.text) : tokenizer.encodeContinuation(piece.text);
    first = false;
    scorer.push(tokenizer.checkIds(ids, model.config.vocabSize));
    bytes = piece.bytesRead;
    progress?.(piece.bytesRead, piece.size);
  }
  const r = scorer.finish();
  const result = { tokens: r.tokens, nll: r.nll, ppl: r.ppl, bits_per_byte: r.nll / Math.LN2 / bytes, bytes, context: scorer.context, stride: scorer.stride };
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
