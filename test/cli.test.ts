// The conformance command line, run as a user runs it (the built dist/node/cli.js), and its errors.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeNpy } from "../src/npy.js";
import { ORACLE, ROOT, oracleCases, relError } from "./helpers/oracle.js";

const CLI = join(ROOT, "dist/node/cli.js");
const tmp = mkdtempSync(join(tmpdir(), "openelm-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of an oracle model that a test may break. */
function copyModel(name: string): string {
  const dir = mkdtempSync(join(tmp, `${name}-`));
  cpSync(join(ORACLE, name), dir, { recursive: true });
  return dir;
}

describe("openelm logits", () => {
  it("writes float32 .npy logits (ids × vocab) equal to the reference", () => {
    const [, c] = oracleCases("elm-tiny-gqa");
    const out = join(tmp, "gqa.npy");
    const r = run("logits", "--model", join(ORACLE, "elm-tiny-gqa"), "--ids", c!.ids.join(","), "--out", out);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const bytes = readFileSync(out);
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])); // NumPy 1.0
    expect((10 + bytes.readUInt16LE(8)) % 64).toBe(0);
    const npy = decodeNpy(bytes);
    expect(npy.shape).toEqual([c!.ids.length, 512]);
    expect(relError(npy.data, c!.logits)).toBeLessThan(1e-4);
  });
});

describe("openelm generate", () => {
  it("--ids --temperature 0 --ignore-eos --json prints one line with the greedy ids", () => {
    const [c] = oracleCases("elm-tiny-untied-mha");
    const r = run("generate", "--model", join(ORACLE, "elm-tiny-untied-mha"), "--ids", c!.ids.join(","), "--max-new-tokens", String(c!.greedy.length), "--temperature", "0", "--ignore-eos", "--json");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).ids).toEqual(c!.greedy);
  });

  it("--prompt streams the text of the greedy continuation, then reports tokens/s", () => {
    const r = run("generate", "--model", join(ORACLE, "elm-tiny-32k"), "--prompt", "Once upon a time", "--max-new-tokens", "12", "--ignore-eos");
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith("Once upon a time")).toBe(true);
    expect(r.stdout.length).toBeGreaterThan("Once upon a time".length + 12);
    expect(r.stderr).toMatch(/generated 12 tokens, [\d.]+ tok\/s decoding/);
    const json = JSON.parse(run("generate", "--model", join(ORACLE, "elm-tiny-32k"), "--prompt", "Once upon a time", "--max-new-tokens", "12", "--ignore-eos", "--json").stdout);
    expect(r.stdout).toBe("Once upon a time" + json.text + "\n");
    expect(json.ids).toHaveLength(12);
  });
});

describe("openelm info", () => {
  it("prints the derived per-layer architecture", () => {
    const r = run("info", "--model", join(ORACLE, "elm-tiny-gqa"));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/layers\s+4\s+model_dim 128\s+head_dim 16/);
    expect(r.stdout).toMatch(/grouped-query, 4 query heads per kv head; QK-norm yes/);
    const rows = r.stdout.split("\n").filter((l) => /^\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+\d+$/.test(l)).map((l) => l.trim().split(/\s+/).map(Number));
    expect(rows).toEqual([[0, 4, 1, 0.5, 64], [1, 8, 2, 1.67, 224], [2, 8, 2, 2.83, 352], [3, 8, 2, 4, 512]]);
    expect(r.stdout).toMatch(/parameters\s+[\d,]+/);
  });
});

describe("bad input exits non-zero with one clear line", () => {
  const gqa = join(ORACLE, "elm-tiny-gqa");
  const cases: [string, () => string[], RegExp][] = [
    ["a missing folder", () => ["info", "--model", join(tmp, "nope")], /model folder .*nope does not exist/],
    ["a folder without config.json", () => ["info", "--model", tmp], /no config.json/],
    ["a config.json that is not JSON", () => {
      const d = copyModel("elm-tiny-gqa");
      writeFileSync(join(d, "config.json"), "{ nope");
      return ["info", "--model", d];
    }, /config.json: not valid JSON/],
    ["a config with a bad field", () => {
      const d = copyModel("elm-tiny-gqa");
      const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
      writeFileSync(join(d, "config.json"), JSON.stringify({ ...cfg, num_query_heads: [4, 4, 8, 8] }));
      return ["info", "--model", d];
    }, /"num_query_heads" \[4,4,8,8\] contradicts/],
    ["a missing tensor", () => {
      const d = copyModel("elm-tiny-untied-mha");
      const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
      writeFileSync(join(d, "config.json"), JSON.stringify({ ...cfg, num_transformer_layers: 4, num_query_heads: undefined, num_kv_heads: undefined, ffn_multipliers: 2.5 }));
      return ["info", "--model", d];
    }, /missing tensors: transformer.layers.3.attn_norm.weight/],
    ["a truncated safetensors file", () => {
      const d = copyModel("elm-tiny-gqa");
      truncateSync(join(d, "model.safetensors"), 100_000);
      return ["info", "--model", d];
    }, /model.safetensors: truncated: tensor ".*" ends at byte \d+ but the file has 100000 bytes/],
    ["a token id out of range", () => ["logits", "--model", gqa, "--ids", "1,512", "--out", join(tmp, "x.npy")], /token id 512 at index 1 is out of range \[0, 512\)/],
    ["a malformed id list", () => ["logits", "--model", gqa, "--ids", "1,a", "--out", join(tmp, "x.npy")], /--ids: "a" is not a token id/],
    ["ids longer than the context", () => ["logits", "--model", gqa, "--ids", Array(129).fill(1).join(","), "--out", join(tmp, "x.npy")], /context too long: 0 cached \+ 129 new tokens exceed the context length 128/],
    ["a prompt longer than max_context_length", () => ["generate", "--model", join(ORACLE, "elm-tiny-32k"), "--prompt", "word ".repeat(300)], /prompt too long: 302 tokens, but the context holds 256/ /* BOS, 300 words, a final "▁" */],
    ["an unknown dtype", () => ["info", "--model", gqa, "--dtype", "f64"], /--dtype: "f64" is not one of f32, f16, bf16/],
    ["an unknown option", () => ["info", "--model", gqa, "--frobnicate"], /Unknown option '--frobnicate'/],
    ["an unknown command", () => ["train"], /unknown command "train"/],
  ];
  it.each(cases)("%s", (_, args, message) => {
    const r = run(...args());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("--help works for every command", () => {
    for (const cmd of ["logits", "generate", "info"]) {
      const r = run(cmd, "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`openelm ${cmd}`);
    }
    expect(run("--help").stdout).toMatch(/usage: openelm <command>/);
  });
});
