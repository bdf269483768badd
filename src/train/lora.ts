// LoRA fine-tuning (Hu et al., 2021): the base weights stay frozen, and each adapted weight W₀ [out × in]
// learns a low-rank update: W = W₀ + s·B·A, with A [r × in], B [out × r] and s = alpha / r (rsLoRA:
// alpha / √r). The loss is the mean over the batch's counted tokens, as transformers' Trainer takes it. A step writes
// W into the model's f32 weights, runs the ordinary backward pass (gradients.ts) collecting gradients for
// the adapted weights only, and turns each weight's gradient G into its pair's by the chain rule:
// dB = s·G·Aᵀ and dA = s·Bᵀ·G.
//
// peft's lora_dropout drops inputs of the low-rank branch, token by token, which a pass over merged weights
// cannot express; here dropout is DropConnect (Wan et al., 2013) on A instead: each step zeroes each entry of
// A with probability p and scales the rest by 1/(1 − p), so that the update is s·B·(A ⊙ M)/(1 − p).
import type { OpenELM } from "../model.js";
import { seededRandom } from "../generation/sampler.js";
import { adaptedWeights, loraNames, loraScale, type Adapter, type LoraConfig } from "../formats/peft.js";
import { Gradients, accumulateGradients, inArena, meanLoss, namedWeights } from "./gradients.js";
import type { Tensor } from "../weights.js";
import { AdamW, clipGradients, learningRate } from "./optimizer.js";
import type { StepResult, TrainingOptions } from "./trainer.js";

/** One training example: token ids, and which targets count in the loss (mask[j]: predicting ids[j]). */
export interface MaskedExample {
  ids: number[];
  mask: boolean[];
}

/** A new adapter for `model`: A uniform in ±1/√in (peft's Kaiming-uniform start), B zero, so training starts from the base model. */
export function initAdapter(model: OpenELM, config: LoraConfig, seed = 0): Adapter {
  const random = seededRandom(seed >>> 0), pairs: Adapter["pairs"] = new Map();
  for (const [name, [out, inDim]] of adaptedWeights(model.config, config.targets)) {
    const bound = 1 / Math.sqrt(inDim);
    pairs.set(name, { a: Float32Array.from({ length: config.rank * inDim }, () => (2 * random() - 1) * bound), b: new Float32Array(out * config.rank), out, in: inDim });
  }
  return { config, pairs };
}

/** LoRA fine-tuning on masked examples: AdamW on the adapter's A and B, the base weights frozen. */
export class LoraTrainer {
  readonly optimizer: AdamW;
  /** The frozen base weights of the adapted matrices. */
  private readonly base = new Map<string, Float32Array>();
  private readonly grads: Gradients;

  constructor(readonly model: OpenELM, readonly adapter: Adapter, readonly examples: MaskedExample[], readonly opts: TrainingOptions) {
    if (examples.length === 0) throw new RangeError("LoRA training needs at least one example");
    this.optimizer = new AdamW({ weightDecay: 0, ...opts.adamw });
    for (const name of adapter.pairs.keys()) this.base.set(name, this.weight(name).slice());
    this.grads = new Gradients(model, adapter.pairs.keys());
  }

  get step(): number {
    return this.optimizer.state.step;
  }

  /** An adapted weight's tensor (f32, which training needs). */
  private tensor(name: string): Tensor {
    const t = namedWeights(this.model).get(name)!;
    if (t.dtype !== "f32") throw new TypeError(`LoRA training needs f32 weights, and ${name} is ${t.dtype} (load the base with dtype "f32")`);
    return t;
  }

  /** A view of an adapted weight in the arena (fresh: the arena may have grown). */
  private weight(name: string): Float32Array {
    const p = this.adapter.pairs.get(name)!;
    return this.model.arena.floats(this.tensor(name).ptr, p.out * p.in);
  }

  /** A, or with DropConnect's (scaled) mask, A ⊙ M. */
  private dropped(name: string, masks?: Map<string, Float32Array>): Float32Array {
    const a = this.adapter.pairs.get(name)!.a, m = masks?.get(name);
    return m ? a.map((x, i) => x * m[i]!) : a;
  }

