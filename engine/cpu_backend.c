/* cpu_backend.c: the fp32 CPU backend: the ops of cpu_backend.h and the backend.h table over
 * them, with the process's own memory. Matrix products go through gemm.h (oneDNN or OpenBLAS,
 * chosen at run time, threaded by them); the rest are plain loops on the calling thread (an
 * OpenMP team here spun against the BLAS threads and ran 4-7x slower on a busy 2-core machine).
 * The ops hold no state and allocate nothing; the table's loss work keeps the logits. */
#include "cpu_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"

void fb_op_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                          int N, int C, int OC, float alpha, float beta) {
  fb_gemm(0, 1, N, OC, C, alpha, inp, C, weight, C, beta, out, OC);
  if (bias) {
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
  }
}

void fb_op_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int N, int C, int OC,
                           float alpha) {
  if (dinp) fb_gemm(0, 0, N, C, OC, alpha, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) fb_gemm(1, 0, OC, C, N, alpha, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) {
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) dbias[o] += alpha * dout[(size_t)n * OC + o];
  }
}

void fb_op_addmm(float *out, const float *a, const float *b, int M, int N, int K, float alpha) {
  fb_gemm(0, 0, M, N, K, alpha, a, K, b, N, 1.0f, out, N);
}

void fb_op_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C) {
  for (int n = 0; n < N; n++)
    memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * C);
}

void fb_op_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C) {
  for (int n = 0; n < N; n++) {
    float *d = dtable + (size_t)ids[n] * C;
    const float *g = dout + (size_t)n * C;
    for (int c = 0; c < C; c++) d[c] += g[c];
  }
}

void fb_op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                           int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    float *o = out + (size_t)n * C;
    double ss = 0.0; /* reductions in double: they set the gradients' noise floor */
    for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
    float r = (float)(1.0 / sqrt(ss / C + eps));
    rstd[n] = r;
    for (int c = 0; c < C; c++) o[c] = weight[c] * (x[c] * r); /* HF: weight * (x * rstd) */
  }
}

/* The add and the norm as they are: the CPU gains nothing from fusing them. */
void fb_op_residual_rmsnorm_forward(float *sum, float *out, float *rstd, const float *a,
                                    const float *b, const float *weight, int N, int C, float eps) {
  fb_op_add(sum, a, b, (size_t)N * C);
  fb_op_rmsnorm_forward(out, rstd, sum, weight, N, C, eps);
}

void fb_op_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, int N, int C) {
  /* y = w * x * r, r = (mean x^2 + eps)^-1/2:  dx = r * (w*dy) - x * r^3/C * sum(w*dy*x) */
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C, r = rstd[n];
    double dot = 0.0;
    for (int c = 0; c < C; c++) dot += (double)weight[c] * dy[c] * x[c];
    float k = (float)(dot * r * r * r / C);
    for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
  }
  if (dweight)
    for (int n = 0; n < N; n++) {
      const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
      for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * rstd[n];
    }
}

