// ggml's block formats: hand-made blocks decode to the values ggml-common.h's layouts say, and quantizing
// then decoding stays within each format's step.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BLOCK, QUANT_TYPES, f32ToF16, tensorBytes, type QuantType } from "../src/dtype.js";
import { convertRows, dequantizeRow, firstNonFiniteBlock, quantizeRow, scaleMinK4 } from "../src/formats/blocks.js";

const h = (x: number) => [f32ToF16(x) & 0xff, f32ToF16(x) >> 8];
const decode = (type: QuantType, bytes: number[], k = BLOCK[type].values) => {
  const out = new Float32Array(k);
  dequantizeRow(type, Uint8Array.from(bytes), out, k);
  return Array.from(out);
};

describe("block layouts as ggml-common.h defines them", () => {
  it("q8_0: f16 scale, then 32 signed bytes", () => {
    const v = decode("q8_0", [...h(0.5), 2, 0xff, 0x80, ...Array(29).fill(0)]);
    expect(v.slice(0, 4)).toEqual([1, -0.5, -64, 0]);
  });

  it("q4_0: value j in the low nibble of byte j, value 16 + j in its high nibble, minus 8", () => {
    const v = decode("q4_0", [...h(2), 0x9a, ...Array(15).fill(0x88)]);
    expect([v[0], v[1], v[16], v[17]]).toEqual([(0xa - 8) * 2, 0, (0x9 - 8) * 2, 0]);
  });

  it("q4_k: 6-bit scales and mins packed in 12 bytes; sub-blocks 2i and 2i+1 in the low and high nibbles of 32 bytes", () => {
    const scales = [1, 2, 3, 4, 0x3f, 0x2a, 0x11, 0x05, 0xf1, 0x2e, 0x73, 0x3c]; // scales 0-3 and mins 0-3 in the low 6 bits
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((j) => scaleMinK4(Uint8Array.from(scales), 0, j))).toEqual([
      [1, 0x3f], [2, 0x2a], [3, 0x11], [4, 0x05], [0x1, 0xf], [0xe, 0x2], [0x3, 0x7], [0xc, 0x3],
    ].map(([s, m], j) => (j < 4 ? [s, m] : [s! | ((scales[j - 4]! >> 6) << 4), m! | ((scales[j]! >> 6) << 4)])));
    const qs = Array(128).fill(0);
    qs[0] = 0x53; // value 0 (sub-block 0, low nibble 3) and value 32 (sub-block 1, high nibble 5)
    qs[33] = 0x0f; // value 65 (sub-block 2)
    const v = decode("q4_k", [...h(1), ...h(0.5), ...scales, ...qs]);
    const [s0, m0] = scaleMinK4(Uint8Array.from(scales), 0, 0), [s1, m1] = scaleMinK4(Uint8Array.from(scales), 0, 1), [s2, m2] = scaleMinK4(Uint8Array.from(scales), 0, 2);
    expect([v[0], v[32], v[65], v[1]]).toEqual([s0! * 3 - 0.5 * m0!, s1! * 5 - 0.5 * m1!, s2! * 15 - 0.5 * m2!, -0.5 * m0!]);
  });

  it("q5_k: q4_k's scales and nibbles, with bit s of qh[l] the fifth bit of value l of sub-block s", () => {
    const scales = Array(12).fill(1), qh = Array(32).fill(0), qs = Array(128).fill(0);
    qh[3] = 0b100; // sub-block 2, value 3: +16
    qs[32 + 3] = 0x07; // sub-block 2 (low nibbles of bytes 32..63), value 3: 7
    qh[5] = 0b10; // sub-block 1 (high nibbles of bytes 0..31), value 5: +16
    qs[5] = 0x20;
    const v = decode("q5_k", [...h(1), ...h(0.25), ...scales, ...qh, ...qs]);
    expect([v[64 + 3], v[32 + 5], v[0]]).toEqual([1 * (7 + 16) - 0.25, 1 * (2 + 16) - 0.25, -0.25]);
  });

  it("q6_k: low 4 bits in ql, high 2 bits in qh, one int8 scale per 16 values, f16 scale last", () => {
    const ql = Array(128).fill(0), qh = Array(64).fill(0), sc = Array.from({ length: 16 }, (_, i) => i + 1);
    ql[0] = 0x21; // value 0: low 4 bits 1; value 64: low 4 bits 2
    qh[0] = 0b11_10_01_00; // value 0: +0<<4, value 32: +1<<4, value 64: +2<<4, value 96: +3<<4
    ql[32 + 5] = 0x0f; // value 37: low 4 bits 15 (qh[5] = 0)
    const v = decode("q6_k", [...ql, ...qh, ...sc, ...h(0.25)]);
    expect([v[0], v[32], v[64], v[96], v[37], v[128]]).toEqual([
      0.25 * 1 * (1 - 32), 0.25 * 3 * (16 - 32), 0.25 * 5 * (2 + 32 - 32), 0.25 * 7 * (48 - 32), 0.25 * 3 * (15 - 32), 0.25 * 9 * -32,
    ]);
  });
});

