/* gpu_check.c: the GPU backend against the CPU backend, and its LoRA training speed.
 *
 *   fb_gpu_check check        every op, then whole LoRA training steps and decoding, on fresh
 *                             random inputs (never zeros); GPU outputs are poisoned with NaN
 *                             before each run, so an unwritten element fails; prints one line
 *                             per check with ||gpu - cpu|| / ||cpu|| and its bound
 *   fb_gpu_check --cpu-only [CONFIG.json...]
 *                             the CPU half of every check alone (no GPU needed): references
 *                             must be finite and not zero; each config (the bench's shapes) is
 *                             loaded and its parameter count printed
 *   fb_gpu_check bench CONFIG.json B T STEPS
 *                             LoRA training (rank 16, alpha 32, all seven targets, random
 *                             weights) on the GPU; prints one JSON line: tokens/s, peak bytes
 *
 * Bounds: fp32 ops 1e-4 (far under 1e-3); ops with bf16 operands 1e-2 (expected 1e-3..1e-2).
 * Exit 0 when every check passes, 1 when one fails, 77 when no GPU is usable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "fb_cuda.h"
#include "gpu_model.h"
#include "log.h"
#include "lora.h"
#include "model.h"
#include "optim.h"

#define FP32_BOUND 1e-4
#define BF16_BOUND 1e-2

static int cpu_only, failures, checks;
static uint64_t rng = 0x243F6A8885A308D3ull;

static double uniform(void) { /* (-1, 1), never 0 */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((double)(rng >> 11) + 0.5) * 0x1.0p-52 - 1.0;
}

static float *host_rand(size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  if (!p) abort();
  for (size_t i = 0; i < n; i++) p[i] = (float)(uniform() * scale);
  return p;
}

static float *host_copy(const float *src, size_t n) {
  float *p = malloc(n * sizeof(float));
  if (!p) abort();
  memcpy(p, src, n * sizeof(float));
  return p;
}

static int32_t *host_ints(size_t n, int lo, int hi) {
  int32_t *p = malloc(n * sizeof(int32_t));
  if (!p) abort();
  for (size_t i = 0; i < n; i++)
    p[i] = lo + (int32_t)((uniform() + 1.0) * 0.5 * (hi - lo)) % (hi - lo);
  return p;
}

/* Round to bf16 in place (the values the GPU's bf16 weights hold), and a bf16 copy. */
static fb_bf16 *to_bf16(float *x, size_t n) {
  fb_bf16 *h = malloc(n * sizeof(fb_bf16));
  if (!h) abort();
  for (size_t i = 0; i < n; i++) {
    h[i] = fb_bf16_from_float(x[i]);
    x[i] = fb_bf16_to_float(h[i]);
  }
  return h;
}

/* A device copy of host (NULL: uninitialised); NULL in CPU-only runs, which touch no GPU. */
static void *dev(const void *host, size_t bytes) {
  void *d;
  fb_err err = {0};
  if (cpu_only) return NULL;
  if (fb_cuda_alloc(&d, bytes, "a check's buffer", &err)) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  if (host) fb_cuda_upload(d, host, bytes);
  return d;
}

static void up(void *d, const void *host, size_t bytes) {
  if (!cpu_only) fb_cuda_upload(d, host, bytes);
}

static float *dev_poisoned(size_t n) { /* every float NaN until the op writes it */
  float *d = dev(NULL, n * sizeof(float));
  if (!d) return NULL;
  float *nan = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) nan[i] = NAN;
  up(d, nan, n * sizeof(float));
  free(nan);
  return d;
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

/* Compare the device array d with the CPU reference ref (or, CPU-only, check the reference). */
static void compare(const char *name, const float *d, const float *ref, size_t n, double bound) {
  checks++;
  double norm = 0;
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    finite &= isfinite(ref[i]);
    norm += (double)ref[i] * ref[i];
  }
  if (!finite || norm == 0) {
    printf("%-34s reference is %s: FAIL\n", name, finite ? "all zero" : "not finite");
    failures++;
    return;
  }
  if (cpu_only) {
    printf("%-34s reference ok (norm %.4g)\n", name, sqrt(norm));
    return;
  }
  float *out = malloc(n * sizeof(float));
  fb_cuda_download(out, d, n * sizeof(float));
  double r = rel_err(out, ref, n);
  int ok = r <= bound;
  printf("%-34s rel %.3e  bound %.0e  %s\n", name, r, bound, ok ? "ok" : "FAIL");
  failures += !ok;
  free(out);
}

/* ---- op checks: each builds its inputs, runs the CPU op, then the GPU op on copies ---- */

