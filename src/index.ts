// openelm: the core, free of Node built-ins so that it runs in any JS host.
export { parseConfig, makeDivisible, pyRound2, linspace, parameterCount, PRESETS, ConfigError, type OpenELMConfig, type Activation } from "./config.js";
export { Arena } from "./arena.js";
export { DTYPES, type DType } from "./dtype.js";
export { bytesSource, memoryFiles, type ByteSource, type ModelFiles } from "./files.js";
export { readHeader, readCheckpoint, encodeSafetensors, SafetensorsError, type TensorEntry } from "./safetensors.js";
export { expectedTensors, loadWeights, WeightsError, type Weights, type LayerWeights, type Tensor } from "./weights.js";
export { OpenELM, KVCache, ContextError, ropeTables } from "./model.js";
export { ReferenceKernels } from "./kernels/reference.js";
export { WasmKernels } from "./kernels/wasm.js";
export type { Kernels } from "./kernels/types.js";
export { loadModel, loadTokenizer, readConfig, createKernels, type ModelOptions } from "./load.js";
export { Tokenizer, TextStream } from "./tokenizer.js";
export { decode, argmax, seededRandom, type DecodeOptions } from "./generate.js";
export { encodeNpy, decodeNpy } from "./npy.js";
