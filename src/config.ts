// OpenELM configuration: the fields of Hugging Face's `OpenELMConfig` and the per-layer lists that
// layer-wise scaling derives from them (query/kv heads from qkv multipliers, FFN widths from ffn multipliers).

/** The FFN activation (`activation_fn_name` in config.json). */
export type Activation = "swish" | "gelu" | "relu";

/** A fully derived configuration: every per-layer list has one entry per layer. */
export interface OpenELMConfig {
  vocabSize: number;
  maxContextLength: number;
  numLayers: number;
  modelDim: number;
  headDim: number;
  numGqaGroups: number;
  numQueryHeads: number[]; // per layer
  numKvHeads: number[]; // per layer
  ffnDims: number[]; // per layer: width of the FFN hidden layer (before GLU doubling)
  ffnMultipliers: number[]; // per layer
  ffnWithGlu: boolean;
  activation: Activation;
  normalizeQk: boolean;
  shareInputOutput: boolean;
  ropeFreqConstant: number;
  normEps: number;
  bosTokenId: number;
  eosTokenId: number;
  torchDtype?: string;
}

/** A config.json that is missing a field, has a wrong type, or values out of bounds. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** CoreNet's make_divisible: round v to the nearest multiple of divisor, never below min, never 10% under v. */
export function makeDivisible(v: number, divisor: number, minValue = divisor): number {
  let newV = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (newV < 0.9 * v) newV += divisor;
  return newV;
}

/** Python's round(x, 2): exact decimal rounding of the binary value, ties to even. */
export function pyRound2(x: number): number {
  // A tie at the third decimal is possible only for x = odd/8 (0.125, 0.375, ...); toFixed breaks ties upward.
  if (Number.isInteger(x * 8) && !Number.isInteger(x * 4)) {
    const lo = Math.floor(x * 100);
    return (lo % 2 === 0 ? lo : lo + 1) / 100;
  }
  return Number(x.toFixed(2));
}

/** numpy.linspace(start, stop, num) in float64, including its exact last element. */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** A parsed JSON object (a config.json). */
export type Json = Record<string, unknown>;

