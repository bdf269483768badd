// What native code reaches on decode's matrix–vector product, the yardstick for openelm's: the same loop as
// kernels/matmul.ts's matvec (16 weights a step, 4 sums; bf16 widened by a shift and a blend, then a
// multiply and an add; f16 by shifts and masks, then a fused multiply-add) with 128-bit vectors, the width
// WebAssembly has, and bf16 again with 256-bit AVX2 vectors, the width native peers use. THREADS threads
// each take their rows of a [rows × 1280] matrix of MIB MiB (the 270M model's width), against one x.
// Prints GB/s of weights for bf16 128-bit, f16 128-bit and bf16 256-bit, the median of PASSES passes each
// after half a second of unmeasured ones (openelm's side, matvecFromMemory in bench/kernels.ts, takes the
// median of 11 calls the same way), after checking each one's sums against a plain loop.
// Usage: matvec-ceiling THREADS MIB PASSES (x86-64 with AVX2 only; elsewhere it exits with 2). Build with
// -ffp-contract=off (npm run bench does): GCC would otherwise fuse the BF16 loop's multiply and add.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>

enum { K = 1280 };
// Each weight vector loaded once, as V8 does: GCC would fold a second load into each instruction that uses
// it (measured: the 128-bit BF16 loop then read 23-26 GB/s on two threads instead of 36-44)
#define IN_REGISTER(v) __asm__("" : "+x"(v))
typedef struct { const uint16_t *w; const float *x; float *out; size_t j0, j1; int kind; } Slice;

// Weights 0, 2, 4, 6 (even) or 1, 3, 5, 7 (odd) of 8 as f32 (F16: × 2^-112, with the sign, as simd.ts's top16)
__attribute__((target("avx2,fma"), always_inline)) static inline __m128 widen(__m128i v, int f16, int odd) {
  if (!f16) return _mm_castsi128_ps(odd ? _mm_blend_epi16(_mm_setzero_si128(), v, 0xaa) : _mm_slli_epi32(v, 16));
  return _mm_castsi128_ps(_mm_and_si128(_mm_srai_epi32(odd ? v : _mm_slli_epi32(v, 16), 3), _mm_set1_epi32((int)0x8fffe000)));
}

// acc + x·w: BF16 multiplies, then adds; F16 fuses them (as kernels/matmul.ts's accumulate)
__attribute__((target("avx2,fma"), always_inline)) static inline __m128 accumulate(const float *x, __m128 w, __m128 acc, int f16) {
  return f16 ? _mm_fmadd_ps(_mm_loadu_ps(x), w, acc) : _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x), w), acc);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void x128(const Slice *s, int f16) {
  for (size_t j = s->j0; j < s->j1; j++) {
    const uint16_t *p = s->w + j * K;
    __m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int c = 0; c < K; c += 16, p += 16) {
      __m128i r = _mm_loadu_si128((const __m128i *)p), q = _mm_loadu_si128((const __m128i *)(p + 8));
      IN_REGISTER(r); IN_REGISTER(q);
      // x is in the matching order (openelm's pairActivations)
      a0 = accumulate(s->x + c, widen(r, f16, 0), a0, f16);
      a1 = accumulate(s->x + c + 4, widen(r, f16, 1), a1, f16);
      a2 = accumulate(s->x + c + 8, widen(q, f16, 0), a2, f16);
      a3 = accumulate(s->x + c + 12, widen(q, f16, 1), a3, f16);
    }
    __m128 t = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
    t = _mm_hadd_ps(t, t);
    s->out[j] = _mm_cvtss_f32(_mm_hadd_ps(t, t));
  }
}

__attribute__((target("avx2,fma"))) static void bf16x128(const Slice *s) { x128(s, 0); }
__attribute__((target("avx2,fma"))) static void f16x128(const Slice *s) { x128(s, 1); }

__attribute__((target("avx2,fma"))) static void bf16x256(const Slice *s) {
  const __m256i zero = _mm256_setzero_si256();
  for (size_t j = s->j0; j < s->j1; j++) {
    const uint16_t *p = s->w + j * K;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int c = 0; c < K; c += 16, p += 16) {
      __m256i r = _mm256_loadu_si256((const __m256i *)p);
      IN_REGISTER(r);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s->x + c), _mm256_castsi256_ps(_mm256_slli_epi32(r, 16)), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s->x + c + 8), _mm256_castsi256_ps(_mm256_blend_epi16(zero, r, 0xaa)), a1);
    }
    __m256 t = _mm256_add_ps(a0, a1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    h = _mm_hadd_ps(h, h);
    s->out[j] = _mm_cvtss_f32(_mm_hadd_ps(h, h));
  }
}

