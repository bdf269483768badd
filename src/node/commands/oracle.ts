// Tools for other ports: `trace` writes the named taps of one forward pass, `compare` finds where two
// traces part, `conformance` writes a self-contained pack of reference checkpoints, inputs and outputs.
import { access, cp, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import picomatch from "picomatch";
import { compareTraceFiles, encodeTrace } from "../../trace.js";
import type { ByteSource } from "../../files.js";
import { trace as traceModel } from "../../trace.js";
import { fileSource } from "../files.js";
import { MODEL_HELP, UsageError, loadModel, parse, parseIds, parseNumber, refuseAdapter } from "./args.js";

export const HELP = {
  trace: `openelm trace --model DIR --ids 1,5,9 --out FILE.safetensors [--taps PATTERN]
  Write the named intermediates of one forward pass as F32 safetensors: embed, layers.N.attn_norm, .q,
  .k, .v, .q_rope, .k_rope, .attn, .attn_out, .resid_attn, .ffn_norm, .ffn_gate, .ffn_up, .ffn_act,
  .ffn_out, .resid_ffn, norm, logits (README: "For port authors"). PATTERN: comma-separated globs,
  e.g. "layers.*.q_rope,logits".`,
  compare: `openelm compare A.safetensors B.safetensors [--rtol 1e-4]
  For each tap in forward order: max absolute error, relative error (max |A − B| / max |B|) and cosine
  similarity, B being the reference; names the first tap whose relative error exceeds --rtol. Exit 0 when
  none does, 1 at a divergence, 2 when a file cannot be read or the names or shapes differ.`,
  conformance: `openelm conformance --out DIR [--ref DIR]
  Write a self-contained conformance pack: the reference checkpoints, their input ids, expected logits
  (.npy), taps (.safetensors) and greedy ids, and a README on how to check a port and which tolerances apply.
  --ref: the reference data (the repository's ref/ folder: oracle/, traces/, past-context/,
  conformance-README.md); default: ref/ of this installation, which a clone of the repository has and the
  npm package does not.`,
};

/** The repository's reference data; the npm package holds only the demo model of it. */
const REF = fileURLToPath(new URL("../../../ref", import.meta.url));
const REF_PARTS = ["oracle", "traces", "past-context", "conformance-README.md"];

/** The tap names a --taps PATTERN selects: comma-separated globs, matched by picomatch (no extglobs, so in linear time). */
export function tapFilter(pattern: string | undefined): (name: string) => boolean {
  if (pattern === undefined) return () => true;
  // commas separate globs, except inside braces ("layers.{1,2}.q")
  let depth = 0;
  const globs = [""];
  for (const ch of pattern) {
    depth += ch === "{" ? 1 : ch === "}" && depth > 0 ? -1 : 0;
    if (ch === "," && depth === 0) globs.push("");
    else globs[globs.length - 1] += ch;
  }
  globs.forEach((g, i) => (globs[i] = g.trim()));
  if (pattern.length > 1000 || globs.some((g) => g === "")) throw new UsageError(`--taps: ${JSON.stringify(pattern.slice(0, 60))} is not a list of globs (comma-separated, at most 1000 characters)`);
  return picomatch(globs, { noextglob: true });
}

export async function trace(args: string[]) {
  const v = parse(args, { ids: { type: "string" }, out: { type: "string" }, taps: { type: "string" } });
  if (v.help) return console.log(`${HELP.trace}\n\n${MODEL_HELP}`);
  const ids = parseIds(v.ids);
  if (!v.out) throw new UsageError("--out FILE.safetensors is required");
  const model = await loadModel(v);
  const taps = traceModel(model, ids, tapFilter(v.taps));
  if (Object.keys(taps).length === 0) throw new UsageError(`--taps: "${v.taps}" matches no tap`);
  await writeFile(v.out, encodeTrace(taps, { ids: ids.join(","), producer: "openelm trace" }));
}

/** Exit codes of `openelm compare`. */
class CompareError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

async function open(path: string): Promise<ByteSource> {
  try {
    return await fileSource(path);
  } catch (e) {
    throw new CompareError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`, 2);
  }
}

export async function compare(args: string[]): Promise<number | void> {
  let v;
  try {
    v = parse(args.filter((a) => !a.endsWith(".safetensors")), { rtol: { type: "string" } });
  } catch (e) {
    throw new CompareError((e as Error).message, 2);
  }
  if (v.help) return console.log(HELP.compare);
  if (v.adapter !== undefined) throw new CompareError("--adapter: openelm compare reads two traces and loads no model", 2);
  const files = args.filter((a) => a.endsWith(".safetensors"));
  if (files.length !== 2) throw new CompareError("give two .safetensors traces: openelm compare A.safetensors B.safetensors", 2);
  const rtol = parseNumber("rtol", v.rtol, 1e-4, 0, Infinity, true)!;
  let result;
  try {
    result = await compareTraceFiles(await open(files[0]!), await open(files[1]!), rtol);
  } catch (e) {
    throw e instanceof CompareError ? e : new CompareError((e as Error).message, 2);
  }
  console.log(`tap                         shape             max abs err     rel err    cosine`);
  for (const r of result.rows)
    console.log(`${r.name.padEnd(27)} ${`[${r.shape}]`.padEnd(16)} ${r.maxAbs.toExponential(3).padStart(12)} ${r.rel.toExponential(3).padStart(11)} ${r.cosine.toFixed(7).padStart(10)}${r.ok ? "" : "  ✗"}`);
  if (result.firstDivergence) {
    const row = result.rows.find((r) => r.name === result.firstDivergence)!;
    console.log(`first divergence: ${row.name} (relative error ${row.rel.toExponential(3)} > ${rtol})`);
    return 1;
  }
  console.log(`all ${result.rows.length} taps within relative error ${rtol}`);
}

export async function conformance(args: string[]) {
  const v = parse(args, { out: { type: "string" }, ref: { type: "string" } });
  if (v.help) return console.log(HELP.conformance);
  refuseAdapter(v, "conformance");
  if (!v.out) throw new UsageError("--out DIR is required");
  const ref = v.ref ?? REF;
  for (const part of REF_PARTS)
    if (!(await access(join(ref, part)).then(() => true, () => false)))
      throw new UsageError(`${v.ref ? "--ref " : ""}${ref} has no ${part}: the conformance data is in the openelm repository's ref/ folder, not in the npm package; clone the repository and pass --ref path/to/openelm/ref`);
  const oracle = join(ref, "oracle"), traces = join(ref, "traces"), past = join(ref, "past-context");
  const models = (await readdir(oracle, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const index = [];
  for (const name of models) {
    const dir = join(v.out, "models", name);
    await mkdir(dir, { recursive: true });
    await cp(join(oracle, name), dir, { recursive: true });
    await cp(join(traces, name), dir, { recursive: true });
    await cp(join(past, `${name}.json`), join(dir, "past-context.json"));
    await cp(join(past, `${name}-logits.npy`), join(dir, `${name}-logits.npy`));
    const cases = JSON.parse(await readFile(join(oracle, name, "cases.json"), "utf8")).cases as { ids: number[] }[];
    index.push({ model: name, cases: cases.map((c, k) => ({ ids: c.ids, logits: `logits-${k}.npy`, trace: `trace-${k}.safetensors` })), past_context: "past-context.json" });
  }
  await writeFile(join(v.out, "index.json"), JSON.stringify({ models: index }, null, 1));
  await writeFile(join(v.out, "README.md"), await readFile(join(ref, "conformance-README.md"), "utf8"));
  console.log(`wrote ${v.out}: ${models.length} models, ${index.reduce((a, m) => a + m.cases.length, 0)} cases`);
}

export { CompareError };
