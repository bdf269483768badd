// The sampler's truncation (top-k, top-p, min-p) by partial selection against a plain specification that
// sorts the whole vocabulary, as Hugging Face's logits processors do.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Sampler, seededRandom, type SamplingOptions } from "../src/generation/sampler.js";

/** The specification: sort everything (higher logit first, then lower id), then top-k, top-p, min-p. */
function specification(logits: Float32Array, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const T = o.temperature || 1, max = logits.reduce((a, b) => Math.max(a, b), -Infinity);
  let ids = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (o.topK) ids = ids.slice(0, o.topK);
  let w = ids.map((id) => Math.exp((logits[id]! - max) / T));
  if (o.topP !== undefined && o.topP < 1) {
    // the mass top-p measures against, summed in id order as the sampler sums it (so topP near 1 compares the same float)
    const total = o.topK && o.topK < logits.length ? w.reduce((a, b) => a + b, 0) : Array.from(logits, (l) => Math.exp((l - max) / T)).reduce((a, b) => a + b, 0);
    let keep = 0;
    for (let acc = 0; keep < w.length && acc < o.topP * total; keep++) acc += w[keep]!;
    ids = ids.slice(0, Math.max(1, keep));
    w = w.slice(0, ids.length);
  }
  if (o.minP) {
    const n = w.findIndex((x) => x < o.minP! * w[0]!);
    if (n > 0) (ids = ids.slice(0, n)), (w = w.slice(0, n));
  }
  const total = w.reduce((a, b) => a + b, 0);
  return { ids, probs: w.map((x) => x / total) };
}

function expectSpecification(logits: Float32Array, o: SamplingOptions) {
  const got = new Sampler(o).distribution(logits), want = specification(logits, o);
  expect(Array.from(got.ids)).toEqual(want.ids);
  got.probs.forEach((p, i) => expect(Math.abs(p - want.probs[i]!)).toBeLessThanOrEqual(1e-12 * want.probs[i]!));
}

const logitArray = (n: number) => fc.array(fc.oneof(
  fc.double({ min: -20, max: 20, noNaN: true }),
  fc.constantFrom(0, -0, 1, -Infinity), // ties (-0 ties with 0), and tokens banned by a logit bias
), { minLength: n, maxLength: n }).map((a) => Float32Array.from(a)).filter((a) => a.some((x) => x > -Infinity));
const options = fc.record({
  temperature: fc.double({ min: 0.05, max: 3, noNaN: true }),
  topK: fc.option(fc.integer({ min: 1, max: 400 }), { nil: undefined }),
  topP: fc.option(fc.oneof(fc.double({ min: 1e-6, max: 1, noNaN: true }), fc.constant(1 - 2 ** -52)), { nil: undefined }),
  minP: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
}, { requiredKeys: ["temperature"] });

describe("partial selection keeps exactly what the full sort keeps", () => {
  it("distribution() equals the specification: same ids in the same order, same probabilities (fast-check)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }).chain(logitArray), options, expectSpecification), { numRuns: 1500 });
  });

  it("and on a 32000-token vocabulary, peaked or flat, with some tokens banned (fast-check)", () => {
    const vocabulary = fc.record({ seed: fc.integer(), sd: fc.constantFrom(0.01, 1, 3, 8), banned: fc.integer({ min: 0, max: 1000 }) }).map(({ seed, sd, banned }) => {
      const random = seededRandom(seed), gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      const logits = Float32Array.from({ length: 32000 }, () => sd * gauss());
      for (let i = 0; i < banned; i++) logits[Math.floor(random() * 32000)] = -Infinity;
      return logits;
    });
    fc.assert(fc.property(vocabulary, options, expectSpecification), { numRuns: 40 });
  });

  const peaked = Float32Array.from({ length: 32000 }, (_, i) => (i === 7 ? 30 : i === 9 ? 29 : Math.sin(i) * 3));
  const flat = new Float32Array(5);
  it.each([
    ["top-k beyond the vocabulary keeps everything", flat, { temperature: 1, topK: 10 }, [0, 1, 2, 3, 4]],
    ["top-p 1 keeps everything", flat, { temperature: 1, topP: 1 }, [0, 1, 2, 3, 4]],
    ["a tiny top-p keeps the best token", peaked, { temperature: 1, topP: 1e-9 }, [7]],
    ["min-p 1 keeps the tokens tied with the best", Float32Array.of(1, 3, 3, 2), { temperature: 1, minP: 1 }, [1, 2]],
    ["equal logits keep id order", flat, { temperature: 1, topK: 3 }, [0, 1, 2]],
    ["equal logits, no truncation: every token in id order", flat, { temperature: 0.7 }, [0, 1, 2, 3, 4]],
    ["0 and -0 are a tie", Float32Array.of(-0, 0, -1), { temperature: 1, topK: 2 }, [0, 1]],
    ["a single finite logit among -inf", Float32Array.of(-Infinity, 2, -Infinity), { temperature: 1, topP: 0.5, minP: 0.1 }, [1]],
    ["top-p on a peaked 32k vocabulary needs no full sort", peaked, { temperature: 0.8, topP: 0.9 }, [7, 9]],
  ] as const)("%s", (_, logits, o, ids) => {
    expect(Array.from(new Sampler(o).distribution(logits as Float32Array).ids)).toEqual(ids);
    expectSpecification(logits as Float32Array, o);
  });

  it("equal logits share the probability equally", () => {
    expect(Array.from(new Sampler({ temperature: 0.7 }).distribution(new Float32Array(4)).probs)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it("a fixed seed reproduces the draws; all tokens banned is an error", () => {
    const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.cos(i * 1.7) * 4);
    const draws = (o: SamplingOptions) => {
      const sampler = new Sampler({ ...o, seed: 9 });
      return Array.from({ length: 20 }, () => sampler.sample(logits, [], []));
    };
    for (const o of [{ temperature: 0.8 }, { temperature: 0.8, topK: 40, topP: 0.9 }, { temperature: 0.8, topP: 0.9 }, { temperature: 1.2, minP: 0.05 }]) {
      const a = draws(o);
      expect(draws(o)).toEqual(a);
      expect(new Set(a).size).toBeGreaterThan(1);
    }
    expect(() => new Sampler({ temperature: 1 }).sample(Float32Array.of(-Infinity, -Infinity), [], [])).toThrow("every token is excluded");
  });
});
