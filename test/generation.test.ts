// Generation: sampling semantics, streaming text, stop strings, cancellation, chat, conversations,
// batches, and prompt-lookup / speculative decoding giving exactly the greedy output.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { OPENELM_INSTRUCT_TEMPLATE, renderChat } from "../src/generation/chat.js";
import { decode, promptLookup, type SpeculationStats } from "../src/generation/decode.js";
import { Sampler, argmax, seededRandom } from "../src/generation/sampler.js";
import { TextGenerator, type GenerateChunk } from "../src/generation/stream.js";
import { loadTokenizerFromFolder } from "../src/node/index.js";
import { ORACLE, loadOracle, oracleCases } from "./helpers/oracle.js";

const logits = Float32Array.from([2, -2, 1, 0.5, 3, -1, 0, 1.5]);
const softmax = (x: ArrayLike<number>, t = 1) => {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe("Sampler", () => {
  it("repetition penalty (Hugging Face): logits of context tokens, positive divided, negative multiplied", () => {
    const out = new Sampler({ repetitionPenalty: 2 }).process(logits, [0, 1, 1], []);
    expect(Array.from(out.subarray(0, 3))).toEqual([1, -4, 1]);
  });

  it("frequency and presence penalties count generated tokens; logit bias adds", () => {
    const out = new Sampler({ frequencyPenalty: 0.5, presencePenalty: 0.25, logitBias: { 3: 10, 4: -Infinity } }).process(logits, [0, 2, 2], [2, 2]);
    expect(out[2]).toBeCloseTo(1 - 2 * 0.5 - 0.25);
    expect(out[0]).toBe(2); // in the prompt only: no frequency/presence penalty
    expect(out[3]).toBe(10.5);
    expect(out[4]).toBe(-Infinity);
    expect(new Sampler({ logitBias: { 4: -Infinity } }).sample(logits, [], [])).toBe(0); // the banned best token
  });

  it("top-k, top-p and min-p keep exactly the tokens their definitions keep", () => {
    const p = softmax(logits); // order by probability: 4, 0, 7, 2, 3, 6, 5, 1
    expect(Array.from(new Sampler({ temperature: 1, topK: 3 }).distribution(logits).ids)).toEqual([4, 0, 7]);
    // nucleus: add tokens until their mass reaches top_p, the crossing token included
    const top2 = p[4]! + p[0]!;
    expect(Array.from(new Sampler({ temperature: 1, topP: top2 - 1e-9 }).distribution(logits).ids)).toEqual([4, 0]);
    expect(Array.from(new Sampler({ temperature: 1, topP: top2 + 1e-9 }).distribution(logits).ids)).toEqual([4, 0, 7]);
    // min-p: probability at least min_p times the best one's
    const d = new Sampler({ temperature: 1, minP: p[2]! / p[4]! - 1e-9 }).distribution(logits);
    expect(Array.from(d.ids)).toEqual([4, 0, 7, 2]);
    expect(d.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it("never draws an excluded token, and draws the kept ones in proportion (2000 draws)", () => {
    for (const opts of [{ topK: 3 }, { topP: 0.8 }, { minP: 0.3 }, { topK: 5, topP: 0.9, temperature: 0.7 }]) {
      const sampler = new Sampler({ temperature: 1, ...opts, seed: 11 });
      const { ids, probs } = sampler.distribution(sampler.process(logits, [], []));
      const counts = new Map<number, number>();
      for (let i = 0; i < 2000; i++) {
        const id = sampler.sample(logits, [], []);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      for (const id of counts.keys()) expect(Array.from(ids)).toContain(id);
      ids.forEach((id, i) => expect(Math.abs((counts.get(id) ?? 0) / 2000 - probs[i]!)).toBeLessThan(0.04));
    }
  });

  it("a fixed seed gives the draw an independent inverse-CDF sampler makes with the same random numbers (no truncation: ids in order)", () => {
    const sampler = new Sampler({ temperature: 0.8, seed: 42 }), random = seededRandom(42);
    const order = Array.from(logits.keys());
    const p = softmax(logits, 0.8);
    for (let i = 0; i < 50; i++) {
      let r = random(), want = order[order.length - 1]!;
      for (const id of order) if ((r -= p[id]!) < 0) { want = id; break; }
      expect(sampler.sample(logits, [], [])).toBe(want);
    }
  });

  it("temperature → 0 is greedy; temperature 0 is argmax", () => {
    expect(new Sampler({ temperature: 1e-4, seed: 3 }).sample(logits, [], [])).toBe(argmax(logits));
    expect(new Sampler({}).sample(logits, [], [])).toBe(4);
    expect(() => new Sampler({ topP: 0 })).toThrow("topP must be in (0, 1]");
  });
});

describe("prompt lookup and speculative decoding give exactly the greedy ids", () => {
  it("prompt lookup finds the first earlier occurrence of the last n-gram (longest n first)", () => {
    expect(promptLookup([5, 6, 7, 8, 5, 6], 3)).toEqual([7, 8, 5]);
    expect(promptLookup([1, 2, 9, 2, 3, 4, 1, 2], 2)).toEqual([9, 2]);
    expect(promptLookup([1, 2, 3], 2)).toEqual([]);
    expect(promptLookup([4, 9, 4], 5, 1)).toEqual([9, 4]);
  });

  it.each(["elm-tiny-gqa", "elm-tiny-bf16-sharded", "elm-tiny-32k"])("%s: prompt lookup and a draft model", async (name) => {
    const model = await loadOracle(name);
    const draft = await loadOracle(name, { dtype: "f16" }); // a slightly different model with the same vocabulary
    for (const c of oracleCases(name)) {
      const n = 40;
      const greedy = [...decode(model, model.newCache(), c.ids, { maxNewTokens: n, ignoreEos: true })];
      const lookup: SpeculationStats = { proposed: 0, accepted: 0, passes: 0 };
      expect([...decode(model, model.newCache(), c.ids, { maxNewTokens: n, ignoreEos: true, promptLookup: 4 }, lookup)]).toEqual(greedy);
      const spec: SpeculationStats = { proposed: 0, accepted: 0, passes: 0 };
      expect([...decode(model, model.newCache(), c.ids, { maxNewTokens: n, ignoreEos: true, draft, draftTokens: 4 }, spec)]).toEqual(greedy);
      expect(spec.accepted).toBeGreaterThan(0);
      expect(spec.passes).toBeLessThan(n - 1); // fewer passes of the model than tokens
      expect(lookup.passes + lookup.accepted).toBe(n - 1);
    }
  });

  it("with sampling, a draft model changes nothing: same seed, same ids", async () => {
    const model = await loadOracle("elm-tiny-gqa"), draft = await loadOracle("elm-tiny-gqa", { dtype: "bf16" });
    const [c] = oracleCases("elm-tiny-gqa");
    const opts = { maxNewTokens: 30, ignoreEos: true, temperature: 0.9, topK: 20, seed: 5 };
    const plain = [...decode(model, model.newCache(), c!.ids, opts)];
    expect([...decode(model, model.newCache(), c!.ids, { ...opts, draft })]).toEqual(plain);
    expect([...decode(model, model.newCache(), c!.ids, { ...opts, promptLookup: 3 })]).toEqual(plain);
  });
});

describe("TextGenerator", () => {
  const load = async () => new TextGenerator(await loadOracle("elm-tiny-32k"), await loadTokenizerFromFolder(`${ORACLE}/elm-tiny-32k`));
  const collect = async (stream: AsyncGenerator<GenerateChunk>) => {
    const chunks: GenerateChunk[] = [];
    for await (const c of stream) chunks.push(c);
    return chunks;
  };

  it("streams deltas that join to the decoded ids, with timings on the last chunk", async () => {
    const g = await load();
    const chunks = await collect(g.generate("Once upon a time", { maxNewTokens: 20, ignoreEos: true }));
    const last = chunks[chunks.length - 1]!;
    const ids = chunks.flatMap((c) => c.ids);
    expect(ids).toHaveLength(20);
    expect(last).toMatchObject({ done: true, finishReason: "length" });
    expect(last.timings).toMatchObject({ promptTokens: 5, newTokens: 20 });
    expect(chunks.map((c) => c.text).join("")).toBe(g.tokenizer.decode([29871, ...ids]).slice(0));
    expect(chunks.slice(0, -1).every((c) => !c.done)).toBe(true);
  });

  it("stops before a stop string, even one that spans tokens, and never emits part of it", async () => {
    const g = await load();
    const full = (await g.complete("Once upon a time", { maxNewTokens: 30, ignoreEos: true })).text;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 6);
    const chunks = await collect(g.generate("Once upon a time", { maxNewTokens: 30, ignoreEos: true, stop: [stop, "never-appears"] }));
    const text = chunks.map((c) => c.text).join("");
    expect(text).toBe(full.slice(0, full.indexOf(stop)));
    expect(chunks[chunks.length - 1]!.finishReason).toBe("stop");
  });

  it("an AbortSignal ends the stream with finishReason abort", async () => {
    const g = await load(), controller = new AbortController();
    let n = 0;
    let last: GenerateChunk | undefined;
    for await (const c of g.generate("Once upon a time", { maxNewTokens: 200, ignoreEos: true, signal: controller.signal })) {
      if (++n === 3) controller.abort();
      last = c;
    }
    expect(last).toMatchObject({ done: true, finishReason: "abort" });
    expect(n).toBe(4);
  });

  it("asked for no tokens, generates none", async () => {
    const g = await load();
    expect(await g.complete("Once upon a time", { maxNewTokens: 0 })).toMatchObject({ ids: [], text: "", finishReason: "length" });
  });

  it("stops at the context limit and refuses a prompt longer than it", async () => {
    const g = new TextGenerator(await loadOracle("elm-tiny-32k", { contextLength: 12 }), await loadTokenizerFromFolder(`${ORACLE}/elm-tiny-32k`));
    const r = await g.complete("Once upon a time", { maxNewTokens: 50, ignoreEos: true });
    expect(r).toMatchObject({ finishReason: "context" });
    expect(r.ids).toHaveLength(12 - 5 + 1);
    await expect(g.complete("one two three four five six seven eight nine ten eleven twelve")).rejects.toThrow(/prompt too long: \d+ tokens, but the context holds 12/);
  });

  it("generates a batch: each prompt as it would alone", async () => {
    const g = await load();
    const prompts = ["Once upon a time", "The llama", "Hello world! How are you today?"];
    const batch = await g.batch(prompts, { maxNewTokens: 12, ignoreEos: true });
    for (const [i, p] of prompts.entries()) expect(batch[i]!.ids).toEqual((await g.complete(p, { maxNewTokens: 12, ignoreEos: true })).ids);
  });
});

describe("chat", () => {
  it("renders OpenELM-Instruct's template, byte for byte, for system + user + assistant + user", () => {
    const text = renderChat([
      { role: "system", content: "You are helpful." },
      { role: "user", content: "Hi!" },
      { role: "assistant", content: "Hello. How can I help?" },
      { role: "user", content: "Name a llama." },
    ]);
    expect(text).toBe("<|system|>\nYou are helpful.</s>\n<|user|>\nHi!</s>\n<|assistant|>\nHello. How can I help?</s>\n<|user|>\nName a llama.</s>\n<|assistant|>\n");
    expect(OPENELM_INSTRUCT_TEMPLATE).toBe(JSON.parse(readFileSync(new URL("../ref/openelm-instruct-chat-template.json", import.meta.url), "utf8")).chat_template);
  });

  it("a conversation re-runs only what its cache does not hold, and answers as a fresh prompt would", async () => {
    const g = new TextGenerator(await loadOracle("elm-tiny-32k"), await loadTokenizerFromFolder(`${ORACLE}/elm-tiny-32k`));
    const chat = g.conversation({ system: "Be brief." });
    const turn = async (text: string) => {
      let reply = "", timings;
      for await (const c of chat.send(text, { maxNewTokens: 8 })) {
        reply += c.text;
        timings = c.timings;
      }
      return { reply, timings: timings! };
    };
    const first = await turn("Hi!");
    const prompt2Tokens = g.tokenizer.encode(renderChat([...chat.messages, { role: "user", content: "And then?" }])).length;
    const second = await turn("And then?");
    expect(chat.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
    expect(first.timings.promptTokens).toBe(g.tokenizer.encode(renderChat(chat.messages.slice(0, 2))).length);
    expect(second.timings.promptTokens).toBeLessThan(prompt2Tokens / 2);
    const fresh = await g.complete(renderChat(chat.messages.slice(0, 4)), { maxNewTokens: 8 });
    expect(second.reply).toBe(fresh.text);
  });
});

describe("a conversation that outgrows its context", () => {
  it("drops its oldest turns (the system prompt stays), says so, and keeps answering", async () => {
    const model = await loadOracle("elm-tiny-32k", { contextLength: 96 });
    const g = new TextGenerator(model, await loadTokenizerFromFolder(`${ORACLE}/elm-tiny-32k`));
    const dropped: string[][] = [];
    const chat = g.conversation({ system: "Be brief.", onDrop: (ms) => dropped.push(ms.map((m) => m.role)) });
    expect(chat.contextLength).toBe(96);
    for (let turn = 0; turn < 8; turn++) {
      let n = 0, reason;
      for await (const c of chat.send(`Tell me about llama number ${turn}, please.`, { maxNewTokens: 12, ignoreEos: true })) (n += c.ids.length), (reason = c.finishReason);
      expect([n, reason]).toEqual([12, "length"]); // room was left for the whole reply
    }
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]).toEqual(["user", "assistant"]);
    expect(chat.messages[0]).toEqual({ role: "system", content: "Be brief." });
    expect(chat.messages.at(-2)).toEqual({ role: "user", content: "Tell me about llama number 7, please." });
  });

  it("a message too long for the context is refused and the conversation stays as it was", async () => {
    const model = await loadOracle("elm-tiny-32k", { contextLength: 64 });
    const g = new TextGenerator(model, await loadTokenizerFromFolder(`${ORACLE}/elm-tiny-32k`));
    const chat = g.conversation({ system: "Be brief." });
    for await (const _ of chat.send("Hi!", { maxNewTokens: 4 }));
    const before = structuredClone(chat.messages);
    await expect(async () => {
      for await (const _ of chat.send("word ".repeat(100), { maxNewTokens: 4 }));
    }).rejects.toThrow(/the message does not fit: the conversation's prompt is \d+ tokens, and the context holds 64/);
    expect(chat.messages).toEqual(before);
    let reply = 0;
    for await (const c of chat.send("Hi again!", { maxNewTokens: 4 })) reply += c.ids.length;
    expect(reply).toBe(4);
  });
});
