// The quantized matrix products (kernels/quant.ts) against their TypeScript specification
// (ReferenceKernels: each weight row dequantized by src/formats/blocks.ts, the activations quantized as
// llama.cpp quantizes them), for every block format, on both SIMD builds and with threads: the integer
// kernels below PANEL_ROWS rows, the f32 products on decoded panels from there; and the SIMD decoder of
// weight rows, bit for bit against blocks.ts (embedding rows).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arena } from "../src/arena.js";
import { QUANT_TYPES, isKQuant, tensorBytes, type QuantType } from "../src/dtype.js";
import { quantizeRow } from "../src/formats/blocks.js";
import { seededRandom } from "../src/generation/sampler.js";
import { ReferenceKernels, quantizeActivations } from "../src/kernels/reference.js";
import { PANEL_ROWS, matmulWorkspace } from "../src/kernels/types.js";
import type { WasmKernels } from "../src/kernels/wasm.js";
import { createNodeKernels } from "../src/node/index.js";

const random = seededRandom(99);
const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

describe.each([
  { threads: 1, noRelaxed: true },
  { threads: 1, noRelaxed: false },
  { threads: 3, noRelaxed: false },
])("$threads thread(s), relaxed SIMD off: $noRelaxed", ({ threads, noRelaxed }) => {
  let arena: Arena, ref: ReferenceKernels, simd: WasmKernels;
  beforeAll(async () => {
    const created = await createNodeKernels({ threads, noRelaxed, minParallelWork: 0 });
    arena = created.arena;
    simd = created.kernels as WasmKernels;
    ref = new ReferenceKernels(arena);
    const ws = matmulWorkspace(37, 2048, threads);
    simd.workspace(arena.alloc(ws), ws);
  });
  afterAll(() => simd.close());

  /** Random values (of varied size along each row, times `scale`) in a new f32 buffer. */
  const floats = (n: number, scale = 1) => {
    const ptr = arena.alloc(n * 4);
    arena.floats(ptr, n).forEach((_, i, a) => (a[i] = gauss() * (1 + (i % 7)) * scale));
    return ptr;
  };
  /** n rows of k random values (times `scale`) quantized as `type`, in a new buffer. */
  const quantized = (type: QuantType, n: number, k: number, scale = 1) => {
    const ptr = arena.alloc(tensorBytes(type, [n, k])), rowBytes = tensorBytes(type, [k]);
    for (let j = 0; j < n; j++) quantizeRow(type, arena.floats(floats(k, scale), k), arena.bytes(ptr + j * rowBytes, rowBytes), k);
    return ptr;
  };
  /** max |SIMD - specification| / max(1, max |specification|) over the output. */
  const compare = (n: number, run: (k: ReferenceKernels | WasmKernels, out: number) => void) => {
    const a = arena.alloc(n * 4), b = arena.alloc(n * 4);
    run(ref, a);
    run(simd, b);
    const x = arena.floats(b, n), y = arena.floats(a, n);
    let d = 0, s = 1;
    for (let i = 0; i < n; i++) (d = Math.max(d, Math.abs(x[i]! - y[i]!))), (s = Math.max(s, Math.abs(y[i]!)));
    return d / s;
  };

  it.each(QUANT_TYPES)("%s: matrix-vector and matrix-matrix products, and embedding rows", (type) => {
    const block = isKQuant(type) ? 256 : 32;
    expect(PANEL_ROWS).toBe(16);
    for (const [m, n, k] of [[1, 37, 2 * block], [1, 5, block], [9, 13, 3 * block], [15, 7, block], [16, 64, 2048], [37, 13, 2 * block]]) {
      const w = quantized(type, n!, k!), x = floats(m! * k!);
      expect(compare(m! * n!, (kern, o) => kern.matmul(o, x, w, type, m!, n!, k!)), `${m}×${n}×${k}`).toBeLessThan(2e-6);
    }
    const emb = quantized(type, 3, 2 * block), row = tensorBytes(type, [2 * block]);
    expect(compare(2 * block, (kern, o) => kern.widen(o, emb + row, type, 2 * block))).toBe(0);
  });

  it.each(QUANT_TYPES)("%s: weights so small that their f16 scales are subnormal", (type) => {
    // weights of about 1e-5 put every format's f16 block scale below f16's smallest normal (2^-14): the
    // K-quants convert such scales with no subnormal f32 in float arithmetic; every format must be exact
    const block = isKQuant(type) ? 256 : 32, [m, n, k] = [5, 9, 2 * block], w = quantized(type, n, k, 1e-5), x = floats(m * k, 1e4);
    const d = arena.bytes(w + (type === "q6_k" ? 208 : 0), 2); // the first block's f16 scale d
    expect(d[1]! & 0x7c).toBe(0); // f16 exponent bits zero: subnormal (or zero)
    expect(d[0]! | (d[1]! & 3)).toBeGreaterThan(0);
    expect(compare(m * n, (kern, o) => kern.matmul(o, x, w, type, m, n, k))).toBeLessThan(2e-6);
    expect(compare(n, (kern, o) => kern.matmul(o, x, w, type, 1, n, k))).toBeLessThan(2e-6);
    expect(compare(k, (kern, o) => kern.widen(o, w, type, k))).toBe(0);
  });
});

describe("activation quantization as llama.cpp does it", () => {
  it("q8_0 blocks of 32 with f16 scales; q8_K blocks of 256 scaled by the value of largest magnitude", () => {
    const x = Float32Array.from({ length: 256 }, (_, i) => (i === 40 ? -3 : i === 41 ? 3 : Math.sin(i) * 0.5));
    const a = quantizeActivations(x, false), k = quantizeActivations(x, true);
    expect(a.d[1]).toBe(0.02362060546875); // 3 / 127 = 0.0236220... rounded to f16 (a step of 2^-16 there)
    expect(a.q[40]).toBe(-127);
    expect(Array.from(k.d)).toEqual(Array(8).fill(Math.fround(1 / Math.fround(-127 / -3))));
    expect([k.q[40], k.q[41]]).toEqual([-127, 127]); // -3, the first value of largest magnitude, maps to -127 (iscale = -127 / -3)
  });
});
