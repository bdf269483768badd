// Every SIMD kernel against the TypeScript specification on random shapes (including sizes that are not
// multiples of 4 or 16), for every float weight storage type, for the plain and relaxed SIMD builds, on one
// thread and on several (with every call split, however small), the training kernels too. The maximum
// error is asserted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arena } from "../src/arena.js";
import { BYTES, F16_TABLE, FLOAT_TYPES, bf16ToF32, f32ToBf16, f32ToF16, type FloatType } from "../src/dtype.js";
import { ReferenceKernels } from "../src/kernels/reference.js";
import { chunksPerThread, takeChunks } from "../src/kernels/pool.js";
import { PANEL_ROWS } from "../src/kernels/types.js";
import type { WasmKernels } from "../src/kernels/wasm.js";
import { seededRandom } from "../src/generation/sampler.js";
import { createNodeKernels } from "../src/node/index.js";

const random = seededRandom(1234);
const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
let arena: Arena, ref: ReferenceKernels, simd: WasmKernels;

const SETS = [
  { threads: 1, noRelaxed: true, build: "simd" },
  { threads: 1, noRelaxed: false, build: "relaxed" },
  { threads: 2, noRelaxed: true, build: "simd-shared" },
  { threads: 3, noRelaxed: false, build: "relaxed-shared" },
] as const;

describe.each(SETS)("kernels $build, $threads thread(s)", ({ threads, noRelaxed, build }) => {
beforeAll(async () => {
  const created = await createNodeKernels({ threads, noRelaxed, minParallelWork: 0 });
  arena = created.arena;
  simd = created.kernels as WasmKernels;
  ref = new ReferenceKernels(arena);
  simd.workspace(arena.alloc(1 << 20), 1 << 20);
  expect(simd.build).toBe(build);
  expect(simd.threads).toBe(threads);
});
afterAll(() => simd.close());

/** Random floats in a new f32 buffer. */
function floats(n: number): number {
  const ptr = arena.alloc(n * 4);
  const v = arena.floats(ptr, n);
  for (let i = 0; i < n; i++) v[i] = gauss();
  return ptr;
}

/** Random weights stored as `dtype` in a new buffer. */
function weights(n: number, dtype: FloatType): number {
  const ptr = arena.alloc(n * BYTES[dtype]);
  if (dtype === "f32") arena.floats(ptr, n).forEach((_, i, a) => (a[i] = gauss()));
  else {
    const u16 = new Uint16Array(arena.memory.buffer, ptr, n);
    for (let i = 0; i < n; i++) u16[i] = (dtype === "bf16" ? f32ToBf16 : f32ToF16)(gauss());
  }
  return ptr;
}

/** max |a - b| / max(1, max |b|) over two f32 buffers. */
function maxError(a: number, b: number, n: number): number {
  const x = arena.floats(a, n), y = arena.floats(b, n);
  let d = 0, s = 1;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(x[i]!) !== Number.isNaN(y[i]!)) return Infinity;
    if (!Number.isNaN(y[i]!)) d = Math.max(d, Math.abs(x[i]! - y[i]!));
    s = Math.max(s, Math.abs(y[i]!));
  }
  return d / s;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 3], [1, 64, 64], [1, 33, 130], [3, 5, 17], [4, 16, 16], [5, 31, 67], [17, 19, 100], [64, 48, 256], [7, 1, 5], [2, 9, 47], [3, 12, 130], [4, 33, 70],
  [1, 203, 40], [2, 203, 40], [4, 203, 40], // threads take chunks of rows of W larger than 4, the last one short
  [PANEL_ROWS - 1, 4, 9], [PANEL_ROWS, 5, 67], [PANEL_ROWS + 17, 3, 130], // from PANEL_ROWS rows, f16 weights are decoded to f32 panels first
];

