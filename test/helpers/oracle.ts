// Shared helpers for tests: the oracle models in ref/oracle and loading them with either kernel set.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { decodeNpy } from "../../src/formats/npy.js";
import { loadModelFromFolder } from "../../src/node/index.js";
import type { ModelOptions } from "../../src/load.js";
import { parameterCount, parseConfig } from "../../src/config.js";
import { OpenELM } from "../../src/model.js";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const ORACLE = join(ROOT, "ref/oracle");
export const MODELS = readdirSync(ORACLE, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

export interface OracleCase {
  ids: number[];
  logits: Float32Array; // [ids.length, vocab]
  greedy: number[];
  gaps: number[]; // top-1 minus top-2 logit at each greedy step
}

export function oracleCases(model: string): OracleCase[] {
  const dir = join(ORACLE, model);
  const { cases } = JSON.parse(readFileSync(join(dir, "cases.json"), "utf8"));
  return cases.map((c: { ids: number[]; logits: string; greedy: number[]; greedy_top2_gap: number[] }) => ({
    ids: c.ids,
    logits: decodeNpy(readFileSync(join(dir, c.logits))).data,
    greedy: c.greedy,
    gaps: c.greedy_top2_gap,
  }));
}

export const loadOracle = (model: string, opts: ModelOptions = {}) => loadModelFromFolder(join(ORACLE, model), opts);

/** max |a - b| / max |b|: the error measure the oracle tolerances use. */
export function relError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/**
 * Greedy ids must equal the reference up to the first step where the reference's top two logits are
 * within 1e-3 (a near tie, where float32 rounding may legitimately pick the other token); after a
 * differing near-tie choice the continuations are not comparable. Returns the compared prefix lengths.
 */
export function greedyAgreement(ours: number[], ref: number[], gaps: number[]): { compared: number; firstMismatch: number } {
  for (let i = 0; i < ref.length; i++) {
    if (ours[i] === ref[i]) continue;
    return { compared: i, firstMismatch: gaps[i]! < 1e-3 ? -1 : i };
  }
  return { compared: ref.length, firstMismatch: -1 };
}

/**
 * A per-memory budget that holds the embeddings (which stay in the first memory) and about half of the
 * layers, so that the layers need two memories or more.
 */
export function splitBudget(name: string): number {
  const dir = join(ORACLE, name);
  const config = parseConfig(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
  const weights = readdirSync(dir).filter((f) => f.endsWith(".safetensors")).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
  const embeddings = (weights / parameterCount(config)) * config.vocabSize * config.modelDim * (config.shareInputOutput ? 1 : 2);
  const kv = config.numKvHeads.reduce((a, _, l) => a + OpenELM.kvBytes(config, l, config.maxContextLength), 0);
  return Math.round(embeddings + 0.5 * (weights - embeddings)) + OpenELM.bufferBytes(config, config.maxContextLength) + kv + 2 ** 16;
}

