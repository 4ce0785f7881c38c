/* gemm.c: run-time choice of the fp32 matrix product (oneDNN or OpenBLAS) with a correctness
 * self-test before a fast path is trusted. It does not tile or vectorise anything itself.
 *
 * oneDNN is opened with dlopen at first use, not linked: it is optional at run time (Debian's
 * libdnnl2), and its OpenMP runtime then starts after OMP_WAIT_POLICY=passive is set (unless the
 * user set it). With OpenMP's default spin-waiting, its idle threads fought the main thread on a
 * busy 2-core machine and training ran 7x slower. */
#include "gemm.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static void gemm_openblas(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* oneDNN's row-major sgemm (dnnl.h): dnnl_dim_t is int64_t, dnnl_status_t 0 is success. */
typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                             const float *, int64_t, float, float *, int64_t);
static dnnl_sgemm_fn dnnl_sgemm_ptr;

static void gemm_dnnl(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
  if (dnnl_sgemm_ptr(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    gemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); /* never silently wrong */
}

/* Find oneDNN's sgemm; 0 when the library is not installed. */
static int open_dnnl(void) {
  static const char *const names[] = {"libdnnl.so.3", "libdnnl.so.2", "libdnnl.so"};
  setenv("OMP_WAIT_POLICY", "passive", 0);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL); /* kept open for the process's life */
    if (!h) continue;
    dnnl_sgemm_ptr = (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm");
    if (dnnl_sgemm_ptr) return 1;
    dlclose(h);
  }
  return 0;
}

static struct {
  gemm_fn fn;
  const char *name;
} chosen = {gemm_openblas, "openblas"};
static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *preferred; /* fb_gemm_prefer's, when FB_GEMM is not set */

void fb_gemm_reference(int ta, int tb, int M, int N, int K, double alpha, const float *A, int lda,
                       const float *B, int ldb, double beta, const float *C, double *R) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int k = 0; k < K; k++)
        acc +=
            (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      R[i * N + j] = alpha * acc + (beta == 0.0 ? 0.0 : beta * C[i * N + j]);
    }
}

/* Compare fn against a double-precision reference on shapes that exercise every transpose,
 * odd sizes and beta accumulation. Returns 1 when all agree to 1e-4 relative. */
static int verify(gemm_fn fn) {
  static const int shapes[][5] = {{37, 29, 53, 0, 0},
                                  {64, 96, 128, 1, 0},
                                  {17, 130, 33, 0, 1},
                                  {128, 64, 257, 1, 1},
                                  {1, 300, 75, 0, 1}};
  int ok = 1;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && ok; s++) {
    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = shapes[s][3], tb = shapes[s][4];
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N);
    double *R = malloc(sizeof(double) * M * N);
    if (!A || !B || !C || !R) {
      free(A);
      free(B);
      free(C);
      free(R);
      return 0;
    }
    unsigned x = 12345u + (unsigned)s;
    for (int i = 0; i < M * K; i++)
      A[i] = (float)((x = x * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < K * N; i++)
      B[i] = (float)((x = x * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < M * N; i++) C[i] = (float)((i % 7) - 3) * 0.25f;
    int lda = ta ? M : K, ldb = tb ? K : N;
    fb_gemm_reference(ta, tb, M, N, K, 0.75, A, lda, B, ldb, 0.5, C, R);
    fn(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C, N);
    for (int i = 0; i < M * N && ok; i++)
      if (!(fabs(C[i] - R[i]) <= 1e-4 * (1.0 + fabs(R[i])))) ok = 0;
    free(A);
    free(B);
    free(C);
    free(R);
  }
  return ok;
}

/* The products a LoRA training step is made of, [M, N, K, calls]: the model's projections,
 * LoRA's rank-16 products and attention's 64-row blocks. One 512^3 product alone misjudged
 * the choice: oneDNN matched OpenBLAS there but pays ~80 us a call on small blocks (OpenBLAS
 * ~23 us), and a step makes hundreds of those. */
static const int step_mix[][4] = {{512, 512, 512, 1},
                                  {1024, 688, 256, 2},
                                  {1024, 16, 256, 32},
                                  {64, 64, 256, 64},
                                  {64, 256, 64, 64}};