static void check_matmul(void) {
  int N = 77, C = 96, OC = 130;
  float *x = host_rand((size_t)N * C, 1), *w = host_rand((size_t)OC * C, 0.1f),
        *b = host_rand(OC, 1), *init = host_rand((size_t)N * OC, 1);
  fb_bf16 *w16 = to_bf16(w, (size_t)OC * C);
  float *ref = host_copy(init, (size_t)N * OC);
  fb_op_matmul_forward(ref, x, w, b, N, C, OC, 0.75f, 0.5f); /* accumulating, with bias */
  float *dx = dev(x, (size_t)N * C * 4), *db = dev(b, OC * 4),
        *dout = dev(init, (size_t)N * OC * 4);
  fb_bf16 *dw = dev(w16, (size_t)OC * C * 2);
  if (!cpu_only) fb_cuda_matmul_forward(dout, dx, dw, db, N, C, OC, 0.75f, 0.5f, fb_cuda_stream());
  compare("matmul_forward (bf16 W, beta)", dout, ref, (size_t)N * OC, BF16_BOUND);
  fb_op_matmul_forward(ref, x, w, NULL, N, C, OC, 1.0f, 0.0f);
  float *dpo = dev_poisoned((size_t)N * OC);
  if (!cpu_only) fb_cuda_matmul_forward(dpo, dx, dw, NULL, N, C, OC, 1.0f, 0.0f, fb_cuda_stream());
  compare("matmul_forward (bf16 W, poisoned)", dpo, ref, (size_t)N * OC, BF16_BOUND);
  /* backward to the input: dinp += dout @ W */
  float *g = host_rand((size_t)N * OC, 1), *dinp0 = host_rand((size_t)N * C, 1);
  float *refd = host_copy(dinp0, (size_t)N * C);
  fb_op_matmul_backward(refd, NULL, NULL, g, x, w, N, C, OC, 1.0f);
  float *dg = dev(g, (size_t)N * OC * 4), *ddinp = dev(dinp0, (size_t)N * C * 4);
  if (!cpu_only) fb_cuda_matmul_backward(ddinp, dg, dw, N, C, OC, 1.0f, fb_cuda_stream());
  compare("matmul_backward (bf16 W)", ddinp, refd, (size_t)N * C, BF16_BOUND);
  /* fp32 (LoRA): forward, every backward output, addmm */
  float *wf = host_rand((size_t)OC * C, 0.1f), *dwf = dev(wf, (size_t)OC * C * 4);
  fb_op_matmul_forward(ref, x, wf, b, N, C, OC, 1.0f, 0.0f);
  fb_cuda_free(dpo);
  dpo = dev_poisoned((size_t)N * OC);
  if (!cpu_only)
    fb_cuda_matmul_forward_f32(dpo, dx, dwf, db, N, C, OC, 1.0f, 0.0f, fb_cuda_stream());
  compare("matmul_forward_f32", dpo, ref, (size_t)N * OC, FP32_BOUND);
  float *gw0 = host_rand((size_t)OC * C, 1), *gb0 = host_rand(OC, 1);
  float *refw = host_copy(gw0, (size_t)OC * C), *refb = host_copy(gb0, OC);
  memcpy(refd, dinp0, (size_t)N * C * 4);
  fb_op_matmul_backward(refd, refw, refb, g, x, wf, N, C, OC, 0.5f);
  up(ddinp, dinp0, (size_t)N * C * 4);
  float *dgw = dev(gw0, (size_t)OC * C * 4), *dgb = dev(gb0, OC * 4);
  if (!cpu_only)
    fb_cuda_matmul_backward_f32(ddinp, dgw, dgb, dg, dx, dwf, N, C, OC, 0.5f, fb_cuda_stream());
  compare("matmul_backward_f32 dinp", ddinp, refd, (size_t)N * C, FP32_BOUND);
  compare("matmul_backward_f32 dweight", dgw, refw, (size_t)OC * C, FP32_BOUND);
  compare("matmul_backward_f32 dbias", dgb, refb, OC, FP32_BOUND);
  /* addmm: out[N,OC] += 0.25 * g[N,C] @ wt[C,OC] (the merge's shape) */
  float *wt = host_rand((size_t)C * OC, 1), *dwt = dev(wt, (size_t)C * OC * 4);
  memcpy(ref, init, (size_t)N * OC * 4);
  fb_op_addmm(ref, x, wt, N, OC, C, 0.25f);
  up(dout, init, (size_t)N * OC * 4);
  if (!cpu_only) fb_cuda_addmm(dout, dx, dwt, N, OC, C, 0.25f, fb_cuda_stream());
  compare("addmm", dout, ref, (size_t)N * OC, FP32_BOUND);
  void *devs[] = {dx, db, dout, dw, dpo, dg, ddinp, dwf, dgw, dgb, dwt};
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) fb_cuda_free(devs[i]);
  void *hosts[] = {x, w, b, init, w16, ref, g, dinp0, refd, wf, gw0, gb0, refw, refb, wt};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

