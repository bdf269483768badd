import { cpSync } from "node:fs";
import { build } from "esbuild";

// openelm fetches its kernel builds and starts its worker from beside the bundle (new URL("./...", import.meta.url)),
// which esbuild leaves as it is: add them as entry points there.
const openelm = "node_modules/openelm/dist";
await build({
  entryPoints: [
    "main.js",
    { in: `${openelm}/kernels/web-worker.js`, out: "kernels/web-worker" },
    ...["simd", "relaxed", "simd-shared", "relaxed-shared"].map((b) => ({ in: `${openelm}/kernels-${b}.wasm`, out: `kernels-${b}` })),
  ],
  loader: { ".wasm": "copy" },
  bundle: true,
  format: "esm",
  outdir: "out",
});
// openModel fetches the bundled tokenizer from ../tokenizer.json, which from a bundle at the site's root is /tokenizer.json
cpSync(`${openelm}/tokenizer.json`, "out/tokenizer.json");
