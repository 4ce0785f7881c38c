/* smoke.cu (CUDA emulator): every file of cuda/ built on the emulator (this binary links them
 * all), then the backend's context brought up through its own fb_cuda_init and three of its
 * kernels run against host references: the bf16 conversion, RMSNorm (block sums by shuffles
 * and barriers) and the double-precision reduction (fb_block_sum<double>, atomicAdd). Kernels
 * are launched directly, so this does not depend on the launchers' signatures. */
#include <math.h>
#include <stdio.h>

#include "common.cuh"

extern "C" {
#include "log.h"
}

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *inp, size_t n);
__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp,
                                       const float *weight, int C, float eps);
__global__ void reduce_kernel(double *out, const float *x, size_t n, int squares);

static int failures;

static void check(bool ok, const char *what, double got, double want) {
  printf("%s %s: %.9g (want %.9g)\n", ok ? "ok  " : "FAIL", what, got, want);
  failures += !ok;
}

static void *device(size_t bytes, const void *host) {
  void *p;
  fb_err err;
  if (fb_cuda_alloc(&p, bytes, "smoke test buffer", &err)) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  if (host) fb_cuda_upload(p, host, bytes);
  return p;
}

int main(void) {
  fb_err err;
  if (fb_cuda_init(&err)) {
    fprintf(stderr, "fb_cuda_init: %s\n", err.msg);
    return 1;
  }
  const int N = 5, C = 300; /* C not a multiple of the block: the tail threads add zeros */
  float x[N * C], w[C];
  for (int i = 0; i < N * C; i++) x[i] = sinf(i * 0.37f) * 3.0f;
  for (int c = 0; c < C; c++) w[c] = 0.5f + c * 0.01f;
  float *dx = (float *)device(sizeof x, x), *dw = (float *)device(sizeof w, w);
  float *dout = (float *)device(sizeof x, NULL), *drstd = (float *)device(N * 4, NULL);
  fb_bf16 *d16 = (fb_bf16 *)device(N * C * 2, NULL);
  double *dsum = (double *)device(sizeof(double), NULL);

  FB_LAUNCH(to_bf16_kernel, fb_blocks(N * C, 256), 256, 0, 0, (__nv_bfloat16 *)d16, dx,
            (size_t)N * C);
  FB_LAUNCH_CHECK();
  fb_bf16 h16[N * C];
  fb_cuda_download(h16, d16, sizeof h16);
  int same = 0;
  for (int i = 0; i < N * C; i++) same += h16[i] == fb_bf16_from_float(x[i]);
  check(same == N * C, "bf16 conversion: elements equal to fb_bf16_from_float", same, N * C);

  FB_LAUNCH(rmsnorm_forward_kernel, N, 256, 0, 0, dout, drstd, dx, dw, C, 1e-5f);
  FB_LAUNCH_CHECK();
  float out[N * C], rstd[N];
  fb_cuda_download(out, dout, sizeof out);
  fb_cuda_download(rstd, drstd, sizeof rstd);
  double worst = 0.0;
  for (int n = 0; n < N; n++) {
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
    double r = 1.0 / sqrt(ss / C + 1e-5);
    worst = fmax(worst, fabs(rstd[n] - r) / r);
    for (int c = 0; c < C; c++) {
      double want = w[c] * (x[n * C + c] * r);
      worst = fmax(worst, fabs(out[n * C + c] - want) / fmax(fabs(want), 1e-3));
    }
  }
  check(worst < 1e-5, "rmsnorm forward: max relative error", worst, 0.0);

  FB_CUDA_CHECK(cudaMemset(dsum, 0, sizeof(double)));
  FB_LAUNCH(reduce_kernel, 3, 256, 0, 0, dsum, dx, (size_t)N * C, 1);
  FB_LAUNCH_CHECK();
  double sum, want = 0.0;
  fb_cuda_download(&sum, dsum, sizeof sum);
  for (int i = 0; i < N * C; i++) want += (double)x[i] * x[i];
  check(fabs(sum - want) < 1e-9 * want, "sum of squares (grid-stride, double)", sum, want);

  for (void *p : {(void *)dx, (void *)dw, (void *)dout, (void *)drstd, (void *)d16, (void *)dsum})
    fb_cuda_free(p);
  check(fb_cuda_bytes_in_use() == (size_t)1 << 20, "bytes in use: the workspace alone",
        (double)fb_cuda_bytes_in_use(), (double)(1 << 20));
  fb_cuda_shutdown();
  return failures ? 1 : 0;
}
