// generation_config.json (src/generation/generation-config.ts): the sampling defaults of a model folder, with
// transformers' meaning (greedy unless do_sample; top_k 50 when sampling), every bad field named (fast-check
// over arbitrary files), and `openelm generate` taking them while its own options win.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GenerationConfigError, parseGenerationConfig } from "../src/generation/generation-config.js";
import { JsonError } from "../src/formats/json.js";
import { ORACLE, ROOT } from "./helpers/oracle.js";

describe("parseGenerationConfig", () => {
  it.each([
    [{}, { temperature: 0 }],
    [{ bos_token_id: 1, eos_token_id: 2, transformers_version: "4.38.2" }, { temperature: 0 }], // apple/OpenELM-*'s own file
    [{ temperature: 0.7, top_p: 0.9 }, { temperature: 0 }], // no do_sample: greedy, as transformers decodes
    [{ do_sample: true }, { temperature: 1, topK: 50 }],
    [{ do_sample: true, temperature: 0.8, top_k: 0, top_p: 0.95, repetition_penalty: 1.2, max_new_tokens: 100 }, { temperature: 0.8, topK: 0, topP: 0.95, repetitionPenalty: 1.2, maxNewTokens: 100 }],
    [{ repetition_penalty: 1.2, num_beams: 1 }, { temperature: 0, repetitionPenalty: 1.2 }],
    [{ temperature: 0, min_p: 0.1 }, { temperature: 0 }], // greedy: transformers only warns about temperature 0, and min_p does not apply
    [{ do_sample: true, min_p: 0.05 }, { temperature: 1, topK: 50, minP: 0.05 }],
  ])("%j gives %j", (file, defaults) => {
    expect(parseGenerationConfig(JSON.stringify(file))).toEqual(defaults);
  });

  it.each([
    [{ do_sample: "yes" }, /field "do_sample" must be true or false, got "yes"/],
    [{ num_beams: 4 }, /field "num_beams" must be 1 \(openelm does not search beams\), got 4/],
    [{ do_sample: true, temperature: 0 }, /field "temperature" must be a number above 0, got 0/],
    [{ top_k: 2.5 }, /field "top_k" must be an integer ≥ 0, got 2.5/],
    [{ top_p: 1.5 }, /field "top_p" must be a number above 0, at most 1, got 1.5/],
    [{ repetition_penalty: -1 }, /field "repetition_penalty" must be a number above 0, got -1/],
    [{ max_new_tokens: 0 }, /field "max_new_tokens" must be an integer ≥ 1, got 0/],
  ])("%j is refused", (file, message) => {
    expect(() => parseGenerationConfig(JSON.stringify(file), "m/generation_config.json")).toThrow(message);
    expect(() => parseGenerationConfig(JSON.stringify(file), "m/generation_config.json")).toThrow(/^m\/generation_config.json: /);
  });

  it("fast-check: any text is read into valid defaults or refused with a named error", () => {
    const field = fc.constantFrom("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens", "num_beams", "other");
    const text = fc.oneof(fc.dictionary(field, fc.oneof(fc.jsonValue(), fc.double(), fc.boolean())).map((o) => JSON.stringify(o)), fc.string());
    fc.assert(
      fc.property(text, (t) => {
        try {
          const d = parseGenerationConfig(t);
          const sampled = d.temperature! > 0;
          expect(Number.isFinite(d.temperature) && d.temperature! >= 0).toBe(true);
          expect(sampled ? Number.isInteger(d.topK) && d.topK! >= 0 : d.topK === undefined && d.topP === undefined && d.minP === undefined).toBe(true);
          if (d.topP !== undefined) expect(d.topP > 0 && d.topP <= 1).toBe(true);
          if (d.minP !== undefined) expect(d.minP >= 0 && d.minP <= 1).toBe(true);
          if (d.repetitionPenalty !== undefined) expect(d.repetitionPenalty > 0 && Number.isFinite(d.repetitionPenalty)).toBe(true);
          if (d.maxNewTokens !== undefined) expect(Number.isInteger(d.maxNewTokens) && d.maxNewTokens >= 1).toBe(true);
        } catch (e) {
          expect(e instanceof GenerationConfigError || e instanceof JsonError, String(e)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("openelm generate with a generation_config.json", () => {
  const CLI = join(ROOT, "dist/node/cli.js"), dir = mkdtempSync(join(tmpdir(), "openelm-genconfig-"));
  cpSync(join(ORACLE, "elm-tiny-32k"), dir, { recursive: true });
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ do_sample: true, temperature: 0.9, top_k: 40, repetition_penalty: 1.3, max_new_tokens: 7 }));
  const ids = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, "generate", "--prompt", "Once upon a time", "--ignore-eos", "--json", ...args], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { ids: number[] }).ids;
  };

  it("takes the file's defaults, and options on the command line win", () => {
    const plain = join(ORACLE, "elm-tiny-32k");
    const fromFile = ids("--model", dir);
    expect(fromFile).toHaveLength(7);
    expect(fromFile).toEqual(ids("--model", plain, "--temperature", "0.9", "--top-k", "40", "--repetition-penalty", "1.3", "--max-new-tokens", "7"));
    expect(ids("--model", dir, "--temperature", "0", "--repetition-penalty", "1", "--max-new-tokens", "5")).toEqual(ids("--model", plain, "--max-new-tokens", "5"));
  });

  it("a damaged file is named", () => {
    const bad = mkdtempSync(join(tmpdir(), "openelm-genconfig-bad-"));
    cpSync(join(ORACLE, "elm-tiny-32k"), bad, { recursive: true });
    writeFileSync(join(bad, "generation_config.json"), JSON.stringify({ do_sample: true, top_p: 2 }));
    const r = spawnSync(process.execPath, [CLI, "generate", "--model", bad, "--prompt", "Hi"], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/generation_config.json: field "top_p" must be a number above 0, at most 1, got 2/);
  });
});