static void check_rows(void) {
  int N = 53, C = 896, V = 300;
  fb_stream s = fb_cuda_stream();
  /* embedding */
  float *table = host_rand((size_t)V * C, 1);
  fb_bf16 *t16 = to_bf16(table, (size_t)V * C);
  int32_t *ids = host_ints(N, 0, V);
  float *ref = malloc((size_t)N * C * 4);
  fb_op_embedding_forward(ref, ids, table, N, C);
  int32_t *dids = dev(ids, N * 4);
  fb_bf16 *dt16 = dev(t16, (size_t)V * C * 2);
  float *dout = dev_poisoned((size_t)N * C);
  if (!cpu_only) fb_cuda_embedding_forward(dout, dids, dt16, N, C, s);
  compare("embedding_forward", dout, ref, (size_t)N * C, FP32_BOUND);
  float *g = host_rand((size_t)N * C, 1), *dtab0 = host_rand((size_t)V * C, 1);
  float *refdt = host_copy(dtab0, (size_t)V * C);
  fb_op_embedding_backward(refdt, g, ids, N, C);
  float *dg = dev(g, (size_t)N * C * 4), *ddt = dev(dtab0, (size_t)V * C * 4);
  if (!cpu_only) fb_cuda_embedding_backward(ddt, dg, dids, N, C, s);
  compare("embedding_backward", ddt, refdt, (size_t)V * C, FP32_BOUND);
  /* rmsnorm */
  float *x = host_rand((size_t)N * C, 2), *w = host_rand(C, 1), *rstd = malloc(N * 4);
  fb_op_rmsnorm_forward(ref, rstd, x, w, N, C, 1e-6f);
  float *dx = dev(x, (size_t)N * C * 4), *dw = dev(w, C * 4), *drstd = dev_poisoned(N);
  fb_cuda_free(dout);
  dout = dev_poisoned((size_t)N * C);
  if (!cpu_only) fb_cuda_rmsnorm_forward(dout, drstd, dx, dw, N, C, 1e-6f, s);
  compare("rmsnorm_forward out", dout, ref, (size_t)N * C, FP32_BOUND);
  compare("rmsnorm_forward rstd", drstd, rstd, N, FP32_BOUND);
  float *din0 = host_rand((size_t)N * C, 1), *dw0 = host_rand(C, 1);
  float *refdi = host_copy(din0, (size_t)N * C), *refdw = host_copy(dw0, C);
  fb_op_rmsnorm_backward(refdi, refdw, g, x, w, rstd, N, C);
  float *ddi = dev(din0, (size_t)N * C * 4), *ddw = dev(dw0, C * 4);
  if (!cpu_only) fb_cuda_rmsnorm_backward(ddi, ddw, dg, dx, dw, drstd, N, C, s);
  compare("rmsnorm_backward dinp", ddi, refdi, (size_t)N * C, FP32_BOUND);
  compare("rmsnorm_backward dweight", ddw, refdw, C, FP32_BOUND);
  /* rope: x viewed as [N, 14, 64] */
  int NH = 14, HD = 64, P = 700;
  float *cs = host_rand((size_t)P * HD / 2, 1), *sn = host_rand((size_t)P * HD / 2, 1);
  int32_t *pos = host_ints(N, 0, P);
  float *dcs = dev(cs, (size_t)P * HD / 2 * 4), *dsn = dev(sn, (size_t)P * HD / 2 * 4);
  int32_t *dpos = dev(pos, N * 4);
  for (int back = 0; back < 2; back++) {
    memcpy(ref, x, (size_t)N * C * 4);
    (back ? fb_op_rope_backward : fb_op_rope_forward)(ref, cs, sn, pos, N, NH, HD);
    up(dout, x, (size_t)N * C * 4);
    if (!cpu_only)
      (back ? fb_cuda_rope_backward : fb_cuda_rope_forward)(dout, dcs, dsn, dpos, N, NH, HD, s);
    compare(back ? "rope_backward" : "rope_forward", dout, ref, (size_t)N * C, FP32_BOUND);
  }
  void *devs[] = {dids, dt16, dout, dg, ddt, dx, dw, drstd, ddi, ddw, dcs, dsn, dpos};
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) fb_cuda_free(devs[i]);
  void *hosts[] = {table, t16,  ids, ref,   g,     dtab0, refdt, x,  w,
                   rstd,  din0, dw0, refdi, refdw, cs,    sn,    pos};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

