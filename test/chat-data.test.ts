// Chat data for fine-tuning: chat JSONL files parsed field by field (every error names file, line and
// field; any text gives conversations or a ChatDataError, never anything else) and conversations rendered
// with the OpenELM-Instruct template into ids (the same as tokenizing the whole text) whose mask covers
// exactly the assistant replies and their "</s>".
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../src/generation/chat.js";
import { renderChat } from "../src/generation/chat.js";
import { bundledTokenizer } from "../src/node/index.js";
import { Tokenizer } from "../src/tokenizer.js";
import { ChatDataError, parseChatJsonl, renderExample } from "../src/train/chat-data.js";

const tokenizer = new Tokenizer(await bundledTokenizer());
const EOS_ID = 2, NEWLINE_ID = 13;
const line = (messages: unknown, extra: object = {}) => JSON.stringify({ ...extra, messages });
const pair = [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }] as ChatMessage[];

/** Text of ids as they stand after a newline (decode alone would strip a leading space). */
const decodeAfterNewline = (ids: number[]) => tokenizer.decode([NEWLINE_ID, ...ids]).slice(1);

/** The runs of consecutive learnt tokens of an example. */
function learntRuns({ ids, mask }: { ids: number[]; mask: boolean[] }): number[][] {
  const runs: number[][] = [];
  mask.forEach((learnt, j) => {
    if (learnt && mask[j - 1]) runs[runs.length - 1]!.push(ids[j]!);
    else if (learnt) runs.push([ids[j]!]);
  });
  return runs;
}

/** Each learnt run is one assistant reply followed by "</s>", in order. */
function expectRepliesLearnt(messages: ChatMessage[], example: { ids: number[]; mask: boolean[] }): void {
  const runs = learntRuns(example);
  const replies = messages.filter((m) => m.role === "assistant").map((m) => m.content);
  expect(runs.map((run) => run[run.length - 1])).toEqual(replies.map(() => EOS_ID));
  // each reply follows "<|assistant|>\n" and ends at </s>, a special token: its tokens are those of its text after a newline
  // (compared as ids: decoding would apply the tokenizer's clean-up, " ." to ".")
  expect(runs.map((run) => run.slice(0, -1))).toEqual(replies.map((r) => (r === "" ? [] : tokenizer.encodeContinuation(r))));
  for (const [i, run] of runs.entries()) if (!/ [.,!?']|n't/.test(replies[i]!)) expect(decodeAfterNewline(run.slice(0, -1))).toBe(replies[i]);
}

const CASES: [string, ChatMessage[]][] = [
  ["a user/assistant pair", pair],
  ["a system message and two turns", [
    { role: "system", content: "You are a helpful assistant. Answer briefly." },
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "Paris." },
    { role: "user", content: "And of Italy?" },
    { role: "assistant", content: "Rome, which is also its largest city." },
  ]],
  ["a multi-line assistant reply", [
    { role: "user", content: "Write a haiku about llamas, then some code." },
    { role: "assistant", content: "Soft wool on the hills\n  chewing, watching the slow clouds\nthe llama hums on\n\n```js\nconsole.log(\"🦙\");\n```\n" },
  ]],
  ["spaces at either end, unicode, two assistant messages in a row", [
    { role: "user", content: "  naïve café 日本語 " },
    { role: "assistant", content: " Ja, 日本語です。 " },
    { role: "assistant", content: "" },
    { role: "user", content: "\n" },
    { role: "assistant", content: "\tok\r\n" },
  ]],
];

