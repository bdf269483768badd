// The GGUF file format (llama.cpp's gguf.h, version 3, little-endian):
//   "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 value type, value)*,
//   tensor infos: (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset)*,
//   padding to `general.alignment` (default 32), then the tensor data, each tensor at its offset.
// Strings are a u64 length and UTF-8 bytes. dims are ggml's order: dims[0] is the length of a row.
// Every count, length and offset is checked against the file before anything is allocated for it.
import type { ByteSource } from "../files.js";
import { rowBytes, type DType } from "../dtype.js";

/** A GGUF file that breaks the format or the caps on its sizes; the message names the file and the field. */
export class GGUFError extends Error {
  override name = "GGUFError";
}

/** Metadata value types, numbered as gguf.h numbers them. */
export const VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"] as const;
/** The type names of GGUF metadata values. */
export type ValueType = (typeof VALUE_TYPES)[number];
const SCALAR_BYTES: Partial<Record<ValueType, number>> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };

/** A metadata value: numbers (64-bit ones as numbers when exact), booleans, strings, and arrays of them. */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

/** A metadata value with its type, for writing. */
export type TypedValue =
  | { type: Exclude<ValueType, "string" | "array" | "bool">; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; of: Exclude<ValueType, "array" | "string" | "bool">; value: ArrayLike<number> }
  | { type: "array"; of: "string"; value: string[] };

/** ggml tensor types by number (ggml.h); the ones openelm computes with map to a DType. */
export const GGML_TYPES: Record<number, { name: string; dtype?: DType }> = {
  0: { name: "F32", dtype: "f32" }, 1: { name: "F16", dtype: "f16" }, 2: { name: "Q4_0", dtype: "q4_0" }, 3: { name: "Q4_1" },
  6: { name: "Q5_0" }, 7: { name: "Q5_1" }, 8: { name: "Q8_0", dtype: "q8_0" }, 9: { name: "Q8_1" }, 10: { name: "Q2_K" },
  11: { name: "Q3_K" }, 12: { name: "Q4_K", dtype: "q4_k" }, 13: { name: "Q5_K", dtype: "q5_k" }, 14: { name: "Q6_K", dtype: "q6_k" },
  15: { name: "Q8_K" }, 16: { name: "IQ2_XXS" }, 17: { name: "IQ2_XS" }, 18: { name: "IQ3_XXS" }, 19: { name: "IQ1_S" },
  20: { name: "IQ4_NL" }, 21: { name: "IQ3_S" }, 22: { name: "IQ2_S" }, 23: { name: "IQ4_XS" }, 24: { name: "I8" },
  25: { name: "I16" }, 26: { name: "I32" }, 27: { name: "I64" }, 28: { name: "F64" }, 29: { name: "IQ1_M" },
  30: { name: "BF16", dtype: "bf16" }, 34: { name: "TQ1_0" }, 35: { name: "TQ2_0" }, 39: { name: "MXFP4" },
};
export const GGML_TYPE_OF: Record<DType, number> = { f32: 0, f16: 1, bf16: 30, q8_0: 8, q4_0: 2, q4_k: 12, q5_k: 13, q6_k: 14 };

/** One tensor as a GGUF header describes it. */
export interface GGUFTensorInfo {
  name: string;
  dtype: DType;
  /** Dimensions in ggml's order: dims[0] is the row length. */
  dims: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  bytes: number;
}

/** A parsed GGUF header: metadata and tensor descriptions, with the source to read tensor data from. */
export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  source: ByteSource;
}

/** Bounds that keep a lying header from costing time or memory. */
export const GGUF_LIMITS = { header: 256 << 20, tensors: 1 << 16, keys: 1 << 16, string: 16 << 20, dims: 4 };

