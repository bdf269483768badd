// One measurement for bench/peers.ts, in its own process so that each engine has the machine and its
// memory to itself: node dist/bench/peer-run.js ENGINE FILE.gguf THREADS PREFILL DECODE [DTYPE], ENGINE one
// of openelm, llama.cpp, wllama, openelm-web (openelm also runs this script under Deno and Bun). Prints
// {"prefill_tok_s", "decode_tok_s", "peak_rss_mb", ...} as JSON (no peak RSS for the engines in Chromium,
// whose processes are not this one). Each engine's modules load only for it, so that Deno and Bun need
// none of the others'.
import type { Token } from "node-llama-cpp";
import { measureSpeed, seededRandom, weightBytesPerToken, type WeightType } from "openelm";
import { configureV8, loadModelFromFolder } from "openelm/node";

const [engine, file, threadsArg, prefillArg, decodeArg, dtype] = process.argv.slice(2);
const threads = Number(threadsArg), prefill = Number(prefillArg), decode = Number(decodeArg);
const inChromium = engine === "wllama" || engine === "openelm-web";
const random = seededRandom(1), prompt = () => Array.from({ length: prefill }, () => 1 + Math.floor(random() * 31000));
const tokens = () => prompt() as Token[];
let result: Record<string, number>;

if (engine === "openelm") {
  configureV8();
  const model = await loadModelFromFolder(file!, { threads, ...(dtype ? { dtype: dtype as WeightType } : {}) });
  measureSpeed(model, { prefill, decode: 2 }); // warm-up
  const speed = measureSpeed(model, { prefill, decode });
  result = { prefill_tok_s: speed.prefill_tok_s, decode_tok_s: speed.decode_tok_s, weight_bytes_per_token: weightBytesPerToken(model.weights) };
  await model.close();
} else if (engine === "llama.cpp") {
  const { LlamaLogLevel, getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: file! });
  const context = await model.createContext({ contextSize: prefill + decode + 16, batchSize: prefill, threads });
  const seq = context.getSequence();
  // prefill, then one token per step with greedy sampling, as `llama-cli` generates
  const run = async (steps: number) => {
    const t0 = performance.now();
    let t1 = t0, n = 0;
    for await (const _ of seq.evaluate(tokens(), { temperature: 0 })) {
      if (++n === 1) t1 = performance.now();
      if (n > steps) break;
    }
    const t2 = performance.now();
    if (n <= steps) throw new Error(`llama.cpp stopped after ${n} tokens`);
    await seq.clearHistory();
    return { prefill_tok_s: prefill / ((t1 - t0) / 1000), decode_tok_s: steps / ((t2 - t1) / 1000) };
  };
  await run(2); // warm-up
  result = await run(decode);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
} else if (inChromium) {
  const { runInChromium } = await import("./browser-peers.js");
  result = await runInChromium(engine, file!, threads, prefill, decode, dtype);
} else {
  throw new Error(`engine "${engine}" is not openelm, llama.cpp, wllama or openelm-web`);
}
console.log(JSON.stringify({ ...result, ...(inChromium ? {} : { peak_rss_mb: process.resourceUsage().maxRSS / 1024 }) }));
