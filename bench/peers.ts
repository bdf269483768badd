// npm run bench:peers [-- --shape 270M --types bf16,f16,f32,q8_0,q4_0,q4_k_m --threads 2 --rounds 3 --prefill 128 --decode 64]
// openelm beside native llama.cpp (node-llama-cpp's prebuilt binaries) on one GGUF file per type, of
// the model's exact shape with random weights (speed does not depend on the values). Every measurement
// runs in its own process, one at a time; the rounds interleave the engines and types so that drift of
// the machine falls on both alike; medians are printed with openelm ÷ llama.cpp.
// openelm's bf16 row loads the f16 file as bf16 and is compared with llama.cpp's f16, which has no
// faster 16-bit path on CPUs without native bf16 arithmetic.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PRESETS, WEIGHT_TYPES, type WeightType } from "openelm";
import { randomGGUF } from "./random-gguf.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "270M" },
    types: { type: "string", default: "bf16,f16,q8_0,q4_0,q4_k_m" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    prefill: { type: "string", default: "128" },
    decode: { type: "string", default: "64" },
    out: { type: "string", default: "bench/peers.json" },
  },
});
const types = values.types!.split(",") as WeightType[], rounds = Number(values.rounds), threads = values.threads!;
for (const t of types) if (!WEIGHT_TYPES.includes(t)) throw new Error(`--types: "${t}" is not one of ${WEIGHT_TYPES.join(", ")}`);
if (!PRESETS[values.shape!]) throw new Error(`--shape: "${values.shape}" is not one of ${Object.keys(PRESETS).join(", ")}`);
const RUN = fileURLToPath(new URL("./peer-run.js", import.meta.url));

type Speed = { prefill_tok_s: number; decode_tok_s: number; peak_rss_mb: number; weight_bytes_per_token?: number };
function measure(engine: "openelm" | "llama.cpp", file: string, type: WeightType): Speed {
  const args = [RUN, engine, file, threads, values.prefill!, values.decode!, ...(engine === "openelm" && type === "bf16" ? ["bf16"] : [])];
  const p = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (p.status !== 0) throw new Error(`${engine} ${type}: ${p.stderr.trim()}`);
  return JSON.parse(p.stdout.trim().split("\n").pop()!) as Speed;
}

const files = new Map<WeightType, string>();
// openelm's bf16 reads the f16 file
for (const t of types) files.set(t, await randomGGUF(values.shape!, t === "bf16" ? "f16" : t));
const runs = new Map<string, Speed[]>();
for (let r = 0; r < rounds; r++) {
  // alternate which engine goes first, so that neither always runs on a machine the other has warmed
  for (const type of types) for (const engine of (r % 2 ? ["llama.cpp", "openelm"] : ["openelm", "llama.cpp"]) as ("openelm" | "llama.cpp")[]) {
    const key = `${engine} ${type}`;
    runs.set(key, [...(runs.get(key) ?? []), measure(engine, files.get(type)!, type)]);
    process.stderr.write(`round ${r + 1}/${rounds}: ${key} done\n`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = types.map((type) => {
  const ours = runs.get(`openelm ${type}`)!, theirs = runs.get(`llama.cpp ${type}`)!;
  const m = (s: Speed[], k: "prefill_tok_s" | "decode_tok_s" | "peak_rss_mb") => median(s.map((x) => x[k]));
  return {
    type, llama_cpp_type: type === "bf16" ? "f16" : type,
    openelm_prefill_tok_s: m(ours, "prefill_tok_s"), llama_cpp_prefill_tok_s: m(theirs, "prefill_tok_s"),
    openelm_decode_tok_s: m(ours, "decode_tok_s"), llama_cpp_decode_tok_s: m(theirs, "decode_tok_s"),
    openelm_peak_rss_mb: m(ours, "peak_rss_mb"), llama_cpp_peak_rss_mb: m(theirs, "peak_rss_mb"),
    weight_mib_per_token: ours[0]!.weight_bytes_per_token! / 2 ** 20,
    rounds: ours.map((o, i) => ({ openelm: o, llama_cpp: theirs[i] })),
  };
});
const f = (x: number, d = 1) => x.toFixed(d);
console.log(`\nOpenELM-${values.shape} shape, random weights, ${threads} threads, prefill ${values.prefill}, decode ${values.decode}; medians of ${rounds} interleaved rounds`);
console.log("type    llama.cpp  MiB/token   prefill tok/s: openelm  llama.cpp  ratio   decode tok/s: openelm  llama.cpp  ratio   peak RSS MB: openelm  llama.cpp");
for (const r of rows)
  console.log(`${r.type.padEnd(7)} ${r.llama_cpp_type.padEnd(9)} ${f(r.weight_mib_per_token, 0).padStart(10)} ${f(r.openelm_prefill_tok_s).padStart(24)} ${f(r.llama_cpp_prefill_tok_s).padStart(10)} ${f(r.openelm_prefill_tok_s / r.llama_cpp_prefill_tok_s, 2).padStart(6)} ${f(r.openelm_decode_tok_s).padStart(23)} ${f(r.llama_cpp_decode_tok_s).padStart(10)} ${f(r.openelm_decode_tok_s / r.llama_cpp_decode_tok_s, 2).padStart(6)} ${f(r.openelm_peak_rss_mb, 0).padStart(22)} ${f(r.llama_cpp_peak_rss_mb, 0).padStart(10)}`);
writeFileSync(values.out!, JSON.stringify({ date: new Date().toISOString(), node: process.version, shape: values.shape, threads: Number(threads), prefill: Number(values.prefill), decode: Number(values.decode), rows }, null, 1));
console.log(`\nwrote ${values.out}`);