describe("matmul: SIMD against the specification", () => {
  it.each(FLOAT_TYPES)("weights %s, shapes with remainders", (dtype) => {
    for (const [m, n, k] of SHAPES) {
      const x = floats(m * k), w = weights(n * k, dtype);
      const a = arena.alloc(m * n * 4), b = arena.alloc(m * n * 4);
      ref.matmul(a, x, w, dtype, m, n, k);
      simd.matmul(b, x, w, dtype, m, n, k);
      // float32 sums in another order: error grows like sqrt(k) ulps of the terms
      expect(maxError(b, a, m * n), `m=${m} n=${n} k=${k}`).toBeLessThan(2e-6 * Math.sqrt(k));
    }
  });

  it("a kernel that fails (here: reading past the memory) throws on every thread count, and the next call works", () => {
    const beyond = arena.memory.buffer.byteLength + 65536;
    const out = arena.alloc(8 * 64 * 4), x = floats(64 * 8);
    expect(() => simd.matmul(out, x, beyond, "f32", 8, 64, 8)).toThrow();
    const w = weights(64 * 8, "f32");
    const a = arena.alloc(8 * 64 * 4);
    ref.matmul(a, x, w, "f32", 8, 64, 8);
    simd.matmul(out, x, w, "f32", 8, 64, 8);
    expect(maxError(out, a, 8 * 64)).toBeLessThan(1e-5);
  });

  it("widens every finite f16 and every bf16 bit pattern exactly, in embedding rows and in products", () => {
    for (const dtype of ["f16", "bf16"] as const) {
      const n = 65536, w = arena.alloc(n * 16 * 2), x = arena.alloc(16 * 4 * 2), out = arena.alloc(n * 4 * 2);
      const u16 = new Uint16Array(arena.memory.buffer, w, n * 16);
      const want = (i: number) => (dtype === "f16" ? F16_TABLE[i]! : bf16ToF32(i));
      const same = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));
      for (let i = 0; i < n; i++) u16[i] = i;
      simd.widen(out, w, dtype, n);
      const row = arena.floats(out, n);
      const finite = (i: number) => dtype === "bf16" || (i & 0x7c00) !== 0x7c00; // f16 inf/NaN are rejected at load
      for (let i = 0; i < n; i++) if (finite(i) && !same(row[i]!, want(i))) throw new Error(`widen ${dtype} 0x${i.toString(16)}: got ${row[i]}, want ${want(i)}`);
      // Products: row i of W is 16 weights, bits i at column i % 16, zeros elsewhere; x is a one-hot pick.
      u16.fill(0);
      for (let i = 0; i < n; i++) u16[i * 16 + (i % 16)] = i;
      const xs = arena.floats(x, 32).fill(0);
      for (const m of [1, 2]) {
        for (let col = 0; col < 16; col++) {
          xs.fill(0);
          for (let r = 0; r < m; r++) xs[r * 16 + col] = 1;
          simd.matmul(out, x, w, dtype, m, n, 16);
          const got = arena.floats(out, m * n);
          for (let i = col; i < n; i += 16) {
            if (!finite(i)) continue;
            for (let r = 0; r < m; r++)
              if (!same(got[r * n + i]!, want(i)) && !(want(i) === 0 && got[r * n + i] === 0)) throw new Error(`matmul m=${m} ${dtype} 0x${i.toString(16)}: got ${got[r * n + i]}, want ${want(i)}`);
          }
        }
      }
    }
  });
});

describe("matmul's backward products: SIMD against the specification", () => {
  // m, n, k: 1, small, not multiples of 4 or 8, and past a chunk of the kernels' cache blocking (256 rows of W)
  const BACKWARD: [number, number, number][] = [
    ...SHAPES, [1, 300, 9], [130, 3, 21], [5, 6, 700], [9, 517, 19], [131, 37, 262], [128, 64, 1280],
  ];
  /** A new f32 buffer of n random floats, and a copy of it: the starting values both sides add onto. */
  const twin = (n: number) => {
    const a = floats(n), b = arena.alloc(n * 4);
    arena.floats(b, n).set(arena.floats(a, n));
    return [a, b] as const;
  };

  it("gradInput: dx += dy · W onto nonzero dx", () => {
    for (const [m, n, k] of BACKWARD) {
      const dy = floats(m * n), w = floats(n * k), [a, b] = twin(m * k);
      ref.matmulGradInput(a, dy, w, m, n, k);
      simd.matmulGradInput(b, dy, w, m, n, k);
      // float32 sums over n in another order (chunks of 256, then added to dx): error grows like sqrt(n) ulps
      const e = maxError(b, a, m * k);
      expect(e, `m=${m} n=${n} k=${k}: max error ${e}`).toBeLessThan(2e-6 * Math.sqrt(n));
    }
  });

  it("gradWeight: dW += dyᵀ · x onto nonzero dW", () => {
    for (const [m, n, k] of BACKWARD) {
      const dy = floats(m * n), x = floats(m * k), [a, b] = twin(n * k);
      ref.matmulGradWeight(a, dy, x, m, n, k);
      simd.matmulGradWeight(b, dy, x, m, n, k);
      // float32 sums over m in another order (chunks of 128, then added to dW): error grows like sqrt(m) ulps
      const e = maxError(b, a, n * k);
      expect(e, `m=${m} n=${n} k=${k}: max error ${e}`).toBeLessThan(2e-6 * Math.sqrt(m));
    }
  });
});

