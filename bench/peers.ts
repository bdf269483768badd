// npm run bench:peers [-- --shape 270M --types bf16,f16,f32,q8_0,q4_0,q4_k_m --threads 2 --rounds 3 --prefill 128 --decode 64
//                        --engines openelm,llama.cpp,wllama,openelm-web,openelm-deno,openelm-bun]
// openelm (in Node) beside native llama.cpp (node-llama-cpp's prebuilt binaries) and llama.cpp compiled to
// WebAssembly (wllama, in Debian's Chromium; see browser-peers.ts) on one GGUF file per type, of the
// model's exact shape with random weights (speed does not depend on the values); on request also openelm
// in other hosts: the same browser (openelm-web, set against wllama), Deno and Bun (dev dependencies; set
// against native llama.cpp). Every measurement runs in its own process, one at a time; the rounds
// interleave the engines and types so that drift of the machine falls on all alike; medians are printed
// with the ratios, then each round's own ratios, lowest to highest.
// openelm's bf16 row loads the f16 file as bf16 and is compared with the peers' f16, which have no
// faster 16-bit path on CPUs without native bf16 arithmetic.
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PRESETS, WEIGHT_TYPES, type WeightType } from "openelm";
import { randomGGUF } from "./random-gguf.js";
import { BROWSER_ENGINES, CHROMIUM } from "./browser-peers.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "270M" },
    types: { type: "string", default: "bf16,f16,q8_0,q4_0,q4_k_m" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    prefill: { type: "string", default: "128" },
    decode: { type: "string", default: "64" },
    out: { type: "string", default: "bench/peers.json" },
    engines: { type: "string", default: "openelm,llama.cpp,wllama" },
  },
});
const ENGINES = ["openelm", "llama.cpp", ...BROWSER_ENGINES, "openelm-deno", "openelm-bun"] as const;
type Engine = (typeof ENGINES)[number];
const engines = values.engines!.split(",") as Engine[];
for (const e of engines) if (!ENGINES.includes(e)) throw new Error(`--engines: "${e}" is not one of ${ENGINES.join(", ")}`);
if (!engines.includes("openelm") || engines.length < 2) throw new Error("--engines: openelm and at least one peer");
const peers = engines.filter((e) => e !== "openelm");
if (peers.some((p) => (BROWSER_ENGINES as readonly string[]).includes(p)) && !existsSync(CHROMIUM)) throw new Error(`wllama and openelm-web run in Chromium, and ${CHROMIUM} is missing: apt-get install chromium, or --engines openelm,llama.cpp`);
const types = values.types!.split(",") as WeightType[], rounds = Number(values.rounds), threads = values.threads!;
for (const t of types) if (!WEIGHT_TYPES.includes(t)) throw new Error(`--types: "${t}" is not one of ${WEIGHT_TYPES.join(", ")}`);
if (!PRESETS[values.shape!]) throw new Error(`--shape: "${values.shape}" is not one of ${Object.keys(PRESETS).join(", ")}`);
const RUN = fileURLToPath(new URL("./peer-run.js", import.meta.url)), BIN = fileURLToPath(new URL("../../node_modules/.bin/", import.meta.url));
// the hosts that run peer-run.js as "openelm" for openelm-deno and openelm-bun; Deno takes V8 flags on its
// command line (measured: node:v8.setFlagsFromString left Liftoff on there)
const HOSTS: Partial<Record<Engine, string[]>> = { "openelm-deno": [`${BIN}deno`, "run", "--allow-all", "--v8-flags=--no-liftoff"], "openelm-bun": [`${BIN}bun`] };

