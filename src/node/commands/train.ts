// `openelm train`: train an OpenELM from a config.json (random start) or a checkpoint on a text corpus,
// writing an ordinary Hugging Face-layout checkpoint that every other command loads, with the optimizer's
// state beside it so that a stopped run resumes where it was.
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../config.js";
import { encodeSafetensors } from "../../formats/safetensors.js";
import { seededRandom } from "../../generation/sampler.js";
import { expectedTensors } from "../../weights.js";
import { ngramPerplexity, tokenizeCorpus, windows, type TokenCorpus } from "../../train/data.js";
import type { AdamWState } from "../../train/optimizer.js";
import { lossCurveSvg, type LossPoint } from "../../train/plot.js";
import { Trainer, parameters, type TrainingOptions } from "../../train/trainer.js";
import type { OpenELM } from "../../model.js";
import { loadCorpus } from "../corpus.js";
import { fileSource, replaceFile } from "../files.js";
import { loadModelFromFolder, loadTokenizerFromFolder } from "../index.js";
import { readHeader } from "../../formats/safetensors.js";
import { parseJsonObject } from "../../formats/json.js";
import { UsageError, adapterFolder, parse, parseInteger, parseNumber } from "./args.js";

export const HELP = {
  train: `openelm train (--config CONFIG.json | --model DIR | --resume) --corpus NAME|PATH --out DIR [options]
  Train with AdamW (weight decay on matrices), linear warmup then cosine decay, gradient clipping and
  accumulation over the batch, on the Llama-2 tokens of a corpus (an installed one by name, a .txt file,
  a folder of them, or a .jsonl with "text"), 5% of its documents held out. --config starts from random
  weights (normal, std initializer_range); --model continues from a checkpoint (--adapter DIR: with a LoRA
  adapter merged in). Every --save-every steps
  and at the end, DIR gets config.json and model.safetensors (f32: load it with --model DIR), the
  optimizer's state, training-state.json (options and loss history), loss-curve.svg and the corpus's
  tokens; --resume (with --out DIR) continues a stopped run exactly.
  --steps N (1000)  --batch B sequences per step (8)  --seq-len L tokens each (128)
  --lr LR (3e-3)  --min-lr (lr/10)  --warmup STEPS (steps/20)  --weight-decay (0.1)  --clip NORM (1, 0: off)
  --seed S (0)  --eval-every N (100)  --eval-windows N held-out windows per evaluation (16)
  --save-every N (--eval-every)  --until STEP (stop and save there; --resume goes on)  --threads N
  --json (a summary as JSON at the end)`,
};

interface State {
  options: TrainingOptions;
  corpus: string;
  evalEvery: number;
  evalWindows: number;
  saveEvery: number;
  history: LossPoint[];
}

const STATE = "training-state.json", OPTIMIZER = "optimizer.safetensors", TOKENS = "corpus-tokens.json";

/**
 * The corpus as tokens, split; kept in the run's folder (tokenizing a 10 MB corpus takes about a minute),
 * so that --resume reads them back: ids as base64 of little-endian int32.
 */
async function corpusTokens(out: string, source: string, seed: number): Promise<TokenCorpus> {
  const path = join(out, TOKENS);
  if (existsSync(path)) {
    // a cache: one that does not parse, or was made from another corpus or seed, is made again
    const saved = (() => {
      try {
        return JSON.parse(readFileSync(path, "utf8")) as Omit<TokenCorpus, "train" | "heldOut"> & { source: string; seed: number; train: string; heldOut: string };
      } catch {
        return undefined;
      }
    })();
    const ids = (b64: unknown) => {
      const b = Buffer.from(typeof b64 === "string" ? b64 : "", "base64");
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2).slice();
    };
    if (saved?.source === source && saved.seed === seed && Number.isSafeInteger(saved.vocabSize)) {
      const corpus = { ...saved, train: ids(saved.train), heldOut: ids(saved.heldOut) };
      if (corpus.train.length > 0 && corpus.heldOut.length > 0) return corpus;
    }
  }
  process.stderr.write(`tokenizing ${source} ...\n`);
  const corpus = tokenizeCorpus(await loadCorpus(source), await loadTokenizerFromFolder(out), { seed });
  const b64 = (a: Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  await writeFile(path, JSON.stringify({ source, seed, vocabSize: corpus.vocabSize, documents: corpus.documents, train: b64(corpus.train), heldOut: b64(corpus.heldOut) }));
  return corpus;
}

