// Accuracy over a task's documents: acc picks the choice with the highest log-likelihood, acc_norm the
// highest log-likelihood per byte of the choice (the harness's length normalisation); both with the
// standard error of the mean.
import type { Scorer } from "./loglikelihood.js";
import { argmax } from "../generation/sampler.js";
import type { Request } from "./tasks.js";

/** Accuracy of a task, by most likely choice and by most likely per byte, with standard errors. */
export interface TaskResult {
  n: number;
  acc: number;
  acc_stderr: number;
  acc_norm: number;
  acc_norm_stderr: number;
}

/** The harness's mean_stderr: sample standard deviation (n - 1) over sqrt(n). */
export function meanStderr(values: number[]): number {
  const n = values.length;
  if (n < 2) return NaN;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) / n);
}

const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;

/** Log-likelihood of every choice of a document; choices that share a context share its KV cache. */
export function scoreRequest(scorer: Scorer, r: Request): number[] {
  const lls = new Array<number>(r.contexts.length);
  const byContext = new Map<string, number[]>();
  r.contexts.forEach((c, i) => byContext.set(c, [...(byContext.get(c) ?? []), i]));
  for (const [context, idx] of byContext) scorer.score(context, idx.map((i) => r.continuations[i]!)).forEach((s, j) => (lls[idx[j]!] = s.logprob));
  return lls;
}

/** Accuracy over documents scored one at a time (so a data file of any size is read as a stream). */
export class Accuracy {
  private readonly acc: number[] = [];
  private readonly accNorm: number[] = [];

  /** Score one document and count whether its best choice is the gold one. */
  add(scorer: Scorer, r: Request): void {
    const lls = scoreRequest(scorer, r);
    this.acc.push(argmax(lls) === r.gold ? 1 : 0);
    this.accNorm.push(argmax(lls.map((ll, j) => ll / utf8Bytes(r.choices[j]!))) === r.gold ? 1 : 0);
  }

  get n(): number {
    return this.acc.length;
  }

  result(): TaskResult {
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { n: this.n, acc: mean(this.acc), acc_stderr: meanStderr(this.acc), acc_norm: mean(this.accNorm), acc_norm_stderr: meanStderr(this.accNorm) };
  }
}

/** Score every request of a task and report its accuracy. */
export function evaluate(scorer: Scorer, requests: Request[], onProgress?: (done: number, total: number) => void): TaskResult {
  const accuracy = new Accuracy();
  requests.forEach((r, i) => {
    accuracy.add(scorer, r);
    onProgress?.(i + 1, requests.length);
  });
  return accuracy.result();
}
