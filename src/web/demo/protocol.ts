// The messages between the page (main.ts) and the engine worker (worker.ts). The engine never runs on
// the page's thread: the page only sends requests and draws what comes back.

/** Where a model comes from: a folder or .gguf URL (with the URL of a LoRA adapter folder to merge), picked or dropped files, or a directory handle. */
export type ModelSource =
  | { kind: "url"; url: string; adapter?: string }
  | { kind: "files"; files: File[] }
  | { kind: "directory"; handle: FileSystemDirectoryHandle };

/** The sampling settings the page offers (see SamplingOptions in the core). */
export interface Settings {
  temperature: number;
  topK: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  ignoreEos: boolean;
}

/** What the page asks of the worker. */
export type Request =
  | { type: "load"; source: ModelSource; threads: number }
  | { type: "send"; text: string; system: string; settings: Settings }
  | { type: "stop" }
  | { type: "reset" }
  | { type: "inspect"; layer: number; head: number; text: string };

/** One layer's width: what layer-wise scaling gave it. */
export interface LayerShape {
  queryHeads: number;
  kvHeads: number;
  ffnDim: number;
}

/** The loaded model, as the page shows it. */
export interface ModelInfo {
  name: string;
  layers: LayerShape[];
  modelDim: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
  kernels: string;
  arenaBytes: number;
}

/** The look-inside view of one text: attention of one layer and head, and the logit lens at the last token. */
export interface Inspection {
  layer: number;
  head: number;
  kvHead: number;
  /** Token labels, one per position. */
  tokens: string[];
  /** Attention weights [T, T], row i over positions 0..i (causal), each row summing to 1. */
  attention: number[][];
  /** Per layer: the tokens its output would predict at the last position, most likely first. */
  lens: { token: string; id: number; p: number }[][];
}

/** What the worker answers: progress, the model, reply chunks, inspections, errors (naming the request). */
export type Response =
  | { type: "download"; file: string; loaded: number; total: number; fromCache: boolean }
  | { type: "weights"; done: number; total: number }
  | { type: "loaded"; info: ModelInfo }
  | { type: "chunk"; text: string; ids: number[]; done: boolean; finishReason?: string; tokensPerSecond?: number; arenaBytes: number }
  | { type: "inspected"; inspection: Inspection }
  | { type: "error"; during: Request["type"]; message: string; aborted: boolean };
