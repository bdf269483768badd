// Command-line values are parsed strictly: every value is either accepted within its range or refused with
// a UsageError naming the option, never passed on as NaN, Infinity or an empty string.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Sampler } from "../src/generation/sampler.js";
import { UsageError, parse, parseInteger, parseNumber, parseSampling, samplingOptions } from "../src/node/commands/args.js";

const outcome = <T>(f: () => T) => {
  try {
    return { value: f() };
  } catch (error) {
    return { error };
  }
};
// strings that look like numbers, or nearly do
const numberish = fc.oneof(fc.string({ maxLength: 6 }), fc.double().map(String), fc.integer().map(String), fc.constantFrom("", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "0x10", "1e", ".5", "5.", "+3", "-0", "1_000", "١٢"));

describe("numbers on the command line (fast-check)", () => {
  it("an integer option is an integer in range, or a UsageError naming the option", () => {
    fc.assert(fc.property(numberish, fc.integer({ min: 0, max: 10 }), fc.integer({ min: 10, max: 1000 }), (s, min, max) => {
      const r = outcome(() => parseInteger("n", s, undefined, min, max));
      if ("error" in r) {
        expect(r.error).toBeInstanceOf(UsageError);
        expect((r.error as Error).message).toMatch(/^--n: /);
      } else expect(Number.isSafeInteger(r.value) && r.value! >= min && r.value! <= max).toBe(true);
    }), { numRuns: 2000 });
  });

  it("a number option is finite and in range, or a UsageError naming the option", () => {
    fc.assert(fc.property(numberish, fc.double({ min: -5, max: 0, noNaN: true }), fc.boolean(), (s, min, open) => {
      const r = outcome(() => parseNumber("x", s, undefined, min, 1, open));
      if ("error" in r) expect((r.error as Error).message).toMatch(/^--x: /);
      else expect(Number.isFinite(r.value) && r.value! >= min && r.value! <= 1 && !(open && r.value === min)).toBe(true);
    }), { numRuns: 2000 });
  });

  it("any argument list for generate's sampling options gives options the sampler accepts, or a UsageError", () => {
    const names = Object.keys(samplingOptions);
    const arg = fc.oneof(fc.constantFrom(...names.map((n) => `--${n}`), "-n", "-m", "-t", "--nope", "-x"), numberish, fc.constantFrom("13:-inf", "5:2,7:-1", "1:+inf", "x:1", "3:nan", "-2"));
    fc.assert(fc.property(fc.array(arg, { maxLength: 8 }), (argv) => {
      const r = outcome(() => parseSampling(parse(argv, samplingOptions)));
      if ("error" in r) {
        expect(r.error).toBeInstanceOf(UsageError);
        expect((r.error as Error).message).not.toContain("\n");
        return;
      }
      const o = r.value!;
      expect(Number.isSafeInteger(o.maxNewTokens) && o.maxNewTokens >= 0).toBe(true);
      expect(Object.values(o.logitBias ?? {}).every((b) => !Number.isNaN(b))).toBe(true);
      expect(o.stop?.every((s) => s !== "") ?? true).toBe(true);
      expect(() => new Sampler(o)).not.toThrow();
    }), { numRuns: 3000 });
  });
});

describe("option spellings", () => {
  it("short flags, --opt=value, and negative values after an option", () => {
    const v = parse(["-m", "DIR", "-t", "2", "-n", "5", "--frequency-penalty", "-1.5", "--logit-bias=13:-inf"], samplingOptions);
    expect(v).toMatchObject({ model: "DIR", threads: "2", "max-new-tokens": "5", "frequency-penalty": "-1.5", "logit-bias": "13:-inf" });
    expect(parseSampling(v)).toMatchObject({ maxNewTokens: 5, frequencyPenalty: -1.5, logitBias: { 13: -Infinity } });
  });
});