describe("training kernels: SIMD against the specification", () => {
  /** max |a − b| / max(|b|, floor) over two f32 buffers, values at `skip` aside: relative per value (the values differ by orders of magnitude). */
  const relError = (a: number, b: number, n: number, floor: number, skip = new Set<number>()) => {
    const x = arena.floats(a, n), y = arena.floats(b, n);
    let e = 0;
    for (let i = 0; i < n; i++) if (!skip.has(i)) e = Math.max(e, Math.abs(x[i]! - y[i]!) / Math.max(Math.abs(y[i]!), floor));
    return e;
  };
  const copy = (from: number, n: number) => {
    const p = arena.alloc(n * 4);
    arena.floats(p, n).set(arena.floats(from, n));
    return p;
  };

  it("crossEntropy: dlogits and per-row losses, vocabularies not a multiple of 4, in place", () => {
    for (const [rows, vocab] of [[1, 1], [1, 6], [3, 7], [5, 256], [4, 1001], [7, 4099], [2, 32000]] as const) {
      const logits = floats(rows * vocab), targets = arena.alloc(rows * 4), scale = 1 / rows;
      arena.floats(logits, rows * vocab).forEach((x, i, a) => (a[i] = 3 * x)); // softmaxes from flat to peaked
      const ids = new Int32Array(arena.memory.buffer, targets, rows);
      ids.forEach((_, r) => (ids[r] = r === 0 ? vocab - 1 : Math.floor(random() * vocab))); // row 0: the last id, in the tail
      const [a, b, la, lb] = [rows * vocab, rows * vocab, rows, rows].map((n) => arena.alloc(n * 4));
      ref.crossEntropy(a, logits, targets, la, rows, vocab, scale);
      simd.crossEntropy(b, logits, targets, lb, rows, vocab, scale);
      // exp4 is not Math.exp (a few ulps, float32: 6e-8 each), and x − max x rounds to float32: ±2^-24·|x − max x| more
      const x = arena.floats(logits, rows * vocab), spread = Math.max(...x) - Math.min(...x);
      // the target's dlogit, p·scale − scale, cancels when p is near 1: its error is absolute, an ulp or two of scale
      const at = new Set(Array.from(new Int32Array(arena.memory.buffer, targets, rows), (id, r) => r * vocab + id));
      const e = relError(b, a, rows * vocab, 1e-30, at), el = relError(lb, la, rows, 1e-3);
      expect(e, `rows=${rows} vocab=${vocab}: dlogits max relative error ${e} (logits spread over ${spread.toFixed(1)})`).toBeLessThan(6e-7 + 2 ** -24 * spread);
      for (const i of at) expect(Math.abs(arena.floats(b, rows * vocab)[i]! - arena.floats(a, rows * vocab)[i]!), `rows=${rows} vocab=${vocab}: the target's dlogit`).toBeLessThan((6e-7 + 2 ** -24 * spread) * scale + 2 ** -22 * scale);
      expect(el, `rows=${rows} vocab=${vocab}: losses max relative error ${el}`).toBeLessThan(1e-6);
      // in place (dlogits = logits): the same values
      const c = copy(logits, rows * vocab), lc = arena.alloc(rows * 4);
      simd.crossEntropy(c, c, targets, lc, rows, vocab, scale);
      expect([...arena.floats(c, rows * vocab)]).toEqual([...arena.floats(b, rows * vocab)]);
      expect([...arena.floats(lc, rows)]).toEqual([...arena.floats(lb, rows)]);
    }
  });

  it("attentionBackward: T = 1 and odd, head sizes not a multiple of 4, groups of 1, 2 and 4, onto nonzero dq, dk, dv", () => {
    for (const [T, qHeads, kvHeads, hd] of [[1, 1, 1, 4], [1, 2, 1, 3], [2, 2, 2, 8], [7, 4, 4, 10], [9, 4, 2, 7], [16, 8, 2, 5], [33, 4, 1, 16], [130, 4, 2, 32], [65, 6, 3, 64]] as const) {
      const q = floats(T * qHeads * hd), k = floats(T * kvHeads * hd), v = floats(T * kvHeads * hd), dout = floats(T * qHeads * hd);
      const grads = [T * qHeads * hd, T * kvHeads * hd, T * kvHeads * hd].map((n) => {
        const a = floats(n);
        return { n, a, b: copy(a, n) };
      });
      const [dq, dk, dv] = grads;
      ref.attentionBackward(dq!.a, dk!.a, dv!.a, dout, q, k, v, T, qHeads, kvHeads, hd);
      simd.attentionBackward(dq!.b, dk!.b, dv!.b, dout, q, k, v, T, qHeads, kvHeads, hd);
      grads.forEach(({ n, a, b }, i) => {
        // float32 sums over keys (dq) or queries of the group (dk, dv) in another order: error grows like sqrt(T) ulps
        const e = maxError(b, a, n);
        expect(e, `T=${T} heads=${qHeads}/${kvHeads} hd=${hd}: ${["dq", "dk", "dv"][i]} max error ${e}`).toBeLessThan(2e-6 * Math.sqrt(T * qHeads / kvHeads));
      });
    }
  });

  it("attentionBackward says how much workspace it needs past what it has", () => {
    const T = (1 << 17) + 1, need = threads * 2 * Math.ceil(T / 4) * 16; // two 16-byte-aligned rows of T floats per thread
    expect(() => simd.attentionBackward(0, 0, 0, 0, 0, 0, 0, T, 2, 2, 4)).toThrow(new RegExp(`needs ${need} bytes of workspace; the kernels have ${1 << 20}`));
  });
});