type Speed = { prefill_tok_s: number; decode_tok_s: number; peak_rss_mb?: number; weight_bytes_per_token?: number };
function measure(engine: Engine, file: string, type: WeightType): Speed {
  const [cmd, ...host] = HOSTS[engine] ?? [process.execPath];
  const args = [...host, RUN, HOSTS[engine] ? "openelm" : engine, file, threads, values.prefill!, values.decode!, ...(engine.startsWith("openelm") && type === "bf16" ? ["bf16"] : [])];
  const p = spawnSync(cmd!, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (p.status !== 0) throw new Error(`${engine} ${type}: ${p.stderr.trim()}`);
  return JSON.parse(p.stdout.trim().split("\n").pop()!) as Speed;
}

const files = new Map<WeightType, string>();
// openelm's bf16 reads the f16 file
for (const t of types) files.set(t, await randomGGUF(values.shape!, t === "bf16" ? "f16" : t));
const runs = new Map<string, Speed[]>();
for (let r = 0; r < rounds; r++) {
  // alternate the engines' order, so that none always runs on a machine another has warmed
  for (const type of types) for (const engine of r % 2 ? [...engines].reverse() : engines) {
    const key = `${engine} ${type}`;
    runs.set(key, [...(runs.get(key) ?? []), measure(engine, files.get(type)!, type)]);
    process.stderr.write(`round ${r + 1}/${rounds}: ${key} done\n`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
type Measure = "prefill_tok_s" | "decode_tok_s" | "peak_rss_mb";
const rows = types.map((type) => {
  const m = (engine: Engine, k: Measure) => { const xs = runs.get(`${engine} ${type}`)!.map((x) => x[k]); return xs[0] === undefined ? undefined : median(xs as number[]); };
  const of = (engine: Engine) => ({ prefill_tok_s: m(engine, "prefill_tok_s")!, decode_tok_s: m(engine, "decode_tok_s")!, peak_rss_mb: m(engine, "peak_rss_mb") });
  return {
    type, peer_type: type === "bf16" ? "f16" : type,
    weight_mib_per_token: runs.get(`openelm ${type}`)![0]!.weight_bytes_per_token! / 2 ** 20,
    medians: Object.fromEntries(engines.map((e) => [e, of(e)])) as Record<Engine, ReturnType<typeof of>>,
    rounds: Array.from({ length: rounds }, (_, i) => Object.fromEntries(engines.map((e) => [e, runs.get(`${e} ${type}`)![i]]))),
  };
});
const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
type Row = (typeof rows)[number];
const digits = (k: Measure) => (k === "peak_rss_mb" ? 0 : 1);
// each engine's column, then a ratio: openelm ÷ a peer, or openelm in another host ÷ the peer it is set against
const against = (e: Engine): Engine => (e === "openelm-web" ? "wllama" : "llama.cpp");
/** The engines a peer's ratio divides: openelm ÷ the peer, or openelm in another host ÷ its counterpart. */
const ratioOf = (p: Engine): [Engine, Engine] => (p.startsWith("openelm") ? [p, against(p)] : ["openelm", p]);
const cols = (label: string, k: Measure, ratio: boolean) => [
  { head: `${label}: openelm`, cell: (r: Row) => f(r.medians.openelm[k], digits(k)) },
  ...peers.flatMap((p) => {
    const [over, under] = ratioOf(p);
    return [{ head: p, cell: (r: Row) => f(r.medians[p][k], digits(k)) },
      ...(ratio && engines.includes(under) ? [{ head: over === "openelm" ? "ratio" : `÷ ${under}`, cell: (r: Row) => f(r.medians[over][k]! / r.medians[under][k]!, 2) }] : [])];
  }),
];
const table = [{ head: "type", cell: (r: Row) => r.type }, { head: "peers' type", cell: (r: Row) => r.peer_type },
  { head: "MiB/token", cell: (r: Row) => f(r.weight_mib_per_token, 0) },
  ...cols("prefill tok/s", "prefill_tok_s", true), ...cols("decode tok/s", "decode_tok_s", true),
  ...cols("peak RSS MB", "peak_rss_mb", false).filter((c) => !(BROWSER_ENGINES as readonly string[]).includes(c.head))];
console.log(`\nOpenELM-${values.shape} shape, random weights, ${threads} threads, prefill ${values.prefill}, decode ${values.decode}; medians of ${rounds} interleaved rounds; ratio = openelm ÷ the peer on its left; ÷ P = openelm in that host ÷ P`);
console.log(table.map((c, i) => (i < 2 ? c.head.padEnd(11) : c.head.padStart(Math.max(7, c.head.length)))).join("  "));
for (const r of rows) console.log(table.map((c, i) => (i < 2 ? c.cell(r).padEnd(11) : c.cell(r).padStart(Math.max(7, c.head.length)))).join("  "));
// each round's own ratio (its runs minutes apart): the spread shows how far the machine's drift moved the medians
if (rounds > 1) {
  console.log(`\nratios within each round, lowest-highest of ${rounds}:`);
  for (const r of rows) for (const p of peers) {
    const [over, under] = ratioOf(p);
    if (!engines.includes(under)) continue;
    const spread = (k: Measure) => { const xs = r.rounds.map((x) => x[over]![k]! / x[under]![k]!); return `${f(Math.min(...xs), 2)}-${f(Math.max(...xs), 2)}`; };
    console.log(`${r.type.padEnd(11)}  ${over} ÷ ${under}: prefill ${spread("prefill_tok_s")}, decode ${spread("decode_tok_s")}`);
  }
}
writeFileSync(values.out!, JSON.stringify({ date: new Date().toISOString(), node: process.version, shape: values.shape, threads: Number(threads), prefill: Number(values.prefill), decode: Number(values.decode), engines, rows }, null, 1));
console.log(`\nwrote ${values.out}`);
