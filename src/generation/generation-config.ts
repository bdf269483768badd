// A model folder's generation_config.json: the sampling defaults its authors chose, which transformers'
// generate() uses when the caller gives none (do_sample, temperature, top_k, top_p, min_p, repetition_penalty,
// max_new_tokens; token ids such as eos_token_id come from config.json here). Only the fields that mean the same here are read; a field
// that would mean something else, or a value out of range, is named rather than ignored.
import { parseJsonObject } from "../formats/json.js";
import type { SamplingOptions } from "./sampler.js";

/** A generation_config.json field that is out of range or would be misread, named. */
export class GenerationConfigError extends Error {
  override name = "GenerationConfigError";
}

/**
 * The defaults a generation_config.json sets, with transformers' meaning: without do_sample, decoding is
 * greedy whatever the temperature; with it, top_k is 50 unless the file says otherwise.
 */
export interface GenerationDefaults extends Pick<SamplingOptions, "temperature" | "topK" | "topP" | "minP" | "repetitionPenalty"> {
  maxNewTokens?: number;
}

/** Parse generation_config.json (`where` names it in errors). */
export function parseGenerationConfig(text: string, where = "generation_config.json"): GenerationDefaults {
  const raw = parseJsonObject(text, where), out: GenerationDefaults = {};
  const bad = (field: string, what: string) => new GenerationConfigError(`${where}: field "${field}" must be ${what}, got ${JSON.stringify(raw[field]).slice(0, 40)}`);
  const number = (field: string, ok: (x: number) => boolean, what: string): number | undefined => {
    const x = raw[field];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== "number" || !Number.isFinite(x) || !ok(x)) throw bad(field, what);
    return x;
  };
  const sample = raw.do_sample ?? false;
  if (typeof sample !== "boolean") throw bad("do_sample", "true or false");
  if (raw.num_beams !== undefined && raw.num_beams !== null && raw.num_beams !== 1) throw bad("num_beams", "1 (openelm does not search beams)");
  // without do_sample transformers ignores temperature (and only warns about 0); with it, 0 is an error there too
  const temperature = number("temperature", (x) => x > 0 || (!sample && x === 0), "a number above 0");
  const topK = number("top_k", (x) => Number.isInteger(x) && x >= 0, "an integer ≥ 0");
  const topP = number("top_p", (x) => x > 0 && x <= 1, "a number above 0, at most 1");
  const minP = number("min_p", (x) => x >= 0 && x <= 1, "a number from 0 to 1");
  const repetitionPenalty = number("repetition_penalty", (x) => x > 0, "a number above 0");
  const maxNewTokens = number("max_new_tokens", (x) => Number.isInteger(x) && x >= 1, "an integer ≥ 1");
  // greedy unless do_sample: transformers ignores temperature, top_k and top_p then
  out.temperature = sample ? (temperature ?? 1) : 0;
  if (sample) out.topK = topK ?? 50; // transformers' default
  if (sample && topP !== undefined) out.topP = topP;
  if (sample && minP !== undefined) out.minP = minP;
  if (repetitionPenalty !== undefined) out.repetitionPenalty = repetitionPenalty;
  if (maxNewTokens !== undefined) out.maxNewTokens = maxNewTokens;
  return out;
}