  /** Write W₀ + s·B·(A ⊙ masks) into the model (masks: DropConnect's, already scaled by 1/(1 − p); none: the adapter as it is). */
  merge(masks?: Map<string, Float32Array>): void {
    const s = loraScale(this.adapter.config), r = this.adapter.config.rank;
    for (const [name, p] of this.adapter.pairs) {
      const t = this.tensor(name);
      // W = W₀, then W += (s·B)·A' on the kernels (the gradient-of-input product computes dx += dy·W)
      inArena(this.model, t.ptr, [p.b.map((x) => s * x), this.dropped(name, masks)], ([pB, pA]) => {
        this.weight(name).set(this.base.get(name)!);
        this.model.kernels.matmulGradInput(t.ptr, pB!, pA!, p.out, r, p.in);
      });
    }
  }

  /** Give the gradients' memory back to the arena. */
  close(): void {
    this.grads.free();
  }

  /**
   * The loss of `batch` (the mean over its counted tokens) and its gradient for every lora_A and lora_B (by peft's names), through
   * W = W₀ + s·B·A' with A' = A ⊙ M (DropConnect's masks, scaled; none: A' = A): dB = s·G·A'ᵀ, dA = M ⊙ s·Bᵀ·G.
   */
  gradients(batch: MaskedExample[], masks?: Map<string, Float32Array>): { loss: number; grads: Map<string, Float32Array> } {
    const c = this.adapter.config, s = loraScale(c), r = c.rank;
    this.merge(masks);
    this.grads.zero();
    const counted = batch.map(counts), total = counted.reduce((a, n) => a + n, 0);
    let loss = 0;
    batch.forEach((e, i) => (loss += (accumulateGradients(this.model, e.ids, this.grads, counted[i]! / total, e.mask) * counted[i]!) / total));
    const grads = new Map<string, Float32Array>(), model = this.model;
    for (const [name, p] of this.adapter.pairs) {
      const g = this.grads.at.get(name)!.ptr, m = masks?.get(name), n = loraNames(name);
      // on the kernels, G staying where the backward pass left it: dB = G·A'ᵀ (a forward product, in passes of
      // maxRows rows as the workspace allows) and dA = Bᵀ·G (the gradient-of-weight product)
      const [dA, dB] = inArena(model, this.tensor(name).ptr, [this.dropped(name, masks), p.b, new Float32Array(r * p.in), new Float32Array(p.out * r)], ([pA, pB, pDA, pDB]) => {
        for (let row = 0; row < p.out; row += model.maxRows) model.kernels.matmul(pDB! + row * r * 4, g + row * p.in * 4, pA!, "f32", Math.min(model.maxRows, p.out - row), r, p.in);
        model.kernels.matmulGradWeight(pDA!, pB!, g, p.out, r, p.in);
        return [model.arena.floats(pDA!, r * p.in).slice(), model.arena.floats(pDB!, p.out * r).slice()];
      });
      grads.set(n.a, dA!.map((x, i) => s * x * (m ? m[i]! : 1)));
      grads.set(n.b, dB!.map((x) => s * x));
    }
    return { loss, grads };
  }

  /** One optimizer step on `batch` examples drawn (seeded by seed and step) from the training set. */
  trainStep(): StepResult {
    const o = this.opts, step = this.step + 1, c = this.adapter.config;
    const random = seededRandom((o.seed * 1_000_003 + step) >>> 0);
    const batch = Array.from({ length: o.batch }, () => this.examples[Math.floor(random() * this.examples.length)]!);
    const masks = c.dropout > 0 ? new Map([...this.adapter.pairs].map(([name, p]) => [name, p.a.map(() => (random() < c.dropout ? 0 : 1 / (1 - c.dropout)))])) : undefined;
    const { loss, grads } = this.gradients(batch, masks);
    const params = new Map([...this.adapter.pairs].flatMap(([name, p]) => {
      const n = loraNames(name);
      return [[n.a, { data: p.a, matrix: true }], [n.b, { data: p.b, matrix: true }]] as const;
    }));
    const gradNorm = clipGradients(grads, o.clip > 0 ? o.clip : Infinity);
    const lr = learningRate(step, { lr: o.lr, minLr: o.minLr, warmup: o.warmup, total: o.steps });
    this.optimizer.update(params, grads, lr);
    this.merge();
    return { step, loss, gradNorm, lr, tokens: batch.reduce((a, e) => a + e.ids.length - 1, 0) };
  }

  /** The mean loss per counted token over `examples`, with the adapter as it is (forward passes only). */
  heldOutLoss(examples: MaskedExample[]): number {
    this.merge();
    return meanLoss(this.model, examples);
  }
}

/** The targets an example counts in its loss. */
const counts = (e: MaskedExample) => e.mask.slice(1).filter(Boolean).length;