describe("the other kernels: SIMD set against the specification", () => {
  it("attention over long contexts, grouped heads and odd head sizes", () => {
    // 701 keys take three of attention's chunks of 256; rows of 255, 256 and 257 keys sit at a boundary
    for (const [rows, pos0, heads, kvHeads, hd] of [[1, 0, 1, 1, 4], [1, 700, 12, 3, 64], [3, 37, 4, 4, 10], [9, 5, 6, 2, 7], [2, 1, 8, 1, 128], [3, 254, 6, 2, 36]] as const) {
      const len = pos0 + rows;
      const q = floats(rows * heads * hd), kc = floats(len * kvHeads * hd), vc = floats(len * kvHeads * hd);
      const a = arena.alloc(rows * heads * hd * 4), b = arena.alloc(rows * heads * hd * 4);
      ref.attention(a, q, kc, vc, rows, pos0, heads, kvHeads, hd);
      simd.attention(b, q, kc, vc, rows, pos0, heads, kvHeads, hd);
      expect(maxError(b, a, rows * heads * hd), `rows=${rows} pos0=${pos0} heads=${heads}/${kvHeads} hd=${hd}`).toBeLessThan(2e-6);
    }
  });

  it("fmaPeak, the compute probe, runs its ten chains a·0.5 + 0.25 (fused or not, all exact in f32)", () => {
    const p = arena.alloc(32);
    expect(simd.fmaPeak(p, 0)).toBe(55); // 1 + 2 + … + 10
    expect(simd.fmaPeak(p, 1)).toBe(30); // 55·0.5 + 10·0.25
    expect(simd.fmaPeak(p, 2)).toBe(17.5);
    expect(simd.fmaPeak(p, 200)).toBe(5); // each chain at its fixed point 0.5
  });

  it("rmsNorm, rope, activate, add, widen, copyRows", () => {
    const rows = 5, dim = 36, heads = 3, kvHeads = 1, hd = 12, pos0 = 4, ctx = 16;
    const check = (n: number, run: (k: ReferenceKernels | WasmKernels, out: number) => void, tol = 1e-6) => {
      const a = arena.alloc(n * 4), b = arena.alloc(n * 4);
      run(ref, a);
      run(simd, b);
      expect(maxError(b, a, n)).toBeLessThan(tol);
    };
    const x = floats(rows * dim), wt = floats(dim);
    check(rows * dim, (k, o) => k.rmsNorm(o, x, wt, rows, dim, 1e-6));
    const cos = floats(ctx * hd / 2), sin = floats(ctx * hd / 2);
    check(rows * heads * hd, (k, o) => {
      k.copyRows(o, heads * hd, x, dim, rows, heads * hd);
      k.rope(o, cos, sin, rows, heads, hd, pos0);
    });
    const ffn = floats(rows * 2 * dim);
    for (const act of ["swish", "gelu", "relu"] as const)
      for (const gated of [true, false]) check(rows * dim, (k, o) => k.activate(o, ffn, rows, dim, act, gated), 2e-6);
    check(rows * dim, (k, o) => {
      k.copyRows(o, dim, x, dim, rows, dim);
      k.add(o, wt, dim);
    });
    for (const dtype of FLOAT_TYPES) {
      const w = weights(dim, dtype);
      check(dim, (k, o) => k.widen(o, w, dtype, dim), Number.MIN_VALUE); // exact
    }
  });
});

