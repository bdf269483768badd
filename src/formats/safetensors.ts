// The safetensors format: an 8-byte little-endian header length N, a JSON header of N bytes
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}, then the data.
// Sharded checkpoints add model.safetensors.index.json: {weight_map: {name: file}}.
// Read as strictly as the reference Rust reader: the tensors' byte ranges must tile the data section
// from 0 to the end of the file exactly, so a header length off by one byte is an error, not a model
// whose every weight is shifted.
import { readText, unsafeName, type ByteSource, type ModelFiles } from "../files.js";
import { BYTES, type DType, type FloatType } from "../dtype.js";
import { parseJsonObject } from "./json.js";

/** A safetensors file that breaks the format (header, dtypes, shapes, offsets); the message names the file and the field. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

const FILE_DTYPES: Record<string, FloatType> = { F32: "f32", F16: "f16", BF16: "bf16" };
/** Every dtype the format defines, so that a known but unsupported one is named as such. */
const OTHER_DTYPES = new Set(["F64", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"]);
/** Headers of real checkpoints are kilobytes; a length beyond this is a broken or foreign file. */
export const MAX_HEADER = 16 << 20;

/** One tensor of a checkpoint, in any format: what it holds and how to read its bytes. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  /** Hugging Face order: [rows, row length] for a matrix. */
  shape: number[];
  bytes: number;
  /** Fill `into` with the tensor's bytes from byte `at` of its data. */
  read(at: number, into: Uint8Array): Promise<void>;
}

/** A tensor stored in `source` from byte `offset` on. */
export const storedAt = (source: ByteSource, offset: number) => (at: number, into: Uint8Array) => source.read(offset + at, into);

function asSafetensorsError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new SafetensorsError((e as Error).message);
  }
}

const isSize = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Elements of a shape, or undefined when the product is not a safe integer. */
function elements(shape: number[]): number | undefined {
  let n = 1;
  for (const d of shape) if (!Number.isSafeInteger((n *= d))) return undefined;
  return n;
}

/** Read and validate the header of one safetensors file. */
export async function readHeader(src: ByteSource): Promise<TensorEntry[]> {
  const fail = (msg: string) => new SafetensorsError(`${src.name}: ${msg}`);
  if (src.size < 8) throw fail(`${src.size} bytes: too short for a safetensors file (truncated, or not safetensors)`);
  const lenBytes = new Uint8Array(8);
  await src.read(0, lenBytes);
  const len = new DataView(lenBytes.buffer).getBigUint64(0, true);
  // the length field is not quoted: in a file that is not safetensors it is just its first bytes
  if (len > BigInt(MAX_HEADER)) throw fail(`not a safetensors file: its header length field is beyond the ${MAX_HEADER >> 20} MiB cap`);
  const headerLen = Number(len), dataStart = 8 + headerLen;
  if (dataStart > src.size) throw fail(`the header runs past the end of the file (${src.size} bytes): truncated, or not a safetensors file`);
  const headerBytes = new Uint8Array(headerLen);
  await src.read(8, headerBytes);
  if (headerBytes[0] !== 0x7b /* { */) throw fail("not a safetensors file: the header does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw fail("not a safetensors file: the header is not UTF-8 text");
  }
  const header = asSafetensorsError(() => parseJsonObject(text, `${src.name}: header`, { uniqueKeys: true }));

  const entries: (TensorEntry & { offset: number })[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === "string"))
        throw fail(`"__metadata__" must map names to strings`);
      continue;
    }
    const what = `tensor ${JSON.stringify(name)}`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail(`${what} is not an object`);
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof t.dtype === "string" ? FILE_DTYPES[t.dtype] : undefined;
    if (!dtype)
      throw fail(`${what} has ${typeof t.dtype === "string" && OTHER_DTYPES.has(t.dtype) ? "dtype" : "unknown dtype"} ${JSON.stringify(t.dtype)}; openelm reads F32, F16 and BF16`);
    if (!Array.isArray(t.shape) || !t.shape.every(isSize)) throw fail(`${what} has shape ${JSON.stringify(t.shape)}, not a list of sizes`);
    const shape = t.shape as number[], count = elements(shape);
    if (count === undefined || count * BYTES[dtype] > Number.MAX_SAFE_INTEGER) throw fail(`${what} has shape ${JSON.stringify(shape)}, whose size overflows`);
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isSize) || (offs[0] as number) > (offs[1] as number))
      throw fail(`${what} has data_offsets ${JSON.stringify(offs)}, not [begin, end] with 0 ≤ begin ≤ end`);
    const [begin, end] = offs as [number, number], bytes = count * BYTES[dtype];
    if (end - begin !== bytes)
      throw fail(`${what}: data_offsets span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${t.dtype} needs ${bytes}`);
    entries.push({ name, dtype, shape, offset: dataStart + begin, bytes, read: storedAt(src, dataStart + begin) });
  }

  // the byte ranges, in order, must run from 0 to the end of the file without gaps or overlaps
  let at = dataStart;
  for (const e of [...entries].sort((a, b) => a.offset - b.offset || a.bytes - b.bytes)) {
    if (e.offset !== at)
      throw fail(`tensor ${JSON.stringify(e.name)} starts at data byte ${e.offset - dataStart}, but the previous tensor ends at ${at - dataStart}: ${e.offset < at ? "overlapping" : "a gap between"} tensors`);
    at += e.bytes;
  }
  if (at > src.size) throw fail(`truncated: the tensors end at byte ${at} but the file has ${src.size} bytes`);
  if (at < src.size) throw fail(`the file has ${src.size - at} bytes after the last tensor: the header length or data_offsets are wrong`);
  return entries;
}

