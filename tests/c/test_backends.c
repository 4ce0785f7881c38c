/* test_backends.c: the GPU backend against the CPU backend, through their backend.h tables:
 * every op on fresh random inputs (never zeros as data; outputs poisoned with NaN before each
 * run, so an element an op forgets to write fails), then whole LoRA training steps, three AdamW
 * steps, KV-cache decoding and greedy tokens on two copies of one model (Llama, Qwen2, Qwen3).
 * Under ctest the GPU is the CUDA emulator's plugin (FB_CUDA_PLUGIN); on a machine with a GPU, the
 * real one beside the binary. With no usable GPU it is skipped (exit 77) unless
 * FB_TEST_REQUIRE_GPU is set.
 *
 * Bounds, as ||gpu - cpu|| / ||cpu||: an op with a bf16 operand (the base weights; attention,
 * whose tensor-core products take Q, K, V, P, dO and dS in bf16) 1e-2; fp32 ops 1e-4, far under
 * 1e-3; whole models' gradients, weights and logits 2e-2; the dropout mask exactly. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu_backend.h"
#include "device.h"
#include "gemm.h"
#include "generate.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "test.h"
#include "tokenizer.h"

#define FP32_BOUND 1e-4
#define BF16_BOUND 1e-2
/* A whole model stacks bf16 stages (every base-weight product, then attention's six products):
 * measured 1.05e-2 on Qwen3's LoRA gradients after three steps (8.4e-3 with fp32 attention). */
#define MODEL_BOUND 2e-2

static const fb_backend *gpu;

/* The GPU's backend, opened on first use; skips the whole run (77) when there is none. */
static const fb_backend *dev(void) {
  if (gpu) return gpu;
  fb_err err = {0};
  if (fb_device_open(FB_DEVICE_CUDA, &gpu, NULL, 0, &err)) {
    printf("no GPU: %s\n", err.msg);
    exit(getenv("FB_TEST_REQUIRE_GPU") ? 1 : 77);
  }
  printf("  GPU: %s\n", gpu->device_name());
  return gpu;
}

static uint64_t rng = 0x243F6A8885A308D3ull;

static double uniform(void) { /* (-1, 1), never 0 */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((double)(rng >> 11) + 0.5) * 0x1.0p-52 - 1.0;
}

static float *host_rand(size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = (float)(uniform() * scale);
  return p;
}

static float *host_copy(const float *src, size_t n) {
  float *p = malloc(n * sizeof(float));
  memcpy(p, src, n * sizeof(float));
  return p;
}

static int32_t *host_ints(size_t n, int lo, int hi) {
  int32_t *p = malloc(n * sizeof(int32_t));
  for (size_t i = 0; i < n; i++)
    p[i] = lo + (int32_t)((uniform() + 1.0) * 0.5 * (hi - lo)) % (hi - lo);
  return p;
}

/* Round x to the GPU's weight dtype in place (the values its base weights hold). */
static void as_weights(float *x, size_t n) {
  if (dev()->weight_dtype == FB_DT_BF16)
    for (size_t i = 0; i < n; i++) x[i] = fb_bf16_to_f32(fb_f32_to_bf16(x[i]));
}

/* ---- GPU buffers: the ones a check made, freed together ---- */

static void *held[64];
static int n_held;

static void *on_gpu(const void *host, size_t bytes) {
  void *d;
  fb_err err = {0};
  if (dev()->alloc(&d, bytes, "a check's buffer", &err)) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  if (host) dev()->upload(d, host, bytes);
  if (n_held == 64) abort();
  held[n_held++] = d;
  return d;
}

static float *poisoned(size_t n) { /* every float NaN until the op writes it */
  float *nan = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) nan[i] = NAN;
  float *d = on_gpu(nan, n * sizeof(float));
  free(nan);
  return d;
}

static void poison(float *d, size_t n) {
  float *nan = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) nan[i] = NAN;
  dev()->upload(d, nan, n * sizeof(float));
  free(nan);
}

/* A base weight w[n] (already rounded by as_weights) in the GPU's weight dtype. */
static void *weight_on_gpu(const float *w, size_t n) {
  if (dev()->weight_dtype != FB_DT_BF16) return on_gpu(w, n * sizeof(float));
  uint16_t *h = malloc(n * sizeof(uint16_t));
  for (size_t i = 0; i < n; i++) h[i] = fb_f32_to_bf16(w[i]);
  void *d = on_gpu(h, n * sizeof(uint16_t));
  free(h);
  return d;
}

static void release(void) {
  while (n_held) dev()->free(held[--n_held]);
}

static double rel_err(const float *out, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)out[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  double r = sqrt(num) / sqrt(den);
  return isnan(r) ? INFINITY : r;
}

/* The host array got against the CPU's ref: finite, not all zero, within bound. */
static void compare_host(const char *name, const float *got, const float *ref, size_t n,
                         double bound) {
  double norm = 0;
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    finite &= isfinite(ref[i]);
    norm += (double)ref[i] * ref[i];
  }
  if (!finite || norm == 0) {
    FB_FAIL_("%s: the CPU's reference is %s", name, finite ? "all zero" : "not finite");
    return;
  }
  double r = rel_err(got, ref, n);
  printf("  %-40s rel %.3e  bound %.0e\n", name, r, bound);
  if (!(r <= bound)) FB_FAIL_("%s: relative error %.3e over %.0e", name, r, bound);
}

/* The GPU array d against the CPU's ref. */
static void compare(const char *name, const float *d, const float *ref, size_t n, double bound) {
  float *got = malloc(n * sizeof(float));
  dev()->download(got, d, n * sizeof(float));
  compare_host(name, got, ref, n, bound);
  free(got);
}

/* ---- ops ---- */

