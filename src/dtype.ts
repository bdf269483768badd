// Storage types for weights and the conversions between the float ones. Arithmetic is always float32:
// F16 and BF16 widen exactly (every f16 and bf16 value is an f32 value). The quantized types are ggml's
// block formats (src/formats/blocks.ts): a row is cut into blocks of 32 or 256 values, each stored as
// small integers with a scale.

/** The float element types a checkpoint may store. */
export type FloatType = "f32" | "f16" | "bf16";
/** The ggml block quantizations openelm reads, writes and computes with. */
export type QuantType = "q8_0" | "q4_0" | "q4_k" | "q5_k" | "q6_k";
/** A tensor element type in memory: a float type or a ggml block quantization. */
export type DType = FloatType | QuantType;
export const FLOAT_TYPES: readonly FloatType[] = ["f32", "f16", "bf16"];
export const QUANT_TYPES: readonly QuantType[] = ["q8_0", "q4_0", "q4_k", "q5_k", "q6_k"];
/** Every element type the kernels read. */
export const DTYPES: readonly DType[] = [...FLOAT_TYPES, ...QUANT_TYPES];
/** Bytes per element of the float types. */
export const BYTES: Record<FloatType, number> = { f32: 4, f16: 2, bf16: 2 };
/** Values per block and bytes per block (a float type's block is one value), as ggml-common.h lays them out. */
export const BLOCK: Record<DType, { values: number; bytes: number }> = {
  f32: { values: 1, bytes: 4 },
  f16: { values: 1, bytes: 2 },
  bf16: { values: 1, bytes: 2 },
  q8_0: { values: 32, bytes: 34 }, // f16 scale, 32 × int8
  q4_0: { values: 32, bytes: 18 }, // f16 scale, 32 × 4 bits
  q4_k: { values: 256, bytes: 144 }, // f16 scale and min, 8 × 6-bit sub-block scales and mins, 256 × 4 bits
  q5_k: { values: 256, bytes: 176 }, // as q4_k, with a fifth bit of each value in 32 more bytes
  q6_k: { values: 256, bytes: 210 }, // 256 × 6 bits, 16 × int8 sub-block scales, f16 scale
};
/** What a user asks weights to be stored as: one type for every matrix, or llama.cpp's Q4_K_M mix (weights.ts). */
export type WeightType = DType | "q4_k_m";
/** Every choice of `--dtype` / `ModelOptions.dtype`. */
export const WEIGHT_TYPES: readonly WeightType[] = [...DTYPES, "q4_k_m"];
/** The numbering the WASM kernels use. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_k: 5, q6_k: 6, q5_k: 7 };

/** The K-quants: blocks of 256, and activations quantized in blocks of 256 (llama.cpp's q8_K). */
export const isKQuant = (t: DType) => t === "q4_k" || t === "q5_k" || t === "q6_k";

export const isQuantized = (t: DType): t is QuantType => BLOCK[t].values > 1;

/** Bytes of one row of `k` values, or undefined when `k` is not a whole number of blocks. */
export function rowBytes(t: DType, k: number): number | undefined {
  const { values, bytes } = BLOCK[t];
  return k % values === 0 ? (k / values) * bytes : undefined;
}

/** Bytes of a tensor of `shape` (rows along the last dimension); throws when rows are not whole blocks. */
export function tensorBytes(t: DType, shape: number[]): number {
  const k = shape[shape.length - 1] ?? 1, row = rowBytes(t, k);
  if (row === undefined) throw new RangeError(`${t} stores rows in blocks of ${BLOCK[t].values} values; a row of ${k} values does not divide into them`);
  return (shape.reduce((a, b) => a * b, 1) / k) * row;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** All 65536 f16 values as f32: a table is the clearest exact conversion. */
export const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * 2 ** (e - 25);
  }
  return t;
})();

export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** f32 -> bf16 bits, round to nearest even (what torch's .to(torch.bfloat16) does). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN stays a (quiet) NaN
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** f32 -> f16 bits, round to nearest even, overflow to infinity, gradual underflow. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  let m = b & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    if (he < -10) return sign;
    m |= 0x800000; // implicit one, then shift into the subnormal range
    const shift = 14 - he;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (he << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: still correct
  return sign | r;
}

/** Convert `count` values of float type `from` (raw little-endian bytes) into `to`, written to `dst` bytes. */
export function convert(src: Uint8Array, from: FloatType, dst: Uint8Array, to: FloatType, count: number): void {
  if (from === to) {
    dst.set(src.subarray(0, count * BYTES[from]));
    return;
  }
  const s16 = from === "f32" ? null : new Uint16Array(src.buffer, src.byteOffset, count);
  const s32 = from === "f32" ? new Float32Array(src.buffer, src.byteOffset, count) : null;
  const read = s32 ? (i: number) => s32[i]! : from === "bf16" ? (i: number) => bf16ToF32(s16![i]!) : (i: number) => F16_TABLE[s16![i]!]!;
  if (to === "f32") {
    const d = new Float32Array(dst.buffer, dst.byteOffset, count);
    for (let i = 0; i < count; i++) d[i] = read(i);
  } else {
    const d = new Uint16Array(dst.buffer, dst.byteOffset, count);
    const narrow = to === "bf16" ? f32ToBf16 : f32ToF16;
    for (let i = 0; i < count; i++) d[i] = narrow(read(i));
  }
}