/** The shard names of model.safetensors.index.json ({weight_map: {tensor: file}}), each checked to stay in the folder. */
export function readIndex(text: string): Map<string, string> {
  const file = "model.safetensors.index.json";
  const index = asSafetensorsError(() => parseJsonObject(text, file, { uniqueKeys: true }));
  const map = index.weight_map;
  if (map === null || typeof map !== "object" || Array.isArray(map)) throw new SafetensorsError(`${file}: no "weight_map" object`);
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    const why = unsafeName(shard);
    if (why) throw new SafetensorsError(`${file}: weight_map[${JSON.stringify(tensor)}] names ${JSON.stringify(shard)}, which ${why}; shards are files inside the model folder`);
    out.set(tensor, shard as string);
  }
  if (out.size === 0) throw new SafetensorsError(`${file}: "weight_map" lists no tensors`);
  return out;
}

/** All tensors of a model folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export async function readCheckpoint(files: ModelFiles): Promise<Map<string, TensorEntry>> {
  const index = await readText(files, "model.safetensors.index.json");
  const tensors = new Map<string, TensorEntry>();
  if (index === undefined) {
    const src = await files.open("model.safetensors");
    if (!src) throw new SafetensorsError(`${files.location}: no model.safetensors and no model.safetensors.index.json`);
    for (const t of await readHeader(src)) tensors.set(t.name, t);
    return tensors;
  }
  const weightMap = readIndex(index);
  for (const shard of new Set(weightMap.values())) {
    const src = await files.open(shard);
    if (!src) throw new SafetensorsError(`model.safetensors.index.json lists shard ${shard}, which is not in ${files.location}`);
    for (const t of await readHeader(src)) {
      if (weightMap.get(t.name) !== shard)
        throw new SafetensorsError(`${shard}: holds tensor "${t.name}", which the index ${weightMap.has(t.name) ? `places in ${weightMap.get(t.name)}` : "does not list"}`);
      tensors.set(t.name, t);
    }
  }
  for (const [name, shard] of weightMap)
    if (!tensors.has(name)) throw new SafetensorsError(`model.safetensors.index.json: tensor "${name}" is not in ${shard}`);
  return tensors;
}

/** What precedes a safetensors file's data: the header's length, then the JSON header, padded so that the data is 8-byte aligned (as the Python writer does). */
export function safetensorsHeader(tensors: { name: string; dtype: DType; shape: number[]; bytes: number }[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype.toUpperCase(), shape: t.shape, data_offsets: [offset, offset + t.bytes] };
    offset += t.bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header)), pad = (8 - ((8 + json.byteLength) % 8)) % 8;
  const out = new Uint8Array(8 + json.byteLength + pad).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength + pad), true);
  out.set(json, 8);
  return out;
}

/** A whole safetensors file in memory (tensors in the order given). */
export function encodeSafetensors(tensors: { name: string; dtype: DType; shape: number[]; data: Uint8Array }[], metadata?: Record<string, string>): Uint8Array {
  const head = safetensorsHeader(tensors.map((t) => ({ ...t, bytes: t.data.byteLength })), metadata);
  const out = new Uint8Array(head.byteLength + tensors.reduce((a, t) => a + t.data.byteLength, 0));
  out.set(head);
  let at = head.byteLength;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}
