// The conformance command line, run as a user runs it (the built dist/node/cli.js), and its errors.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeNpy } from "../src/formats/npy.js";
import { loadTokenizerFromFolder } from "../src/node/index.js";
import { ORACLE, ROOT, oracleCases, relError } from "./helpers/oracle.js";

const CLI = join(ROOT, "dist/node/cli.js");
const tmp = mkdtempSync(join(tmpdir(), "openelm-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the 32k-vocabulary demo model with this tokenizer.json, run by generate. */
function withTokenizer(text: string): string[] {
  const d = copyModel("elm-tiny-32k");
  writeFileSync(join(d, "tokenizer.json"), text);
  return ["generate", "--model", d, "--prompt", "Hi", "-n", "2"];
}

/** A copy of the demo model with this tokenizer_config.json, run by generate. */
function withTokenizerConfig(cfg: object, ...args: string[]): string[] {
  const d = copyModel("elm-tiny-32k");
  writeFileSync(join(d, "tokenizer_config.json"), JSON.stringify(cfg));
  return ["generate", "--model", d, "--prompt", "Hi", "-n", "2", ...args];
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

describe("openelm generate: sampling, stop strings, faster decoding, chat", () => {
  const tiny = join(ORACLE, "elm-tiny-32k");
  const json = (...args: string[]) => {
    const r = run("generate", "--model", tiny, "--json", ...args);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };

  it("a seed fixes the sampled ids; another seed changes them", () => {
    const sample = (seed: string) => json("--prompt", "Once upon a time", "--max-new-tokens", "16", "--ignore-eos", "--temperature", "1.5", "--top-k", "50", "--top-p", "0.95", "--min-p", "0.01", "--repetition-penalty", "1.2", "--seed", seed).ids;
    expect(sample("7")).toEqual(sample("7"));
    expect(sample("7")).not.toEqual(sample("8"));
  });

  it("--stop ends the text before the stop string", () => {
    const full = json("--prompt", "Once upon a time", "--max-new-tokens", "24", "--ignore-eos");
    const stop = full.text.slice(10, 14);
    const stopped = json("--prompt", "Once upon a time", "--max-new-tokens", "24", "--ignore-eos", "--stop", stop, "--stop", "zzzz");
    expect(stopped.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(stopped.finish_reason).toBe("stop");
  });

  it("--prompt-lookup and --draft-model give the greedy ids and report the guesses accepted", () => {
    const [, c] = oracleCases("elm-tiny-32k");
    const base = ["--ids", c!.ids.join(","), "--max-new-tokens", "16", "--ignore-eos", "--temperature", "0"];
    const greedy = json(...base);
    const lookup = json(...base, "--prompt-lookup", "4");
    const draft = json(...base, "--draft-model", tiny, "--dtype", "bf16", "--draft-tokens", "4");
    expect(greedy.ids).toEqual(c!.greedy);
    expect(lookup.ids).toEqual(greedy.ids);
    expect(draft.ids).toEqual(greedy.ids);
    expect(lookup.speculation.accepted).toBeGreaterThan(0);
    expect(draft.speculation.acceptance_rate).toBe(1); // the same model as its own draft agrees with itself
  });

  it("--chat renders the prompt in the instruct template", async () => {
    const chat = json("--prompt", "Hi!", "--system", "Be brief.", "--chat", "--max-new-tokens", "4", "--ignore-eos");
    const tokenizer = await loadTokenizerFromFolder(tiny);
    const rendered = tokenizer.encode("<|system|>\nBe brief.</s>\n<|user|>\nHi!</s>\n<|assistant|>\n");
    expect(chat.timings.prompt_tokens).toBe(rendered.length);
    const plain = json("--ids", rendered.join(","), "--max-new-tokens", "4", "--ignore-eos");
    expect(chat.ids).toEqual(plain.ids);
  });

  it("openelm chat keeps going after an error, handles /help and unknown commands itself, and prints errors on a line of their own", () => {
    const input = "Hi!\n/help\n/nonsense\n" + "word ".repeat(400) + "\nAnd then?\n/reset\n/exit\n";
    const r = spawnSync(process.execPath, [CLI, "chat", "--model", tiny, "-n", "5", "--context", "128"], { input, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\/reset  forget the conversation/m);
    expect(r.stdout).toMatch(/^\(unknown command \/nonsense; \/help lists them\)$/m);
    expect(r.stdout).toMatch(/^openelm: error: the message does not fit: the conversation's prompt is \d+ tokens, and the context holds 128$/m);
    expect(r.stdout.match(/\(5 tokens, [\d.]+ tok\/s\)/g)).toHaveLength(2); // the turns before and after the error
    expect(r.stdout).toMatch(/^\(history cleared\)$/m);
  });

  it("openelm chat answers each line of a piped conversation, with history", () => {
    const r = spawnSync(process.execPath, [CLI, "chat", "--model", tiny, "--max-new-tokens", "5", "--system", "Be brief."], { input: "Hi!\nAnd then?\n/exit\n", encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.match(/openelm> /g)).toHaveLength(2);
    expect(r.stdout.match(/\(5 tokens, [\d.]+ tok\/s\)/g)).toHaveLength(2);
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

describe("openelm bench", () => {
  it("builds a random-weight model of a config's shape and reports speed, bandwidth and memory as one JSON line", () => {
    const r = run("bench", "--shape", join(ORACLE, "elm-tiny-gqa/config.json"), "--dtype", "bf16", "--threads", "2", "--prefill", "16", "--decode", "4", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ dtype: "bf16", threads: 2, memories: 1, prefill_tokens: 16, decode_tokens: 4, decode_context: 16 });
    for (const key of ["prefill_tok_s", "decode_tok_s", "bandwidth_gb_s", "peak_rss_mb", "decode_bound_tok_s"]) expect(j[key]).toBeGreaterThan(0);
    expect(j.weight_bytes_per_token).toBe(2 * (j.parameters - 4 * (2 * 128) - 128 - 4 * 2 * 16)); // every matrix once, in bf16
  });

  it("--profile lists the kernels of a decode step", () => {
    const r = run("bench", "--shape", join(ORACLE, "elm-tiny-gqa/config.json"), "--prefill", "4", "--decode", "4", "--context", "64", "--profile", "--json");
    const kernels = JSON.parse(r.stdout).profile.map((p: { kernel: string; calls_per_step: number }) => [p.kernel, p.calls_per_step]);
    expect(Object.fromEntries(kernels)).toEqual(expect.objectContaining({ "matmul (layers, bf16)": 16, "matmul (output head, bf16)": 1, attention: 4, rmsNorm: 4 * 4 + 1 }));
  });

  it("--profile splits the matrix products of a mixed model by weight type", () => {
    // q4_k_m at the 270M shape: Q6_K embeddings (also the head), Q5_K qkv_proj, Q6_K proj_2 in 8 of the 16 layers, Q4_K the rest
    const r = run("bench", "--shape", "270M", "--dtype", "q4_k_m", "--threads", "1", "--prefill", "1", "--decode", "1", "--context", "8", "--profile", "--json");
    const kernels = Object.fromEntries(JSON.parse(r.stdout).profile.map((p: { kernel: string; calls_per_step: number }) => [p.kernel, p.calls_per_step]));
    const matmuls = Object.fromEntries(Object.entries(kernels).filter(([k]) => k.startsWith("matmul")));
    expect(matmuls).toEqual({ "matmul (layers, q4_k)": 16 * 4 - 16 - 8, "matmul (layers, q5_k)": 16, "matmul (layers, q6_k)": 8, "matmul (output head, q6_k)": 1 });
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
    }, /model.safetensors: truncated: the tensors end at byte \d+ but the file has 100000 bytes/],
    ["a token id out of range", () => ["logits", "--model", gqa, "--ids", "1,512", "--out", join(tmp, "x.npy")], /token id 512 at index 1 is out of range \[0, 512\)/],
    ["a malformed id list", () => ["logits", "--model", gqa, "--ids", "1,a", "--out", join(tmp, "x.npy")], /--ids: "a" is not a token id/],
    ["ids longer than --context", () => ["logits", "--model", gqa, "--context", "128", "--ids", Array(129).fill(1).join(","), "--out", join(tmp, "x.npy")], /context too long: 0 cached \+ 129 new tokens exceed the context length 128 \(--context\)/],
    ["a prompt longer than --context", () => ["generate", "--model", join(ORACLE, "elm-tiny-32k"), "--context", "256", "--prompt", "word ".repeat(300)], /prompt too long: 302 tokens, but the context holds 256 \(--context\)/ /* BOS, 300 words, a final "▁" */],
    ["an unknown dtype", () => ["info", "--model", gqa, "--dtype", "f64"], /--dtype: "f64" is not one of f32, f16, bf16/],
    ["an unknown option", () => ["info", "--model", gqa, "--frobnicate"], /Unknown option '--frobnicate'/],
    ["an unknown command", () => ["transmogrify"], /unknown command "transmogrify"/],
    ["a top-p out of range", () => ["generate", "--prompt", "x", "--top-p", "2"], /--top-p: "2" is not a number in \(0, 1\]/],
    ["a malformed logit bias", () => ["generate", "--prompt", "x", "--logit-bias", "13=5"], /--logit-bias: "13=5" is not ID:BIAS/],
    ["a temperature that is not a number", () => ["generate", "--prompt", "x", "--temperature", "nan"], /--temperature: "nan" is not a number at least 0/],
    ["an infinite temperature", () => ["generate", "--prompt", "x", "--temperature", "Infinity"], /--temperature: "Infinity" is not a number/],
    ["an empty number", () => ["generate", "--prompt", "x", "--temperature", ""], /--temperature: "" is not a number/],
    ["a hexadecimal number", () => ["generate", "--prompt", "x", "--top-p", "0x1"], /--top-p: "0x1" is not a number/],
    ["a negative top-k", () => ["generate", "--prompt", "x", "--top-k", "-1"], /--top-k: "-1" is not an integer/],
    ["a fractional max-new-tokens", () => ["generate", "--prompt", "x", "-n", "1.5"], /--max-new-tokens: "1.5" is not an integer/],
    ["a seed beyond 32 bits", () => ["generate", "--prompt", "x", "--seed", "4294967296"], /--seed: "4294967296" is not an integer from 0 to 4,294,967,295/],
    ["a frequency penalty out of range", () => ["generate", "--prompt", "x", "--frequency-penalty", "3"], /--frequency-penalty: "3" is not a number in \[-2, 2\]/],
    ["zero threads", () => ["info", "--threads", "0"], /--threads: "0" is not an integer from 1 to 256/],
    ["too many threads", () => ["info", "-t", "100000"], /--threads: "100000" is not an integer from 1 to 256/],
    ["a zero context", () => ["info", "--context", "0"], /--context: "0" is not an integer from 1/],
    ["a logit bias that is not a number", () => ["generate", "--prompt", "x", "--logit-bias", "13:nan"], /--logit-bias: "13:nan" is not ID:BIAS/],
    ["a logit bias beyond the vocabulary", () => ["generate", "--model", gqa, "--ids", "1,2", "--logit-bias", "512:1"], /--logit-bias: token id 512 is not in the model's vocabulary \(0 to 511\)/],
    ["an empty stop string", () => ["generate", "--prompt", "x", "--stop", ""], /--stop: an empty stop string would stop before the first token/],
    ["a perplexity window of one token", () => ["perplexity", "--file", join(ROOT, "README.md"), "--context", "1"], /--context: "1" is not an integer ≥ 2/],
    ["a stride longer than the window", () => ["perplexity", "--file", join(ROOT, "README.md"), "--context", "8", "--stride", "9"], /--stride: 9 is longer than the window/],
    ["eval --limit 0", () => ["eval", "--task", "piqa", "--data", join(ROOT, "README.md"), "--limit", "0"], /--limit: "0" is not an integer ≥ 1/],
    ["an ARC document whose choices and labels disagree", () => {
      const data = join(tmp, "arc.jsonl");
      const doc = { question: "Q?", choices: { text: ["a", "b", "c"], label: ["A", "B"] }, answerKey: "A" };
      writeFileSync(data, `${JSON.stringify({ ...doc, choices: { text: ["a", "b"], label: ["A", "B"] } })}\n${JSON.stringify(doc)}\n`);
      return ["eval", "--task", "arc_easy", "--data", data];
    }, /arc.jsonl line 2: field "choices" has 3 texts but 2 labels/],
    ["a config with a huge layer count", () => {
      const d = copyModel("elm-tiny-gqa");
      writeFileSync(join(d, "config.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(d, "config.json"), "utf8")), num_transformer_layers: 1e9 }));
      return ["info", "--model", d];
    }, /config.json: field "num_transformer_layers" must be an integer from 1 to 1,024, got 1000000000/],
    ["a config whose model does not fit", () => {
      const d = copyModel("elm-tiny-gqa");
      const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
      writeFileSync(join(d, "config.json"), JSON.stringify({ ...cfg, vocab_size: 4194304, model_dim: 65536, num_query_heads: undefined, num_kv_heads: undefined }));
      return ["info", "--model", d];
    }, /the embeddings and output head \(vocab_size 4194304 × model_dim 65536\) need 1024.00 GiB, more than one 4.00 GiB WebAssembly memory holds/],
    ["a tokenizer.json that is empty", () => withTokenizer(""), /tokenizer.json: not valid JSON: the file is empty/],
    ["a tokenizer.json that is not JSON", () => withTokenizer("{\"model\": "), /tokenizer.json: not valid JSON/],
    ["a tokenizer.json without a vocabulary", () => withTokenizer(JSON.stringify({ model: { type: "BPE", merges: [] } })), /tokenizer.json: "model.vocab" is missing or of the wrong kind/],
    ["a tokenizer.json of an unknown model type", () => withTokenizer(JSON.stringify({ model: { type: "Magic", vocab: { a: 0 } } })), /tokenizer.json: model type "Magic" is not supported \(BPE, Unigram, WordPiece\)/],
    ["a tokenizer bigger than the model's vocabulary", () => ["generate", "--model", gqa, "--prompt", "Once upon a time"], /the tokenizer and the model disagree: the bundled Llama-2 tokenizer has 32000 tokens and gave id \d+, but the model's vocab_size is 512/],
    ["a chat template that loops", () => withTokenizerConfig({ chat_template: "{% for i in range(100000000) %}x{% endfor %}" }, "--chat"), /the model's chat template failed: range\(\) of 100,000,000 numbers is beyond the 1,048,576 a chat template may make/],
    ["a chat template with nested loops", () => withTokenizerConfig({ chat_template: "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}" }, "--chat"), /the model's chat template failed: it ran more than 100,000 steps/],
    ["a chat template that does not parse", () => withTokenizerConfig({ chat_template: "{% for x in %}" }), /tokenizer_config.json field chat_template: /],
    ["a chat template of the wrong type", () => withTokenizerConfig({ chat_template: 5 }), /tokenizer_config.json field chat_template: not a string/],
    ["a draft model with another vocabulary", () => ["generate", "--model", join(ORACLE, "elm-tiny-32k"), "--prompt", "x", "--draft-model", gqa], /the draft model's vocabulary \(512\) differs from the model's \(32000\)/],
  ];
  it.each(cases)("%s", (_, args, message) => {
    const t0 = performance.now();
    const r = run(...args());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(performance.now() - t0).toBeLessThan(10_000); // no hang
  });

  it("--help works for every command", () => {
    for (const cmd of ["logits", "generate", "info", "chat", "bench"]) {
      const r = run(cmd, "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`openelm ${cmd}`);
    }
    expect(run("--help").stdout).toMatch(/usage: openelm <command>/);
  });
});