TEST(matmul) {
  const fb_backend *be = dev();
  int N = 77, C = 96, OC = 130;
  float *x = host_rand((size_t)N * C, 1), *w = host_rand((size_t)OC * C, 0.1f),
        *b = host_rand(OC, 1), *init = host_rand((size_t)N * OC, 1);
  as_weights(w, (size_t)OC * C);
  float *ref = host_copy(init, (size_t)N * OC);
  fb_op_matmul_forward(ref, x, w, b, N, C, OC, 0.75f, 0.5f); /* accumulating, with bias */
  float *dx = on_gpu(x, (size_t)N * C * 4), *db = on_gpu(b, OC * 4),
        *dout = on_gpu(init, (size_t)N * OC * 4);
  void *dw = weight_on_gpu(w, (size_t)OC * C);
  be->matmul_forward(dout, dx, dw, be->weight_dtype, db, N, C, OC, 0.75f, 0.5f);
  compare("matmul_forward (base W, beta, bias)", dout, ref, (size_t)N * OC, BF16_BOUND);
  fb_op_matmul_forward(ref, x, w, NULL, N, C, OC, 1.0f, 0.0f);
  poison(dout, (size_t)N * OC);
  be->matmul_forward(dout, dx, dw, be->weight_dtype, NULL, N, C, OC, 1.0f, 0.0f);
  compare("matmul_forward (base W, poisoned)", dout, ref, (size_t)N * OC, BF16_BOUND);
  float *g = host_rand((size_t)N * OC, 1), *dinp0 = host_rand((size_t)N * C, 1);
  float *refd = host_copy(dinp0, (size_t)N * C);
  fb_op_matmul_backward(refd, NULL, NULL, g, x, w, N, C, OC, 1.0f);
  float *dg = on_gpu(g, (size_t)N * OC * 4), *ddinp = on_gpu(dinp0, (size_t)N * C * 4);
  be->matmul_backward(ddinp, NULL, NULL, dg, dx, dw, be->weight_dtype, N, C, OC, 1.0f);
  compare("matmul_backward (base W) dinp", ddinp, refd, (size_t)N * C, BF16_BOUND);
  /* fp32 weights (LoRA): forward, every backward output */
  float *wf = host_rand((size_t)OC * C, 0.1f), *dwf = on_gpu(wf, (size_t)OC * C * 4);
  fb_op_matmul_forward(ref, x, wf, b, N, C, OC, 1.0f, 0.0f);
  poison(dout, (size_t)N * OC);
  be->matmul_forward(dout, dx, dwf, FB_DT_F32, db, N, C, OC, 1.0f, 0.0f);
  compare("matmul_forward (f32 W)", dout, ref, (size_t)N * OC, FP32_BOUND);
  float *gw0 = host_rand((size_t)OC * C, 1), *gb0 = host_rand(OC, 1);
  float *refw = host_copy(gw0, (size_t)OC * C), *refb = host_copy(gb0, OC);
  memcpy(refd, dinp0, (size_t)N * C * 4);
  fb_op_matmul_backward(refd, refw, refb, g, x, wf, N, C, OC, 0.5f);
  be->upload(ddinp, dinp0, (size_t)N * C * 4);
  float *dgw = on_gpu(gw0, (size_t)OC * C * 4), *dgb = on_gpu(gb0, OC * 4);
  be->matmul_backward(ddinp, dgw, dgb, dg, dx, dwf, FB_DT_F32, N, C, OC, 0.5f);
  compare("matmul_backward (f32 W) dinp", ddinp, refd, (size_t)N * C, FP32_BOUND);
  compare("matmul_backward (f32 W) dweight", dgw, refw, (size_t)OC * C, FP32_BOUND);
  compare("matmul_backward (f32 W) dbias", dgb, refb, OC, FP32_BOUND);
  /* addmm: out[N,OC] += 0.25 * x[N,C] @ wt[C,OC] (the merge's shape) */
  float *wt = host_rand((size_t)C * OC, 1), *dwt = on_gpu(wt, (size_t)C * OC * 4);
  memcpy(ref, init, (size_t)N * OC * 4);
  fb_op_addmm(ref, x, wt, N, OC, C, 0.25f);
  be->upload(dout, init, (size_t)N * OC * 4);
  be->addmm(dout, dx, dwt, N, OC, C, 0.25f);
  compare("addmm", dout, ref, (size_t)N * OC, FP32_BOUND);
  release();
  void *hosts[] = {x, w, b, init, ref, g, dinp0, refd, wf, gw0, gb0, refw, refb, wt};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* gemm with every transpose and row strides wider than the matrices (LoRA reads and writes
 * column slices of a shared product): against the CPU's fb_gemm; beta 0 must not read c. */
TEST(gemm_strided) {
  const fb_backend *be = dev();
  int M = 37, N = 21, K = 45;
  for (int t = 0; t < 4; t++) {
    int ta = t & 1, tb = t >> 1;
    int lda = (ta ? M : K) + 5, ldb = (tb ? K : N) + 3, ldc = N + 7;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *a = host_rand(na, 1), *b = host_rand(nb, 1), *c0 = host_rand(nc, 1);
    float *ref = host_copy(c0, nc);
    fb_gemm(ta, tb, M, N, K, 0.75f, a, lda, b, ldb, 0.5f, ref, ldc);
    float *da = on_gpu(a, na * 4), *db = on_gpu(b, nb * 4), *dc = on_gpu(c0, nc * 4);
    be->gemm(ta, tb, M, N, K, 0.75f, da, lda, db, ldb, 0.5f, dc, ldc);
    char name[64];
    snprintf(name, sizeof name, "gemm (ta %d, tb %d, beta 0.5)", ta, tb);
    compare(name, dc, ref, nc, FP32_BOUND);
    /* beta 0 over a poisoned slice: the columns past N keep c0's values in both */
    float *pc = host_copy(c0, nc);
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) pc[(size_t)i * ldc + j] = NAN;
    memcpy(ref, pc, nc * 4);
    fb_gemm(ta, tb, M, N, K, 0.75f, a, lda, b, ldb, 0.0f, ref, ldc);
    be->upload(dc, pc, nc * 4);
    be->gemm(ta, tb, M, N, K, 0.75f, da, lda, db, ldb, 0.0f, dc, ldc);
    snprintf(name, sizeof name, "gemm (ta %d, tb %d, beta 0, poisoned)", ta, tb);
    compare(name, dc, ref, nc, FP32_BOUND);
    release();
    free(a), free(b), free(c0), free(ref), free(pc);
  }
}

