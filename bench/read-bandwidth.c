// The yardstick for openelm's bandwidth probe: a plain C read loop, compiled by `npm run bench` where a C
// compiler exists, once with -O3 -march=native and once with -O3 alone (the wider build is not always the
// faster reader). THREADS threads each sum their slice of a MIB-MiB buffer (vectorised by the compiler);
// the best of PASSES passes is printed as GB/s.
// Usage: read-bandwidth THREADS MIB PASSES
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint64_t *p; size_t n; uint64_t sum; } Slice;

static void *sum(void *arg) {
  Slice *s = arg;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= s->n; i += 4) a += s->p[i], b += s->p[i + 1], c += s->p[i + 2], d += s->p[i + 3];
  s->sum = a + b + c + d;
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1, passes = argc > 3 ? atoi(argv[3]) : 5;
  size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 1024) << 20, n = bytes / 8, per = n / threads;
  if (threads < 1 || threads > 256 || passes < 1 || bytes == 0) return fprintf(stderr, "usage: read-bandwidth THREADS MIB PASSES\n"), 2;
  uint64_t *buf = malloc(bytes);
  if (!buf) return fprintf(stderr, "cannot allocate %zu bytes\n", bytes), 1;
  memset(buf, 1, bytes); // touch every page before timing
  pthread_t tid[256];
  Slice s[256];
  double best = 1e30;
  uint64_t check = 0;
  for (int pass = 0; pass < passes; pass++) {
    double t0 = now();
    for (int t = 0; t < threads; t++) s[t] = (Slice){buf + t * per, per, 0}, pthread_create(&tid[t], NULL, sum, &s[t]);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL), check += s[t].sum;
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("%.2f\n", (double)(per * threads * 8) / best / 1e9);
  return check == 0; // keeps the sums alive
}