describe("renderExample", () => {
  it("spells out the ids and mask of a short conversation", () => {
    // "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n": after "</s>" the tokenizer starts a new piece ("▁\n")
    const text = "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n";
    expect(renderChat(pair, { addGenerationPrompt: false })).toBe(text);
    const { ids, mask } = renderExample(pair, tokenizer);
    expect(ids).toEqual([
      1, 529, 29989, 1792, 29989, 29958, 13, 18567, 2, 29871, 13, // <s> "<|user|>\nHi</s>" "▁\n"
      29966, 29989, 465, 22137, 29989, 29958, 13, // "<|assistant|>\n"
      10994, 29991, 2, // "Hello!</s>": learnt
      29871, 13, // "▁\n"
    ]);
    expect(mask.flatMap((m, j) => (m ? [j] : []))).toEqual([18, 19, 20]);
  });

  it.each(CASES)("%s: ids are the whole text's, the learnt tokens are the replies and their </s>", (_, messages) => {
    const example = renderExample(messages, tokenizer);
    expect(example.ids).toEqual(tokenizer.encode(renderChat(messages, { addGenerationPrompt: false })));
    expect(example.mask).toHaveLength(example.ids.length);
    expect(example.mask[0]).toBe(false);
    expectRepliesLearnt(messages, example);
    // each reply starts where the conversation before it, with the generation prompt, ends
    const starts = example.mask.flatMap((learnt, j) => (learnt && !example.mask[j - 1] ? [j] : []));
    const prompts = messages.flatMap((m, i) => (m.role === "assistant" ? [tokenizer.encode(renderChat(messages.slice(0, i), { addGenerationPrompt: true }))] : []));
    expect(starts).toEqual(prompts.map((p) => p.length));
    prompts.forEach((p, k) => expect(example.ids.slice(0, starts[k])).toEqual(p));
  });

  it("maxTokens keeps the first tokens, and refuses an example left with nothing to learn", () => {
    const full = renderExample(CASES[1]![1], tokenizer);
    const firstLearnt = full.mask.indexOf(true);
    for (const maxTokens of [firstLearnt + 1, firstLearnt + 5, full.ids.length, full.ids.length + 10]) {
      const cut = renderExample(CASES[1]![1], tokenizer, { maxTokens });
      expect(cut).toEqual({ ids: full.ids.slice(0, maxTokens), mask: full.mask.slice(0, maxTokens) });
    }
    expect(() => renderExample(CASES[1]![1], tokenizer, { maxTokens: firstLearnt })).toThrow(
      new ChatDataError(`no assistant token within the first ${firstLearnt} tokens (maxTokens), so there is nothing to learn from the conversation`, true));
    expect(renderExample(CASES[1]![1], tokenizer, { maxTokens: firstLearnt + 1 }).mask.filter(Boolean)).toHaveLength(1);
    for (const maxTokens of [0, 1.5, -1, NaN]) expect(() => renderExample(pair, tokenizer, { maxTokens })).toThrow(RangeError);
  });

  it("refuses an assistant message with no generation prompt before it, and a template that is not incremental", () => {
    expect(() => renderExample([{ role: "assistant", content: "Hi" }], tokenizer)).toThrow(
      new ChatDataError("messages[0]: the chat template puts no generation prompt before this assistant message (it needs a system or user message before it)"));
    // a template that puts the number of messages first renders each prefix differently
    const counting = "{{ messages|length }}{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}";
    expect(() => renderExample(pair, tokenizer, { template: counting })).toThrow(
      new ChatDataError("messages[1]: the chat template does not render conversations incrementally (the rendering up to this message does not extend the one before it), so the turns cannot be told apart"));
  });

  it("refuses a template whose turns the tokenizer merges across", () => {
    // nothing between the user's "a" and the prompt "x": the whole text "axbc</s>" tokenizes "▁ax", not "▁a" "▁x"
    const merging = "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ 'x' + m['content'] + eos_token }}{% else %}{{ m['content'] }}{% endif %}{% endfor %}" +
      "{% if add_generation_prompt %}{{ 'x' }}{% endif %}";
    expect(() => renderExample([{ role: "user", content: "a" }, { role: "assistant", content: "bc" }], tokenizer, { template: merging })).toThrow(
      new ChatDataError("the conversation's turns tokenized one by one differ from the whole text tokenized at once (from token 1): the chat template joins turns where the tokenizer merges across"));
  });

  it("fast-check: the learnt tokens are exactly the assistant replies' tokens, each with its </s>", () => {
    fc.assert(fc.property(conversation, (messages) => {
      const example = renderExample(messages, tokenizer);
      expect(example.ids).toEqual(tokenizer.encode(renderChat(messages, { addGenerationPrompt: false })));
      expect(example.mask[0]).toBe(false);
      expectRepliesLearnt(messages, example);
    }), { numRuns: 60 });
  });
});

// Contents without the text of a special token (which would tokenize as that token), without lone surrogates,
// and without "▁" (U+2581), SentencePiece's mark for a space, which decodes as one.
const content = fc.string({ unit: fc.oneof(fc.constantFrom("\n", " ", "\t", "é", "日", "🦙", "<", "|", ">"), fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 })), maxLength: 24 })
  .filter((s) => !/<\/?s>|<unk>|\u2581/.test(s));
const message = (role: ChatMessage["role"]) => content.map((c): ChatMessage => ({ role, content: c }));
// a system message maybe, then user and assistant turns (an assistant may follow an assistant)
const conversation = fc.tuple(
  fc.option(message("system"), { nil: undefined }),
  fc.array(fc.tuple(message("user"), fc.array(message("assistant"), { minLength: 1, maxLength: 2 })), { minLength: 1, maxLength: 3 }),
).map(([system, turns]) => [...(system ? [system] : []), ...turns.flatMap(([user, replies]) => [user, ...replies])]);