function field<T>(raw: Json, name: string, check: (v: unknown) => v is T, what: string, fallback?: T): T {
  const v = raw[name];
  if (v === undefined && fallback !== undefined) return fallback;
  if (v === undefined) throw new ConfigError(`config.json: missing field "${name}" (${what})`);
  if (!check(v)) throw new ConfigError(`config.json: field "${name}" must be ${what}, got ${JSON.stringify(v)?.slice(0, 100)}`);
  return v;
}
const intIn = (lo: number, hi: number) => (v: unknown): v is number => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
const numIn = (lo: number, hi: number) => (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > lo && v <= hi;
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isString = (v: unknown): v is string => typeof v === "string";
const isMultiplier = (v: unknown): v is number | number[] =>
  numIn(0, MAX.multiplier)(v) || (Array.isArray(v) && v.length > 0 && v.length <= MAX.layers && v.every(numIn(0, MAX.multiplier)));
const range = (lo: number, hi: number) => `an integer from ${lo} to ${hi.toLocaleString("en-US")}`;

/**
 * Bounds on the config's sizes, checked before anything is allocated: generous for any OpenELM (the
 * released 3B has 36 layers, model_dim 3072, a 32000-token vocabulary, a 2048-token context), and small
 * enough that the arithmetic on them stays exact and a lying config fails in milliseconds.
 */
export const MAX = {
  layers: 1024,
  modelDim: 1 << 16,
  headDim: 1 << 12,
  groups: 1 << 10,
  vocab: 1 << 22,
  context: 1 << 22,
  multiplier: 64,
  ffnDivisor: 1 << 16,
  ropeBase: 1e12,
};

/** Parse a Hugging Face `config.json` object (model_type "openelm") and derive the per-layer lists. */
export function parseConfig(raw: Json): OpenELMConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("config.json: not a JSON object");
  if (raw.model_type !== undefined && raw.model_type !== "openelm")
    throw new ConfigError(`config.json: field "model_type" is ${JSON.stringify(raw.model_type)?.slice(0, 100)}, expected "openelm"`);
  const numLayers = field(raw, "num_transformer_layers", intIn(1, MAX.layers), range(1, MAX.layers));
  const modelDim = field(raw, "model_dim", intIn(1, MAX.modelDim), range(1, MAX.modelDim));
  const headDim = field(raw, "head_dim", intIn(2, MAX.headDim), range(2, MAX.headDim));
  const groups = field(raw, "num_gqa_groups", intIn(1, MAX.groups), range(1, MAX.groups), 1);
  const qkvMult = field(raw, "qkv_multipliers", isMultiplier, `a number in (0, ${MAX.multiplier}] or a pair of them`, 1.0);
  const ffnMult = field(raw, "ffn_multipliers", isMultiplier, `a number in (0, ${MAX.multiplier}], a pair or one per layer`, 4.0);
  const ffnDivisor = field(raw, "ffn_dim_divisor", intIn(1, MAX.ffnDivisor), range(1, MAX.ffnDivisor), 256);
  const activation = field(raw, "activation_fn_name", isString, 'one of "swish", "gelu", "relu"', "swish");
  if (activation !== "swish" && activation !== "gelu" && activation !== "relu")
    throw new ConfigError(`config.json: field "activation_fn_name" is ${JSON.stringify(activation.slice(0, 100))}; supported: swish, gelu, relu`);
  const norm = field(raw, "normalization_layer_name", isString, '"rms_norm"', "rms_norm");
  if (norm !== "rms_norm") throw new ConfigError(`config.json: field "normalization_layer_name" is ${JSON.stringify(norm.slice(0, 100))}; only rms_norm is supported`);
  if (headDim % 2 !== 0) throw new ConfigError(`config.json: field "head_dim" must be even for rotary embeddings, got ${headDim}`);
  const vocabSize = field(raw, "vocab_size", intIn(1, MAX.vocab), range(1, MAX.vocab), 32000);
  const tokenId = (name: string, fallback: number) => field<number>(raw, name, intIn(0, vocabSize - 1), `a token id below vocab_size ${vocabSize}`, fallback);

  // Query widths: one multiplier for all layers, or a pair spread linearly over the layers (rounded to 2 decimals).
  let qkvPerLayer: number[];
  if (typeof qkvMult === "number") qkvPerLayer = Array(numLayers).fill(qkvMult);
  else if (qkvMult.length === 2) qkvPerLayer = linspace(qkvMult[0]!, qkvMult[1]!, numLayers).map(pyRound2);
  else throw new ConfigError(`config.json: field "qkv_multipliers" must be a number or a pair, got ${qkvMult.length} values`);
  const numQueryHeads = qkvPerLayer.map((m) => makeDivisible(modelDim * m, headDim * groups) / headDim);
  const numKvHeads = numQueryHeads.map((q) => Math.floor(q / groups));

  let ffnMultipliers: number[];
  if (typeof ffnMult === "number") ffnMultipliers = Array(numLayers).fill(ffnMult);
  else if (ffnMult.length === 2) ffnMultipliers = linspace(ffnMult[0]!, ffnMult[1]!, numLayers).map(pyRound2);
  else if (ffnMult.length === numLayers) ffnMultipliers = ffnMult;
  else throw new ConfigError(`config.json: field "ffn_multipliers" has ${ffnMult.length} values; expected 1, 2 or ${numLayers} (one per layer)`);
  const ffnDims = ffnMultipliers.map((m) => makeDivisible(m * modelDim, ffnDivisor));

  // Files saved by transformers carry the derived head lists; they must agree with the derivation.
  for (const [name, derived] of [["num_query_heads", numQueryHeads], ["num_kv_heads", numKvHeads]] as const) {
    const given = raw[name];
    if (given === undefined || given === null) continue;
    if (!Array.isArray(given) || given.length !== numLayers || !given.every(intIn(1, MAX.modelDim)))
      throw new ConfigError(`config.json: field "${name}" must be a list of ${numLayers} positive integers, got ${JSON.stringify(given)}`);
    if (given.some((v, i) => v !== derived[i]))
      throw new ConfigError(`config.json: field "${name}" ${JSON.stringify(given)} contradicts the value derived from qkv_multipliers, model_dim, head_dim and num_gqa_groups: ${JSON.stringify(derived)}`);
  }

  return {
    vocabSize,
    maxContextLength: field(raw, "max_context_length", intIn(1, MAX.context), range(1, MAX.context), 2048),
    numLayers,
    modelDim,
    headDim,
    numGqaGroups: groups,
    numQueryHeads,
    numKvHeads,
    ffnDims,
    ffnMultipliers,
    ffnWithGlu: field(raw, "ffn_with_glu", isBool, "true or false", true),
    activation,
    normalizeQk: field(raw, "normalize_qk_projections", isBool, "true or false", false),
    shareInputOutput: field(raw, "share_input_output_layers", isBool, "true or false", false),
    ropeFreqConstant: field(raw, "rope_freq_constant", numIn(1, MAX.ropeBase), `a number above 1 and at most ${MAX.ropeBase}`, 10000),
    normEps: 1e-6,
    bosTokenId: tokenId("bos_token_id", Math.min(1, vocabSize - 1)),
    eosTokenId: tokenId("eos_token_id", Math.min(2, vocabSize - 1)),
    torchDtype: typeof raw.torch_dtype === "string" ? raw.torch_dtype : undefined,
  };
}

