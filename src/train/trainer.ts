// The training loop: each step samples `batch` sequences, adds up their gradients (gradient accumulation:
// one sequence at a time, so memory does not grow with the batch), clips them, and takes an AdamW step on
// the model's own f32 weights in the arena, which the next forward pass then uses.
import type { OpenELM } from "../model.js";
import { seededRandom } from "../generation/sampler.js";
import { sampleSequences } from "./data.js";
import { Gradients, accumulateGradients, meanLoss, namedWeights } from "./gradients.js";
import { AdamW, clipGradients, learningRate, type AdamWOptions, type AdamWState } from "./optimizer.js";

/** What `openelm train` exposes (see its --help for the defaults). */
export interface TrainingOptions {
  /** Optimizer steps in all (the cosine schedule ends here). */
  steps: number;
  /** Sequences per step. */
  batch: number;
  /** Tokens each sequence predicts. */
  seqLen: number;
  lr: number;
  minLr: number;
  warmup: number;
  /** Largest global gradient norm (0: no clipping). */
  clip: number;
  seed: number;
  adamw?: AdamWOptions;
}

/** One step's figures. */
export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
}

/** A trainable weight: a view of its f32 values in the arena, its shape, and whether it is a matrix (weight decay applies). */
export interface Parameter {
  data: Float32Array;
  matrix: boolean;
  shape: number[];
}

/** Every weight of a model by Hugging Face name, as views of the arena (take them fresh: the arena may have grown since). */
export function parameters(model: OpenELM): Map<string, Parameter> {
  return new Map([...namedWeights(model)].map(([name, t]) => [name, { data: model.arena.floats(t.ptr, t.shape.reduce((a, b) => a * b, 1)), matrix: t.shape.length > 1, shape: t.shape }]));
}

/** Pretraining from a token stream: AdamW on every weight, the batch's gradients summed in the arena. */
export class Trainer {
  readonly optimizer: AdamW;
  /** The batch's summed gradients, in the arena. */
  private readonly grads: Gradients;

  /** `state`: the optimizer's moments and step, to resume a run where a checkpoint left it. */
  constructor(readonly model: OpenELM, readonly tokens: Int32Array, readonly opts: TrainingOptions, state?: AdamWState) {
    this.optimizer = new AdamW(opts.adamw, state);
    this.grads = new Gradients(model);
  }

  /** Give the gradients' memory back to the arena. */
  close(): void {
    this.grads.free();
  }

  get step(): number {
    return this.optimizer.state.step;
  }

  /** One optimizer step. Its sequences come from a generator seeded by (seed, step), so a resumed run sees what an uninterrupted one would. */
  trainStep(): StepResult {
    const o = this.opts, step = this.step + 1;
    const sequences = sampleSequences(this.tokens, o.seqLen, o.batch, seededRandom((o.seed * 1_000_003 + step) >>> 0));
    // gradient accumulation: each sequence adds 1/batch of its gradients into the same arena buffers
    let loss = 0;
    this.grads.zero();
    for (const ids of sequences) loss += accumulateGradients(this.model, ids, this.grads, 1 / sequences.length) / sequences.length;
    const grads = this.grads.views();
    const gradNorm = clipGradients(grads, o.clip > 0 ? o.clip : Infinity);
    const lr = learningRate(step, { lr: o.lr, minLr: o.minLr, warmup: o.warmup, total: o.steps });
    this.optimizer.update(parameters(this.model), grads, lr);
    return { step, loss, gradNorm, lr, tokens: o.batch * o.seqLen };
  }

  /** Mean cross-entropy per predicted token over held-out windows (each of up to seqLen + 1 tokens), forward passes only. */
  heldOutLoss(windows: number[][]): number {
    return meanLoss(this.model, windows.map((ids) => ({ ids })));
  }
}
