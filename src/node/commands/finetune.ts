// `openelm finetune`: train a LoRA adapter for a model on chat conversations (JSONL in the OpenAI format,
// rendered with the model's chat template, the loss on the assistant's tokens only), written in peft's
// layout so that every command loads it with --adapter and Python loads it with PeftModel.
import { mkdir, readFile, stat } from "node:fs/promises";
import { LORA_TARGETS, MAX_RANK, encodeAdapter, readAdapter, type LoraTarget } from "../../formats/peft.js";
import { seededRandom } from "../../generation/sampler.js";
import { ChatDataError, parseChatJsonl, renderExample, type TrainingMessage } from "../../train/chat-data.js";
import type { Tokenizer } from "../../tokenizer.js";
import { LoraTrainer, initAdapter, type MaskedExample } from "../../train/lora.js";
import { lossCurveSvg, type LossPoint } from "../../train/plot.js";
import type { TrainingOptions } from "../../train/trainer.js";
import { loadModelFromFolder, loadTokenizerFromFolder } from "../index.js";
import { replaceFile } from "../files.js";
import { DEMO_MODEL, UsageError, adapterFolder, parse, parseInteger, parseNumber } from "./args.js";

export const HELP = {
  finetune: `openelm finetune [--model M] --data CHAT.jsonl --out DIR [options]
  Train a LoRA adapter (Hu et al.): each adapted projection W becomes W + (alpha/rank)·B·A with the base
  weights frozen. The data is one conversation per line, {"messages": [{"role": "system"|"user"|"assistant",
  "content": "..."}, ...]} as in the OpenAI format, rendered with the model's chat template (OpenELM-Instruct's
  by default); the loss counts the assistant's tokens only. 5% of the conversations are held out when there
  are 20 or more. DIR gets adapter_config.json and adapter_model.safetensors (peft's layout: load it with
  --adapter DIR in any command, or PeftModel.from_pretrained in Python), finetune-state.json and loss-curve.svg.
  --rank R (8)  --alpha A (2·rank)  --dropout P (0; DropConnect on A, see src/train/lora.ts)
  --targets LIST (${LORA_TARGETS.join(",")}, or all-linear)  --adapter DIR (start from that adapter, with its rank,
  alpha and targets; the optimizer and the schedule start anew)
  --steps N (100)  --batch B conversations per step (4)  --seq-len L tokens kept of each (512, at most the context)
  --lr LR (1e-3)  --min-lr (lr/10)  --warmup STEPS (steps/20)  --weight-decay (0)  --clip NORM (1, 0: off)
  --seed S (0)  --eval-every N (20)  -t, --threads N  --json (a summary as JSON at the end)`,
};

/** Largest chat file read (it is read whole). */
const MAX_DATA_BYTES = 1 << 30;