static void check_elementwise(void) {
  size_t n = 100003;
  fb_stream s = fb_cuda_stream();
  float *a = host_rand(n, 4), *b = host_rand(n, 2), *g = host_rand(n, 1);
  float *r1 = malloc(n * 4), *r2 = malloc(n * 4);
  float *da = dev(a, n * 4), *db = dev(b, n * 4), *dg = dev(g, n * 4);
  float *o1 = dev_poisoned(n), *o2 = dev_poisoned(n);
  fb_op_swiglu_forward(r1, a, b, n);
  if (!cpu_only) fb_cuda_swiglu_forward(o1, da, db, n, s);
  compare("swiglu_forward", o1, r1, n, FP32_BOUND);
  fb_op_swiglu_backward(r1, r2, g, a, b, n);
  if (!cpu_only) fb_cuda_swiglu_backward(o1, o2, dg, da, db, n, s);
  compare("swiglu_backward dgate", o1, r1, n, FP32_BOUND);
  compare("swiglu_backward dup", o2, r2, n, FP32_BOUND);
  fb_op_add(r1, a, b, n);
  if (!cpu_only) fb_cuda_add(o1, da, db, n, s);
  compare("add", o1, r1, n, FP32_BOUND);
  fb_op_dropout(r1, a, n, 0.3f, 0x1234567ull);
  if (!cpu_only) fb_cuda_dropout(o1, da, n, 0.3f, 0x1234567ull, s);
  compare("dropout (the CPU's mask)", o1, r1, n, FP32_BOUND);
  memcpy(r1, a, n * 4);
  fb_op_scale(r1, n, 0.37f);
  up(o1, a, n * 4);
  if (!cpu_only) fb_cuda_scale(o1, n, 0.37f, s);
  compare("scale", o1, r1, n, FP32_BOUND);
  float want = (float)fb_op_sumsq(a, n), got = cpu_only ? want : (float)fb_cuda_sumsq(da, n, s);
  compare("sumsq", dev(&got, 4), &want, 1, FP32_BOUND);
  /* AdamW, third step */
  float *p = host_rand(n, 1), *m = host_rand(n, 0.1f), *v = host_rand(n, 0.01f);
  for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
  float *dp = dev(p, n * 4), *dm = dev(m, n * 4), *dv = dev(v, n * 4);
  fb_op_adamw(p, g, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
  if (!cpu_only) fb_cuda_adamw(dp, dg, dm, dv, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3, s);
  compare("adamw param", dp, p, n, FP32_BOUND);
  compare("adamw m", dm, m, n, FP32_BOUND);
  compare("adamw v", dv, v, n, FP32_BOUND);
  /* bf16 round trip: exact against the host's rounding */
  fb_bf16 *d16 = dev(NULL, n * 2);
  memcpy(r1, a, n * 4);
  free(to_bf16(r1, n));
  if (!cpu_only) {
    fb_cuda_to_bf16(d16, da, n, s);
    fb_cuda_from_bf16(o1, d16, n, s);
  }
  compare("to_bf16 / from_bf16", o1, r1, n, 0.0);
  void *devs[] = {da, db, dg, o1, o2, dp, dm, dv, d16};
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) fb_cuda_free(devs[i]);
  void *hosts[] = {a, b, g, r1, r2, p, m, v};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* Attention in double precision, from the definition (backend.h's masking, window included):
 * queries [B,Tq,NH,HD] at absolute positions q0.., keys and values [B,Tk,NKV,HD], seg [B,Tq]
 * (Tq == Tk) or NULL. Without dout: out. With dout: dq, dk, dv (dk/dv summed over a group). */
static void ref_attention(float *out, float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v, const int32_t *seg, int B,
                          int Tq, int Tk, int q0, int NH, int NKV, int HD, int window) {
  double scale = 1.0 / sqrt((double)HD), *p = malloc(Tk * sizeof(double));
  double *dp = malloc(Tk * sizeof(double)), *acc = malloc(HD * sizeof(double));
  size_t nk = (size_t)B * Tk * NKV * HD;
  double *gk = calloc(nk, sizeof(double)), *gv = calloc(nk, sizeof(double));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < Tq; i++) {
        int ia = q0 + i, si = seg ? seg[(size_t)b * Tq + i] : 0;
        size_t qo = (((size_t)b * Tq + i) * NH + h) * HD;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < Tk; j++) {
          const float *kj = k + (((size_t)b * Tk + j) * NKV + h / (NH / NKV)) * HD;
          int ok = j <= ia && !(window > 0 && ia - j >= window) &&
                   (!seg || (si < 0 ? j == ia : seg[(size_t)b * Tk + j] == si));
          double s = 0;
          for (int d = 0; d < HD && ok; d++) s += (double)q[qo + d] * kj[d];
          p[j] = ok ? s * scale : -INFINITY;
          if (p[j] > mx) mx = p[j];
        }
        for (int j = 0; j < Tk; j++) sum += p[j] = exp(p[j] - mx);
        for (int j = 0; j < Tk; j++) p[j] /= sum;
        for (int d = 0; d < HD; d++) acc[d] = 0;
        if (!dout) { /* out = P V */
          for (int j = 0; j < Tk; j++)
            for (int d = 0; d < HD && p[j] > 0; d++)
              acc[d] += p[j] * v[(((size_t)b * Tk + j) * NKV + h / (NH / NKV)) * HD + d];
          for (int d = 0; d < HD; d++) out[qo + d] = (float)acc[d];
          continue;
        }
        double D = 0;
        for (int j = 0; j < Tk; j++) {
          const float *vj = v + (((size_t)b * Tk + j) * NKV + h / (NH / NKV)) * HD;
          dp[j] = 0;
          for (int d = 0; d < HD; d++) dp[j] += (double)dout[qo + d] * vj[d];
          D += p[j] * dp[j];
        }
        for (int j = 0; j < Tk; j++) {
          if (p[j] == 0) continue;
          size_t ko = (((size_t)b * Tk + j) * NKV + h / (NH / NKV)) * HD;
          double ds = p[j] * (dp[j] - D) * scale;
          for (int d = 0; d < HD; d++) {
            acc[d] += ds * k[ko + d];
            gk[ko + d] += ds * q[qo + d];
            gv[ko + d] += p[j] * dout[qo + d];
          }
        }
        for (int d = 0; d < HD; d++) dq[qo + d] = (float)acc[d];
      }
  for (size_t e = 0; dout && e < nk; e++) {
    dk[e] = (float)gk[e];
    dv[e] = (float)gv[e];
  }
  free(p);
  free(dp);
  free(acc);
  free(gk);
  free(gv);
}