/** The plain dot product of row j, in double (f16 weights are normal numbers here). */
static double reference(const uint16_t *w, const float *x, size_t j, int f16) {
  double sum = 0;
  for (int c = 0; c < K; c++) {
    uint32_t h = w[j * K + c], bits = h << 16;
    float v;
    if (f16) v = (h & 0x8000 ? -1.0f : 1.0f) * ldexpf(1.0f + (float)(h & 0x3ff) / 1024.0f, (int)((h >> 10) & 0x1f) - 15);
    else memcpy(&v, &bits, 4);
    sum += (double)x[c] * v;
  }
  return sum;
}

static void *run(void *arg) {
  const Slice *s = arg;
  if (s->kind == 0) bf16x128(s);
  else if (s->kind == 1) f16x128(s);
  else bf16x256(s);
  return NULL;
}

static int ascending(const void *a, const void *b) {
  double d = *(const double *)a - *(const double *)b;
  return (d > 0) - (d < 0);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/** One product of all rows on `threads` threads; the seconds it took. */
static double pass(const uint16_t *w, const float *x, float *out, size_t rows, int threads, int kind) {
  pthread_t th[256];
  Slice s[256];
  double t0 = now();
  for (int t = 0; t < threads; t++) {
    s[t] = (Slice){ w, x, out, rows * t / threads, rows * (t + 1) / threads, kind };
    pthread_create(&th[t], NULL, run, &s[t]);
  }
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  return now() - t0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1, passes = argc > 3 ? atoi(argv[3]) : 5;
  size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 512) << 20, rows = bytes / (2 * K);
  if (threads < 1 || threads > 256 || passes < 1 || passes > 256 || rows < (size_t)threads) return fprintf(stderr, "usage: matvec-ceiling THREADS MIB PASSES\n"), 2;
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return fprintf(stderr, "matvec-ceiling: this CPU has no AVX2 and FMA\n"), 2;
  uint16_t *w = aligned_alloc(64, rows * K * 2);
  float *x = aligned_alloc(64, K * 4), *out = aligned_alloc(64, rows * 4);
  if (!w || !x || !out) return fprintf(stderr, "matvec-ceiling: out of memory\n"), 2;
  // weights near ±1 in both formats (0x3c00 is 1.0 in f16 and 0.0078 in bf16), no subnormals
  for (size_t i = 0; i < rows * K; i++) w[i] = (uint16_t)(0x3c00 + ((i * 2654435761u) >> 22) % 0x400) ^ (uint16_t)((i & 1) << 15);
  for (int i = 0; i < K; i++) x[i] = (float)(i % 7) * 0.1f - 0.3f;
  // x in the order each loop widens weights in: in every 8 (128-bit) or 16 (256-bit) the even ones, then
  // the odd ones (openelm's pairActivations), × 2^56 × 2^56 for f16, whose widening leaves out 2^112
  float *x8 = aligned_alloc(64, K * 4), *x8f16 = aligned_alloc(64, K * 4), *x16 = aligned_alloc(64, K * 4);
  if (!x8 || !x8f16 || !x16) return fprintf(stderr, "matvec-ceiling: out of memory\n"), 2;
  for (int c = 0; c < K; c++) {
    x8[c] = x[c - c % 8 + (c % 8 < 4 ? 2 * (c % 8) : 2 * (c % 8 - 4) + 1)];
    x8f16[c] = ldexpf(x8[c], 112);
    x16[c] = x[c - c % 16 + (c % 16 < 8 ? 2 * (c % 16) : 2 * (c % 16 - 8) + 1)];
  }
  const float *xs[3] = { x8, x8f16, x16 };
  // half a second unmeasured first: whichever loop ran first, right after the one-thread fill, read 10-40%
  // less on two threads (measured on Zen 5: the idle cores take that long to come up to speed)
  for (double start = now(); now() - start < 0.5;) pass(w, xs[0], out, rows, threads, 0);
  for (int kind = 0; kind < 3; kind++) {
    double gbs[256];
    for (int p = 0; p < passes; p++) gbs[p] = rows * K * 2.0 / pass(w, xs[kind], out, rows, threads, kind) / 1e9;
    for (size_t j = 0; j < rows; j += rows / 7) {
      double want = reference(w, x, j, kind == 1), got = out[j];
      if (fabs(got - want) > 1e-5 * K) return fprintf(stderr, "matvec-ceiling: loop %d, row %zu: %g, not %g\n", kind, j, got, want), 2;
    }
    qsort(gbs, passes, sizeof gbs[0], ascending);
    printf(kind < 2 ? "%.2f " : "%.2f\n", gbs[passes / 2]);
  }
  return 0;
}
#else
int main(void) {
  fprintf(stderr, "matvec-ceiling: x86-64 only\n");
  return 2;
}
#endif
