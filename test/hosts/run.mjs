// Run by test/hosts.test.ts under Node, Deno and Bun alike: openelm through its public entry points
// ("openelm" and "openelm/node", which each host resolves by the package's own name from its
// package.json exports). Prints one JSON line: greedy ids for every reference case of every oracle
// model, and a seeded, sampled generation streamed from the demo model, chunk by chunk.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TextGenerator, decode } from "openelm";
import { loadModelFromFolder, loadTokenizerFromFolder } from "openelm/node";

const oracle = fileURLToPath(new URL("../../ref/oracle/", import.meta.url));
const greedy = {};
let kernels = "";
for (const name of readdirSync(oracle, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
  const { cases } = JSON.parse(readFileSync(join(oracle, name, "cases.json"), "utf8"));
  const model = await loadModelFromFolder(join(oracle, name), { threads: 2 });
  kernels = model.kernels.name;
  greedy[name] = cases.map((c) => [...decode(model, model.newCache(), c.ids, { maxNewTokens: c.greedy.length, ignoreEos: true })]);
  await model.close();
}
const demo = join(oracle, "elm-tiny-32k");
const model = await loadModelFromFolder(demo, { threads: 2 });
const generator = new TextGenerator(model, await loadTokenizerFromFolder(demo));
const chunks = [];
for await (const chunk of generator.generate("Once upon a time", { maxNewTokens: 24, temperature: 0.8, topP: 0.9, seed: 7 })) chunks.push({ text: chunk.text, ids: chunk.ids });
await model.close();
console.log(JSON.stringify({ kernels, greedy, chunks }));