export async function train(args: string[]) {
  const v = parse(args, {
    config: { type: "string" }, corpus: { type: "string" }, out: { type: "string", short: "o" }, resume: { type: "boolean" },
    steps: { type: "string" }, batch: { type: "string" }, "seq-len": { type: "string" }, lr: { type: "string" }, "min-lr": { type: "string" },
    warmup: { type: "string" }, "weight-decay": { type: "string" }, clip: { type: "string" }, seed: { type: "string" },
    "eval-every": { type: "string" }, "eval-windows": { type: "string" }, "save-every": { type: "string" }, until: { type: "string" }, json: { type: "boolean" },
  });
  if (v.help) return console.log(HELP.train);
  if (!v.out) throw new UsageError("--out DIR is required (the checkpoint is written there)");
  const out = v.out;
  const starts = [v.config !== undefined, v.model !== undefined, v.resume === true].filter(Boolean).length;
  if (v.adapter !== undefined && v.model === undefined) throw new UsageError("--adapter goes with --model DIR: training then starts from the model with the adapter merged");
  if (starts !== 1) throw new UsageError("give exactly one of --config CONFIG.json (a new model), --model DIR (continue from its weights) or --resume (the run in --out)");

  let state: State, optimizer: AdamWState | undefined;
  if (v.resume) {
    if (!existsSync(join(out, STATE))) throw new UsageError(`--resume: ${join(out, STATE)} does not exist (nothing to resume in ${out})`);
    state = readState(await readFile(join(out, STATE), "utf8"), join(out, STATE));
    optimizer = await readOptimizer(join(out, OPTIMIZER), state.history.length); // one point of history per step
    // --steps may extend a finished run; the rest of the options are the run's own
    state.options.steps = parseInteger("steps", v.steps, state.options.steps, 1)!;
  } else {
    if (!v.corpus) throw new UsageError("--corpus NAME|PATH is required");
    const steps = parseInteger("steps", v.steps, 1000, 1)!, lr = parseNumber("lr", v.lr, 3e-3, 0, 1, true)!;
    const evalEvery = parseInteger("eval-every", v["eval-every"], 100, 1)!;
    state = {
      options: {
        steps, batch: parseInteger("batch", v.batch, 8, 1)!, seqLen: parseInteger("seq-len", v["seq-len"], 128, 1)!, lr,
        minLr: parseNumber("min-lr", v["min-lr"], lr / 10, 0, lr)!, warmup: parseInteger("warmup", v.warmup, Math.ceil(steps / 20), 0)!,
        clip: parseNumber("clip", v.clip, 1)!, seed: parseInteger("seed", v.seed, 0, 0, 0xffffffff)!,
        adamw: { weightDecay: parseNumber("weight-decay", v["weight-decay"], 0.1, 0, 1)! },
      },
      corpus: v.corpus, evalEvery, evalWindows: parseInteger("eval-windows", v["eval-windows"], 16, 1)!,
      saveEvery: parseInteger("save-every", v["save-every"], evalEvery, 1)!, history: [],
    };
    await mkdir(out, { recursive: true });
    if (v.config) await startFromConfig(v.config, out, state.options.seed);
    else await startFromCheckpoint(v.model!, out, v.adapter);
  }

  const o = state.options, until = Math.min(o.steps, parseInteger("until", v.until, o.steps, 1)!);
  const model = await loadModelFromFolder(out, { dtype: "f32", threads: v.threads === undefined ? undefined : parseInteger("threads", v.threads, undefined, 1, 256) });
  try {
    if (o.seqLen + 1 > model.config.maxContextLength)
      throw new UsageError(`--seq-len ${o.seqLen}: each window holds ${o.seqLen + 1} tokens (${o.seqLen} predicted), more than the model's context (max_context_length ${model.config.maxContextLength})`);
    const corpus = await corpusTokens(out, state.corpus, o.seed);
    if (corpus.vocabSize > model.config.vocabSize)
      throw new UsageError(`the corpus's tokenizer has ${corpus.vocabSize} tokens and the model's vocabulary ${model.config.vocabSize} (vocab_size in config.json)`);
    const heldOut = windows(corpus.heldOut, o.seqLen).slice(0, state.evalWindows);
    if (optimizer)
      for (const [name, p] of parameters(model)) {
        const m = optimizer.m.get(name), v = optimizer.v.get(name);
        if (m?.length !== p.data.length || v?.length !== p.data.length) throw new UsageError(`${join(out, OPTIMIZER)}: the moments of ${name} are missing or the wrong size for the model in ${out}`);
      }
    const trainer = new Trainer(model, corpus.train, o, optimizer);
    const log = (s: string) => process.stderr.write(s);
    log(`training on ${corpus.train.length.toLocaleString("en-US")} tokens (${corpus.documents.train} documents), ${heldOut.length} held-out windows of ${o.seqLen}; ${o.steps} steps of ${o.batch} × ${o.seqLen} tokens\n`);
    let t0 = performance.now(), tokens = 0, stepSeconds = 0, stepTokens = 0;
    while (trainer.step < until) {
      const s0 = performance.now(), r = trainer.trainStep();
      stepSeconds += (performance.now() - s0) / 1000;
      stepTokens += r.tokens;
      tokens += r.tokens;
      const point: LossPoint = { step: r.step, train: r.loss };
      const evaluate = r.step % state.evalEvery === 0 || r.step === until;
      if (evaluate) point.heldOut = trainer.heldOutLoss(heldOut);
      state.history.push(point);
      const rate = tokens / ((performance.now() - t0) / 1000);
      const line = `step ${r.step}/${o.steps}  loss ${r.loss.toFixed(4)}${point.heldOut !== undefined ? `  held-out ${point.heldOut.toFixed(4)} (ppl ${Math.exp(point.heldOut).toFixed(1)})` : ""}  lr ${r.lr.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}  ${rate.toFixed(0)} tok/s`;
      if (process.stderr.isTTY && !evaluate) log(`\r${line}   `);
      else log(`${process.stderr.isTTY ? "\r" : ""}${line}\n`);
      if (r.step % state.saveEvery === 0 || r.step === until) {
        await save(out, trainer, state);
        [t0, tokens] = [performance.now(), 0]; // saving is not training time
      }
    }
    if (trainer.step === o.steps) await finalEvaluation(out, trainer, corpus, o.seqLen, log);
    const last = state.history[state.history.length - 1];
    // tok_s: tokens over the time of the training steps alone (no evaluation, no saving)
    if (v.json) console.log(JSON.stringify({ steps: trainer.step, loss: last?.train, held_out_loss: last?.heldOut, held_out_ppl: last?.heldOut === undefined ? undefined : Math.exp(last.heldOut), tok_s: stepTokens / stepSeconds, peak_rss_mb: process.resourceUsage().maxRSS / 1024, out }));
  } finally {
    await model.kernels.close();
  }
}