/* Causal GQA attention with packed sequences and padding, T not a multiple of any tile. */
static void check_attention(int HD, int window) {
  int B = 2, T = 203, NH = 6, NKV = 2, N = B * T;
  size_t nq = (size_t)N * NH * HD, nk = (size_t)N * NKV * HD;
  fb_stream s = fb_cuda_stream();
  float *q = host_rand(nq, 1), *k = host_rand(nk, 1), *v = host_rand(nk, 1), *g = host_rand(nq, 1);
  int32_t *seg = malloc(N * 4);
  for (int n = 0; n < N; n++) { /* row 0: sequences of 90 and 100, then 13 pads; row 1: one */
    int t = n % T;
    seg[n] = n / T ? 7 : t < 90 ? 0 : t < 190 ? 1 : -1;
  }
  float *ref = malloc(nq * 4), *rdq = malloc(nq * 4), *rdk = malloc(nk * 4), *rdv = malloc(nk * 4);
  ref_attention(ref, NULL, NULL, NULL, NULL, q, k, v, seg, B, T, T, 0, NH, NKV, HD, window);
  ref_attention(NULL, rdq, rdk, rdv, g, q, k, v, seg, B, T, T, 0, NH, NKV, HD, window);
  float *dq = dev(q, nq * 4), *dk = dev(k, nk * 4), *dv = dev(v, nk * 4), *dg = dev(g, nq * 4);
  int32_t *dseg = dev(seg, N * 4);
  float *out = dev_poisoned(nq), *lse = dev_poisoned((size_t)N * NH),
        *delta = dev_poisoned((size_t)N * NH);
  float *gq = dev_poisoned(nq), *gk = dev_poisoned(nk), *gv = dev_poisoned(nk);
  char name[64], tag[32];
  snprintf(tag, sizeof tag, "HD=%d window=%d", HD, window);
  if (!cpu_only)
    fb_cuda_attention_forward(out, lse, dq, dk, dv, dseg, B, T, NH, NKV, HD, window, s);
  snprintf(name, sizeof name, "attention_forward %s", tag);
  compare(name, out, ref, nq, FP32_BOUND);
  if (!cpu_only)
    fb_cuda_attention_backward(gq, gk, gv, dg, out, lse, dq, dk, dv, dseg, delta, B, T, NH, NKV, HD,
                               window, s);
  snprintf(name, sizeof name, "attention_backward dq %s", tag);
  compare(name, gq, rdq, nq, FP32_BOUND);
  snprintf(name, sizeof name, "attention_backward dk %s", tag);
  compare(name, gk, rdk, nk, FP32_BOUND);
  snprintf(name, sizeof name, "attention_backward dv %s", tag);
  compare(name, gv, rdv, nk, FP32_BOUND);
  /* the KV-cache form: n new queries after p0 cached positions (row 0 of k/v as the cache) */
  int p0s[2] = {37, 100}, ns[2] = {1, 70};
  for (int c = 0; c < 2; c++) {
    int p0 = p0s[c], n = ns[c];
    ref_attention(ref, NULL, NULL, NULL, NULL, q, k, v, NULL, 1, n, p0 + n, p0, NH, NKV, HD,
                  window);
    fb_cuda_free(out);
    out = dev_poisoned((size_t)n * NH * HD);
    if (!cpu_only) fb_cuda_attention_cached(out, dq, dk, dv, n, p0, NH, NKV, HD, window, s);
    snprintf(name, sizeof name, "attention_cached %s p0=%d n=%d", tag, p0, n);
    compare(name, out, ref, (size_t)n * NH * HD, FP32_BOUND);
  }
  void *devs[] = {dq, dk, dv, dg, dseg, out, lse, delta, gq, gk, gv};
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) fb_cuda_free(devs[i]);
  void *hosts[] = {q, k, v, g, seg, ref, rdq, rdk, rdv};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

