import { defineConfig } from "vite";

const isolation = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

export default defineConfig({
  // Without this, Vite answers a request for a missing file with index.html, and openModel, which asks for
  // optional files of a model folder (tokenizer.json, tokenizer_config.json), would take the page for one.
  appType: "mpa",
  // Threads need a cross-origin isolated page (SharedArrayBuffer).
  server: { headers: isolation },
  preview: { headers: isolation },
});