/**
 * Check a config given as lists (from a GGUF file) as parseConfig checks config.json: sizes within MAX,
 * one entry per layer, query heads a multiple of kv heads. `source` names it in errors.
 */
export function checkConfig(c: OpenELMConfig, source: string): OpenELMConfig {
  const fail = (msg: string) => new ConfigError(`${source}: ${msg}`);
  const within = (name: string, v: number, lo: number, hi: number) => {
    if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw fail(`${name} is ${v}, not ${range(lo, hi)}`);
  };
  within("the layer count", c.numLayers, 1, MAX.layers);
  within("the model width", c.modelDim, 1, MAX.modelDim);
  within("the head size", c.headDim, 2, MAX.headDim);
  if (c.headDim % 2) throw fail(`the head size ${c.headDim} is odd; rotary embeddings need it even`);
  within("the vocabulary size", c.vocabSize, 1, MAX.vocab);
  within("the context length", c.maxContextLength, 1, MAX.context);
  for (const [name, list, hi] of [["query heads", c.numQueryHeads, MAX.modelDim], ["kv heads", c.numKvHeads, MAX.modelDim], ["FFN widths", c.ffnDims, MAX.multiplier * MAX.modelDim]] as const) {
    if (list.length !== c.numLayers) throw fail(`${list.length} ${name} for ${c.numLayers} layers`);
    list.forEach((v, l) => within(`layer ${l}'s ${name}`, v, 1, hi));
  }
  c.numQueryHeads.forEach((q, l) => {
    if (q % c.numKvHeads[l]!) throw fail(`layer ${l} has ${q} query heads for ${c.numKvHeads[l]} kv heads; they must divide`);
  });
  if (!(c.ropeFreqConstant > 1 && c.ropeFreqConstant <= MAX.ropeBase)) throw fail(`the RoPE base is ${c.ropeFreqConstant}, not above 1 and at most ${MAX.ropeBase}`);
  if (!(c.normEps > 0 && c.normEps < 1)) throw fail(`the RMSNorm epsilon is ${c.normEps}, not in (0, 1)`);
  within("the BOS token id", c.bosTokenId, 0, c.vocabSize - 1);
  within("the EOS token id", c.eosTokenId, 0, c.vocabSize - 1);
  return c;
}

/** The config.json fields of the released apple/OpenELM-* models (base and instruct share them). */
const released = (numLayers: number, modelDim: number, headDim: number): Json => ({
  model_type: "openelm",
  vocab_size: 32000,
  max_context_length: 2048,
  num_transformer_layers: numLayers,
  model_dim: modelDim,
  head_dim: headDim,
  num_gqa_groups: 4,
  qkv_multipliers: [0.5, 1.0],
  ffn_multipliers: [0.5, 4.0],
  ffn_with_glu: true,
  ffn_dim_divisor: 256,
  activation_fn_name: "swish",
  normalization_layer_name: "rms_norm",
  normalize_qk_projections: true,
  share_input_output_layers: true,
  rope_freq_constant: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
});

/** The config.json fields of the released sizes (270M, 450M, 1_1B, 3B), for random-weight models of their exact shapes. */
export const PRESETS: Record<string, Json> = {
  "270M": released(16, 1280, 64),
  "450M": released(20, 1536, 64),
  "1_1B": released(28, 2048, 64),
  "3B": released(36, 3072, 128),
};

/** Number of parameters, counting a shared embedding once. */
export function parameterCount(c: OpenELMConfig): number {
  let n = c.vocabSize * c.modelDim * (c.shareInputOutput ? 1 : 2) + c.modelDim;
  for (let l = 0; l < c.numLayers; l++) {
    const q = c.numQueryHeads[l]!, kv = c.numKvHeads[l]!, f = c.ffnDims[l]!;
    n += (q + 2 * kv) * c.headDim * c.modelDim + q * c.headDim * c.modelDim; // qkv_proj, out_proj
    n += (c.ffnWithGlu ? 2 : 1) * f * c.modelDim + f * c.modelDim; // proj_1, proj_2
    n += 2 * c.modelDim + (c.normalizeQk ? 2 * c.headDim : 0); // attn_norm, ffn_norm, q_norm, k_norm
  }
  return n;
}