static void check_crossentropy(void) {
  int N = 67, C = 128, V = 1000;
  fb_stream s = fb_cuda_stream();
  float *lnf = host_rand((size_t)N * C, 1), *W = host_rand((size_t)V * C, 0.3f);
  fb_bf16 *W16 = to_bf16(W, (size_t)V * C);
  int32_t *tg = host_ints(N, 0, V);
  for (int n = 0; n < N; n += 5) tg[n] = -1; /* ignored rows */
  float *logits = malloc((size_t)N * V * 4), *losses = malloc(N * 4);
  fb_op_matmul_forward(logits, lnf, W, NULL, N, C, V, 1.0f, 0.0f);
  fb_op_crossentropy_forward(losses, logits, tg, N, V);
  float *dlog = dev(logits, (size_t)N * V * 4), *dl = dev_poisoned(N),
        *dd = dev_poisoned((size_t)N * V);
  int32_t *dtg = dev(tg, N * 4);
  if (!cpu_only) fb_cuda_crossentropy_forward(dl, dlog, dtg, N, V, s);
  compare("crossentropy_forward", dl, losses, N, FP32_BOUND);
  float *dref = malloc((size_t)N * V * 4);
  fb_op_crossentropy_backward(dref, logits, tg, N, V, 0.5f);
  if (!cpu_only) fb_cuda_crossentropy_backward(dd, dlog, dtg, N, V, 0.5f, s);
  compare("crossentropy_backward", dd, dref, (size_t)N * V, FP32_BOUND);
  /* fused with lm_head, three chunks (the last partial) */
  float *dnorm0 = host_rand((size_t)N * C, 1), *rdn = host_copy(dnorm0, (size_t)N * C);
  fb_op_matmul_backward(rdn, NULL, NULL, dref, lnf, W, N, C, V, 1.0f);
  fb_cuda_ce_work w = {0};
  fb_err err = {0};
  float *dlnf = dev(lnf, (size_t)N * C * 4), *ddn = dev(dnorm0, (size_t)N * C * 4);
  fb_bf16 *dW = dev(W16, (size_t)V * C * 2);
  fb_cuda_free(dl);
  dl = dev_poisoned(N);
  if (!cpu_only) {
    if (fb_cuda_ce_work_create(&w, N, C, V, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      exit(1);
    }
    w.chunk = 384;
    fb_cuda_lmhead_ce_forward(dl, dlnf, dW, dtg, N, &w, s);
    fb_cuda_lmhead_ce_backward(ddn, dW, dtg, N, 0.5f, &w, s);
  }
  compare("lmhead_ce_forward (bf16, chunked)", dl, losses, N, BF16_BOUND);
  compare("lmhead_ce_backward (bf16, chunked)", ddn, rdn, (size_t)N * C, BF16_BOUND);
  fb_cuda_ce_work_free(&w);
  void *devs[] = {dlog, dl, dd, dtg, dlnf, ddn, dW};
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) fb_cuda_free(devs[i]);
  void *hosts[] = {lnf, W, W16, tg, logits, losses, dref, dnorm0, rdn};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) free(hosts[i]);
}

/* ---- whole model: one LoRA training step and decoding, CPU and GPU on the same weights ---- */

static const char *const small_configs[] = {
    /* Llama, GQA, untied */
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":300,"
    "\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-5,"
    "\"rope_theta\":10000,\"max_position_embeddings\":1024,\"tie_word_embeddings\":false}",
    /* Qwen2: q/k/v biases, tied embeddings, head_dim 128 */
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":520,"
    "\"hidden_size\":256,\"intermediate_size\":384,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"rms_norm_eps\":1e-6,"
    "\"rope_theta\":1000000,\"max_position_embeddings\":2048,\"tie_word_embeddings\":true}"};

_Noreturn static void die(const fb_err *err) {
  fprintf(stderr, "gpu_check: %s\n", err->msg);
  exit(1);
}

