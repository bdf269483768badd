// `openelm bench`: one configuration of a random-weight model of a released shape, for outside comparisons.
import { readText } from "../../files.js";
import { parseJsonObject } from "../../formats/json.js";
import { fileSource } from "../files.js";
import { KernelProfile, measureBandwidth, measureSpeed, weightBytesPerToken } from "../../bench.js";
import { MAX, PRESETS, parameterCount, parseConfig } from "../../config.js";
import { WEIGHT_TYPES, type WeightType } from "../../dtype.js";
import { MAX_THREADS, planModel } from "../../load.js";
import { placement } from "../../weights.js";
import { OpenELM as Model } from "../../model.js";
import { randomWeights } from "../../synthetic.js";
import { createNodeKernels } from "../index.js";
import { MODEL_HELP, UsageError, parse, parseInteger, refuseAdapter } from "./args.js";

export const HELP = {
  bench: `openelm bench --shape 270M|450M|1_1B|3B|config.json [--dtype bf16] [--threads N] [--prefill 128] [--decode 64]
              [--context C] [--profile] [--json]
  Build a model of that shape with random weights in memory (no file), run one prefill and the decode
  steps after it (from cache length C if given), and report tokens/s, the measured memory bandwidth
  and the bound it sets on decoding; --profile adds the time per kernel in a decode step (the matrix
  products by role and weight type).`,
};

export async function bench(args: string[]) {
  const v = parse(args, {
    shape: { type: "string" },
    prefill: { type: "string" },
    decode: { type: "string" },
    profile: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (v.help) return console.log(HELP.bench + "\n\n" + MODEL_HELP);
  refuseAdapter(v, "bench");
  if (!v.shape) throw new UsageError(`--shape is required: ${Object.keys(PRESETS).join(", ")} or a config.json`);
  const file = PRESETS[v.shape] ? undefined : await fileSource(v.shape).catch(() => {
    throw new UsageError(`--shape: "${v.shape}" is neither a preset (${Object.keys(PRESETS).join(", ")}) nor a readable config.json`);
  });
  const raw = PRESETS[v.shape] ?? parseJsonObject((await readText({ location: ".", open: async () => file }, "config.json"))!, v.shape);
  const config = parseConfig(raw);
  const dtype = (v.dtype ?? "bf16") as WeightType;
  if (!WEIGHT_TYPES.includes(dtype)) throw new UsageError(`--dtype: "${v.dtype}" is not one of ${WEIGHT_TYPES.join(", ")}`);
  const prefill = parseInteger("prefill", v.prefill, 128, 1, MAX.context)!, decodeSteps = parseInteger("decode", v.decode, 64, 1, MAX.context)!;
  const context = parseInteger("context", v.context, undefined, 1, MAX.context);
  const threads = parseInteger("threads", v.threads, undefined, 1, MAX_THREADS);
  const contextLength = Math.min(config.maxContextLength, Math.max(prefill, context ?? 0) + decodeSteps);
  const plan = planModel(config, placement(config, dtype), contextLength);
  const { arena, kernels } = await createNodeKernels({
    ...(v.kernels === "typescript" ? { kernels: "typescript" as const } : {}),
    ...(threads !== undefined ? { threads } : {}),
  }, plan.memories);
  const profile = v.profile ? new KernelProfile(kernels, config.vocabSize) : undefined;
  const weights = randomWeights(config, arena, dtype, plan.layerMemory);
  const model = new Model(config, weights, arena, profile?.kernels ?? kernels, contextLength);
  const bandwidth = measureBandwidth(model);
  let speed = measureSpeed(model, { prefill, decode: Math.min(decodeSteps, 2), context }); // warm-up
  speed = measureSpeed(model, { prefill, decode: decodeSteps, context, beforeDecode: () => profile?.totals.clear() });
  const bytesPerToken = weightBytesPerToken(weights);
  const bound = bandwidth ? bandwidth * 1e9 / bytesPerToken : undefined;
  const result = {
    shape: v.shape,
    dtype,
    threads: (kernels as { threads?: number }).threads ?? 1,
    memories: plan.memories,
    kernels: kernels.name,
    parameters: parameterCount(config),
    ...speed,
    weight_bytes_per_token: bytesPerToken,
    bandwidth_gb_s: bandwidth,
    decode_bound_tok_s: bound,
    decode_fraction_of_bound: bound ? speed.decode_tok_s / bound : undefined,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    ...(profile ? { profile: profileTable(profile, decodeSteps) } : {}),
  };
  if (v.json) return console.log(JSON.stringify(result));
  const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
  console.log(`${v.shape} ${dtype} on ${result.kernels}: ${result.parameters.toLocaleString("en-US")} parameters`);
  console.log(`prefill ${prefill} tokens: ${f(speed.prefill_tok_s)} tok/s`);
  console.log(`decode ${decodeSteps} tokens from context ${speed.decode_context}: ${f(speed.decode_tok_s)} tok/s`);
  console.log(`bandwidth ${f(bandwidth)} GB/s; ${f(bytesPerToken / 2 ** 20)} MiB of weights per token; bound ${f(bound)} tok/s; reached ${f((result.decode_fraction_of_bound ?? NaN) * 100, 0)}%`);
  console.log(`peak RSS ${f(result.peak_rss_mb, 0)} MB`);
  if (result.profile) {
    console.log(`\nper decode step (mean of ${decodeSteps}):`);
    for (const row of result.profile) console.log(`  ${row.kernel.padEnd(28)} ${row.ms_per_step.toFixed(3).padStart(8)} ms  ${String(row.calls_per_step).padStart(4)} calls  ${(row.share * 100).toFixed(1).padStart(5)}%`);
  }
}

/** Per-kernel time per decode step, largest first; "other" is the step time outside kernels. */
function profileTable(p: KernelProfile, steps: number) {
  const rows = [...p.totals].map(([kernel, t]) => ({ kernel, ms_per_step: t.ms / steps, calls_per_step: Math.round(t.calls / steps) }));
  const total = rows.reduce((a, r) => a + r.ms_per_step, 0);
  return rows.sort((a, b) => b.ms_per_step - a.ms_per_step).map((r) => ({ ...r, share: r.ms_per_step / total }));
}

