// The training loop: each step samples `batch` sequences, adds up their gradients (gradient accumulation:
// one sequence at a time, so memory does not grow with the batch), clips them, and takes an AdamW step on
// the model's own f32 weights in the arena, which the next forward pass then uses.
import type { OpenELM } from "../model.js";
import { seededRandom } from "../generation/sampler.js";
import { sampleSequences } from "./data.js";
import { crossEntropy, lossAndGradients } from "./gradients.js";
import { AdamW, clipGradients, learningRate, type AdamWOptions, type AdamWState } from "./optimizer.js";
import type { Tensor } from "../weights.js";

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
  const w = model.weights, c = model.config, out = new Map<string, Parameter>();
  const add = (name: string, t: Tensor | undefined) => t && out.set(name, { data: model.arena.floats(t.ptr, t.shape.reduce((a, b) => a * b, 1)), matrix: t.shape.length > 1, shape: t.shape });
  add("transformer.token_embeddings.weight", w.tokenEmbeddings);
  w.layers.forEach((L, l) => {
    const p = `transformer.layers.${l}.`;
    add(p + "attn_norm.weight", L.attnNorm);
    add(p + "attn.qkv_proj.weight", L.qkvProj);
    add(p + "attn.q_norm.weight", L.qNorm);
    add(p + "attn.k_norm.weight", L.kNorm);
    add(p + "attn.out_proj.weight", L.outProj);
    add(p + "ffn_norm.weight", L.ffnNorm);
    add(p + "ffn.proj_1.weight", L.proj1);
    add(p + "ffn.proj_2.weight", L.proj2);
  });
  add("transformer.norm.weight", w.norm);
  if (!c.shareInputOutput) add("lm_head.weight", w.lmHead);
  return out;
}

export class Trainer {
  readonly optimizer: AdamW;

  /** `state`: the optimizer's moments and step, to resume a run where a checkpoint left it. */
  constructor(readonly model: OpenELM, readonly tokens: Int32Array, readonly opts: TrainingOptions, state?: AdamWState) {
    this.optimizer = new AdamW(opts.adamw, state);
  }

  get step(): number {
    return this.optimizer.state.step;
  }

  /** One optimizer step. Its sequences come from a generator seeded by (seed, step), so a resumed run sees what an uninterrupted one would. */
  trainStep(): StepResult {
    const o = this.opts, step = this.step + 1;
    const sequences = sampleSequences(this.tokens, o.seqLen, o.batch, seededRandom((o.seed * 1_000_003 + step) >>> 0));
    // gradient accumulation: the mean over the batch of each sequence's mean loss and gradients (the first
    // sequence's arrays collect the sum)
    let loss = 0, grads: Map<string, Float32Array> | undefined;
    for (const ids of sequences) {
      const r = lossAndGradients(this.model, ids);
      loss += r.loss / sequences.length;
      if (!grads) grads = r.grads;
      else
        for (const [name, g] of r.grads) {
          const sum = grads.get(name)!;
          for (let i = 0; i < g.length; i++) sum[i]! += g[i]!;
        }
    }
    for (const g of grads!.values()) for (let i = 0; i < g.length; i++) g[i]! /= sequences.length;
    const gradNorm = clipGradients(grads!, o.clip > 0 ? o.clip : Infinity);
    const lr = learningRate(step, { lr: o.lr, minLr: o.minLr, warmup: o.warmup, total: o.steps });
    this.optimizer.update(parameters(this.model), grads!, lr);
    return { step, loss, gradNorm, lr, tokens: o.batch * o.seqLen };
  }

  /** Mean cross-entropy over held-out windows (each of seqLen + 1 tokens), forward passes only. */
  heldOutLoss(windows: number[][]): number {
    let total = 0;
    for (const ids of windows) {
      const cache = this.model.newCache(ids.length);
      try {
        total += crossEntropy(this.model, this.model.forward(cache, ids, { allPositions: true }), ids, false).loss;
      } finally {
        this.model.releaseCache(cache);
      }
    }
    return total / windows.length;
  }
}