/** Sequential reads over a ByteSource through a buffer, never past the header cap or the file's end. */
class Cursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private start = 0; // file offset of buf[0]
  pos = 0; // file offset of the next read

  constructor(private readonly src: ByteSource, private readonly fail: (msg: string) => GGUFError) {}

  /** Make `n` bytes at pos available; returns their index in buf. */
  private async need(n: number, what: string): Promise<number> {
    if (this.pos + n > this.src.size) throw this.fail(`${what} runs past the end of the file (${this.src.size} bytes): truncated, or not a GGUF file`);
    if (this.pos + n > GGUF_LIMITS.header) throw this.fail(`${what} ends past ${GGUF_LIMITS.header >> 20} MiB: the header is too large to be real`);
    if (this.pos < this.start || this.pos + n > this.start + this.buf.length) {
      const size = Math.min(Math.max(n, 1 << 20), this.src.size - this.pos);
      this.buf = new Uint8Array(size);
      await this.src.read(this.pos, this.buf);
      this.view = new DataView(this.buf.buffer);
      this.start = this.pos;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  async u32(what: string): Promise<number> {
    const at = await this.need(4, what); // before reading this.view: need() may replace it
    return this.view.getUint32(at, true);
  }

  /** A u64 as a number; a value beyond 2^53 is an error (no real count or offset is that large). */
  async u64(what: string): Promise<number> {
    const at = await this.need(8, what), v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`${what} is ${v}, beyond any real size`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const n = await this.u64(`the length of ${what}`);
    if (n > GGUF_LIMITS.string) throw this.fail(`${what} is ${n} bytes long, more than the ${GGUF_LIMITS.string >> 20} MiB a string may have`);
    const at = await this.need(n, what);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(this.buf.subarray(at, at + n));
    } catch {
      throw this.fail(`${what} is not UTF-8 text`);
    }
  }

  async scalar(type: ValueType, what: string): Promise<GGUFValue> {
    const at = await this.need(SCALAR_BYTES[type]!, what), v = this.view;
    switch (type) {
      case "u8": return v.getUint8(at);
      case "i8": return v.getInt8(at);
      case "u16": return v.getUint16(at, true);
      case "i16": return v.getInt16(at, true);
      case "u32": return v.getUint32(at, true);
      case "i32": return v.getInt32(at, true);
      case "f32": return v.getFloat32(at, true);
      case "f64": return v.getFloat64(at, true);
      case "bool": {
        const b = v.getUint8(at);
        if (b > 1) throw this.fail(`${what} is a bool of value ${b}`);
        return b === 1;
      }
      default: {
        const big = type === "u64" ? v.getBigUint64(at, true) : v.getBigInt64(at, true);
        return big >= -BigInt(Number.MAX_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
    }
  }

  /** The rest of the file from pos. */
  get remaining(): number {
    return this.src.size - this.pos;
  }
}

function valueType(code: number, fail: (msg: string) => GGUFError, what: string): ValueType {
  const t = VALUE_TYPES[code];
  if (t === undefined) throw fail(`${what} has value type ${code}, which GGUF does not define`);
  return t;
}

async function readValue(c: Cursor, type: ValueType, what: string, fail: (msg: string) => GGUFError): Promise<GGUFValue> {
  if (type === "string") return c.string(what);
  if (type !== "array") return c.scalar(type, what);
  const of = valueType(await c.u32(`the element type of ${what}`), fail, what);
  if (of === "array") throw fail(`${what} is an array of arrays, which openelm does not read`);
  const n = await c.u64(`the length of ${what}`);
  // every element takes at least this many bytes, so a count the file cannot hold is refused before allocating
  const least = of === "string" ? 8 : SCALAR_BYTES[of]!;
  if (n * least > c.remaining) throw fail(`${what} claims ${n} elements, more than the rest of the file holds`);
  const out = new Array<GGUFValue>(n);
  for (let i = 0; i < n; i++) out[i] = await readValue(c, of, `${what}[${i}]`, fail);
  return out;
}

/** Read and validate a GGUF file's header: metadata and tensor infos, each tensor inside the file. */
export async function readGGUF(src: ByteSource): Promise<GGUFFile> {
  const fail = (msg: string) => new GGUFError(`${src.name}: ${msg}`);
  if (src.size < 24) throw fail(`${src.size} bytes: too short for a GGUF file`);
  const c = new Cursor(src, fail);
  const magic = await c.u32("the magic number");
  if (magic !== 0x46554747) throw fail('not a GGUF file: it does not start with "GGUF"');
  const version = await c.u32("the version");
  if (version === 0x03000000 || version === 0x02000000) throw fail("a big-endian GGUF file; openelm reads little-endian ones");
  if (version !== 3 && version !== 2) throw fail(`GGUF version ${version}; openelm reads versions 2 and 3`);
  const tensorCount = await c.u64("the tensor count"), keyCount = await c.u64("the metadata count");
  if (tensorCount > GGUF_LIMITS.tensors) throw fail(`${tensorCount} tensors, more than the ${GGUF_LIMITS.tensors} openelm reads`);
  if (keyCount > GGUF_LIMITS.keys) throw fail(`${keyCount} metadata keys, more than the ${GGUF_LIMITS.keys} openelm reads`);

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < keyCount; i++) {
    const key = await c.string(`metadata key ${i}`);
    if (metadata.has(key)) throw fail(`metadata key ${JSON.stringify(key)} appears twice`);
    const type = valueType(await c.u32(`the type of ${key}`), fail, `metadata ${key}`);
    metadata.set(key, await readValue(c, type, `metadata ${key}`, fail));
  }

  const alignment = metadata.get("general.alignment") ?? 32;
  if (typeof alignment !== "number" || !Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0)
    throw fail(`general.alignment is ${String(alignment)}, not a power of two up to 1 MiB`);

  const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string(`the name of tensor ${i}`);
    if (names.has(name)) throw fail(`tensor ${JSON.stringify(name)} appears twice`);
    names.add(name);
    const nDims = await c.u32(`the dimension count of ${name}`);
    if (nDims < 1 || nDims > GGUF_LIMITS.dims) throw fail(`tensor ${name} has ${nDims} dimensions; GGUF tensors have 1 to ${GGUF_LIMITS.dims}`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await c.u64(`dimension ${d} of ${name}`));
    infos.push({ name, dims, type: await c.u32(`the type of ${name}`), offset: await c.u64(`the offset of ${name}`) });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;

  const tensors: GGUFTensorInfo[] = infos.map(({ name, dims, type, offset }) => {
    const known = GGML_TYPES[type];
    if (!known) throw fail(`tensor ${name} has ggml type ${type}, which openelm does not know`);
    if (!known.dtype) throw fail(`tensor ${name} is ${known.name}; openelm computes with F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K`);
    let count = 1;
    for (const d of dims) if (!Number.isSafeInteger((count *= d)) || d < 1) throw fail(`tensor ${name} has dimensions [${dims}], an empty or impossibly large shape`);
    const row = rowBytes(known.dtype, dims[0]!);
    if (row === undefined) throw fail(`tensor ${name} is ${known.name} with rows of ${dims[0]} values, not a whole number of blocks`);
    if (offset % alignment !== 0) throw fail(`tensor ${name} starts at data offset ${offset}, not a multiple of the alignment ${alignment}`);
    const bytes = (count / dims[0]!) * row;
    if (dataStart + offset + bytes > src.size) throw fail(`tensor ${name} ends at byte ${dataStart + offset + bytes}, past the end of the file (${src.size} bytes): truncated`);
    return { name, dtype: known.dtype, dims, offset: dataStart + offset, bytes };
  });
  // no two tensors may share bytes
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  sorted.forEach((t, i) => {
    const next = sorted[i + 1];
    if (next && t.offset + t.bytes > next.offset) throw fail(`tensors ${t.name} and ${next.name} overlap`);
  });
  return { version, metadata, tensors, alignment, source: src };
}

/** Little-endian bytes, appended as the header is written. */
class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;

  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  number(type: Exclude<ValueType, "string" | "array">, v: number | boolean): void {
    const b = new Uint8Array(SCALAR_BYTES[type]!), d = new DataView(b.buffer);
    if (type === "bool") d.setUint8(0, v ? 1 : 0);
    else if (type === "u64") d.setBigUint64(0, BigInt(v as number), true);
    else if (type === "i64") d.setBigInt64(0, BigInt(v as number), true);
    else ({ u8: d.setUint8, i8: d.setInt8, u16: d.setUint16, i16: d.setInt16, u32: d.setUint32, i32: d.setInt32, f32: d.setFloat32, f64: d.setFloat64 } as const)[type].call(d, 0, v as number, true);
    this.bytes(b);
  }

  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.number("u64", b.length);
    this.bytes(b);
  }

  done(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) (out.set(c, at), (at += c.length));
    return out;
  }
}

