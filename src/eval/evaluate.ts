// Accuracy over a task's documents: acc picks the choice with the highest log-likelihood, acc_norm the
// highest log-likelihood per byte of the choice (the harness's length normalisation); both with the
// standard error of the mean.
import type { Scorer } from "./loglikelihood.js";
import { argmax } from "../generation/sampler.js";
import type { Request } from "./tasks.js";

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

export function evaluate(scorer: Scorer, requests: Request[], onProgress?: (done: number, total: number) => void): TaskResult {
  const acc: number[] = [], accNorm: number[] = [];
  requests.forEach((r, i) => {
    const lls = scoreRequest(scorer, r);
    acc.push(argmax(lls) === r.gold ? 1 : 0);
    accNorm.push(argmax(lls.map((ll, j) => ll / utf8Bytes(r.choices[j]!))) === r.gold ? 1 : 0);
    onProgress?.(i + 1, requests.length);
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { n: requests.length, acc: mean(acc), acc_stderr: meanStderr(acc), acc_norm: mean(accNorm), acc_norm_stderr: meanStderr(accNorm) };
}