describe("quantize, then decode (fast-check)", () => {
  // the worst error each format allows: half a step of the block's scale (K-quants: also their rounded scales)
  const bound: Record<QuantType, (amax: number) => number> = {
    // q4_0 and q6_k map the largest magnitude to -8 (-32): values of the other sign are a step short at worst
    q8_0: (a) => a / 127 / 2 + a * 2 ** -11, q4_0: (a) => a / 8 + a * 2 ** -10, q4_k: (a) => a / 15 + a / 63, q5_k: (a) => a / 31 + a / 63, q6_k: (a) => a / 32 + a / 128,
  };
  it.each(QUANT_TYPES)("%s stays within a step of each block's scale", (type) => {
    const n = BLOCK[type].values;
    fc.assert(fc.property(fc.array(fc.float({ min: -8, max: 8, noNaN: true }), { minLength: n, maxLength: n }), (values) => {
      const x = Float32Array.from(values), q = new Uint8Array(BLOCK[type].bytes), y = new Float32Array(n);
      quantizeRow(type, x, q, n);
      dequantizeRow(type, q, y, n);
      const amax = Math.max(...values.map(Math.abs));
      // (plus what f16 scales lose to underflow on tiny blocks)
      for (let i = 0; i < n; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(bound[type](amax) + 1e-5);
    }), { numRuns: 200 });
  });

  it("q8_0 and q4_0 quantize exactly as ggml's reference quantizers: known blocks", () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i - 15.5) / 4); // -3.875 .. 3.875
    const q8 = new Uint8Array(34), q4 = new Uint8Array(18);
    quantizeRow("q8_0", x, q8, 32);
    quantizeRow("q4_0", x, q4, 32);
    // q8_0: d = 3.875 / 127, q = roundf(x / d); q4_0: the first value of largest magnitude, -3.875, sets
    // d = -3.875 / -8 = 0.484375, q = min(15, trunc(x / d + 8.5))
    expect(Array.from(q8.subarray(2, 6), (b) => (b << 24) >> 24)).toEqual([-127, -119, -111, -102]);
    expect([q4[0]! | (q4[1]! << 8)]).toEqual([f32ToF16(0.484375)]);
    expect([q4[2]! & 0xf, q4[2]! >> 4, q4[17]! & 0xf, q4[17]! >> 4]).toEqual([0, 8, 8, 15]);
  });

  it("convertRows quantizes and dequantizes whole rows, refuses quantizing twice, and a bad scale is found", () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), q = new Uint8Array(tensorBytes("q8_0", [2, 32])), back = new Float32Array(64);
    convertRows(new Uint8Array(x.buffer), "f32", q, "q8_0", 2, 32);
    convertRows(q, "q8_0", new Uint8Array(back.buffer), "f32", 2, 32);
    back.forEach((v, i) => expect(Math.abs(v - x[i]!)).toBeLessThan(0.01));
    expect(() => convertRows(q, "q8_0", new Uint8Array(36), "q4_0", 2, 32)).toThrow("q8_0 weights cannot be stored as q4_0");
    expect(firstNonFiniteBlock("q8_0", q)).toBe(-1);
    q[34 + 1] = 0x7c; // block 1's scale: infinity
    expect(firstNonFiniteBlock("q8_0", q)).toBe(1);
  });
});
