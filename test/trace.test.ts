// Traces for other ports: openelm's taps against the independent PyTorch traces in ref/traces, the
// comparison that finds the first divergence, and the conformance pack.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OpenELM } from "../src/model.js";
import { fileSource } from "../src/node/files.js";
import { loadModelFromFolder } from "../src/node/index.js";
import { LAYER_TAPS, TraceMismatch, compareTraces, readTrace, trace } from "../src/trace.js";
import { tapFilter } from "../src/node/commands/oracle.js";
import { MODELS, ORACLE, ROOT, loadOracle, oracleCases, relError, splitBudget } from "./helpers/oracle.js";

const reference = async (model: string, k: number) => readTrace(await fileSource(join(ROOT, "ref/traces", model, `trace-${k}.safetensors`)));
const tmp = mkdtempSync(join(tmpdir(), "openelm-trace-"));
const cli = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "dist/node/cli.js"), ...args], { encoding: "utf8" });

describe("taps", () => {
  it("are named and shaped as documented, in forward order", async () => {
    const model = await loadOracle("elm-tiny-gqa"); // layer 0: 4 query heads, 1 kv head, FFN 64; head_dim 16
    const t = trace(model, [1, 5, 9]);
    const names = Object.keys(t);
    expect(names).toEqual(["embed", ...[0, 1, 2, 3].flatMap((l) => LAYER_TAPS.map((n) => `layers.${l}.${n}`)), "norm", "logits"]);
    const shapes = Object.fromEntries(Object.entries(t).map(([n, x]) => [n, x.shape]));
    expect(shapes).toMatchObject({
      embed: [3, 128], "layers.0.q": [3, 4, 16], "layers.0.k": [3, 1, 16], "layers.0.k_rope": [3, 1, 16], "layers.0.attn": [3, 64],
      "layers.0.ffn_gate": [3, 64], "layers.0.ffn_act": [3, 64], "layers.3.ffn_up": [3, 512], norm: [3, 128], logits: [3, 512],
    });
    expect(relError(t.logits!.data, model.forward(model.newCache(), [1, 5, 9], { allPositions: true }))).toBe(0);
  });

  it("a --taps pattern selects taps, in linear time even when hostile", () => {
    const pick = tapFilter("layers.*.q_rope, logits");
    expect([pick("layers.12.q_rope"), pick("layers.1.q"), pick("logits"), tapFilter(undefined)("embed")]).toEqual([true, false, true, true]);
    expect(tapFilter("layers.{1,2}.q")("layers.2.q")).toBe(true);
    const names = Array.from({ length: 36 }, (_, l) => LAYER_TAPS.map((t) => `layers.${l}.${t}`)).flat();
    const t0 = performance.now();
    for (const hostile of ["*a".repeat(40) + "b", "*".repeat(500) + "x", "+(+(a|aa))*".repeat(5), "{a,b}*".repeat(50)]) {
      const match = tapFilter(hostile);
      expect(names.filter(match)).toEqual([]);
    }
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(() => tapFilter("a,,b")).toThrow(/--taps: "a,,b" is not a list of globs/);
    expect(() => tapFilter("x".repeat(2000))).toThrow(/at most 1000 characters/);
  });

  it("tracing leaves no callback behind, so a normal forward pass pays nothing", async () => {
    const model = await loadOracle("elm-tiny-gqa");
    trace(model, [1, 2, 3]);
    expect(model.onTap).toBeUndefined();
  });
});

describe("openelm's taps match the independent PyTorch traces (ref/traces)", () => {
  it.each(MODELS)("%s, every case", async (name) => {
    const model = await loadOracle(name, { threads: 2, minParallelWork: 0 });
    for (const [k, c] of oracleCases(name).entries()) {
      const { rows, firstDivergence } = compareTraces(trace(model, c.ids), await reference(name, k), 1e-4);
      expect(firstDivergence, `case ${k}`).toBeUndefined();
      expect(rows.length).toBeGreaterThan(10);
      expect(Math.min(...rows.map((r) => r.cosine))).toBeGreaterThan(0.999999);
    }
  });

  it.each(["gelu-plain-untied", "relu-glu-mqa"])("synthetic %s (GELU without GLU; ReLU with GLU and one kv head)", async (name) => {
    const dir = join(ROOT, "ref/synthetic", name);
    const model = await loadModelFromFolder(dir);
    const ids = JSON.parse(readFileSync(join(dir, "ids.json"), "utf8"));
    const expected = await readTrace(await fileSource(join(dir, "trace.safetensors")));
    const ours = trace(model, ids);
    expect(compareTraces(ours, expected, 1e-4).firstDivergence).toBeUndefined();
    // without GLU there is no gate, and ffn_up is all of proj_1
    expect("layers.0.ffn_gate" in ours).toBe(!name.startsWith("gelu"));
    expect(ours["layers.0.ffn_up"]!.shape).toEqual(name.startsWith("gelu") ? [12, 128] : [12, 64]);
  });

  it("a prompt longer than one matrix pass (chunks joined), and a model over several memories", async () => {
    const [, c] = oracleCases("elm-tiny-32k");
    const m = await loadOracle("elm-tiny-32k");
    const chunked = new OpenELM(m.config, m.weights, m.arena, m.kernels, m.contextLength, 8); // 48 tokens in 6 passes
    expect(compareTraces(trace(chunked, c!.ids), await reference("elm-tiny-32k", 1), 1e-4).firstDivergence).toBeUndefined();
    const split = await loadOracle("elm-tiny-gqa", { memoryBytes: splitBudget("elm-tiny-gqa") });
    expect(split.arena.memories.length).toBeGreaterThan(1);
    const [, , g] = oracleCases("elm-tiny-gqa");
    expect(compareTraces(trace(split, g!.ids), await reference("elm-tiny-gqa", 2), 1e-4).firstDivergence).toBeUndefined();
  });
});

