// A small app that uses openelm as a user's app would: it imports the package by name, opens the demo model
// from its own server (./model/, with the bundled tokenizer), decodes greedily on two threads and leaves
// the ids in window.result.
import { TextGenerator, openModel } from "openelm";

try {
  const { model, tokenizer } = await openModel(new URL("./model/", location.href), { threads: 2 });
  const r = await new TextGenerator(model, tokenizer).complete("Once upon a time", { maxNewTokens: 16, ignoreEos: true });
  window.result = { ids: r.ids, text: r.text, kernels: model.kernels.name, isolated: crossOriginIsolated };
} catch (e) {
  window.result = { error: e instanceof Error ? e.message : String(e) };
}