TEST(rows) {
  const fb_backend *be = dev();
  int N = 53, C = 896, V = 300;
  float *table = host_rand((size_t)V * C, 1);
  as_weights(table, (size_t)V * C);
  int32_t *ids = host_ints(N, 0, V);
  float *ref = malloc((size_t)N * C * 4);
  fb_op_embedding_forward(ref, ids, table, N, C);
  int32_t *dids = on_gpu(ids, N * 4);
  void *dtab = weight_on_gpu(table, (size_t)V * C);
  float *dout = poisoned((size_t)N * C);
  be->embedding_forward(dout, dids, dtab, N, C);
  compare("embedding_forward", dout, ref, (size_t)N * C, 0.0); /* a copy: exact */
  float *g = host_rand((size_t)N * C, 1), *dtab0 = host_rand((size_t)V * C, 1);
  float *refdt = host_copy(dtab0, (size_t)V * C);
  fb_op_embedding_backward(refdt, g, ids, N, C);
  float *dg = on_gpu(g, (size_t)N * C * 4), *ddt = on_gpu(dtab0, (size_t)V * C * 4);
  be->embedding_backward(ddt, dg, dids, N, C);
  compare("embedding_backward", ddt, refdt, (size_t)V * C, FP32_BOUND);
  float *x = host_rand((size_t)N * C, 2), *w = host_rand(C, 1), *rstd = malloc(N * 4);
  fb_op_rmsnorm_forward(ref, rstd, x, w, N, C, 1e-6f);
  float *dx = on_gpu(x, (size_t)N * C * 4), *dw = on_gpu(w, C * 4), *drstd = poisoned(N);
  poison(dout, (size_t)N * C);
  be->rmsnorm_forward(dout, drstd, dx, dw, N, C, 1e-6f);
  compare("rmsnorm_forward out", dout, ref, (size_t)N * C, FP32_BOUND);
  compare("rmsnorm_forward rstd", drstd, rstd, N, FP32_BOUND);
  float *din0 = host_rand((size_t)N * C, 1), *dw0 = host_rand(C, 1);
  float *refdi = host_copy(din0, (size_t)N * C), *refdw = host_copy(dw0, C);
  fb_op_rmsnorm_backward(refdi, refdw, g, x, w, rstd, N, C);
  float *ddi = on_gpu(din0, (size_t)N * C * 4), *ddw = on_gpu(dw0, C * 4);
  be->rmsnorm_backward(ddi, ddw, dg, dx, dw, drstd, N, C);
  compare("rmsnorm_backward dinp", ddi, refdi, (size_t)N * C, FP32_BOUND);
  compare("rmsnorm_backward dweight", ddw, refdw, C, FP32_BOUND);
  /* the residual add and the norm in one, into a sum of its own and into the residual itself */
  float *refsum = malloc((size_t)N * C * 4), *dsum = poisoned((size_t)N * C);
  fb_op_residual_rmsnorm_forward(refsum, ref, rstd, x, g, w, N, C, 1e-6f);
  for (int in_place = 0; in_place < 2; in_place++) {
    float *sum = in_place ? on_gpu(x, (size_t)N * C * 4) : dsum;
    poison(dout, (size_t)N * C);
    be->residual_rmsnorm_forward(sum, dout, drstd, sum == dsum ? dx : sum, dg, dw, N, C, 1e-6f);
    compare("residual_rmsnorm_forward sum", sum, refsum, (size_t)N * C, FP32_BOUND);
    compare("residual_rmsnorm_forward out", dout, ref, (size_t)N * C, FP32_BOUND);
    compare("residual_rmsnorm_forward rstd", drstd, rstd, N, FP32_BOUND);
  }
  int NH = 14, HD = 64, P = 700; /* x viewed as [N, 14, 64] */
  float *cs = host_rand((size_t)P * HD / 2, 1), *sn = host_rand((size_t)P * HD / 2, 1);
  int32_t *pos = host_ints(N, 0, P);
  float *dcs = on_gpu(cs, (size_t)P * HD / 2 * 4), *dsn = on_gpu(sn, (size_t)P * HD / 2 * 4);
  int32_t *dpos = on_gpu(pos, N * 4);
  for (int back = 0; back < 2; back++) {
    memcpy(ref, x, (size_t)N * C * 4);
    (back ? fb_op_rope_backward : fb_op_rope_forward)(ref, cs, sn, pos, N, NH, HD);
    be->upload(dout, x, (size_t)N * C * 4);
    (back ? be->rope_backward : be->rope_forward)(dout, dcs, dsn, dpos, N, NH, HD);
    compare(back ? "rope_backward" : "rope_forward", dout, ref, (size_t)N * C, FP32_BOUND);
  }
  release();
  void *hosts[] = {table, ids, ref,   g,     dtab0, refdt, x,   w,     rstd,
                   din0,  dw0, refdi, refdw, cs,    sn,    pos, refsum};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

TEST(elementwise_and_the_optimizer) {
  const fb_backend *be = dev();
  size_t n = 100003;
  float *a = host_rand(n, 4), *b = host_rand(n, 2), *g = host_rand(n, 1);
  float *r1 = malloc(n * 4), *r2 = malloc(n * 4);
  float *da = on_gpu(a, n * 4), *db = on_gpu(b, n * 4), *dg = on_gpu(g, n * 4);
  float *o1 = poisoned(n), *o2 = poisoned(n);
  fb_op_swiglu_forward(r1, a, b, n);
  be->swiglu_forward(o1, da, db, n);
  compare("swiglu_forward", o1, r1, n, FP32_BOUND);
  fb_op_swiglu_backward(r1, r2, g, a, b, n);
  be->swiglu_backward(o1, o2, dg, da, db, n);
  compare("swiglu_backward dgate", o1, r1, n, FP32_BOUND);
  compare("swiglu_backward dup", o2, r2, n, FP32_BOUND);
  fb_op_add(r1, a, b, n);
  be->add(o1, da, db, n);
  compare("add", o1, r1, n, FP32_BOUND);
  uint64_t seed = 0x1234567ull, *dseed = on_gpu(&seed, sizeof seed);
  fb_op_dropout(r1, a, n, 0.3f, seed);
  be->dropout(o1, da, n, 0.3f, dseed);
  compare("dropout (the same mask)", o1, r1, n, 0.0);
  memcpy(r1, a, n * 4);
  fb_op_scale(r1, n, 0.37f);
  be->upload(o1, a, n * 4);
  be->scale(o1, n, 0.37f);
  compare("scale", o1, r1, n, FP32_BOUND);
  CHECK_NEAR(be->sumsq(da, n) / fb_op_sumsq(a, n), 1.0, 1e-9);
  CHECK_NEAR(be->sum(da, n) / fb_op_sum(a, n), 1.0, 1e-9);
  float *p = host_rand(n, 1), *m = host_rand(n, 0.1f), *v = host_rand(n, 0.01f);
  for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
  float *dp = on_gpu(p, n * 4), *dm = on_gpu(m, n * 4), *dv = on_gpu(v, n * 4);
  fb_op_adamw(p, g, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3); /* a third step */
  be->adamw(dp, dg, dm, dv, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
  compare("adamw param", dp, p, n, FP32_BOUND);
  compare("adamw m", dm, m, n, FP32_BOUND);
  compare("adamw v", dv, v, n, FP32_BOUND);
  release();
  void *hosts[] = {a, b, g, r1, r2, p, m, v};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* ---- bf16 operands: the shadows the ops leave (cuda/fb_cuda.h) and the bias epilogue ---- */

/* Device buffers of a check that frees them itself (held[] back to mark). */
static void release_to(int mark) {
  while (n_held > mark) dev()->free(held[--n_held]);
}

/* The GPU arrays a and b hold the same bits. */
static void same_bits(const char *name, const float *a, const float *b, size_t n) {
  float *ha = malloc(n * 4), *hb = malloc(n * 4);
  dev()->download(ha, a, n * 4);
  dev()->download(hb, b, n * 4);
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) differ += memcmp(&ha[i], &hb[i], 4) != 0;
  printf("  %-52s %zu of %zu differ\n", name, differ, n);
  if (differ) FB_FAIL_("%s: %zu of %zu results differ", name, differ, n);
  free(ha);
  free(hb);
}

/* src[N,C] through a base-weight product forward (src @ W^T) and backward (src as dout, dinp =
 * src @ W2) as the ops left it (with its shadow, while that is valid) and as a fresh copy (which
 * has none: rounded anew): bit for bit the same, or a product read a stale or wrong bf16 copy. */
static void check_same_products(const char *what, const float *src, int N, int C) {
  const fb_backend *be = dev();
  int mark = n_held, OC = 24;
  size_t n = (size_t)N * C;
  float *w = host_rand((size_t)OC * C, 0.1f);
  as_weights(w, (size_t)OC * C);
  void *dw = weight_on_gpu(w, (size_t)OC * C); /* [OC, C], and as W2 [C, OC] */
  float *copy = on_gpu(NULL, n * 4), *y[2], *dinp[2];
  for (int i = 0; i < 2; i++) {
    y[i] = poisoned((size_t)N * OC);
    dinp[i] = on_gpu(NULL, (size_t)N * OC * 4);
    be->zero(dinp[i], (size_t)N * OC * 4);
  }
  be->matmul_forward(y[0], src, dw, be->weight_dtype, NULL, N, C, OC, 1.0f, 0.0f);
  be->matmul_backward(dinp[0], NULL, NULL, src, NULL, dw, be->weight_dtype, N, OC, C, 1.0f);
  be->copy(copy, src, n * 4);
  be->matmul_forward(y[1], copy, dw, be->weight_dtype, NULL, N, C, OC, 1.0f, 0.0f);
  be->matmul_backward(dinp[1], NULL, NULL, copy, NULL, dw, be->weight_dtype, N, OC, C, 1.0f);
  char name[96];
  snprintf(name, sizeof name, "%s: forward product", what);
  same_bits(name, y[0], y[1], (size_t)N * OC);
  snprintf(name, sizeof name, "%s: input-gradient product", what);
  same_bits(name, dinp[0], dinp[1], (size_t)N * OC);
  release_to(mark);
  free(w);
}

/* Memory the ops of a shadow check work on: y[N, NH*HD] (the buffer under test), y2 beside it,
 * inputs a, b, g of the same size, norm weights, rotary tables. */
typedef struct {
  int N, NH, HD, C;
  float *y, *y2, *a, *b, *g, *nw, *rstd, *cs, *sn, *m, *v, *lse, *scratch, *wf;
  int32_t *pos;
  uint64_t *seed;    /* dropout's, in the backend's memory */
  const float *host; /* host memory to upload */
} shadow_rig;

/* Write rig->y with op `which` (y's shadow, if any, is stale after it unless the op writes a
 * new one); its name, or NULL past the last. */
static const char *overwrite(const shadow_rig *r, int which) {
  const fb_backend *be = dev();
  size_t n = (size_t)r->N * r->C;
  switch (which) {
    case 0: be->add(r->y, r->y, r->a, n); return "add into it";
    case 1: be->zero(r->y, n * 4); return "zero";
    case 2: be->zero(r->y + n - r->C, r->C * 4); return "zero of its last row only";
    case 3: be->copy(r->y, r->a, n * 4); return "copy into it";
    case 4: be->upload(r->y + 1, r->host, 8); return "upload of two elements";
    case 5: be->dropout(r->y, r->y, n, 0.5f, r->seed); return "dropout in place";
    case 6:
      be->rmsnorm_forward(r->y, r->rstd, r->b, r->nw, r->N, r->C, 1e-6f);
      return "a second rmsnorm into it";
    case 7:
      be->matmul_forward(r->y, r->a, r->wf, FB_DT_F32, NULL, r->N, r->C, r->C, 1.0f, 0.0f);
      return "an fp32 product's output";
    case 8: be->scale(r->y, n, 0.5f); return "scale";
    case 9:
      be->adamw(r->y, r->g, r->m, r->v, n, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1);
      return "AdamW (work that names no range)";
    case 10:
      be->rope_forward(r->y, r->cs, r->sn, r->pos, r->N, r->NH, r->HD);
      return "rope in place";
    case 11: be->swiglu_backward(r->y2, r->y, r->g, r->a, r->b, n); return "swiglu's dup into it";
    default: return NULL;
  }
}

TEST(shadows_feed_products_bit_for_bit_and_never_stale) {
  const fb_backend *be = dev();
  shadow_rig r = {.N = 37, .NH = 4, .HD = 64};
  r.C = r.NH * r.HD;
  size_t n = (size_t)r.N * r.C, P = 64;
  float *hx = host_rand(n, 2), *ha = host_rand(n, 1), *hb = host_rand(n, 1), *hg = host_rand(n, 1),
        *hw = host_rand(r.C, 1), *hcs = host_rand(P * r.HD / 2, 1),
        *hsn = host_rand(P * r.HD / 2, 1), *hwf = host_rand((size_t)r.C * r.C, 0.1f);
  int32_t *hpos = host_ints(r.N, 0, (int)P);
  float *x = on_gpu(hx, n * 4);
  r.y = poisoned(n), r.y2 = poisoned(n);
  r.a = on_gpu(ha, n * 4), r.b = on_gpu(hb, n * 4), r.g = on_gpu(hg, n * 4);
  r.nw = on_gpu(hw, r.C * 4), r.rstd = poisoned(r.N), r.wf = on_gpu(hwf, (size_t)r.C * r.C * 4);
  r.cs = on_gpu(hcs, P * r.HD / 2 * 4), r.sn = on_gpu(hsn, P * r.HD / 2 * 4);
  r.pos = on_gpu(hpos, r.N * 4);
  uint64_t seed = 7;
  r.seed = on_gpu(&seed, sizeof seed);
  r.host = hb;
  r.m = on_gpu(NULL, n * 4), r.v = on_gpu(NULL, n * 4), r.lse = poisoned((size_t)r.N * r.NH);
  r.scratch = poisoned(be->attention_scratch(r.N, r.N, r.NH) + 1);
  be->zero(r.m, n * 4);
  be->zero(r.v, n * 4);
  /* every op that leaves a shadow: the products read it as they read a fresh rounding */
  be->rmsnorm_forward(r.y, r.rstd, x, r.nw, r.N, r.C, 1e-6f);
  check_same_products("rmsnorm_forward", r.y, r.N, r.C);
  be->rope_forward(r.y, r.cs, r.sn, r.pos, r.N, r.NH, r.HD);
  check_same_products("rope_forward", r.y, r.N, r.C);
  be->rope_backward(r.y, r.cs, r.sn, r.pos, r.N, r.NH, r.HD);
  check_same_products("rope_backward", r.y, r.N, r.C);
  be->upload(r.y, hg, n * 4);
  be->rmsnorm_backward(r.y, NULL, r.g, x, r.nw, r.rstd, r.N, r.C);
  check_same_products("rmsnorm_backward dinp", r.y, r.N, r.C);
  be->swiglu_forward(r.y, x, r.a, n);
  check_same_products("swiglu_forward", r.y, r.N, r.C);
  be->swiglu_backward(r.y, r.y2, r.g, x, r.a, n);
  check_same_products("swiglu_backward dgate", r.y, r.N, r.C);
  check_same_products("swiglu_backward dup", r.y2, r.N, r.C);
  be->attention_forward(r.y, r.lse, x, r.a, r.b, NULL, r.scratch, 1, r.N, r.NH, r.NH, r.HD, 0);
  check_same_products("attention_forward out", r.y, r.N, r.C);
  /* a shadow, then its fp32 memory written by another op: the products see the new values */
  const char *what;
  for (int op = 0; be->rmsnorm_forward(r.y, r.rstd, x, r.nw, r.N, r.C, 1e-6f),
           (what = overwrite(&r, op)) != NULL;
       op++) {
    char name[96];
    snprintf(name, sizeof name, "rmsnorm, then %s", what);
    check_same_products(name, r.y, r.N, r.C);
  }
  release();
  void *hosts[] = {hx, ha, hb, hg, hw, hcs, hsn, hwf, hpos};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* The bias as cuBLASLt's epilogue against the product without it plus the bias after (the old
 * pass): the same numbers (bit for bit on the emulator; a GPU may pick other kernels). */
TEST(bias_epilogue_equals_a_bias_pass) {
  const fb_backend *be = dev();
  int N = 45, C = 128, OC = 72;
  float *x = host_rand((size_t)N * C, 1), *w = host_rand((size_t)OC * C, 0.1f),
        *b = host_rand(OC, 1), *init = host_rand((size_t)N * OC, 1);
  as_weights(w, (size_t)OC * C);
  float *dx = on_gpu(x, (size_t)N * C * 4), *db = on_gpu(b, OC * 4);
  float *fused = on_gpu(init, (size_t)N * OC * 4), *plain = on_gpu(init, (size_t)N * OC * 4);
  void *dw = weight_on_gpu(w, (size_t)OC * C);
  be->matmul_forward(fused, dx, dw, be->weight_dtype, db, N, C, OC, 0.75f, 0.5f);
  be->matmul_forward(plain, dx, dw, be->weight_dtype, NULL, N, C, OC, 0.75f, 0.5f);
  float *got = malloc((size_t)N * OC * 4), *ref = malloc((size_t)N * OC * 4);
  be->download(got, fused, (size_t)N * OC * 4);
  be->download(ref, plain, (size_t)N * OC * 4);
  for (int i = 0; i < N * OC; i++) ref[i] += b[i % OC];
  compare_host("matmul_forward: bias epilogue vs bias pass", got, ref, (size_t)N * OC, 1e-6);
  release();
  void *hosts[] = {x, w, b, init, got, ref};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* Causal GQA attention with packed sequences and padding, T not a multiple of any tile. */
static void check_attention(int HD, int window) {
  const fb_backend *be = dev(), *cpu = fb_backend_cpu();
  int B = 2, T = 203, NH = 6, NKV = 2, N = B * T;
  size_t nq = (size_t)N * NH * HD, nk = (size_t)N * NKV * HD;
  float *q = host_rand(nq, 1), *k = host_rand(nk, 1), *v = host_rand(nk, 1), *g = host_rand(nq, 1);
  int32_t *seg = malloc(N * 4);
  for (int n = 0; n < N; n++) { /* row 0: sequences of 90 and 100, then 13 pads; row 1: one */
    int t = n % T;
    seg[n] = n / T ? 7 : t < 90 ? 0 : t < 190 ? 1 : -1;
  }
  float *ref = malloc(nq * 4), *lse = malloc((size_t)N * NH * 4);
  float *rdq = malloc(nq * 4), *rdk = malloc(nk * 4), *rdv = malloc(nk * 4);
  float *scratch = malloc(cpu->attention_scratch(N, T, NH) * 4);
  fb_op_attention_forward(ref, lse, q, k, v, seg, scratch, B, T, NH, NKV, HD, window);
  fb_op_attention_backward(rdq, rdk, rdv, g, q, k, v, seg, scratch, B, T, NH, NKV, HD, window);
  float *dq = on_gpu(q, nq * 4), *dk = on_gpu(k, nk * 4), *dv = on_gpu(v, nk * 4),
        *dg = on_gpu(g, nq * 4);
  int32_t *dseg = on_gpu(seg, N * 4);
  float *out = poisoned(nq), *dlse = poisoned((size_t)N * NH),
        *dscratch = poisoned(be->attention_scratch(N, T, NH) + 1);
  float *gq = poisoned(nq), *gk = poisoned(nk), *gv = poisoned(nk);
  char name[64], tag[32];
  snprintf(tag, sizeof tag, "HD=%d window=%d", HD, window);
  be->attention_forward(out, dlse, dq, dk, dv, dseg, dscratch, B, T, NH, NKV, HD, window);
  snprintf(name, sizeof name, "attention_forward %s", tag);
  compare(name, out, ref, nq, BF16_BOUND);
  snprintf(name, sizeof name, "attention_forward lse %s", tag);
  compare(name, dlse, lse, (size_t)N * NH, 1e-3); /* a log of sums: bf16 moves it far less */
  be->attention_backward(gq, gk, gv, dg, out, dlse, dq, dk, dv, dseg, dscratch, B, T, NH, NKV, HD,
                         window);
  snprintf(name, sizeof name, "attention_backward dq %s", tag);
  compare(name, gq, rdq, nq, BF16_BOUND);
  snprintf(name, sizeof name, "attention_backward dk %s", tag);
  compare(name, gk, rdk, nk, BF16_BOUND);
  snprintf(name, sizeof name, "attention_backward dv %s", tag);
  compare(name, gv, rdv, nk, BF16_BOUND);
  /* the KV-cache form: n new queries after p0 cached positions (row 0 of k/v as the cache) */
  int p0s[2] = {37, 100}, ns[2] = {1, 70};
  for (int c = 0; c < 2; c++) {
    int p0 = p0s[c], n = ns[c];
    float *cs = malloc(cpu->attention_cached_scratch(p0 + n) * 4);
    fb_op_attention_cached(ref, q, k, v, cs, n, p0, NH, NKV, HD, window);
    float *dcs = poisoned(be->attention_cached_scratch(p0 + n) + 1);
    poison(out, nq);
    be->attention_cached(out, dq, dk, dv, dcs, n, p0, NH, NKV, HD, window);
    snprintf(name, sizeof name, "attention_cached %s p0=%d n=%d", tag, p0, n);
    compare(name, out, ref, (size_t)n * NH * HD, BF16_BOUND);
    free(cs);
  }
  release();
  void *hosts[] = {q, k, v, g, seg, ref, lse, rdq, rdk, rdv, scratch};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

TEST(attention_head_dim_64) { check_attention(64, 0); }
TEST(attention_head_dim_128) { check_attention(128, 0); }
TEST(attention_sliding_window) { check_attention(64, 50); }

/* lm_head fused with the loss: ignored rows, several vocabulary chunks (FB_CUDA_LOSS_CHUNK) */
TEST(loss) {
  const fb_backend *be = dev(), *cpu = fb_backend_cpu();
  int N = 67, C = 128, V = 1000;
  float *lnf = host_rand((size_t)N * C, 1), *W = host_rand((size_t)V * C, 0.3f);
  as_weights(W, (size_t)V * C);
  int32_t *tg = host_ints(N, 0, V);
  for (int n = 0; n < N; n += 5) tg[n] = -1; /* ignored rows */
  float *losses = malloc(N * 4), *dn0 = host_rand((size_t)N * C, 1),
        *rdn = host_copy(dn0, (size_t)N * C);
  void *cw, *gw;
  fb_err err = {0};
  REQUIRE(cpu->ce_create(&cw, N, C, V, &err) == 0);
  REQUIRE(be->ce_create(&gw, N, C, V, &err) == 0);
  cpu->lmhead_ce_forward(losses, lnf, W, tg, N, cw);
  const float half = 0.5f; /* dloss, in each backend's memory */
  cpu->lmhead_ce_backward(rdn, NULL, lnf, W, tg, N, &half, cw);
  float *dlnf = on_gpu(lnf, (size_t)N * C * 4), *ddn = on_gpu(dn0, (size_t)N * C * 4),
        *dl = poisoned(N), *dhalf = on_gpu(&half, sizeof half);
  void *dW = weight_on_gpu(W, (size_t)V * C);
  int32_t *dtg = on_gpu(tg, N * 4);
  be->lmhead_ce_forward(dl, dlnf, dW, dtg, N, gw);
  be->lmhead_ce_backward(ddn, NULL, dlnf, dW, dtg, N, dhalf, gw);
  compare("lmhead_ce_forward", dl, losses, N, BF16_BOUND);
  compare("lmhead_ce_backward", ddn, rdn, (size_t)N * C, BF16_BOUND);
  cpu->ce_free(cw);
  be->ce_free(gw);
  release();
  void *hosts[] = {lnf, W, tg, losses, dn0, rdn};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* ---- the model: two copies of one set of weights, one on each backend ---- */

static const char *const configs[] = {
    /* Llama, GQA, untied */
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":300,"
    "\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-5,"
    "\"rope_theta\":10000,\"max_position_embeddings\":1024,\"tie_word_embeddings\":false}",
    /* Qwen2: q/k/v biases, tied embeddings, head_dim 128 */
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":520,"
    "\"hidden_size\":256,\"intermediate_size\":384,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"rms_norm_eps\":1e-6,"
    "\"rope_theta\":1000000,\"max_position_embeddings\":2048,\"tie_word_embeddings\":true}",
    /* Qwen3: q_norm/k_norm on each head before rope, head_dim 128 where hidden / heads is 64
     * (q is 512 wide, hidden 256), GQA 4/2, tied, no biases */
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\",\"vocab_size\":300,"
    "\"hidden_size\":256,\"intermediate_size\":384,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":128,"
    "\"rms_norm_eps\":1e-6,\"rope_theta\":1000000,\"max_position_embeddings\":2048,"
    "\"attention_bias\":false,\"tie_word_embeddings\":true}"};
static const char *const tags[] = {"llama", "qwen2", "qwen3"};

typedef struct pair {
  fb_model *m[2]; /* [0] on the CPU, [1] on the GPU */
  fb_lora *l[2];
  fb_optim *o[2];
  const char *tag;
} pair;

static int failed(const fb_err *err) {
  FB_FAIL_("%s", err->msg);
  return -1;
}

/* Config `which` twice with the same weights (rounded to the GPU's weight dtype, so both sides
 * multiply by the same numbers), and the same adapter with B non-zero (else half the gradients
 * are zero). */
static int make_pair(pair *p, int which, float std) {
  fb_model_config cfg;
  fb_err err = {0};
  const char *j = configs[which];
  memset(p, 0, sizeof *p);
  p->tag = tags[which];
  for (int s = 0; s < 2; s++)
    if (fb_model_config_parse(&cfg, j, strlen(j), "config", &err) ||
        fb_model_create(&p->m[s], &cfg, &err))
      return failed(&err);
  fb_model_init_random(p->m[0], 11 + which, std);
  fb_model *m = p->m[0];
  for (int i = 0; i < m->n_table; i++) { /* norms away from 1, so their weights matter */
    float *w = m->params + m->table[i].offset;
    if (strstr(m->table[i].name, "norm"))
      for (size_t k = 0; k < m->table[i].numel; k++) w[k] = (float)(1.0 + 0.2 * uniform());
    else
      as_weights(w, m->table[i].numel);
  }
  memcpy(p->m[1]->params, m->params, m->n_floats * sizeof(float));
  if (fb_model_place(p->m[1], dev(), &err)) return failed(&err);
  fb_adapter_config ac = {.r = 8, .lora_alpha = 16, .lora_dropout = 0.1, .targets = FB_TARGET_ALL};
  fb_optim_config oc = fb_optim_defaults();
  float *a = NULL;
  for (int s = 0; s < 2; s++) {
    if (fb_lora_create(&p->l[s], p->m[s], &ac, &err) || fb_lora_init(p->l[s], 5, &err) ||
        fb_optim_create(&p->o[s], p->m[s]->be, p->l[s]->n_floats, &oc, &err))
      return failed(&err);
    if (!a) {
      a = malloc(p->l[0]->n_floats * sizeof(float));
      p->l[0]->be->download(a, p->l[0]->params, p->l[0]->n_floats * sizeof(float));
      for (size_t i = 0; i < p->l[0]->n_floats; i++)
        if (a[i] == 0.0f) a[i] = (float)(0.05 * uniform());
    }
    p->l[s]->be->upload(p->l[s]->params, a, p->l[s]->n_floats * sizeof(float));
  }
  free(a);
  return 0;
}

static void free_pair(pair *p) {
  for (int s = 0; s < 2; s++) {
    fb_optim_free(p->o[s]);
    fb_lora_free(p->l[s]);
    fb_model_free(p->m[s]);
  }
}

/* An adapter array (params, grads, or a moment) of side s on the host. */
static float *adapter_array(const pair *p, int s, const float *arr) {
  size_t n = p->l[s]->n_floats;
  float *h = malloc(n * sizeof(float));
  p->l[s]->be->download(h, arr, n * sizeof(float));
  return h;
}

/* The forward and backward of a LoRA training step of side s on b: its gradients. */
static void forward_backward(pair *p, int s, const fb_batch *b, int step) {
  fb_err err = {0};
  fb_lora *l = p->l[s];
  fb_lora_zero_grad(l);
  l->step = (uint64_t)step;
  if (fb_model_forward(p->m[s], l, b, 1, &err) || fb_model_backward(p->m[s], l, b, &err))
    FB_FAIL_("%s", err.msg);
}

/* One LoRA training step of side s on b (clipped to 0.5); its loss. */
static float train_step(pair *p, int s, const fb_batch *b, int step) {
  fb_err err = {0};
  fb_lora *l = p->l[s];
  forward_backward(p, s, b, step);
  fb_optim_clip(p->o[s], l->grads, 0.5);
  if (fb_optim_step(p->o[s], l->params, l->grads, 1e-3, &err)) FB_FAIL_("%s", err.msg);
  return p->m[s]->loss;
}

static void check_training(int which) {
  pair p;
  if (make_pair(&p, which, 0.05f)) return;
  int B = 2, T = 150, N = B * T;
  int32_t *ids = host_ints(N, 0, p.m[0]->V), *labels = malloc(N * 4), *seg = malloc(N * 4);
  for (int n = 0; n < N; n++) {
    int t = n % T;
    labels[n] = t % 11 == 3 ? -100 : ids[n];
    seg[n] = n / T ? 0 : t < 70 ? 0 : t < 140 ? 1 : -1; /* row 0: packed, then padding */
  }
  fb_batch b = {B, T, ids, labels, NULL, seg};
  char name[80];
  float loss[2];
  float *grads[2], *params[2], *mom[2];
  for (int step = 1; step <= 3; step++) {
    for (int s = 0; s < 2; s++) {
      loss[s] = train_step(&p, s, &b, step);
      grads[s] = adapter_array(&p, s, p.l[s]->grads); /* clipped */
      params[s] = adapter_array(&p, s, p.l[s]->params);
      mom[s] = adapter_array(&p, s, p.o[s]->m);
    }
    snprintf(name, sizeof name, "%s step %d: loss", p.tag, step);
    compare_host(name, &loss[1], &loss[0], 1, BF16_BOUND);
    size_t n = p.l[0]->n_floats;
    if (step == 1 || step == 3) {
      snprintf(name, sizeof name, "%s step %d: LoRA gradients", p.tag, step);
      compare_host(name, grads[1], grads[0], n, MODEL_BOUND);
      snprintf(name, sizeof name, "%s step %d: weights after AdamW", p.tag, step);
      compare_host(name, params[1], params[0], n, MODEL_BOUND);
      snprintf(name, sizeof name, "%s step %d: AdamW's first moment", p.tag, step);
      compare_host(name, mom[1], mom[0], n, MODEL_BOUND);
    }
    CHECK_INT(p.o[1]->t, step);
    for (int s = 0; s < 2; s++) {
      free(grads[s]);
      free(params[s]);
      free(mom[s]);
    }
  }
  CHECK(p.m[1]->be->peak_bytes() > 0);
  free_pair(&p);
  free(ids);
  free(labels);
  free(seg);
}

TEST(lora_steps_llama) { check_training(0); }
TEST(lora_steps_qwen2) { check_training(1); }
TEST(lora_steps_qwen3) { check_training(2); }

/* KV-cache decoding: the logits after a prompt and after three tokens one at a time; then the
 * CPU's greedy continuation fed to both (teacher forcing), the GPU's choice the CPU's at every
 * position where the CPU's best logit leads its second by more than bf16's error can move
 * (over 0.05; a random model has near ties a rounding flips, a trained one few). */
static void check_decoding(int which) {
  pair p;
  if (make_pair(&p, which, 0.05f)) return;
  int32_t *ids = host_ints(43, 0, p.m[0]->V);
  fb_err err = {0};
  fb_kv_cache *kc[2];
  float *logits[2];
  for (int s = 0; s < 2; s++) {
    REQUIRE(fb_kv_cache_create(&kc[s], p.m[s], 128, &err) == 0);
    logits[s] = malloc(p.m[s]->V * 4);
  }
  int at = 0, lens[4] = {40, 1, 1, 1};
  char name[64];
  for (int c = 0; c < 4; c++) {
    for (int s = 0; s < 2; s++)
      CHECK_INT(fb_model_decode(p.m[s], p.l[s], kc[s], ids + at, lens[c], logits[s], &err), 0);
    at += lens[c];
    snprintf(name, sizeof name, "%s decode: logits after %d", p.tag, at);
    compare_host(name, logits[1], logits[0], p.m[0]->V, MODEL_BOUND);
  }
  int same = 0, decided = 0;
  for (int t = 0; t < 64; t++) {
    int best = 0, second = -1, pick = 0, V = p.m[0]->V;
    for (int i = 1; i < V; i++) {
      if (logits[0][i] > logits[0][best])
        second = best, best = i;
      else if (second < 0 || logits[0][i] > logits[0][second])
        second = i;
      if (logits[1][i] > logits[1][pick]) pick = i;
    }
    if (logits[0][best] - logits[0][second] > 0.05f) {
      decided++;
      same += pick == best;
      if (pick != best)
        FB_FAIL_("token %d: the GPU picks %d (%.4f), the CPU %d (%.4f, second %.4f)", t, pick,
                 logits[1][pick], best, logits[0][best], logits[0][second]);
    }
    int32_t next = best;
    for (int s = 0; s < 2; s++)
      CHECK_INT(fb_model_decode(p.m[s], p.l[s], kc[s], &next, 1, logits[s], &err), 0);
  }
  printf("  %s greedy: the GPU picks the CPU's token at %d of the %d clear positions of 64\n",
         p.tag, same, decided);
  CHECK(decided >= 32);
  for (int s = 0; s < 2; s++) {
    fb_kv_cache_free(kc[s]);
    free(logits[s]);
  }
  free(ids);
  free_pair(&p);
}

TEST(decoding) { check_decoding(0); }
TEST(decoding_qwen3) { check_decoding(2); }

/* Greedy decoding of the bundled model (trained weights, not random ones) on questions its
 * skills answer: the CPU's continuation fed to both sides, 48 tokens each, and the GPU's choice
 * must be the CPU's wherever the CPU's best logit leads its second by more than the bf16
 * weights and activations can move it (1% of the logits' range); the exact agreement over all
 * positions, near ties included, is reported. */
TEST(greedy_tokens_of_the_bundled_model) {
  static const char *const questions[] = {
      "My kitchen sink is leaking under the cabinet. Can someone come today?",
      "How much does it cost to replace a water heater?",
      "The breaker for my bathroom keeps tripping, is that dangerous?",
      "How do I set up an automation that notifies me when a status changes?"};
  fb_err err = {0};
  fb_model *m[2];
  fb_tokenizer *tok;
  for (int s = 0; s < 2; s++) REQUIRE(fb_model_load(&m[s], "share/models/tiny", &err) == 0);
  REQUIRE(fb_model_place(m[1], dev(), &err) == 0);
  REQUIRE(fb_tokenizer_load(&tok, "share/models/tiny/tokenizer.json", &err) == 0);
  int clear = 0, same_clear = 0, same = 0, total = 0;
  for (size_t k = 0; k < sizeof questions / sizeof questions[0]; k++) {
    char text[512];
    snprintf(text, sizeof text, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
             questions[k]);
    fb_tok_ids ids = {0};
    REQUIRE(fb_tokenizer_encode(tok, text, strlen(text), FB_TOK_SPECIAL, &ids, NULL, &err) == 0);
    fb_kv_cache *kc[2];
    float *logits[2];
    for (int s = 0; s < 2; s++) {
      REQUIRE(fb_kv_cache_create(&kc[s], m[s], (int)ids.n + 48, &err) == 0);
      logits[s] = malloc(m[s]->V * 4);
      CHECK_INT(fb_model_decode(m[s], NULL, kc[s], ids.v, (int)ids.n, logits[s], &err), 0);
    }
    for (int t = 0; t < 48; t++) {
      int best = 0, second = -1, pick = 0, V = m[0]->V;
      float lo = logits[0][0], hi = logits[0][0];
      for (int i = 1; i < V; i++) {
        if (logits[0][i] > logits[0][best])
          second = best, best = i;
        else if (second < 0 || logits[0][i] > logits[0][second])
          second = i;
        if (logits[1][i] > logits[1][pick]) pick = i;
        lo = fminf(lo, logits[0][i]);
        hi = fmaxf(hi, logits[0][i]);
      }
      total++;
      same += pick == best;
      if (logits[0][best] - logits[0][second] > 0.01f * (hi - lo)) {
        clear++;
        same_clear += pick == best;
        if (pick != best)
          FB_FAIL_(
              "question %zu, token %d: the GPU picks %d, the CPU %d (lead %.4f of a range %.2f)", k,
              t, pick, best, logits[0][best] - logits[0][second], hi - lo);
      }
      int32_t next = best;
      for (int s = 0; s < 2; s++)
        CHECK_INT(fb_model_decode(m[s], NULL, kc[s], &next, 1, logits[s], &err), 0);
    }
    for (int s = 0; s < 2; s++) {
      fb_kv_cache_free(kc[s]);
      free(logits[s]);
    }
    free(ids.v);
  }
  printf("  the CPU's greedy token at %d of %d clear positions, %d of all %d\n", same_clear, clear,
         same, total);
  CHECK(clear >= total * 3 / 4);
  fb_tokenizer_free(tok);
  for (int s = 0; s < 2; s++) fb_model_free(m[s]);
}

/* ---- replay (CUDA graphs) ---- */

/* Graphs unless FB_CUDA_GRAPHS=0 turns them off. */
static int graphs_on(void) {
  const char *v = getenv("FB_CUDA_GRAPHS");
  return !(v && strcmp(v, "0") == 0);
}

typedef struct counted_work {
  const fb_backend *be;
  float *x, *one;
  size_t n;
  int calls;
} counted_work;

static void add_one(void *ctx) { /* x += 1 */
  counted_work *w = ctx;
  w->calls++;
  w->be->add(w->x, w->x, w->one, w->n);
}

/* A key's first call runs the work, its second captures and launches it, later ones launch
 * it without calling the work; another key (another shape) never gets the first's graph. */
TEST(replay) {
  const fb_backend *be = dev();
  size_t n = 300;
  float *ones = malloc(n * sizeof(float)), *zeros = calloc(n, sizeof(float)), got[300];
  for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
  counted_work w = {be, on_gpu(zeros, n * 4), on_gpu(ones, n * 4), n, 0};
  counted_work other = {be, on_gpu(zeros, n * 4), w.one, n / 2, 0};
  int replayed = 0, g = graphs_on();
  for (int i = 1; i <= 4; i++) replayed += be->replay(7, add_one, &w);
  replayed += be->replay(8, add_one, &other);
  be->download(got, w.x, sizeof got);
  CHECK(got[0] == 4.0f && got[n - 1] == 4.0f);
  be->download(got, other.x, sizeof got);
  CHECK(got[0] == 1.0f && got[n / 2 - 1] == 1.0f && got[n / 2] == 0.0f);
  CHECK_INT(w.calls, g ? 2 : 4); /* the warm-up and the capture */
  CHECK_INT(other.calls, 1);
  CHECK_INT(replayed, g ? 3 : 0);
  CHECK_INT(
      fb_backend_cpu()->replay(7, add_one, &(counted_work){fb_backend_cpu(), ones, ones, 1, 0}), 0);
  release();
  free(ones);
  free(zeros);
}

typedef struct download_work {
  const fb_backend *be;
  float *x;
} download_work;

static void download_one(void *ctx) { /* a host read: what a graph cannot hold */
  download_work *w = ctx;
  float v;
  w->be->download(&v, w->x, sizeof v);
}

/* Work that reads the host in a capture is a CUDA fault (exit 70) naming the refused call, never
 * a graph that silently lacks it; in a child, as a fault ends the process. */
TEST(a_host_read_in_replayed_work_faults) {
  if (!graphs_on()) return;
  int fd[2];
  REQUIRE(pipe(fd) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 2);
    float zero = 0;
    download_work w = {dev(), on_gpu(&zero, sizeof zero)};
    dev()->replay(9, download_one, &w); /* the warm-up runs it */
    dev()->replay(9, download_one, &w); /* the capture refuses it */
    _exit(0);
  }
  close(fd[1]);
  char err[4096] = "";
  size_t got = 0;
  ssize_t n;
  while (got + 1 < sizeof err && (n = read(fd[0], err + got, sizeof err - 1 - got)) > 0) got += n;
  err[got] = 0;
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), 70); /* FB_CUDA_FAULT_EXIT */
  CHECK_CONTAINS(err, "cudaErrorStreamCaptureUnsupported");
}

/* The GPU's table with its replays counted. */
static fb_backend counted;
static int n_replayed;

static int count_replay(uint64_t key, void (*work)(void *), void *ctx) {
  int r = dev()->replay(key, work, ctx);
  n_replayed += r;
  return r;
}

/* LoRA forward and backward passes (dropout 0.1: each step's masks differ) whose batches keep a
 * shape but not the labels counted (the loss's gradient changes per step; the gradients are
 * compared unclipped, which would hide its scale), then a shorter batch, then the first shape
 * again: the GPU's losses and gradients the CPU's at each step, and every repeated shape's
 * forward and backward replayed. */
TEST(replayed_lora_steps) {
  pair p;
  if (make_pair(&p, 0, 0.05f)) return;
  counted = *dev();
  counted.replay = count_replay;
  p.m[1]->be = p.l[1]->be = &counted;
  n_replayed = 0;
  int B = 2, T = 40, N = B * T;
  int32_t *ids = host_ints(N, 0, p.m[0]->V), *labels = malloc(N * 4);
  char name[80];
  static const int shapes[] = {40, 40, 40, 40, 23, 40};
  for (int step = 1; step <= 6; step++) {
    int t = shapes[step - 1];
    for (int i = 0; i < B * t; i++) labels[i] = i % (step + 2) == 0 ? -100 : ids[i];
    fb_batch b = {B, t, ids, labels, NULL, NULL};
    float loss[2], *grads[2];
    for (int s = 0; s < 2; s++) {
      forward_backward(&p, s, &b, step);
      loss[s] = p.m[s]->loss;
      grads[s] = adapter_array(&p, s, p.l[s]->grads);
    }
    snprintf(name, sizeof name, "replayed step %d (T %d): loss", step, t);
    compare_host(name, &loss[1], &loss[0], 1, BF16_BOUND);
    snprintf(name, sizeof name, "replayed step %d (T %d): LoRA gradients", step, t);
    compare_host(name, grads[1], grads[0], p.l[0]->n_floats, MODEL_BOUND);
    free(grads[0]);
    free(grads[1]);
  }
  /* steps 2-4 and 6 replay their forward and backward; 1 and 5 are the warm-ups */
  CHECK_INT(n_replayed, graphs_on() ? 8 : 0);
  p.m[1]->be = p.l[1]->be = dev();
  free_pair(&p);
  free(ids);
  free(labels);
}

/* A training step after sampling: sampling's KV cache and the training batch each have their
 * own staging for ids (the old GPU model shared one and a cache shorter than 2 x 4 x B x T made
 * the next forward overflow it: ASan shows a regression). */
TEST(a_training_step_after_sampling) {
  pair p;
  if (make_pair(&p, 0, 0.05f)) return;
  int B = 4, T = 40, N = B * T;
  int32_t *ids = host_ints(N, 0, p.m[0]->V), out[8];
  fb_batch b = {B, T, ids, ids, NULL, NULL};
  fb_gen_config g = fb_gen_defaults();
  g.max_new_tokens = 8;
  float loss[2];
  fb_err err = {0};
  int n;
  for (int s = 0; s < 2; s++) {
    train_step(&p, s, &b, 1);
    CHECK_INT(fb_generate(p.m[s], p.l[s], ids, 3, &g, out, &n, NULL, &err), 0);
    loss[s] = train_step(&p, s, &b, 2);
  }
  compare_host("a step after sampling: loss", &loss[1], &loss[0], 1, BF16_BOUND);
  free(ids);
  free_pair(&p);
}