/**
 * At the end of a run: the model's perplexity on every held-out token (windows of seqLen + 1, each token
 * predicted once) beside a unigram and a bigram model counted on the training tokens, scoring the same
 * tokens; printed and written to DIR/evaluation.json.
 */
async function finalEvaluation(out: string, trainer: Trainer, corpus: TokenCorpus, seqLen: number, log: (s: string) => void) {
  log(`evaluating on all ${(corpus.heldOut.length - 1).toLocaleString("en-US")} held-out tokens ...\n`);
  const loss = trainer.heldOutLoss(windows(corpus.heldOut, seqLen)), base = ngramPerplexity(corpus.train, corpus.heldOut, trainer.model.config.vocabSize);
  const result = { steps: trainer.step, held_out_tokens: corpus.heldOut.length - 1, perplexity: Math.exp(loss), unigram: base.unigram, bigram: base.bigram };
  await writeFile(join(out, "evaluation.json"), JSON.stringify(result, null, 1) + "\n");
  log(`held-out perplexity ${result.perplexity.toFixed(1)} (unigram ${result.unigram.toFixed(1)}, bigram ${result.bigram.toFixed(1)} on the same tokens)\n`);
}

/** A new model: config.json copied and weights drawn from a normal of std initializer_range (norms 1), seeded. */
async function startFromConfig(configPath: string, out: string, seed: number) {
  const text = await readFile(configPath, "utf8").catch((e: Error) => {
    throw new UsageError(`--config: cannot read ${configPath}: ${e.message}`);
  });
  const raw = JSON.parse(text) as Record<string, unknown>, config = parseConfig(raw);
  const std = typeof raw.initializer_range === "number" ? raw.initializer_range : 0.02, random = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()); // Box–Muller
  const tensors = [...expectedTensors(config)].map(([name, shape]) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = normal() * std;
    return { name, dtype: "f32" as const, shape, data: new Uint8Array(data.buffer) };
  });
  await writeFile(join(out, "config.json"), text);
  await writeFile(join(out, "model.safetensors"), encodeSafetensors(tensors));
}

/** Continue from a checkpoint: its config.json, and its weights widened to f32 (with an adapter merged in). */
async function startFromCheckpoint(dir: string, out: string, adapter?: string) {
  const model = await loadModelFromFolder(dir, { dtype: "f32", ...(adapter !== undefined ? { adapter: await adapterFolder(adapter) } : {}) });
  try {
    await copyFile(join(dir, "config.json"), join(out, "config.json"));
    await writeFile(join(out, "model.safetensors"), weightsFile(model));
  } finally {
    await model.kernels.close();
  }
}