describe("OpenAI's \"weight\" on assistant messages", () => {
  it("a reply with weight 0 stays in the context and is not learnt; weight 1 is learnt", () => {
    const text = line([{ role: "user", content: "Hi" }, { role: "assistant", content: "Nope.", weight: 0 }, { role: "user", content: "Again?" }, { role: "assistant", content: "Hello!", weight: 1 }]);
    const [messages] = parseChatJsonl(text, "w.jsonl");
    expect(messages!.map((m) => (m as { weight?: number }).weight)).toEqual([undefined, 0, undefined, 1]);
    const e = renderExample(messages!, tokenizer), learnt = e.ids.filter((_, j) => e.mask[j]);
    expect(tokenizer.decode(learnt)).toBe("Hello!");
    expect(learnt.at(-1)).toBe(2); // and the </s> after it
    expect(tokenizer.decode(e.ids)).toContain("Nope.");
  });

  it.each([
    [{ role: "assistant", content: "a", weight: 0.5 }, /w.jsonl line 1: "messages\[1\].weight" must be 0 or 1, got 0.5/],
    [{ role: "user", content: "u", weight: 1 }, /w.jsonl line 1: "messages\[1\].weight" is for assistant messages, and this one is user's/],
  ])("%j is refused", (message, error) => {
    expect(() => parseChatJsonl(line([{ role: "user", content: "Hi" }, message, { role: "assistant", content: "ok" }]), "w.jsonl")).toThrow(error);
  });

  it("a conversation whose every reply has weight 0 is refused", () => {
    expect(() => parseChatJsonl(line([{ role: "user", content: "Hi" }, { role: "assistant", content: "a", weight: 0 }]), "w.jsonl")).toThrow(/w.jsonl line 1: every assistant message has "weight": 0/);
  });

  it("an example cut before its first reply is marked truncated, for callers that skip such examples", () => {
    const long = [{ role: "user", content: "word ".repeat(50) }, { role: "assistant", content: "ok" }] as ChatMessage[];
    try {
      renderExample(long, tokenizer, { maxTokens: 8 });
      expect.unreachable();
    } catch (e) {
      expect((e as ChatDataError).truncated).toBe(true);
    }
  });
});

describe("parseChatJsonl", () => {
  it("reads one conversation per non-blank line, ignoring a BOM, blank lines, CRLF and extra fields", () => {
    const text = `\uFEFF${line(pair, { id: 7 })}\r\n\n   \t\n${line([{ role: "system", content: "s", name: "x" }, { role: "assistant", content: "a", id: 3 }])}`;
    expect(parseChatJsonl(text, "chat.jsonl")).toEqual([pair, [{ role: "system", content: "s" }, { role: "assistant", content: "a" }]]);
    expect(parseChatJsonl("", "chat.jsonl")).toEqual([]);
    expect(parseChatJsonl("\n \n", "chat.jsonl")).toEqual([]);
  });

  it.each([
    [`${line(pair)}\n\n{"messages" []}`, `chat.jsonl line 3: not valid JSON (Expected ':' after property name at column 13)`],
    ['{"messages": [}', "chat.jsonl line 1: not valid JSON (Unexpected token '}')"],
    ["bad", "chat.jsonl line 1: not valid JSON (Unexpected token 'b')"],
    ['{"messages": [', "chat.jsonl line 1: not valid JSON (Unexpected end of JSON input)"],
    ['{"messages": []} x', "chat.jsonl line 1: not valid JSON (Unexpected non-whitespace character after JSON at column 18)"],
    ["[1, 2]", 'chat.jsonl line 1: expected a JSON object with "messages", got an array'],
    ['"text"', 'chat.jsonl line 1: expected a JSON object with "messages", got "text"'],
    ["null", 'chat.jsonl line 1: expected a JSON object with "messages", got null'],
    ['{"conversation": []}', 'chat.jsonl line 1: "messages" must be an array of {"role", "content"} objects, got nothing'],
    ['{"messages": {"role": "user"}}', 'chat.jsonl line 1: "messages" must be an array of {"role", "content"} objects, got an object'],
    ['{"messages": []}', 'chat.jsonl line 1: "messages" is empty'],
    ['{"messages": ["hi"]}', 'chat.jsonl line 1: "messages[0]" must be an object with "role" and "content", got "hi"'],
    [`${line(pair)}\n${line(pair)}\n${line([pair[0], { role: "bot", content: "x" }])}`, 'chat.jsonl line 3: "messages[1].role" must be "system", "user" or "assistant", got "bot"'],
    [line([{ content: "x" }]), 'chat.jsonl line 1: "messages[0].role" must be "system", "user" or "assistant", got nothing'],
    [line([{ role: "Assistant", content: "x" }]), 'chat.jsonl line 1: "messages[0].role" must be "system", "user" or "assistant", got "Assistant"'],
    [line([pair[0], { role: "assistant", content: null }]), 'chat.jsonl line 1: "messages[1].content" must be a string, got null'],
    [line([pair[0], { role: "assistant", content: [{ type: "text", text: "x" }] }]), 'chat.jsonl line 1: "messages[1].content" must be a string, got an array'],
    [line([pair[0], { role: "assistant" }]), 'chat.jsonl line 1: "messages[1].content" must be a string, got nothing'],
    [line([{ role: "user", content: 3 }]), 'chat.jsonl line 1: "messages[0].content" must be a string, got 3'],
    [line([{ role: "system", content: "s" }, pair[0]]), 'chat.jsonl line 1: "messages" has no assistant message, so there is nothing to learn from it'],
    [line([pair[0], { role: "x".repeat(50), content: "" }]), `chat.jsonl line 1: "messages[1].role" must be "system", "user" or "assistant", got "${"x".repeat(40)}…"`],
  ])("%#: %j", (text, message) => {
    expect(() => parseChatJsonl(text, "chat.jsonl")).toThrow(new ChatDataError(message));
  });

  it("takes at most 1,000,000 lines of at most 1 MiB", () => {
    const padded = (bytes: number) => line(pair).slice(0, -1) + " ".repeat(bytes - line(pair).length) + "}";
    expect(parseChatJsonl(padded(1 << 20), "chat.jsonl")).toEqual([pair]);
    expect(() => parseChatJsonl(`${line(pair)}\n${padded((1 << 20) + 1)}`, "chat.jsonl")).toThrow(
      new ChatDataError("chat.jsonl line 2: longer than 1 MiB, the most a line of a chat file may have"));
    // counted in UTF-8: 400,000 characters of two bytes each are too many
    expect(() => parseChatJsonl(line([pair[0], { role: "assistant", content: "é".repeat(600_000) }]), "chat.jsonl")).toThrow(/line 1: longer than 1 MiB/);
    expect(parseChatJsonl(`${"\n".repeat(999_999)}${line(pair)}\n`, "chat.jsonl")).toEqual([pair]);
    expect(() => parseChatJsonl(`${"\n".repeat(1_000_000)}${line(pair)}`, "chat.jsonl")).toThrow(
      new ChatDataError("chat.jsonl: more than 1,000,000 lines, the most a chat file may have (split it)"));
  });

  it("fast-check: any text gives conversations or a ChatDataError naming the file", () => {
    const valid = conversation.map((m) => line(m));
    const jsonLine = fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.record({ messages: fc.array(fc.record({ role: fc.oneof(fc.constantFrom("user", "assistant", "system"), fc.jsonValue()), content: fc.jsonValue() }, { requiredKeys: [] })) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)));
    // valid lines cut or with a character changed
    const damaged = fc.tuple(valid, fc.nat(), fc.string({ maxLength: 2 })).map(([l, at, s]) => l.slice(0, at % (l.length + 1)) + s + l.slice((at % (l.length + 1)) + 1));
    const text = fc.oneof(fc.string({ unit: "binary" }), fc.array(fc.oneof(valid, jsonLine, damaged, fc.constantFrom("", " ", "\r", "\uFEFF")), { maxLength: 6 }).map((ls) => ls.join("\n")));
    fc.assert(fc.property(text, (t) => {
      try {
        parseChatJsonl(t, "f.jsonl");
      } catch (e) {
        expect(e).toBeInstanceOf(ChatDataError);
        expect((e as Error).message).toMatch(/^f\.jsonl line \d+: /);
      }
    }), { numRuns: 1000 });
  });

  it("fast-check: conversations written as JSON lines read back the same", () => {
    const extra = fc.dictionary(fc.constantFrom("name", "id", "refusal"), fc.jsonValue(), { maxKeys: 2 });
    fc.assert(fc.property(fc.array(fc.tuple(conversation, extra, fc.constantFrom("\n", "\r\n", "\n\n  \n")), { maxLength: 5 }), fc.boolean(), (files, bom) => {
      const text = (bom ? "\uFEFF" : "") + files.map(([m, e, end]) => line(m.map((x) => ({ ...e, ...x })), e) + end).join("");
      expect(parseChatJsonl(text, "f.jsonl")).toEqual(files.map(([m]) => m));
    }), { numRuns: 200 });
  });
});
