// Past the trained context, openelm does what Apple's code does: rotary embeddings exist for every
// position, so a prompt near max_context_length plus 16 greedy tokens runs past it. Reference data from
// our PyTorch reference (ref/past-context, whose logits equal CoreNet's on every oracle case).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeNpy } from "../src/formats/npy.js";
import { decode } from "../src/generation/decode.js";
import { Arena } from "../src/arena.js";
import { ContextError, OpenELM } from "../src/model.js";
import { MODELS, ROOT, loadOracle, relError, splitBudget } from "./helpers/oracle.js";

const DIR = join(ROOT, "ref/past-context");
const reference = (name: string) => {
  const r = JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8")) as { max_context_length: number; prompt: number[]; greedy: number[]; logits: string };
  return { ...r, rows: decodeNpy(readFileSync(join(DIR, r.logits))).data };
};

describe.each(MODELS)("%s past max_context_length", (name) => {
  const ref = reference(name);

  it.each([
    ["SIMD kernels", {}],
    ["TypeScript kernels", { kernels: "typescript" as const }],
    ["layers over several memories", { memoryBytes: splitBudget(name), threads: 2, minParallelWork: 0 }],
  ])("greedy decoding with the KV cache gives the reference's 16 ids, with one warning (%s)", async (_, opts) => {
    const model = await loadOracle(name, opts);
    const warnings: string[] = [];
    model.onWarning = (m) => warnings.push(m);
    const ids = [...decode(model, model.newCache(), ref.prompt, { maxNewTokens: 16, ignoreEos: true })];
    expect(ids).toEqual(ref.greedy);
    expect(ref.prompt.length + ids.length).toBeGreaterThan(ref.max_context_length + 10);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`passed the trained context of ${ref.max_context_length} tokens`));
    await model.close();
  });

  it("the logits of one full pass past the trained length equal the reference's", async () => {
    const model = await loadOracle(name);
    model.onWarning = () => {};
    const all = model.forward(model.newCache(), [...ref.prompt, ...ref.greedy.slice(0, 15)], { allPositions: true });
    const V = model.config.vocabSize;
    expect(relError(all.subarray(all.length - 16 * V), ref.rows)).toBeLessThan(1e-4);
    await model.close();
  });

  it("--context caps it: the sequence ends at the cap and a longer input is an error", async () => {
    const model = await loadOracle(name, { contextLength: ref.max_context_length });
    const ids = [...decode(model, model.newCache(), ref.prompt, { maxNewTokens: 16, ignoreEos: true })];
    expect(ids).toEqual(ref.greedy.slice(0, 5)); // the last prompt token's logits give the first; 4 more fill the cache
    expect(() => model.forward(model.newCache(), [...ref.prompt, ...ref.greedy])).toThrow(ContextError);
    expect(() => model.forward(model.newCache(), [...ref.prompt, ...ref.greedy])).toThrow(`exceed the context length ${ref.max_context_length} (--context)`);
    await model.close();
  });
});

describe("a growing KV cache", () => {
  it("prefill then token by token, growing twice, gives the logits of one full pass", async () => {
    const model = await loadOracle("elm-tiny-untied-mha");
    model.onWarning = () => {};
    const ids = Array.from({ length: 600 }, (_, i) => (i * 7919) % model.config.vocabSize);
    const full = model.forward(model.newCache(), ids, { allPositions: true });
    const cache = model.newCache(), V = model.config.vocabSize;
    model.forward(cache, ids.slice(0, 200));
    expect(cache.allocated).toBe(256);
    for (let p = 200; p < 600; p++) {
      const row = model.forward(cache, [ids[p]!]);
      expect(relError(row, full.subarray(p * V, (p + 1) * V))).toBeLessThan(1e-5);
    }
    expect(cache.allocated).toBe(1024);
    await model.close();
  });

  it("memory given back is reused first-fit, neighbouring holes merged", () => {
    const arena = new Arena();
    const [a, b, c] = [arena.alloc(1000), arena.alloc(1000), arena.alloc(1000)];
    const top = arena.used;
    arena.free(a, 1000);
    arena.free(b, 1000); // merges with a's hole: 2048 bytes from a
    expect(arena.alloc(2000)).toBe(a);
    expect(arena.used).toBe(top);
    arena.free(c, 1000);
    expect(arena.alloc(64)).toBe(c); // a hole is split
    expect(arena.alloc(960)).toBe(c + 64);
    expect(arena.used).toBe(top);
  });

  it("a grown cache's old memory goes to the next cache", async () => {
    const model = await loadOracle("elm-tiny-gqa");
    model.onWarning = () => {};
    model.forward(model.newCache(), Array(300).fill(5));
    const used = model.arena.used;
    model.forward(model.newCache(), [1, 2, 3]); // 256 positions
    const fresh = model.config.numKvHeads.reduce((a, _, l) => a + OpenELM.kvBytes(model.config, l, 256), 0);
    expect(model.arena.used - used).toBeLessThan(fresh);
    await model.close();
  });
});