describe("compare", () => {
  it("names the first tap past the tolerance, and refuses traces that do not line up", async () => {
    const ref = await reference("elm-tiny-gqa", 1);
    const copy = Object.fromEntries(Object.entries(ref).map(([n, x]) => [n, { shape: x.shape, data: x.data.slice() }]));
    copy["layers.2.ffn_act"]!.data[3]! += 0.5;
    copy["logits"]!.data[0]! += 0.5;
    const r = compareTraces(copy, ref, 1e-4);
    expect(r.firstDivergence).toBe("layers.2.ffn_act");
    expect(r.rows.filter((x) => !x.ok).map((x) => x.name)).toEqual(["layers.2.ffn_act", "logits"]);
    const { logits: _, ...fewer } = copy;
    expect(() => compareTraces(fewer, ref, 1e-4)).toThrow(TraceMismatch);
    expect(() => compareTraces({ ...copy, embed: { shape: [1, 896], data: copy.embed!.data } }, ref, 1e-4)).toThrow("tap embed has shape [1,896] in the first trace and [7,128] in the second");
  });

  it("the command line finds a divergence introduced in a copy of a checkpoint: exit 1, 0 when equal, 2 on bad input", () => {
    const broken = join(tmp, "gqa-broken");
    cpSync(join(ORACLE, "elm-tiny-gqa"), broken, { recursive: true });
    // scale element 5 of layer 2's k_norm weight by 1.01
    const file = join(broken, "model.safetensors"), bytes = readFileSync(file);
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
    const at = 8 + Number(bytes.readBigUInt64LE(0)) + header["transformer.layers.2.attn.k_norm.weight"].data_offsets[0] + 5 * 4;
    bytes.writeFloatLE(bytes.readFloatLE(at) * 1.01, at);
    writeFileSync(file, bytes);
    const ids = oracleCases("elm-tiny-gqa")[1]!.ids.join(",");
    const expected = join(ROOT, "ref/traces/elm-tiny-gqa/trace-1.safetensors");
    expect(cli("trace", "--model", broken, "--ids", ids, "--out", join(tmp, "broken.safetensors")).status).toBe(0);
    const diverged = cli("compare", join(tmp, "broken.safetensors"), expected);
    expect(diverged.status).toBe(1);
    expect(diverged.stdout).toMatch(/first divergence: layers\.2\.k \(relative error [\d.e+-]+ > 0\.0001\)/);
    expect(cli("trace", "--model", join(ORACLE, "elm-tiny-gqa"), "--ids", ids, "--out", join(tmp, "good.safetensors")).status).toBe(0);
    const same = cli("compare", join(tmp, "good.safetensors"), expected);
    expect(same.status).toBe(0);
    expect(same.stdout).toMatch(/all 63 taps within relative error 0.0001/);
    expect(cli("trace", "--model", join(ORACLE, "elm-tiny-gqa"), "--ids", ids, "--taps", "layers.*.q,logits", "--out", join(tmp, "some.safetensors")).status).toBe(0);
    const mismatch = cli("compare", join(tmp, "some.safetensors"), expected);
    expect(mismatch.status).toBe(2);
    expect(mismatch.stderr).toMatch(/the traces hold different taps: .* only in the second/);
    expect(cli("compare", join(tmp, "missing.safetensors"), expected).status).toBe(2);
    expect(cli("compare", join(ROOT, "package.json.safetensors"), expected).stderr).toMatch(/cannot read/);
  });
});

describe("conformance pack", () => {
  it("holds every oracle model with inputs, expected logits, taps and greedy ids, and a README", () => {
    const out = join(tmp, "pack");
    const r = cli("conformance", "--out", out);
    expect(r.status).toBe(0);
    const index = JSON.parse(readFileSync(join(out, "index.json"), "utf8"));
    expect(index.models.map((m: { model: string }) => m.model)).toEqual(MODELS);
    for (const m of index.models as { model: string; cases: { ids: number[]; logits: string; trace: string }[] }[]) {
      for (const f of ["config.json", "cases.json", "past-context.json", `${m.model}-logits.npy`, ...m.cases.flatMap((c) => [c.logits, c.trace])]) expect(existsSync(join(out, "models", m.model, f)), `${m.model}/${f}`).toBe(true);
      const cases = JSON.parse(readFileSync(join(out, "models", m.model, "cases.json"), "utf8")).cases;
      expect(m.cases.map((c) => c.ids)).toEqual(cases.map((c: { ids: number[] }) => c.ids));
      expect(cases.every((c: { greedy: number[] }) => c.greedy.length > 0)).toBe(true);
    }
    expect(readFileSync(join(out, "README.md"), "utf8")).toMatch(/openelm compare yours.safetensors trace-K.safetensors/);
  });
});