describe("firstNonFinite: SIMD against the specification", () => {
  // NaN (quiet, with a payload, signalling, negative), +inf, -inf
  const BAD: Record<FloatType, number[]> = {
    f32: [0x7fc00000, 0x7fc00123, 0x7f800001, 0xffc00000, 0x7f800000, 0xff800000],
    f16: [0x7e00, 0x7e12, 0x7c01, 0xfe00, 0x7c00, 0xfc00],
    bf16: [0x7fc0, 0x7fc1, 0x7f81, 0xffc0, 0x7f80, 0xff80],
  };
  // finite edge cases: ±0, the smallest subnormal, the largest subnormal (negative), ± the largest finite value
  const EDGE: Record<FloatType, number[]> = {
    f32: [0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0xff7fffff],
    f16: [0, 0x8000, 1, 0x83ff, 0x7bff, 0xfbff],
    bf16: [0, 0x8000, 1, 0x807f, 0x7f7f, 0xff7f],
  };
  // finite values with the largest and the smallest normal exponent: their exponent bits together are all ones
  const COVER: Record<FloatType, number[]> = { f32: [0x7f7fffff, 0x00800000], f16: [0x7bff, 0x0400], bf16: [0x7f7f, 0x0080] };
  const bitsOf = (dtype: FloatType, ptr: number, n: number) => (dtype === "f32" ? new Uint32Array(arena.memory.buffer, ptr, n) : new Uint16Array(arena.memory.buffer, ptr, n));
  const below = (n: number) => Math.floor(random() * n);
  const pick = (values: number[]) => values[below(values.length)]!;

  it.each(FLOAT_TYPES)("%s: all finite gives -1; the first of several bad values is found wherever it is", (dtype) => {
    const step = 128 / BYTES[dtype]; // values the SIMD kernel tests at once; the tail after the last step goes one by one
    expect(simd.firstNonFinite(weights(1, dtype), dtype, 0)).toBe(-1);
    for (const n of [1, 7, 31, 32, 33, 63, 65, 100, 127, 1027, 20001]) {
      const ptr = weights(n, dtype), bits = bitsOf(dtype, ptr, n), tail = n - (n % step);
      for (const e of EDGE[dtype]) bits[below(n)] = e;
      expect(simd.firstNonFinite(ptr, dtype, n)).toBe(-1);
      expect(ref.firstNonFinite(ptr, dtype, n)).toBe(-1);
      for (const at of [0, n - 1, tail - 1, tail, tail + below(n - tail), below(n), below(n), below(n)].filter((i) => i >= 0 && i < n)) {
        const saved = bits.slice();
        bits[at] = pick(BAD[dtype]);
        // later bad values, close by and further on, do not hide the first
        for (const later of [at + 1 + below(3), at + below(n - at)]) if (later > at && later < n) bits[later] = pick(BAD[dtype]);
        expect(simd.firstNonFinite(ptr, dtype, n), `n=${n} at=${at}`).toBe(at);
        expect(ref.firstNonFinite(ptr, dtype, n)).toBe(at);
        // from one value further on: blocks no longer 16-byte aligned, the tail elsewhere
        const from1 = simd.firstNonFinite(ptr + BYTES[dtype], dtype, n - 1);
        expect(from1, `n=${n} at=${at}, from 1`).toBe(ref.firstNonFinite(ptr + BYTES[dtype], dtype, n - 1));
        if (at > 0) expect(from1).toBe(at - 1);
        bits.set(saved);
      }
    }
  });

  it.each(FLOAT_TYPES)("%s: finite values whose exponent bits together are all ones are still finite", (dtype) => {
    const n = 4099, ptr = weights(n, dtype), bits = bitsOf(dtype, ptr, n);
    for (let i = 0; i < n; i++) bits[i] = pick(COVER[dtype]);
    for (const start of [0, 1, 3]) {
      const p = ptr + start * BYTES[dtype];
      expect([simd.firstNonFinite(p, dtype, n - start), ref.firstNonFinite(p, dtype, n - start)]).toEqual([-1, -1]);
    }
  });
});


});

