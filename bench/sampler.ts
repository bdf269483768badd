// The cost of choosing a token on a 32000-token vocabulary with tinybench: greedy against sampling with
// and without truncation, on a realistic spread of logits (normal, sd 3) and on a flat one (where top-p
// must take most of the vocabulary), without and with a repetition penalty over 512 tokens of context.
import { Bench } from "tinybench";
import { Sampler, seededRandom, type SamplingOptions } from "openelm";

export interface SamplerRow {
  case: string;
  logits: string;
  penalty: string;
  ms: number;
  overhead_ms: number; // over greedy on the same logits with the same penalty
}

const V = 32000;
const CASES: [string, SamplingOptions][] = [
  ["greedy", {}],
  ["temperature 0.8", { temperature: 0.8 }],
  ["temperature 0.8, top-k 40, top-p 0.9", { temperature: 0.8, topK: 40, topP: 0.9 }],
  ["temperature 0.8, top-p 0.9", { temperature: 0.8, topP: 0.9 }],
  ["temperature 0.8, min-p 0.05", { temperature: 0.8, minP: 0.05 }],
];
const PENALTIES: [string, SamplingOptions][] = [["none", {}], ["repetition 1.2", { repetitionPenalty: 1.2 }]];

export async function samplerBenchmarks(): Promise<SamplerRow[]> {
  const random = seededRandom(7);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const spreads = { "normal sd 3": Float32Array.from({ length: V }, () => 3 * gauss()), flat: Float32Array.from({ length: V }, () => 0.01 * gauss()) };
  const context = Array.from({ length: 512 }, () => Math.floor(random() * V)), generated = context.slice(-64);
  const rows: SamplerRow[] = [];
  for (const [spread, logits] of Object.entries(spreads)) {
    for (const [penalty, penaltyOpts] of PENALTIES) {
      const bench = new Bench({ time: 250, warmup: true });
      for (const [name, opts] of CASES) {
        const sampler = new Sampler({ ...opts, ...penaltyOpts, seed: 1 });
        bench.add(name, () => sampler.sample(logits, context, generated));
      }
      await bench.run();
      const ms = bench.tasks.map((t) => {
        if (t.result.state !== "completed") throw new Error(`benchmark ${t.name} did not complete (${t.result.state})`);
        return t.result.latency.mean;
      });
      CASES.forEach(([name], i) => rows.push({ case: name, logits: spread, penalty, ms: ms[i]!, overhead_ms: ms[i]! - ms[0]! }));
    }
  }
  return rows;
}
