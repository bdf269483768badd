// A small app that uses openelm as a user's app would: it imports the package by name, fetches the demo
// model from its own server (./model/), decodes greedily on two threads and leaves the ids in window.result.
import { TextGenerator, Tokenizer, loadModel, memoryFiles } from "openelm";
import tokenizerJson from "openelm/tokenizer.json" with { type: "json" };

async function get(name) {
  const response = await fetch(`./model/${name}`);
  if (!response.ok) throw new Error(`./model/${name}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

try {
  const files = memoryFiles({ "config.json": await get("config.json"), "model.safetensors": await get("model.safetensors") });
  const model = await loadModel(files, { threads: 2 });
  const r = await new TextGenerator(model, new Tokenizer(tokenizerJson)).complete("Once upon a time", { maxNewTokens: 16, ignoreEos: true });
  window.result = { ids: r.ids, text: r.text, kernels: model.kernels.name, isolated: crossOriginIsolated };
} catch (e) {
  window.result = { error: e instanceof Error ? e.message : String(e) };
}