/* Rotate every head of every position by +/- the angle of its position (sign = -1: inverse). */
static void rope_apply(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                       int NH, int HD, float sign) {
  int half = HD / 2;
  for (int n = 0; n < N; n++) {
    const float *cr = cos + (size_t)pos[n] * half, *sr = sin + (size_t)pos[n] * half;
    for (int h = 0; h < NH; h++) {
      float *v = x + ((size_t)n * NH + h) * HD;
      for (int i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[i + half], c = cr[i], s = sign * sr[i];
        v[i] = x1 * c - x2 * s;
        v[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

void fb_op_rope_forward(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                        int NH, int HD) {
  rope_apply(x, cos, sin, pos, N, NH, HD, 1.0f);
}

void fb_op_rope_backward(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                         int NH, int HD) {
  rope_apply(dx, cos, sin, pos, N, NH, HD, -1.0f);
}

/* Attention goes a block of query rows at a time, each against only the keys its rows may see:
 * from the first one inside the window of its first row to its last row (causal). With a
 * window W the blocks are W rows (at most FB_ATTN_BLOCK), so a block's scores are at most
 * W x (2W-1) and the work per head is O(T W); without one it is the causal half of T x T. */
static int block_rows(int window) {
  return window > 0 && window < FB_ATTN_BLOCK ? window : FB_ATTN_BLOCK;
}

/* The first key query position i may see under the window. */
static int first_key(int i, int window) { return window > 0 && i >= window ? i - window + 1 : 0; }

size_t fb_op_attention_scratch(int T) {
  return 2 * (size_t)(T < FB_ATTN_BLOCK ? T : FB_ATTN_BLOCK) * T; /* P and dP of one block */
}

/* Whether query i may attend key j of the same batch row, j being causal and inside the window:
 * j is in i's sequence (a padding position, seg < 0, sees only itself). */
static int same_sequence(const int32_t *seg, int i, int j) {
  if (!seg) return 1;
  if (seg[i] < 0) return j == i;
  return seg[j] == seg[i];
}

/* P[rows, cols] = masked softmax(scale * q k^T) for one (batch row, head); q and k rows are
 * strided. Row r is query position row0 + r, column c key position col0 + c (k points at that
 * key's row; col0 <= first_key(row0)); row i sees keys first_key(i)..i of its own sequence.
 * lse[r] (when lse) gets row r's log-sum-exp of its scaled scores. */
static void attention_probs(float *P, float *lse, const float *q, int ldq, const float *k, int ldk,
                            const int32_t *seg, int window, int rows, int row0, int cols, int col0,
                            int HD) {
  float scale = 1.0f / sqrtf((float)HD);
  fb_gemm(0, 1, rows, cols, HD, scale, q, ldq, k, ldk, 0.0f, P, cols);
  for (int r = 0; r < rows; r++) {
    int i = row0 + r, lo = first_key(i, window) - col0, hi = i - col0; /* causal, windowed */
    float *row = P + (size_t)r * cols, mx = -INFINITY;
    double sum = 0.0;
    for (int c = lo; c <= hi; c++)
      if (same_sequence(seg, i, col0 + c) && row[c] > mx) mx = row[c];
    for (int c = 0; c < cols; c++) {
      float e = c >= lo && c <= hi && same_sequence(seg, i, col0 + c) ? expf(row[c] - mx) : 0.0f;
      row[c] = e;
      sum += e;
    }
    float inv = (float)(1.0 / sum); /* sum >= 1: the diagonal is always allowed */
    for (int c = lo; c <= hi; c++) row[c] *= inv;
    if (lse) lse[r] = (float)(mx + log(sum));
  }
}

/* Output rows row0..row0+rows-1 of one head: P = attention_probs over keys first_key(row0)..
 * row0+rows-1, out = P V. q, out and lse (may be NULL) point at row row0, k and v at position 0. */
static void attend_block(float *out, float *lse, const float *q, int ldq, const float *k,
                         const float *v, int ldk, const int32_t *seg, float *P, int rows, int row0,
                         int window, int HD) {
  int j0 = first_key(row0, window), cols = row0 + rows - j0;
  const float *kb = k + (size_t)j0 * ldk, *vb = v + (size_t)j0 * ldk;
  attention_probs(P, lse, q, ldq, kb, ldk, seg, window, rows, row0, cols, j0, HD);
  fb_gemm(0, 0, rows, HD, cols, 1.0f, P, cols, vb, ldk, 0.0f, out, ldq); /* O = P V */
}

void fb_op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                             const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                             int HD, int window) {
  int group = NH / NKV, ldq = NH * HD, ldk = NKV * HD, rows = block_rows(window);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      size_t qo = (size_t)b * T * ldq + (size_t)h * HD,
             ko = (size_t)b * T * ldk + (size_t)(h / group) * HD;
      const int32_t *sb = seg ? seg + (size_t)b * T : NULL;
      float *lb = lse ? lse + ((size_t)b * NH + h) * T : NULL;
      for (int i0 = 0; i0 < T; i0 += rows) {
        size_t at = qo + (size_t)i0 * ldq;
        attend_block(out + at, lb ? lb + i0 : NULL, q + at, ldq, k + ko, v + ko, ldk, sb, scratch,
                     T - i0 < rows ? T - i0 : rows, i0, window, HD);
      }
    }
}

void fb_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const int32_t *seg, float *scratch,
                              int B, int T, int NH, int NKV, int HD, int window) {
  int group = NH / NKV, ldq = NH * HD, ldk = NKV * HD, rows = block_rows(window);
  float scale = 1.0f / sqrtf((float)HD);
  float *P = scratch, *dP = scratch + (size_t)(T < rows ? T : rows) * T;
  memset(dk, 0, sizeof(float) * (size_t)B * T * ldk);
  memset(dv, 0, sizeof(float) * (size_t)B * T * ldk);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i0 = 0; i0 < T; i0 += rows) { /* query rows i0..i0+nb-1 against keys j0.. */
        int nb = T - i0 < rows ? T - i0 : rows, j0 = first_key(i0, window), nk = i0 + nb - j0;
        size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * HD,
               ko = ((size_t)b * T + j0) * ldk + (size_t)(h / group) * HD;
        const int32_t *sb = seg ? seg + (size_t)b * T : NULL;
        attention_probs(P, NULL, q + qo, ldq, k + ko, ldk, sb, window, nb, i0, nk, j0, HD);
        fb_gemm(0, 1, nb, nk, HD, 1.0f, dout + qo, ldq, v + ko, ldk, 0.0f, dP, nk); /* dO V^T */
        fb_gemm(1, 0, nk, HD, nb, 1.0f, P, nk, dout + qo, ldq, 1.0f, dv + ko, ldk); /* dV+=P^T dO */
        for (int r = 0; r < nb; r++) { /* dS = P * (dP - sum_j P dP) * scale (0 where masked) */
          float *p = P + (size_t)r * nk, *dp = dP + (size_t)r * nk;
          double dd = 0.0;
          for (int c = 0; c < nk; c++) dd += (double)p[c] * dp[c];
          float d = (float)dd;
          for (int c = 0; c < nk; c++) dp[c] = p[c] * (dp[c] - d) * scale;
        }
        fb_gemm(0, 0, nb, HD, nk, 1.0f, dP, nk, k + ko, ldk, 0.0f, dq + qo, ldq); /* dQ = dS K */
        fb_gemm(1, 0, nk, HD, nb, 1.0f, dP, nk, q + qo, ldq, 1.0f, dk + ko, ldk); /* dK += dS^T Q */
      }
}

size_t fb_op_attention_cached_scratch(int max_len) { return (size_t)FB_ATTN_BLOCK * max_len; }

void fb_op_attention_cached(float *out, const float *q, const float *kc, const float *vc,
                            float *scratch, int n, int p0, int NH, int NKV, int HD, int window) {
  int group = NH / NKV, ldq = NH * HD, ldk = NKV * HD, rows = block_rows(window);
  for (int h = 0; h < NH; h++)
    for (int i0 = 0; i0 < n; i0 += rows) { /* blocks of new positions */
      size_t qo = (size_t)i0 * ldq + (size_t)h * HD, ko = (size_t)(h / group) * HD;
      attend_block(out + qo, NULL, q + qo, ldq, kc + ko, vc + ko, ldk, NULL, scratch,
                   n - i0 < rows ? n - i0 : rows, p0 + i0, window, HD);
    }
}

void fb_op_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

void fb_op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
    dup[i] = dout[i] * silu;
    dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

void fb_op_add(float *out, const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* splitmix64 of (seed, i): a counter-based stream, so masks can be regenerated anywhere. */
static uint64_t mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fb_op_dropout(float *out, const float *inp, size_t n, float p, uint64_t seed) {
  float keep = 1.0f / (1.0f - p);
  for (size_t i = 0; i < n; i++) {
    double u = (double)(mix(seed, i) >> 11) * 0x1.0p-53;
    out[i] = u < p ? 0.0f : inp[i] * keep;
  }
}

void fb_op_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N,
                                int V) {
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) {
      losses[n] = 0.0f;
      continue;
    }
    const float *x = logits + (size_t)n * V;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += expf(x[i] - mx);
    losses[n] = (float)(log(sum) + mx - x[targets[n]]);
  }
}

