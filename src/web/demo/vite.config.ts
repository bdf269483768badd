// Builds the demo page into dist/demo/ (npm run build:web). The page imports the built package by its
// name, "openelm", as an app would: these aliases stand in for node_modules/openelm inside this repository.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const at = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: at("."),
  base: "./",
  resolve: {
    alias: [
      { find: /^openelm$/, replacement: at("../../../dist/index.js") },
      { find: /^openelm\/tokenizer\.json/, replacement: at("../../../dist/tokenizer.json") },
    ],
  },
  worker: { format: "es" },
  build: { outDir: at("../../../dist/demo"), emptyOutDir: true, target: "es2022" },
});