static fb_model *small_model(int which, fb_lora **lora, fb_lora **copy) {
  fb_model_config cfg;
  fb_err err = {0};
  fb_model *m;
  const char *j = small_configs[which];
  if (fb_model_config_parse(&cfg, j, strlen(j), "config", &err) || fb_model_create(&m, &cfg, &err))
    die(&err);
  fb_model_init_random(m, 11 + which, 0.05f);
  free(to_bf16(m->params, m->n_floats)); /* both sides on the GPU's bf16 weights */
  for (int i = 0; i < m->n_table; i++)   /* norms away from 1, so their weights matter */
    if (strstr(m->table[i].name, "norm"))
      for (size_t k = 0; k < m->table[i].numel; k++)
        m->params[m->table[i].offset + k] = (float)(1.0 + 0.2 * uniform());
  fb_adapter_config ac = {.r = 8, .lora_alpha = 16, .lora_dropout = 0.1, .targets = FB_TARGET_ALL};
  if (fb_lora_create(lora, m, &ac, &err) || fb_lora_create(copy, m, &ac, &err)) die(&err);
  fb_lora_init(*lora, 5);
  for (size_t i = 0; i < (*lora)->n_floats; i++) /* B = 0 would hide half the gradients */
    if ((*lora)->params[i] == 0.0f) (*lora)->params[i] = (float)(0.05 * uniform());
  return m;
}

static void check_model(int which) {
  fb_lora *lora, *gl;
  fb_model *m = small_model(which, &lora, &gl);
  int B = 2, T = 150, N = B * T;
  int32_t *ids = host_ints(N, 0, m->V), *labels = malloc(N * 4), *seg = malloc(N * 4);
  for (int n = 0; n < N; n++) {
    int t = n % T;
    labels[n] = t % 11 == 3 ? -100 : ids[n];
    seg[n] = n / T ? 0 : t < 70 ? 0 : t < 140 ? 1 : -1; /* row 0: packed, then padding */
  }
  fb_batch b = {B, T, ids, labels, NULL, seg};
  fb_optim_config oc = fb_optim_defaults();
  oc.max_grad_norm = 0.5;
  fb_err err = {0};
  fb_gpu_model *g = NULL;
  if (!cpu_only && fb_gpu_model_create(&g, m, lora, B, T, &err)) die(&err);
  /* CPU: the reference step */
  fb_optim *opt;
  if (fb_optim_create(&opt, lora->n_floats, &oc, &err)) die(&err);
  fb_lora_zero_grad(lora);
  lora->step = 1;
  if (fb_model_forward(m, lora, &b, 1, &err) || fb_model_backward(m, lora, &b, &err)) die(&err);
  float cpu_loss = m->loss;
  float *cpu_grads = host_copy(lora->grads, lora->n_floats);
  fb_optim_clip(lora->grads, lora->n_floats, oc.max_grad_norm);
  if (fb_optim_step(opt, lora->params, lora->grads, 1e-3, &err)) die(&err);
  /* GPU: the same step */
  float gpu_loss = cpu_loss;
  int counted;
  double norm;
  if (!cpu_only) {
    fb_gpu_zero_grad(g);
    if (fb_gpu_forward(g, &b, 1, &gpu_loss, &counted, &err) || fb_gpu_backward(g, &b, &err))
      die(&err);
    fb_gpu_lora_download(g, gl, NULL, NULL);
  }
  char name[80];
  const char *tag = which ? "qwen2" : "llama";
  snprintf(name, sizeof name, "lora step %s: loss", tag);
  float *dloss = cpu_only ? NULL : dev(&gpu_loss, 4);
  compare(name, dloss, &cpu_loss, 1, BF16_BOUND);
  snprintf(name, sizeof name, "lora step %s: gradients", tag);
  float *dgr = cpu_only ? NULL : dev(gl->grads, gl->n_floats * 4);
  compare(name, dgr, cpu_grads, lora->n_floats, BF16_BOUND);
  if (!cpu_only) {
    if (fb_gpu_step(g, &oc, 1e-3, &norm, &err)) die(&err);
    fb_gpu_lora_download(g, gl, NULL, NULL);
  }
  snprintf(name, sizeof name, "lora step %s: params after AdamW", tag);
  float *dpar = cpu_only ? NULL : dev(gl->params, gl->n_floats * 4);
  compare(name, dpar, lora->params, lora->n_floats, BF16_BOUND);
  /* decoding with the KV cache: a 40-token prompt, then three tokens one at a time */
  fb_kv_cache *kc;
  float *ref = malloc(m->V * 4), *got = malloc(m->V * 4);
  if (fb_kv_cache_create(&kc, m, 64, &err)) die(&err);
  if (!cpu_only && fb_gpu_kv_reserve(g, 64, &err)) die(&err);
  int at = 0, lens[4] = {40, 1, 1, 1};
  for (int c = 0; c < 4; c++) {
    if (fb_model_decode(m, lora, kc, ids + at, lens[c], ref, &err)) die(&err);
    if (!cpu_only && fb_gpu_decode(g, ids + at, lens[c], got, &err)) die(&err);
    at += lens[c];
    snprintf(name, sizeof name, "decode %s: logits after %d", tag, at);
    float *dgot = cpu_only ? NULL : dev(got, m->V * 4);
    compare(name, dgot, ref, m->V, BF16_BOUND);
    fb_cuda_free(dgot);
  }
  fb_cuda_free(dloss);
  fb_cuda_free(dgr);
  fb_cuda_free(dpar);
  fb_kv_cache_free(kc);
  fb_gpu_model_free(g);
  fb_optim_free(opt);
  fb_lora_free(lora);
  fb_lora_free(gl);
  fb_model_free(m);
  free(ids);
  free(labels);
  free(seg);
  free(cpu_grads);
  free(ref);
  free(got);
}