void fb_op_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N,
                                 int V, float dloss) {
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * V;
    float *d = dlogits + (size_t)n * V;
    if (targets[n] < 0) {
      memset(d, 0, sizeof(float) * V);
      continue;
    }
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += expf(x[i] - mx);
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) d[i] = dloss * expf(x[i] - mx) * inv;
    d[targets[n]] -= dloss;
  }
}

void fb_op_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int t) {
  float decay = (float)(1.0 - lr * weight_decay), w1 = (float)(1.0 - beta1);
  float b2 = (float)beta2, w2 = (float)(1.0 - beta2), e = (float)eps;
  float step = (float)(lr / (1.0 - pow(beta1, t))), bc2s = (float)sqrt(1.0 - pow(beta2, t));
  for (size_t i = 0; i < n; i++) {
    float g = grad[i];
    param[i] *= decay;
    m[i] += w1 * (g - m[i]); /* torch: lerp */
    v[i] = v[i] * b2 + w2 * g * g;
    param[i] -= step * (m[i] / (sqrtf(v[i]) / bc2s + e));
  }
}

double fb_op_sumsq(const float *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

double fb_op_sum(const float *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += x[i];
  return s;
}

void fb_op_scale(float *x, size_t n, float s) {
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- the table: adapters where backend.h's calls differ from the plain ops ---- */

static const char *cpu_device_name(void) {
  static char name[160];
  if (name[0]) return name;
  char line[256], model[128] = "CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon) {
      snprintf(model, sizeof model, "%s", colon + 2);
      model[strcspn(model, "\n")] = '\0';
      break;
    }
  }
  if (f) fclose(f);
  snprintf(name, sizeof name, "%s (%ld cores)", model, sysconf(_SC_NPROCESSORS_ONLN));
  return name;
}

