import { defineConfig } from "vite";

const isolation = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

export default defineConfig({
  // Threads need a cross-origin isolated page (SharedArrayBuffer).
  server: { headers: isolation },
  preview: { headers: isolation },
});