const weightsFile = (model: OpenELM) =>
  encodeSafetensors([...parameters(model)].map(([name, p]) => ({ name, dtype: "f32" as const, shape: p.shape, data: new Uint8Array(p.data.slice().buffer) })));

/** The weights, the optimizer's moments, the state and the loss curve; each file replaced whole (written aside, then renamed). */
async function save(out: string, trainer: Trainer, state: State) {
  const put = (name: string, data: string | Uint8Array) => replaceFile(out, name, data);
  const s = trainer.optimizer.state, params = parameters(trainer.model);
  await put("model.safetensors", weightsFile(trainer.model));
  await put(OPTIMIZER, encodeSafetensors(
    [...s.m.keys()].flatMap((name) => [
      { name: `m.${name}`, dtype: "f32" as const, shape: params.get(name)!.shape, data: new Uint8Array(s.m.get(name)!.buffer) },
      { name: `v.${name}`, dtype: "f32" as const, shape: params.get(name)!.shape, data: new Uint8Array(s.v.get(name)!.buffer) },
    ]),
  ));
  await put(STATE, JSON.stringify(state, null, 1));
  await put("loss-curve.svg", lossCurveSvg(state.history, `openelm train: ${state.corpus}, ${state.options.batch} × ${state.options.seqLen} tokens per step`));
}

/** training-state.json, checked field by field: a damaged file is named, not trusted. */
export function readState(text: string, file: string): State {
  const raw = parseJsonObject(text, file);
  const bad = (field: string, what: string): never => {
    throw new UsageError(`${file}: "${field}" must be ${what} (the file is damaged; start the run again without --resume)`);
  };
  const int = (v: unknown, field: string, min: number) => (Number.isSafeInteger(v) && (v as number) >= min ? (v as number) : bad(field, `an integer ≥ ${min}`));
  const num = (v: unknown, field: string, min: number) => (typeof v === "number" && Number.isFinite(v) && v >= min ? v : bad(field, `a number ≥ ${min}`));
  const o = (typeof raw.options === "object" && raw.options !== null && !Array.isArray(raw.options) ? raw.options : bad("options", "an object")) as Record<string, unknown>;
  const adamw = o.adamw as { weightDecay?: unknown } | undefined;
  const options: TrainingOptions = {
    steps: int(o.steps, "options.steps", 1), batch: int(o.batch, "options.batch", 1), seqLen: int(o.seqLen, "options.seqLen", 1),
    lr: num(o.lr, "options.lr", 0), minLr: num(o.minLr, "options.minLr", 0), warmup: int(o.warmup, "options.warmup", 0),
    clip: num(o.clip, "options.clip", 0), seed: int(o.seed, "options.seed", 0),
    adamw: { weightDecay: num(adamw?.weightDecay ?? 0.1, "options.adamw.weightDecay", 0) },
  };
  if (!Array.isArray(raw.history)) bad("history", "an array");
  const history = (raw.history as unknown[]).map((p, i): LossPoint => {
    const q = (typeof p === "object" && p !== null ? p : bad(`history[${i}]`, "an object")) as Record<string, unknown>;
    if (q.step !== i + 1) bad(`history[${i}].step`, `${i + 1}`);
    const point: LossPoint = { step: i + 1, train: num(q.train, `history[${i}].train`, 0) };
    if (q.heldOut !== undefined) point.heldOut = num(q.heldOut, `history[${i}].heldOut`, 0);
    return point;
  });
  if (history.length > options.steps) bad("history", `at most options.steps (${options.steps}) points long`);
  return {
    options, history, corpus: typeof raw.corpus === "string" ? raw.corpus : bad("corpus", "a string"),
    evalEvery: int(raw.evalEvery, "evalEvery", 1), evalWindows: int(raw.evalWindows, "evalWindows", 1), saveEvery: int(raw.saveEvery, "saveEvery", 1),
  };
}

/** The optimizer's moments from optimizer.safetensors, after `step` steps. */
async function readOptimizer(path: string, step: number): Promise<AdamWState> {
  const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
  for (const e of await readHeader(await fileSource(path))) {
    if (e.dtype !== "f32" || !/^[mv]\./.test(e.name)) throw new UsageError(`${path}: tensor "${e.name}" (${e.dtype}) is not an f32 moment "m.NAME" or "v.NAME"`);
    const data = new Float32Array(e.bytes / 4);
    await e.read(0, new Uint8Array(data.buffer));
    (e.name.startsWith("m.") ? m : v).set(e.name.slice(2), data);
  }
  return { step, m, v };
}