static size_t cpu_peak_bytes(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (size_t)ru.ru_maxrss * 1024; /* Linux counts kilobytes */
}

static int cpu_supports_head_dim(int HD) { return HD >= 2 && HD % 2 == 0; }

static int cpu_alloc(void **p, size_t bytes, const char *what, fb_err *err) {
  *p = malloc(bytes ? bytes : 1);
  if (!*p)
    return fb_err_set(err, FB_ENOMEM, "out of memory for %s: asked %.2f GiB (%zu bytes)", what,
                      bytes / 1073741824.0, bytes);
  return 0;
}

static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

static void matmul_forward(float *out, const float *inp, const void *weight, fb_dtype wdt,
                           const float *bias, int N, int C, int OC, float alpha, float beta) {
  (void)wdt; /* always F32 here: weight_dtype */
  fb_op_matmul_forward(out, inp, weight, bias, N, C, OC, alpha, beta);
}

static void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const void *weight, fb_dtype wdt, int N, int C,
                            int OC, float alpha) {
  (void)wdt;
  fb_op_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, alpha);
}

static void embedding_forward(float *out, const int32_t *ids, const void *table, int N, int C) {
  fb_op_embedding_forward(out, ids, table, N, C);
}

static size_t attention_scratch(int N, int T, int NH) {
  (void)N, (void)NH;
  return fb_op_attention_scratch(T);
}

static void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v,
                               const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                               int HD, int window) {
  (void)out, (void)lse; /* the probabilities are recomputed block by block */
  fb_op_attention_backward(dq, dk, dv, dout, q, k, v, seg, scratch, B, T, NH, NKV, HD, window);
}

/* The loss keeps all N x V logits: backward turns them into their gradient in place. */
typedef struct ce_work {
  int N, C, V;
  float *logits; /* [N,V] */
} ce_work;

static int ce_create(void **out, int N, int C, int V, fb_err *err) {
  ce_work *w = calloc(1, sizeof *w);
  float *logits = malloc(sizeof(float) * (size_t)N * V);
  if (!w || !logits) {
    free(w);
    free(logits);
    return fb_err_set(err, FB_ENOMEM, "out of memory for the logits of %d positions", N);
  }
  *w = (ce_work){N, C, V, logits};
  *out = w;
  return 0;
}

