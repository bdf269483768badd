// npm run bench [-- --shapes 270M,450M --threads N --out FILE.json]   (--shapes "": no end-to-end table)
// Prints per-kernel throughput, the cost of choosing a token, and an end-to-end table (prefill at 128 and 512 tokens, decode at context
// 128 and 1024, F32 and BF16, one thread and all; Q8_0, Q4_0 and Q4_K_M at 128 tokens with all threads),
// each end-to-end configuration in its own `openelm bench` process so that peak memory is its own; writes
// everything as JSON. The bound is memory bandwidth over each type's true bytes per token. Side by side
// with llama.cpp: npm run bench:peers. Beside the kernels, bench/matvec-ceiling.c: decode's product in native
// code with 128-bit and 256-bit vectors. Last, training tokens/s for the default model's shape and the 270M shape.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { configureV8 } from "openelm/node";
import { kernelBenchmarks, matvecFromMemory } from "./kernels.js";
import { samplerBenchmarks } from "./sampler.js";
import { trainingBenchmarks } from "./train.js";

configureV8();
const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "270M,450M,1_1B,3B" },
    threads: { type: "string", default: String(availableParallelism()) },
    out: { type: "string", default: "bench/results.json" },
  },
});
const threads = Number(values.threads), shapes = values.shapes!.split(",").filter(Boolean); // --shapes "": no end-to-end runs
const CLI = fileURLToPath(new URL("../node/cli.js", import.meta.url));
const PARAMS: Record<string, number> = { "270M": 0.27, "450M": 0.46, "1_1B": 1.08, "3B": 3.04 };

/**
 * bench/NAME.c compiled for this host's widest vectors, or with `native` false for the compiler's baseline
 * (SSE2 on x86-64): a function that runs it with the thread count and `args` and returns what it prints,
 * as numbers; undefined without a C compiler, or from the function where the program cannot run.
 */