describe("takeChunks: how the threads share a product's rows of W", () => {
  it("deals [0, n) out exactly once, in chunks that start at multiples of 4, about perThread per thread", () => {
    for (const perThread of [chunksPerThread(1), chunksPerThread(4)])
      for (const [n, threads] of [[1, 2], [7, 2], [64, 3], [203, 3], [1280, 2], [32000, 2], [10240, 8]] as const) {
        const ctl = new Int32Array(new SharedArrayBuffer(64)), taken = new Uint8Array(n), starts: number[] = [];
        // one thread asking until nothing is left takes every chunk; a second one, arriving late, takes none
        for (let t = 0; t < 2; t++)
          takeChunks(ctl, n, threads, perThread, (j0, j1) => {
            starts.push(j0);
            for (let j = j0; j < j1; j++) taken[j]!++;
          });
        expect(taken.every((c) => c === 1), `n=${n} threads=${threads}`).toBe(true);
        expect(starts.every((j) => j % 4 === 0)).toBe(true);
        expect(starts.length).toBeLessThanOrEqual(threads * perThread);
        // fine enough that a thread slowed down for a while hands work to the others
        if (n >= 128 * threads) expect(starts.length).toBeGreaterThanOrEqual((perThread / 2) * threads);
      }
  });
});

describe("the specification kernels compute what their comments say", () => {
  beforeAll(async () => {
    const created = await createNodeKernels({ kernels: "typescript" });
    arena = created.arena;
    ref = new ReferenceKernels(arena);
  });
  const set = (values: number[]) => {
    const p = arena.alloc(values.length * 4);
    arena.floats(p, values.length).set(values);
    return p;
  };
  const get = (p: number, n: number) => Array.from(arena.floats(p, n));

  it("rmsNorm: x / sqrt(mean(x²) + eps) · weight", () => {
    const x = set([3, 4, 0, 0]), w = set([1, 2, 3, 4]);
    ref.rmsNorm(x, x, w, 1, 4, 0);
    expect(get(x, 4)).toEqual([1.2, 3.2, 0, 0].map(Math.fround)); // rms = 2.5
  });

  it("rope: rotate-half pairs (i, i + headDim/2) by the angle of the position", () => {
    const x = set([1, 0, 0, 1]), cos = set([1, 1, 0, 1]), sin = set([0, 0, 1, 0]); // position 1: angle π/2 for pair 0
    ref.rope(x, cos, sin, 1, 1, 4, 1);
    expect(get(x, 4)).toEqual([0, 0, 1, 1]);
  });

  it("attention: the only visible position returns its value; equal scores average the values", () => {
    const q = set([1, 0, 0, 1]), k = set([0, 0, 0, 0]), v = set([2, 4, 6, 8]), out = arena.alloc(16);
    ref.attention(out, q, k, v, 2, 0, 1, 1, 2); // two positions, one head of size 2, keys all zero
    expect(get(out, 4)).toEqual([2, 4, 4, 6]);
  });

  it("crossEntropy: equal logits give log(vocab), and scale/vocab less scale at the target", () => {
    const logits = set([2, 2, 2, 2, 2]), targets = arena.alloc(4), losses = arena.alloc(4);
    new Int32Array(arena.memory.buffer, targets, 1)[0] = 3;
    ref.crossEntropy(logits, logits, targets, losses, 1, 5, 0.5);
    expect(get(losses, 1)[0]).toBeCloseTo(Math.log(5), 6);
    expect(get(logits, 5)).toEqual([0.1, 0.1, 0.1, -0.4, 0.1].map(Math.fround));
  });

  it("activate: swish(gate) · up, gelu in the erf form, relu", () => {
    const x = set([1, -2, 3, 4]), out = arena.alloc(8);
    ref.activate(out, x, 1, 2, "swish", true);
    expect(get(out, 2)[0]).toBeCloseTo((1 / (1 + Math.exp(-1))) * 3, 6);
    expect(get(out, 2)[1]).toBeCloseTo((-2 / (1 + Math.exp(2))) * 4, 6);
    ref.activate(out, x, 1, 2, "gelu", false);
    expect(get(out, 2)[0]).toBeCloseTo(0.8413447460685429, 6); // 0.5·(1 + erf(1/√2))
    expect(get(out, 2)[1]).toBeCloseTo(-0.04550026389635842, 6);
    ref.activate(out, x, 1, 2, "relu", false);
    expect(get(out, 2)).toEqual([1, 0]);
  });
});