static void ce_free(void *work) {
  ce_work *w = work;
  if (w) free(w->logits);
  free(w);
}

static void lmhead_ce_forward(float *losses, const float *lnf, const void *W,
                              const int32_t *targets, int N, void *work) {
  ce_work *w = work;
  fb_op_matmul_forward(w->logits, lnf, W, NULL, N, w->C, w->V, 1.0f, 0.0f);
  fb_op_crossentropy_forward(losses, w->logits, targets, N, w->V);
}

static void lmhead_ce_backward(float *dlnf, float *dW, const float *lnf, const void *W,
                               const int32_t *targets, int N, const float *dloss, void *work) {
  ce_work *w = work;
  fb_op_crossentropy_backward(w->logits, w->logits, targets, N, w->V, *dloss);
  fb_op_matmul_backward(dlnf, dW, NULL, w->logits, lnf, W, N, w->C, w->V, 1.0f);
}

static const float *ce_logits(const void *work) { return ((const ce_work *)work)->logits; }

/* Profiling: the clock at each change of phase; the time since the last change counts in the
 * phase it ends (an op's work is done when it returns). One thread drives a backend. */
static struct {
  int on;
  fb_phase current;
  double since; /* ms */
  double ms[FB_PHASE_COUNT];
} prof;

static double clock_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void phase(fb_phase p) {
  if (!prof.on) return;
  double t = clock_ms();
  prof.ms[prof.current] += t - prof.since;
  prof.since = t;
  prof.current = p;
}

static void profile(int on, double *ms) {
  if (on) {
    memset(&prof, 0, sizeof prof);
    prof.on = 1;
    prof.current = FB_PHASE_ELEMENTWISE;
    prof.since = clock_ms();
    return;
  }
  phase(prof.current);
  prof.on = 0;
  memcpy(ms, prof.ms, sizeof prof.ms);
}

static void dropout(float *out, const float *inp, size_t n, float p, const uint64_t *seed) {
  fb_op_dropout(out, inp, n, p, *seed);
}

/* Nothing to capture on the CPU: the work runs every time. */
static int replay(uint64_t key, void (*work)(void *ctx), void *ctx) {
  (void)key;
  work(ctx);
  return 0;
}

static const fb_backend cpu = {
    .abi = FB_BACKEND_ABI,
    .name = "cpu",
    .device = FB_DEVICE_CPU,
    .host_memory = 1,
    .weight_dtype = FB_DT_F32,
    .trains_base = 1,
    .device_name = cpu_device_name,
    .peak_bytes = cpu_peak_bytes,
    .supports_head_dim = cpu_supports_head_dim,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .addmm = fb_op_addmm,
    .gemm = fb_gemm,
    .embedding_forward = embedding_forward,
    .embedding_backward = fb_op_embedding_backward,
    .rmsnorm_forward = fb_op_rmsnorm_forward,
    .residual_rmsnorm_forward = fb_op_residual_rmsnorm_forward,
    .rmsnorm_backward = fb_op_rmsnorm_backward,
    .rope_forward = fb_op_rope_forward,
    .rope_backward = fb_op_rope_backward,
    .swiglu_forward = fb_op_swiglu_forward,
    .swiglu_backward = fb_op_swiglu_backward,
    .add = fb_op_add,
    .dropout = dropout,
    .attention_scratch = attention_scratch,
    .attention_forward = fb_op_attention_forward,
    .attention_backward = attention_backward,
    .attention_cached_scratch = fb_op_attention_cached_scratch,
    .attention_cached = fb_op_attention_cached,
    .ce_create = ce_create,
    .ce_free = ce_free,
    .lmhead_ce_forward = lmhead_ce_forward,
    .lmhead_ce_backward = lmhead_ce_backward,
    .replay = replay,
    .ce_logits = ce_logits,
    .adamw = fb_op_adamw,
    .sumsq = fb_op_sumsq,
    .sum = fb_op_sum,
    .scale = fb_op_scale,
    .phase = phase,
    .profile = profile,
};

const fb_backend *fb_backend_cpu(void) { return &cpu; }
