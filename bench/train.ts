// Training tokens/s: `openelm train` for a few steps, each configuration in its own process (so that peak
// memory is its own), on a text of random words (speed does not depend on the text): the default model's
// shape (6 layers, width 128, the 32000-token vocabulary; batch 8 × 128 as it was trained) and the exact
// 270M shape, both in f32.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PRESETS, parameterCount, parseConfig, seededRandom } from "openelm";

export interface TrainingRow {
  model: string;
  parameters: number;
  batch: number;
  seq_len: number;
  tok_s: number;
  peak_rss_mb: number;
}

const CLI = fileURLToPath(new URL("../node/cli.js", import.meta.url));

/** The default model's config (ref/trained/elm-sotu): 6 layers, width 128, the 32000-token vocabulary. */
const DEFAULT_MODEL = JSON.parse(readFileSync(fileURLToPath(new URL("../../ref/trained/elm-sotu/config.json", import.meta.url)), "utf8")) as Record<string, unknown>;

export function trainingBenchmarks(threads: number): TrainingRow[] {
  const dir = mkdtempSync(join(tmpdir(), "openelm-bench-train-")), random = seededRandom(1);
  const words = ["the", "nation", "congress", "year", "people", "law", "peace", "trade", "war", "states", "public", "great"];
  writeFileSync(join(dir, "corpus.txt"), Array.from({ length: 200 }, () => Array.from({ length: 60 }, () => words[Math.floor(random() * words.length)]).join(" ")).join("\n\n"));
  const rows: TrainingRow[] = [];
  try {
    for (const [model, raw, steps, batch] of [["elm-sotu (the default model)", DEFAULT_MODEL, 4, 8], ["270M shape", PRESETS["270M"]!, 2, 1]] as const) {
      const config = join(dir, "config.json"), out = join(dir, "run");
      writeFileSync(config, JSON.stringify(raw));
      const args = [CLI, "train", "--config", config, "--corpus", join(dir, "corpus.txt"), "--out", out, "--steps", String(steps), "--batch", String(batch),
        "--seq-len", "128", "--eval-every", "1000", "--eval-windows", "1", "--threads", String(threads), "--json"];
      const t = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
      if (t.status !== 0) throw new Error(`openelm train (${model}) failed: ${t.stderr.trim().split("\n").slice(-3).join(" ")}`);
      const summary = JSON.parse(t.stdout.trim().split("\n").pop()!) as { tok_s: number; peak_rss_mb: number };
      rows.push({ model, parameters: parameterCount(parseConfig(raw)), batch, seq_len: 128, tok_s: summary.tok_s, peak_rss_mb: summary.peak_rss_mb });
      rmSync(out, { recursive: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