/* ---- speed ---- */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int bench(const char *config, int B, int T, int steps) {
  fb_model_config cfg;
  fb_err err = {0};
  fb_model *m;
  fb_lora *lora;
  fb_gpu_model *g;
  if (fb_model_config_load(&cfg, config, &err) || fb_model_create(&m, &cfg, &err)) die(&err);
  fb_model_init_random(m, 1, 0.02f);
  fb_adapter_config ac = {.r = 16, .lora_alpha = 32, .lora_dropout = 0, .targets = FB_TARGET_ALL};
  if (fb_lora_create(&lora, m, &ac, &err)) die(&err);
  fb_lora_init(lora, 3);
  for (size_t i = 0; i < lora->n_floats; i++)
    if (lora->params[i] == 0.0f) lora->params[i] = (float)(0.01 * uniform());
  if (fb_gpu_model_create(&g, m, lora, B, T, &err)) die(&err);
  int N = B * T;
  int32_t *ids = host_ints(N, 0, m->V);
  fb_batch b = {B, T, ids, ids, NULL, NULL};
  fb_optim_config oc = fb_optim_defaults();
  oc.max_grad_norm = 1.0;
  float loss = 0;
  double t0 = 0;
  for (int s = -2; s < steps; s++) { /* two warm-up steps */
    if (s == 0) {
      fb_cuda_sync();
      t0 = now();
    }
    fb_gpu_zero_grad(g);
    lora->step++;
    if (fb_gpu_forward(g, &b, 1, &loss, NULL, &err) || fb_gpu_backward(g, &b, &err) ||
        fb_gpu_step(g, &oc, 1e-4, NULL, &err))
      die(&err);
  }
  fb_cuda_sync();
  double dt = now() - t0;
  printf(
      "{\"engine\":\"fastbrain\",\"config\":\"%s\",\"batch\":%d,\"seq\":%d,\"steps\":%d,"
      "\"tokens_per_s\":%.1f,\"step_ms\":%.2f,\"peak_bytes\":%zu,\"loss\":%.4f}\n",
      config, B, T, steps, (double)N * steps / dt, dt / steps * 1e3, fb_cuda_peak_bytes(), loss);
  fb_gpu_model_free(g);
  fb_lora_free(lora);
  fb_model_free(m);
  free(ids);
  return 0;
}

int main(int argc, char **argv) {
  int want_bench = argc >= 2 && strcmp(argv[1], "bench") == 0;
  cpu_only = argc >= 2 && strcmp(argv[1], "--cpu-only") == 0;
  if (!cpu_only && !want_bench && !(argc >= 2 && strcmp(argv[1], "check") == 0)) {
    fprintf(
        stderr,
        "usage: fb_gpu_check check | --cpu-only [CONFIG.json...] | bench CONFIG.json B T STEPS\n");
    return 2;
  }
  if (!cpu_only) {
    fb_err err = {0};
    if (fb_cuda_init(&err)) {
      printf("gpu_check: no GPU: %s\n", err.msg);
      return 77;
    }
  }
  if (want_bench) {
    if (argc != 6) return 2;
    return bench(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
  }
  if (!cpu_only) printf("device: %s\n", fb_cuda_device_name());
  for (int i = 2; cpu_only && i < argc; i++) {
    fb_model_config cfg;
    fb_err err = {0};
    if (fb_model_config_load(&cfg, argv[i], &err)) die(&err);
    printf("config %s: %lld parameters\n", argv[i], (long long)fb_model_config_param_count(&cfg));
  }
  check_matmul();
  check_rows();
  check_elementwise();
  check_attention(64, 0);
  check_attention(128, 0);
  check_attention(64, 50); /* Mistral's sliding window, shorter than the sequences */
  check_crossentropy();
  check_model(0);
  check_model(1);
  printf("%d checks, %d failed%s\n", checks, failures, cpu_only ? " (CPU references only)" : "");
  return failures ? 1 : 0;
}
