/* bench_attention.c: milliseconds for one attention forward + backward (backend.h, CPU), the
 * fastest of reps runs in wall time and in process CPU time (the steadier one on a shared
 * machine; with one BLAS thread it is the work done), for each window given. Usage:
 *   bench_attention [T] [reps] [window...]      (defaults: 512, 9, windows 0 and 64)
 * Shape B 1, 9 heads, 3 kv heads, head dim 64 (SmolLM2-135M's). Window 0 = full causal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu_backend.h"

enum { B = 1, NH = 9, NKV = 3, HD = 64 };

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *filled(size_t n, unsigned seed) {
  float *x = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
  }
  return x;
}

int main(int argc, char **argv) {
  int T = argc > 1 ? atoi(argv[1]) : 512, reps = argc > 2 ? atoi(argv[2]) : 9;
  if (T < 1 || reps < 1 || reps > 1000) {
    fprintf(stderr, "usage: bench_attention [T] [reps] [window...]\n");
    return 2;
  }
  size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD;
  float *q = filled(nq, 1), *k = filled(nk, 2), *v = filled(nk, 3), *dout = filled(nq, 4);
  float *out = malloc(sizeof(float) * nq), *dq = malloc(sizeof(float) * nq);
  float *dk = malloc(sizeof(float) * nk), *dv = malloc(sizeof(float) * nk);
  float *scratch = malloc(sizeof(float) * fb_op_attention_scratch(T));
  static char *defaults[] = {"0", "64"};
  char **windows = argc > 3 ? argv + 3 : defaults;
  int n_windows = argc > 3 ? argc - 3 : 2;
  for (int w = 0; w < n_windows; w++) {
    int window = atoi(windows[w]);
    double wall = INFINITY, cpu = INFINITY;
    for (int r = 0; r < reps; r++) {
      double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
      fb_op_attention_forward(out, NULL, q, k, v, NULL, scratch, B, T, NH, NKV, HD, window);
      fb_op_attention_backward(dq, dk, dv, dout, q, k, v, NULL, scratch, B, T, NH, NKV, HD,
                               window);
      wall = fmin(wall, now(CLOCK_MONOTONIC) - w0);
      cpu = fmin(cpu, now(CLOCK_PROCESS_CPUTIME_ID) - c0);
    }
    printf("attention fwd+bwd T %d window %d: %.2f ms wall, %.2f ms CPU (best of %d)\n", T,
           window, wall * 1e3, cpu * 1e3, reps);
  }
  free(scratch), free(dv), free(dk), free(dq), free(out);
  free(dout), free(v), free(k), free(q);
  return 0;
}