/** One tensor to be described in a GGUF header (its data follows separately). */
export interface TensorToWrite {
  name: string;
  dtype: DType;
  /** Dimensions in ggml's order: dims[0] is the row length. */
  dims: number[];
  bytes: number;
}

/**
 * The header of a GGUF file holding `tensors` in order, each padded to `alignment`: its bytes, and each
 * tensor's offset from the start of the file. The data follows the header, tensor after tensor.
 */
export function encodeGGUFHeader(metadata: [string, TypedValue][], tensors: TensorToWrite[], alignment = 32): { header: Uint8Array; offsets: number[] } {
  const w = new Writer();
  w.number("u32", 0x46554747);
  w.number("u32", 3);
  w.number("u64", tensors.length);
  w.number("u64", metadata.length);
  for (const [key, v] of metadata) {
    w.string(key);
    w.number("u32", VALUE_TYPES.indexOf(v.type));
    if (v.type === "string") w.string(v.value);
    else if (v.type === "array") {
      w.number("u32", VALUE_TYPES.indexOf(v.of));
      w.number("u64", v.value.length);
      for (let i = 0; i < v.value.length; i++) v.of === "string" ? w.string((v.value as string[])[i]!) : w.number(v.of, (v.value as ArrayLike<number>)[i]!);
    } else w.number(v.type, v.value);
  }
  let offset = 0;
  const relative = tensors.map((t) => {
    w.string(t.name);
    w.number("u32", t.dims.length);
    for (const d of t.dims) w.number("u64", d);
    w.number("u32", GGML_TYPE_OF[t.dtype]);
    w.number("u64", offset);
    const at = offset;
    offset = Math.ceil((offset + t.bytes) / alignment) * alignment;
    return at;
  });
  const dataStart = Math.ceil(w.length / alignment) * alignment;
  w.bytes(new Uint8Array(dataStart - w.length));
  return { header: w.done(), offsets: relative.map((o) => dataStart + o) };
}

/** A whole GGUF file in memory (tests, small models): the header, then each tensor's bytes at its offset. */
export function encodeGGUF(metadata: [string, TypedValue][], tensors: (TensorToWrite & { data: Uint8Array })[], alignment = 32): Uint8Array {
  const { header, offsets } = encodeGGUFHeader(metadata, tensors, alignment);
  const end = tensors.length ? offsets[tensors.length - 1]! + tensors[tensors.length - 1]!.bytes : header.length;
  const out = new Uint8Array(end);
  out.set(header);
  tensors.forEach((t, i) => out.set(t.data.subarray(0, t.bytes), offsets[i]!));
  return out;
}