/* Seconds of the better of two passes over step_mix through fn (after one warm-up pass, which
 * spins up threads and JIT-compiles kernels). */
static double time_gemm(gemm_fn fn) {
  enum { MAX_ELEMS = 1024 * 688 };
  float *a = calloc(MAX_ELEMS, sizeof(float)), *b = calloc(MAX_ELEMS, sizeof(float)),
        *c = calloc(MAX_ELEMS, sizeof(float));
  double best = INFINITY;
  for (int r = 0; a && b && c && r < 3; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t s = 0; s < sizeof step_mix / sizeof step_mix[0]; s++) {
      int M = step_mix[s][0], N = step_mix[s][1], K = step_mix[s][2];
      for (int i = 0; i < step_mix[s][3]; i++) fn(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double t = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (r && t < best) best = t;
  }
  free(a);
  free(b);
  free(c);
  return best;
}

static void init_once(void) {
  const char *force = getenv("FB_GEMM") ? getenv("FB_GEMM") : preferred;
#ifdef __SANITIZE_ADDRESS__
  /* oneDNN is not instrumented and LeakSanitizer cannot stop its OpenMP threads (the run
   * ends in a LeakSanitizer error): sanitizer builds always use OpenBLAS. */
  if (force && strcmp(force, "openblas") != 0)
    fb_warn("gemm: sanitizer build: FB_GEMM=%s ignored, using OpenBLAS", force);
  force = "openblas";
#endif
  int blas_ok = verify(gemm_openblas), dnnl_ok = 0;
  if (!blas_ok) fb_warn("gemm: OpenBLAS sgemm failed its self-test on this CPU");
  if (!force || strcmp(force, "dnnl") == 0) {
    if (!open_dnnl()) {
      if (force) fb_warn("gemm: oneDNN (libdnnl) is not installed; using OpenBLAS");
    } else if (!(dnnl_ok = verify(gemm_dnnl))) {
      fb_warn("gemm: oneDNN sgemm failed its self-test on this CPU; using OpenBLAS");
    }
  }
  if (!dnnl_ok) return;    /* OpenBLAS (even if it failed: there is nothing else to use) */
  if (!force && blas_ok) { /* both verified: take the faster on this machine */
    /* oneDNN first: its OpenMP threads wait passively, while OpenBLAS's spin for a while
     * after a call and would slow whatever is timed next. */
    double td = time_gemm(gemm_dnnl), tb = time_gemm(gemm_openblas);
    fb_info("gemm: a training step's mix of products: OpenBLAS %.2f ms, oneDNN %.2f ms", tb * 1e3,
            td * 1e3);
    /* oneDNN only when clearly faster: the timing is noisy on a busy machine, and a wrong
     * switch to oneDNN cost up to 2x a step here, a wrong stay with OpenBLAS a few percent. */
    if (tb < 1.25 * td) return;
  }
  chosen.fn = gemm_dnnl;
  chosen.name = "dnnl";
}

void fb_gemm_init(void) { pthread_once(&once, init_once); }

void fb_gemm_prefer(const char *path) {
  static char keep[16];
  snprintf(keep, sizeof keep, "%s", path);
  preferred = keep;
}

const char *fb_gemm_path(void) {
  fb_gemm_init();
  return chosen.name;
}

void fb_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
  fb_gemm_init();
  if (M <= 0 || N <= 0) return;
  if (K <= 0) { /* empty product: C = beta*C, which some BLAS paths skip */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++)
        C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return;
  }
  if (M == 1) { /* a row vector times a matrix: decoding one token */
    /* As a matrix-vector product: sgemm (OpenBLAS and oneDNN alike) packs all of op(B) on each
     * call, and that copy was 70% of a decode step of the bundled model. C is read only when
     * beta is not 0, as sgemm's contract says (gemv may scale a NaN by 0). */
    if (beta == 0.0f) memset(C, 0, sizeof(float) * (size_t)N);
    cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? N : K, transB ? K : N,
                alpha, B, ldb, A, transA ? lda : 1, beta, C, 1);
    return;
  }
  chosen.fn(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
