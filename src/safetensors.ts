// The safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}, then the raw little-endian data.
// Sharded checkpoints add model.safetensors.index.json: {weight_map: {name: file}}.
import type { ByteSource, ModelFiles } from "./files.js";
import { BYTES, type DType } from "./dtype.js";

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

const FILE_DTYPES: Record<string, DType> = { F32: "f32", F16: "f16", BF16: "bf16" };
const MAX_HEADER = 100 * 2 ** 20;

/** One tensor in a file: where its bytes are and what they hold. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  source: ByteSource;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  bytes: number;
}

/** Read and validate the header of one safetensors file. */
export async function readHeader(src: ByteSource): Promise<TensorEntry[]> {
  const fail = (msg: string) => new SafetensorsError(`${src.name}: ${msg}`);
  if (src.size < 8) throw fail(`truncated: ${src.size} bytes, too short for a safetensors header`);
  const lenBytes = new Uint8Array(8);
  await src.read(0, lenBytes);
  const len = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
  if (len > MAX_HEADER || 8 + len > src.size)
    throw fail(`bad header: header length ${len} does not fit in a file of ${src.size} bytes (truncated or not safetensors)`);
  const headerBytes = new Uint8Array(len);
  await src.read(8, headerBytes);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw fail(`bad header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail("bad header: not a JSON object");
  const dataStart = 8 + len;
  const entries: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== "object" || t === null) throw fail(`bad header: entry "${name}" is not an object`);
    const dtype = FILE_DTYPES[String(t.dtype)];
    if (!dtype) throw fail(`tensor "${name}" has dtype ${JSON.stringify(t.dtype)}; supported: F32, F16, BF16`);
    const shape = t.shape, offs = t.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw fail(`bad header: tensor "${name}" has shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1])
      throw fail(`bad header: tensor "${name}" has data_offsets ${JSON.stringify(offs)}`);
    const [begin, end] = offs as [number, number];
    const need = shape.reduce((a: number, b: number) => a * b, 1) * BYTES[dtype];
    if (end - begin !== need)
      throw fail(`tensor "${name}": data_offsets span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${String(t.dtype)} needs ${need}`);
    if (dataStart + end > src.size)
      throw fail(`truncated: tensor "${name}" ends at byte ${dataStart + end} but the file has ${src.size} bytes`);
    entries.push({ name, dtype, shape, source: src, offset: dataStart + begin, bytes: need });
  }
  return entries;
}

/** All tensors of a model folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export async function readCheckpoint(files: ModelFiles): Promise<Map<string, TensorEntry>> {
  const index = await files.text("model.safetensors.index.json");
  const tensors = new Map<string, TensorEntry>();
  if (index === undefined) {
    const src = await files.open("model.safetensors");
    if (!src) throw new SafetensorsError(`${files.location}: no model.safetensors and no model.safetensors.index.json`);
    for (const t of await readHeader(src)) tensors.set(t.name, t);
    return tensors;
  }
  let weightMap: Record<string, string>;
  try {
    weightMap = JSON.parse(index).weight_map;
    if (typeof weightMap !== "object" || weightMap === null) throw new Error('no "weight_map" object');
  } catch (e) {
    throw new SafetensorsError(`model.safetensors.index.json: ${(e as Error).message}`);
  }
  for (const shard of new Set(Object.values(weightMap))) {
    const src = await files.open(shard);
    if (!src) throw new SafetensorsError(`model.safetensors.index.json lists shard ${shard}, which is not in ${files.location}`);
    for (const t of await readHeader(src)) {
      if (weightMap[t.name] !== shard)
        throw new SafetensorsError(`${shard}: holds tensor "${t.name}", which the index ${weightMap[t.name] ? `places in ${weightMap[t.name]}` : "does not list"}`);
      tensors.set(t.name, t);
    }
  }
  for (const [name, shard] of Object.entries(weightMap))
    if (!tensors.has(name)) throw new SafetensorsError(`model.safetensors.index.json: tensor "${name}" is not in ${shard}`);
  return tensors;
}

/** Serialize F32/F16/BF16 tensors (raw little-endian bytes) as a safetensors file. */
export function encodeSafetensors(tensors: { name: string; dtype: DType; shape: number[]; data: Uint8Array }[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype.toUpperCase(), shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // align the data to 8 bytes, as the Python writer does
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let at = 8 + head.byteLength;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}