export async function finetune(args: string[]) {
  const v = parse(args, {
    data: { type: "string" }, out: { type: "string", short: "o" }, rank: { type: "string" }, alpha: { type: "string" }, dropout: { type: "string" },
    targets: { type: "string" }, steps: { type: "string" }, batch: { type: "string" }, "seq-len": { type: "string" }, lr: { type: "string" },
    "min-lr": { type: "string" }, warmup: { type: "string" }, "weight-decay": { type: "string" }, clip: { type: "string" }, seed: { type: "string" },
    "eval-every": { type: "string" }, json: { type: "boolean" },
  });
  if (v.help) return console.log(HELP.finetune);
  if (!v.data) throw new UsageError("--data CHAT.jsonl is required");
  if (!v.out) throw new UsageError("--out DIR is required (the adapter is written there)");
  if (v.adapter !== undefined && (v.rank ?? v.alpha ?? v.targets) !== undefined) throw new UsageError("--adapter continues an adapter with its own rank, alpha and targets; drop --rank, --alpha and --targets");
  const rank = parseInteger("rank", v.rank, 8, 1, MAX_RANK)!, alpha = parseNumber("alpha", v.alpha, 2 * rank, 0, Infinity, true)!;
  const dropout = parseNumber("dropout", v.dropout, 0, 0, 0.95)!;
  const targets = (v.targets === "all-linear" ? LORA_TARGETS.join(",") : (v.targets ?? LORA_TARGETS.join(","))).split(",").map((t) => t.trim());
  for (const t of targets) if (!(LORA_TARGETS as readonly string[]).includes(t)) throw new UsageError(`--targets: "${t}" is not one of ${LORA_TARGETS.join(", ")}`);
  const steps = parseInteger("steps", v.steps, 100, 1)!, lr = parseNumber("lr", v.lr, 1e-3, 0, 1, true)!;
  const opts: TrainingOptions = {
    steps, batch: parseInteger("batch", v.batch, 4, 1)!, seqLen: 0 /* below, once the model's context is known */, lr,
    minLr: parseNumber("min-lr", v["min-lr"], lr / 10, 0, lr)!, warmup: parseInteger("warmup", v.warmup, Math.ceil(steps / 20), 0)!,
    clip: parseNumber("clip", v.clip, 1)!, seed: parseInteger("seed", v.seed, 0, 0, 0xffffffff)!,
    adamw: { weightDecay: parseNumber("weight-decay", v["weight-decay"], 0, 0, 1)! },
  };
  const evalEvery = parseInteger("eval-every", v["eval-every"], 20, 1)!;
  const seqLen = parseInteger("seq-len", v["seq-len"], undefined, 2);
  const modelPath = v.model ?? DEMO_MODEL;

  // the conversations are checked before the model loads
  const size = await stat(v.data).then((s) => s.size, () => {
    throw new UsageError(`--data: cannot read ${v.data}`);
  });
  if (size > MAX_DATA_BYTES) throw new UsageError(`--data: ${v.data} has ${size.toLocaleString("en-US")} bytes, more than the 1 GiB openelm finetune reads`);
  const conversations = parseChatJsonl(await readFile(v.data, "utf8"), v.data);
  if (conversations.length === 0) throw new UsageError(`--data: ${v.data} has no conversations`);

  const model = await loadModelFromFolder(modelPath, { dtype: "f32", threads: v.threads === undefined ? undefined : parseInteger("threads", v.threads, undefined, 1, 256) });
  try {
    if (seqLen !== undefined && seqLen > model.config.maxContextLength)
      throw new UsageError(`--seq-len ${seqLen} is longer than the model's trained context (max_context_length ${model.config.maxContextLength})`);
    opts.seqLen = seqLen ?? Math.min(512, model.config.maxContextLength);
    const { trainSet, heldOut, skipped } = examplesOf(conversations, await loadTokenizerFromFolder(modelPath), opts, v.data), held = heldOut.length;
    const adapter = v.adapter !== undefined
      ? await readAdapter(await adapterFolder(v.adapter), model.config)
      : initAdapter(model, { rank, alpha, dropout, targets: [...new Set(targets as LoraTarget[])], baseModel: modelPath }, opts.seed);
    if (v.adapter !== undefined && v.dropout !== undefined) adapter.config.dropout = dropout;
    const trainer = new LoraTrainer(model, adapter, trainSet, opts);
    const log = (s: string) => process.stderr.write(s), history: LossPoint[] = [];
    const tokens = trainSet.reduce((a, e) => a + e.mask.filter(Boolean).length, 0);
    log(`fine-tuning ${adapter.pairs.size} projections (rank ${adapter.config.rank}, alpha ${adapter.config.alpha}) on ${trainSet.length} conversations (${tokens.toLocaleString("en-US")} assistant tokens)${held ? `, ${held} held out` : ""}${skipped ? `; ${skipped} skipped (no reply within --seq-len ${opts.seqLen})` : ""}\n`);
    await mkdir(v.out, { recursive: true });
    const t0 = performance.now();
    let seen = 0;
    while (trainer.step < opts.steps) {
      const r = trainer.trainStep();
      seen += r.tokens;
      const point: LossPoint = { step: r.step, train: r.loss };
      const evaluate = held > 0 && (r.step % evalEvery === 0 || r.step === opts.steps);
      if (evaluate) point.heldOut = trainer.heldOutLoss(heldOut);
      history.push(point);
      const line = `step ${r.step}/${opts.steps}  loss ${r.loss.toFixed(4)}${point.heldOut !== undefined ? `  held-out ${point.heldOut.toFixed(4)}` : ""}  lr ${r.lr.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}  ${(seen / ((performance.now() - t0) / 1000)).toFixed(0)} tok/s`;
      log(process.stderr.isTTY && !evaluate ? `\r${line}   ` : `${process.stderr.isTTY ? "\r" : ""}${line}\n`);
    }
    trainer.close();
    const put = (name: string, data: string | Uint8Array) => replaceFile(v.out!, name, data);
    for (const [name, data] of Object.entries(encodeAdapter(adapter))) await put(name, data);
    await put("finetune-state.json", JSON.stringify({ model: modelPath, data: v.data, options: opts, lora: adapter.config, history }, null, 1));
    await put("loss-curve.svg", lossCurveSvg(history, `openelm finetune: rank ${adapter.config.rank} on ${trainSet.length} conversations`));
    const last = history[history.length - 1]!;
    if (v.json) console.log(JSON.stringify({ steps: trainer.step, loss: last.train, held_out_loss: last.heldOut, conversations: trainSet.length, held_out: held, skipped, out: v.out }));
  } finally {
    await model.kernels.close();
  }
}

/**
 * The conversations rendered with the model's template and masked, those whose replies all fall past
 * seqLen skipped (counted), and 5% held out by a seeded shuffle once there are 20 or more.
 */
function examplesOf(conversations: TrainingMessage[][], tokenizer: Tokenizer, opts: TrainingOptions, file: string): { trainSet: MaskedExample[]; heldOut: MaskedExample[]; skipped: number } {
  const examples: MaskedExample[] = [];
  let skipped = 0;
  conversations.forEach((messages, i) => {
    try {
      examples.push(renderExample(messages, tokenizer, { template: tokenizer.chatTemplate, maxTokens: opts.seqLen }));
    } catch (e) {
      if (!(e instanceof ChatDataError)) throw e;
      if (e.truncated) skipped++;
      else throw new ChatDataError(`${file}: conversation ${i + 1}: ${e.message}`);
    }
  });
  if (examples.length === 0) throw new UsageError(`--data: no conversation of ${file} has an assistant reply within its first ${opts.seqLen} tokens (--seq-len)`);
  const order = examples.map((_, i) => i), random = seededRandom(opts.seed ^ 0x5eed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const held = examples.length >= 20 ? Math.ceil(examples.length / 20) : 0;
  return { trainSet: order.slice(held).map((i) => examples[i]!), heldOut: order.slice(0, held).map((i) => examples[i]!), skipped };
}
