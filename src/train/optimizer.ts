// AdamW with a warmup-then-cosine learning rate and gradient clipping by global norm: the recipe
// CoreNet trains OpenELM with (Loshchilov & Hutter's decoupled weight decay, on matrices only).

/** AdamW's settings (defaults: OpenELM's pretraining recipe, apart from the learning rate). */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied to matrices (norm weights are left alone). */
  weightDecay?: number;
}

/** First and second moment estimates of each parameter, and the steps taken. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** AdamW over named parameters (updated in place). */
export class AdamW {
  readonly state: AdamWState;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(opts: AdamWOptions = {}, state?: AdamWState) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.1;
    this.state = state ?? { step: 0, m: new Map(), v: new Map() };
  }

  /** One update of every parameter that has a gradient, at learning rate `lr`. */
  update(params: Map<string, { data: Float32Array; matrix: boolean }>, grads: Map<string, Float32Array>, lr: number): void {
    const s = this.state, { beta1: b1, beta2: b2, eps } = this;
    s.step++;
    const c1 = 1 - b1 ** s.step, c2 = 1 - b2 ** s.step; // bias corrections of the moments' zero start
    for (const [name, g] of grads) {
      const p = params.get(name)!, w = p.data, decay = p.matrix ? 1 - lr * this.weightDecay : 1;
      const m = s.m.get(name) ?? s.m.set(name, new Float32Array(g.length)).get(name)!;
      const v = s.v.get(name) ?? s.v.set(name, new Float32Array(g.length)).get(name)!;
      for (let i = 0; i < g.length; i++) {
        m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
        v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
        w[i] = w[i]! * decay - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
  }
}

/** Linear warmup over `warmup` steps to `lr`, then a cosine to `minLr` at step `total`. Steps count from 1. */
export function learningRate(step: number, opts: { lr: number; minLr: number; warmup: number; total: number }): number {
  if (step <= opts.warmup) return (opts.lr * step) / opts.warmup;
  const progress = Math.min(1, (step - opts.warmup) / Math.max(1, opts.total - opts.warmup));
  return opts.minLr + 0.5 * (opts.lr - opts.minLr) * (1 + Math.cos(Math.PI * progress));
}

/** Scale all gradients down so that their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradients(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sum = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  const norm = Math.sqrt(sum);
  if (norm > maxNorm) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i]! *= maxNorm / norm;
  return norm;
}