function compileC(name: string, native = true): ((threads: number, args: string[]) => number[] | undefined) | undefined {
  const exe = join(tmpdir(), `openelm-${name}${native ? "" : "-baseline"}`), src = fileURLToPath(new URL(`../../bench/${name}.c`, import.meta.url));
  // no contraction: matvec-ceiling's BF16 loop multiplies, then adds, as openelm's does (GCC fuses them by default)
  const flags = ["-O3", ...(native ? ["-march=native"] : []), "-ffp-contract=off", "-pthread", src, "-o", exe, "-lm"];
  if (spawnSync("cc", flags).status !== 0) return undefined;
  return (threads, args) => {
    const p = spawnSync(exe, [String(threads), ...args], { encoding: "utf8" });
    return p.status === 0 ? p.stdout.trim().split(/\s+/).map(Number) : undefined;
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const counts = [...new Set([1, threads])];

const kernels = await kernelBenchmarks(threads);
console.log("kernel                                         threads      ms   GFLOP/s     GB/s");
for (const r of kernels) console.log(`${r.kernel.padEnd(46)} ${String(r.threads).padStart(7)} ${r.ms.toFixed(3).padStart(7)} ${r.gflop_s.toFixed(1).padStart(9)} ${r.gb_s.toFixed(1).padStart(8)}`);
const tsMatvec = kernels.find((r) => r.kernel.startsWith("typescript matvec bf16"))!;
const simdMatvec = kernels.find((r) => r.kernel.startsWith("matvec bf16") && r.threads === 1)!;
console.log(`SIMD matvec (bf16, 1 thread) is ${(tsMatvec.ms / simdMatvec.ms).toFixed(1)}× the TypeScript specification\n`);
// the yardstick for the probe: a plain C read loop over 1 GiB, where a C compiler exists, built twice
// because the widest vectors need not read fastest (Zen 5: its 512-bit loop read 8-17% less than SSE2's)
const readLoops = [compileC("read-bandwidth"), compileC("read-bandwidth", false)];
const readLoop = (t: number) => readLoops.map((run) => run?.(t, ["1024", "10"])?.[0]);
// the yardstick for decode's product: the same loop in native code at WebAssembly's vector width and at
// AVX2's, alternated with openelm's in 5 rounds (the host drifts within minutes), with the read loop
const ceiling = compileC("matvec-ceiling");
type Ceiling = { openelm_bf16: number; openelm_f16: number; bf16_128: number; f16_128: number; bf16_256: number; read_loop: number };
const ceilingRounds: Record<string, Ceiling[]> = {};
const ceilingRuns = ceiling?.(1, ["16", "1"]) !== undefined; // AVX2 and FMA, and its sums check out
const matvecs = ceilingRuns ? await Promise.all(counts.map((t) => matvecFromMemory(t))) : [];
for (let round = 0; ceilingRuns && round < 5; round++) {
  for (const [i, t] of counts.entries()) {
    const nativeFirst = round % 2 === 1, native0 = nativeFirst ? ceiling!(t, ["256", "5"])! : undefined;
    const ours = matvecs[i]!.measure(), native = native0 ?? ceiling!(t, ["256", "5"])!;
    const read = Math.max(...readLoop(t).map((g) => g ?? 0));
    (ceilingRounds[t] ??= []).push({ openelm_bf16: ours.bf16, openelm_f16: ours.f16, bf16_128: native[0]!, f16_128: native[1]!, bf16_256: native[2]!, read_loop: read });
  }
}
for (const m of matvecs) await m.close();
const ceilingMedians = Object.fromEntries(Object.entries(ceilingRounds).map(([t, rs]) => [t, Object.fromEntries(Object.keys(rs[0]!).map((k) => [k, median(rs.map((r) => r[k as keyof Ceiling]))])) as Ceiling]));
if (Object.keys(ceilingMedians).length) {
  console.log("decode's product, 256 MiB of weights, GB/s (medians of 5 alternated rounds)");
  console.log("threads   openelm bf16   f16   native 128-bit bf16   f16   native 256-bit bf16   C read loop");
  for (const [t, c] of Object.entries(ceilingMedians)) {
    console.log(`${t.padStart(7)} ${c.openelm_bf16.toFixed(1).padStart(14)} ${c.openelm_f16.toFixed(1).padStart(5)} ${c.bf16_128.toFixed(1).padStart(21)} ${c.f16_128.toFixed(1).padStart(5)} ${c.bf16_256.toFixed(1).padStart(21)} ${c.read_loop.toFixed(1).padStart(13)}`);
  }
  console.log();
}

const sampler = await samplerBenchmarks();
console.log("choosing a token, 32000-token vocabulary logits        penalty           ms/token  over greedy");
for (const r of sampler) console.log(`${r.case.padEnd(40)} ${r.logits.padEnd(13)} ${r.penalty.padEnd(15)} ${r.ms.toFixed(4).padStart(10)} ${r.overhead_ms.toFixed(4).padStart(12)}`);
console.log();

type Row = Record<string, number | string | undefined>;
const endToEnd: Row[] = [];
const runs = shapes.flatMap((shape) => [
  ...["bf16", "f32"].flatMap((dtype) => [1, threads].filter((t, i, a) => a.indexOf(t) === i).flatMap((t) => [
    { shape, dtype, threads: t, prefill: 128, context: 128 },
    { shape, dtype, threads: t, prefill: 512, context: 1024 },
  ])),
  ...["q8_0", "q4_0", "q4_k_m"].map((dtype) => ({ shape, dtype, threads, prefill: 128, context: 128 })),
]);
console.log("shape  dtype  threads  prefill  tok/s   decode@ctx  tok/s  bound tok/s  of bound  bandwidth GB/s  peak RSS MB");
for (const r of runs) {
  const decode = Math.max(8, Math.round(32 * 0.27 / PARAMS[r.shape]!)); // fewer steps for the big shapes
  const args = [CLI, "bench", "--shape", r.shape, "--dtype", r.dtype, "--threads", String(r.threads), "--prefill", String(r.prefill), "--decode", String(decode), "--context", String(r.context), "--json"];
  const p = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (p.status !== 0) {
    console.log(`${r.shape} ${r.dtype} ×${r.threads}: failed: ${p.stderr.trim()}`);
    continue;
  }
  const j = JSON.parse(p.stdout) as Row;
  endToEnd.push(j);
  const f = (x: unknown, d = 1) => (typeof x === "number" ? x.toFixed(d) : "-");
  console.log(`${r.shape.padEnd(6)} ${r.dtype.padEnd(6)} ${String(r.threads).padStart(7)} ${String(r.prefill).padStart(8)} ${f(j.prefill_tok_s).padStart(6)} ${String(j.decode_context).padStart(12)} ${f(j.decode_tok_s).padStart(6)} ${f(j.decode_bound_tok_s).padStart(12)} ${(f(Number(j.decode_fraction_of_bound) * 100, 0) + "%").padStart(9)} ${f(j.bandwidth_gb_s).padStart(15)} ${f(j.peak_rss_mb, 0).padStart(12)}`);
}
const readLoopGbs = Object.fromEntries(counts.map((t) => [t, readLoop(t)]));
if (readLoops[0]) {
  console.log("\nmemory bandwidth, GB/s   threads   C read loop: -march=native   baseline   openelm probe (median of the rows above)");
  for (const t of counts) {
    const probes = endToEnd.filter((j) => j.threads === t).map((j) => Number(j.bandwidth_gb_s));
    const [wide, narrow] = readLoopGbs[t]!, f = (g: number | undefined, w: number) => (g?.toFixed(1) ?? "-").padStart(w);
    console.log(`${" ".repeat(24)} ${String(t).padStart(7)} ${f(wide, 27)} ${f(narrow, 10)} ${f(probes.length ? median(probes) : undefined, 15)}`);
  }
}
// training: `openelm train` for a few steps (the backward products' GFLOP/s are in the kernel table above)
const training = trainingBenchmarks(threads);
console.log("\ntraining (f32, sequences of 128)   parameters   batch   tok/s   peak RSS MB");
for (const r of training) console.log(`${r.model.padEnd(34)} ${(r.parameters / 1e6).toFixed(1).padStart(9)}M ${String(r.batch).padStart(7)} ${r.tok_s.toFixed(1).padStart(7)} ${r.peak_rss_mb.toFixed(0).padStart(13)}`);
writeFileSync(values.out!, JSON.stringify({ date: new Date().toISOString(), node: process.version, threads, kernels, sampler, endToEnd, c_read_loop_gb_s: readLoopGbs, c_matvec_rounds: ceilingRounds, c_matvec_medians: ceilingMedians, training }, null, 1));
console.log(`\nwrote ${values.out}`);
