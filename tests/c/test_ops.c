/* test_ops.c: the CPU backend checked op by op: finite-difference gradients for every backward,
 * attention masking (packing = separate runs, padding ignored, sliding window), dropout, AdamW
 * against its formula, and fb_gemm against a naive product. The whole-model check lives in
 * test_lora.c. */
#include <stdint.h>

#include "cpu_backend.h"
#include "gemm.h"
#include "test.h"

static unsigned rng_state = 1;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}
static float *rnd(size_t n) {
  float *x = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) x[i] = frand();
  return x;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* A scalar loss over an op: L = sum(out * R) for a fixed random R, evaluated in double. */
typedef double (*loss_fn)(void *ctx);

static double dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* Central differences on every element of x against the analytic grad; returns the largest
 * error relative to the largest gradient magnitude, and prints the worst element. */
static double fd_check(const char *what, float *x, const float *grad, size_t n, loss_fn f,
                       void *ctx) {
  const float h = 1e-2f;
  double worst = 0, gmax = 1e-3;
  size_t at = 0;
  double num_at = 0;
  for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
  for (size_t i = 0; i < n; i++) {
    float keep = x[i];
    x[i] = keep + h;
    double lp = f(ctx);
    x[i] = keep - h;
    double lm = f(ctx);
    x[i] = keep;
    double num = (lp - lm) / (2.0 * h), e = fabs(num - grad[i]) / gmax;
    if (e > worst) {
      worst = e;
      at = i;
      num_at = num;
    }
  }
  if (worst > 2e-3)
    fprintf(stderr, "  %s: worst at %zu: analytic %.7g numeric %.7g (rel %.3g)\n", what, at,
            (double)grad[at], num_at, worst);
  return worst;
}
#define FD_TOL 2e-3

/* Every transpose, with beta 2 and with beta 0 over a C of NaNs (not to be read), for a matrix
 * and for one row (M = 1: fb_gemm's matrix-vector path, where a transposed A is a column of
 * stride lda = 3). */
TEST(gemm_matches_naive_in_every_transpose) {
  int N = 21, K = 17;
  for (int pass = 0; pass < 16; pass++) {
    int M = pass < 8 ? 13 : 1, ta = pass & 1, tb = (pass >> 1) & 1;
    float beta = pass & 4 ? 0.0f : 2.0f;
    int lda = ta ? (M == 1 ? 3 : M) : K, ldb = tb ? K : N;
    float *A = rnd((size_t)(ta ? K * lda : M * K)), *B = rnd((size_t)K * N);
    float *C = rnd((size_t)M * N);
    double *R = malloc(sizeof(double) * M * N);
    fb_gemm_reference(ta, tb, M, N, K, 0.5, A, lda, B, ldb, beta, C, R);
    if (beta == 0.0f)
      for (int i = 0; i < M * N; i++) C[i] = NAN;
    fb_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, C, N);
    double worst = 0;
    for (int i = 0; i < M * N; i++) {
      double d = fabs(R[i] - C[i]);
      worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    CHECK(worst < 1e-5);
    free(A);
    free(B);
    free(C);
    free(R);
  }
  CHECK(strcmp(fb_gemm_path(), "dnnl") == 0 || strcmp(fb_gemm_path(), "openblas") == 0);
}

struct mm {
  float *out, *inp, *w, *b, *R;
  int N, C, OC;
};
static double mm_loss(void *p) {
  struct mm *m = p;
  fb_op_matmul_forward(m->out, m->inp, m->w, m->b, m->N, m->C, m->OC, 0.7f, 0.0f);
  return dot(m->out, m->R, (size_t)m->N * m->OC);
}
TEST(matmul_gradients) {
  struct mm m = {0, 0, 0, 0, 0, 5, 7, 6};
  m.out = zeros(30);
  m.inp = rnd(35);
  m.w = rnd(42);
  m.b = rnd(6);
  m.R = rnd(30);
  float *di = zeros(35), *dw = zeros(42), *db = zeros(6);
  fb_op_matmul_backward(di, dw, db, m.R, m.inp, m.w, m.N, m.C, m.OC, 0.7f);
  CHECK(fd_check("dinp", m.inp, di, 35, mm_loss, &m) < FD_TOL);
  CHECK(fd_check("dweight", m.w, dw, 42, mm_loss, &m) < FD_TOL);
  /* bias is added with weight 1, not alpha: d/db = sum dout; backward scales by alpha */
  for (int o = 0; o < 6; o++) db[o] /= 0.7f;
  CHECK(fd_check("dbias", m.b, db, 6, mm_loss, &m) < FD_TOL);
  free(m.out);
  free(m.inp);
  free(m.w);
  free(m.b);
  free(m.R);
  free(di);
  free(dw);
  free(db);
}

TEST(matmul_accumulates_with_beta) {
  float inp[2] = {1, 2}, w[2] = {3, 4}, out[1] = {10};
  fb_op_matmul_forward(out, inp, w, NULL, 1, 2, 1, 2.0f, 1.0f);
  CHECK_NEAR(out[0], 10 + 2 * 11, 1e-6);
}

struct rn {
  float *out, *rstd, *inp, *w, *R;
  int N, C;
};
static double rn_loss(void *p) {
  struct rn *r = p;
  fb_op_rmsnorm_forward(r->out, r->rstd, r->inp, r->w, r->N, r->C, 1e-5f);
  return dot(r->out, r->R, (size_t)r->N * r->C);
}
TEST(rmsnorm_gradients) {
  struct rn r = {zeros(24), zeros(3), rnd(24), rnd(8), rnd(24), 3, 8};
  float *di = zeros(24), *dw = zeros(8);
  rn_loss(&r);
  fb_op_rmsnorm_backward(di, dw, r.R, r.inp, r.w, r.rstd, 3, 8);
  CHECK(fd_check("dinp", r.inp, di, 24, rn_loss, &r) < FD_TOL);
  CHECK(fd_check("dweight", r.w, dw, 8, rn_loss, &r) < FD_TOL);
  free(r.out);
  free(r.rstd);
  free(r.inp);
  free(r.w);
  free(r.R);
  free(di);
  free(dw);
}

struct rp {
  float *x, *work, *cos, *sin, *R;
  int32_t *pos;
  int N, NH, HD;
};
static double rp_loss(void *p) {
  struct rp *r = p;
  size_t n = (size_t)r->N * r->NH * r->HD;
  memcpy(r->work, r->x, sizeof(float) * n);
  fb_op_rope_forward(r->work, r->cos, r->sin, r->pos, r->N, r->NH, r->HD);
  return dot(r->work, r->R, n);
}
TEST(rope_gradient_and_convention) {
  struct rp r = {rnd(48), zeros(48), zeros(16), zeros(16), rnd(48), NULL, 4, 2, 6};
  int32_t pos[4] = {0, 3, 1, 2};
  r.pos = pos;
  for (int p = 0; p < 4; p++)
    for (int i = 0; i < 3; i++) {
      double ang = p * pow(10000.0, -2.0 * i / 6);
      r.cos[p * 3 + i] = (float)cos(ang);
      r.sin[p * 3 + i] = (float)sin(ang);
    }
  /* rotate_half: position 0 is the identity, and x1' = x1 cos - x2 sin on position 1 */
  rp_loss(&r);
  CHECK_NEAR(r.work[0], r.x[0], 1e-7);
  int n1 = 1 * 2 * 6;
  CHECK_NEAR(r.work[n1 + 1], r.x[n1 + 1] * r.cos[3 * 3 + 1] - r.x[n1 + 4] * r.sin[3 * 3 + 1], 1e-6);
  float *d = malloc(sizeof(float) * 48);
  memcpy(d, r.R, sizeof(float) * 48);
  fb_op_rope_backward(d, r.cos, r.sin, r.pos, 4, 2, 6);
  CHECK(fd_check("dx", r.x, d, 48, rp_loss, &r) < FD_TOL);
  free(r.x);
  free(r.work);
  free(r.cos);
  free(r.sin);
  free(r.R);
  free(d);
}

struct at {
  float *out, *q, *k, *v, *R, *scratch;
  const int32_t *seg;
  int B, T, NH, NKV, HD, window;
};
static double at_loss(void *p) {
  struct at *a = p;
  fb_op_attention_forward(a->out, NULL, a->q, a->k, a->v, a->seg, a->scratch, a->B, a->T, a->NH,
                          a->NKV, a->HD, a->window);
  return dot(a->out, a->R, (size_t)a->B * a->T * a->NH * a->HD);
}
/* Finite differences through attention on B 2 rows of T; long rows get fewer heads (each loss
 * is a whole forward, once per element). */
static void attention_fd(int T, const int32_t *seg, int window) {
  struct at a = {0};
  a.B = 2;
  a.T = T;
  a.NH = T > 8 ? 2 : 4;
  a.NKV = a.NH / 2;
  a.HD = 4;
  a.seg = seg;
  a.window = window;
  size_t nq = (size_t)a.B * a.T * a.NH * a.HD, nk = (size_t)a.B * a.T * a.NKV * a.HD;
  a.out = zeros(nq);
  a.q = rnd(nq);
  a.k = rnd(nk);
  a.v = rnd(nk);
  a.R = rnd(nq);
  a.scratch = zeros(fb_op_attention_scratch(a.T));
  float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
  fb_op_attention_backward(dq, dk, dv, a.R, a.q, a.k, a.v, a.seg, a.scratch, a.B, a.T, a.NH, a.NKV,
                           a.HD, a.window);
  CHECK(fd_check("dq", a.q, dq, nq, at_loss, &a) < FD_TOL);
  CHECK(fd_check("dk", a.k, dk, nk, at_loss, &a) < FD_TOL);
  CHECK(fd_check("dv", a.v, dv, nk, at_loss, &a) < FD_TOL);
  free(a.out);
  free(a.q);
  free(a.k);
  free(a.v);
  free(a.R);
  free(a.scratch);
  free(dq);
  free(dk);
  free(dv);
}
TEST(attention_gradients_gqa_causal) { attention_fd(5, NULL, 0); }
TEST(attention_gradients_packed_and_padded) {
  int32_t seg[10] = {0, 0, 1, 1, 1, 0, 0, 0, -1, -1};
  attention_fd(5, seg, 0);
}
TEST(attention_gradients_sliding_window) {
  attention_fd(5, NULL, 2);
  int32_t seg[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, -1};
  attention_fd(5, seg, 3);
}
/* Rows past one block of queries (FB_ATTN_BLOCK), and windows far shorter than the rows, where
 * each block sees only its band of keys. */
TEST(attention_gradients_across_blocks_and_bands) {
  enum { T = 70 };
  attention_fd(T, NULL, 0);
  attention_fd(T, NULL, 7);
  int32_t seg[2 * T];
  for (int i = 0; i < 2 * T; i++) seg[i] = i < 30 ? 0 : i < 2 * T - 5 ? 1 + i / 50 : -1;
  attention_fd(T, seg, 16);
}

/* With a window W, query i's output is that of plain causal attention over keys i-W+1 .. i
 * alone: the last row of an unwindowed run on that slice. */
static void sees_exactly_the_last_w_keys(int T, int W) {
  int NH = 2, NKV = 1, HD = 4;
  size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
  float *q = rnd(nq), *k = rnd(nk), *v = rnd(nk), *win = zeros(nq), *full = zeros(nq);
  float *slice = zeros((size_t)W * NH * HD), *scratch = zeros(fb_op_attention_scratch(T));
  fb_op_attention_forward(win, NULL, q, k, v, NULL, scratch, 1, T, NH, NKV, HD, W);
  fb_op_attention_forward(full, NULL, q, k, v, NULL, scratch, 1, T, NH, NKV, HD, 0);
  double worst = 0, changed = 0;
  for (int i = 0; i < T; i++) {
    int j0 = i - W + 1 > 0 ? i - W + 1 : 0, n = i - j0 + 1;
    fb_op_attention_forward(slice, NULL, q + (size_t)j0 * NH * HD, k + (size_t)j0 * NKV * HD,
                            v + (size_t)j0 * NKV * HD, NULL, scratch, 1, n, NH, NKV, HD, 0);
    for (int c = 0; c < NH * HD; c++) {
      float got = win[(size_t)i * NH * HD + c];
      worst = fmax(worst, fabs(got - slice[(size_t)(n - 1) * NH * HD + c]));
      if (i >= W) changed = fmax(changed, fabs(got - full[(size_t)i * NH * HD + c]));
    }
  }
  CHECK(worst < 1e-6);
  CHECK(changed > 1e-3); /* rows past the window differ from full attention */
  double early = 0;      /* rows < W see every key either way (within rounding: other blocks) */
  for (size_t c = 0; c < (size_t)W * NH * HD; c++) early = fmax(early, fabs(win[c] - full[c]));
  CHECK(early < 1e-6);
  free(q);
  free(k);
  free(v);
  free(win);
  free(full);
  free(slice);
  free(scratch);
}
TEST(sliding_window_sees_exactly_the_last_w_keys) {
  sees_exactly_the_last_w_keys(9, 3);
  sees_exactly_the_last_w_keys(256, 16); /* sixteen bands of 16 query rows */
  sees_exactly_the_last_w_keys(200, 70); /* a window past one block of rows */
}

/* The forward's saved log-sum-exp is log sum_j exp(q_i . k_j / sqrt(HD)) over exactly the keys i
 * may see (causal, windowed, its own sequence), across query blocks. */
static void lse_is_the_definitions(int window) {
  int B = 2, T = 70, NH = 4, NKV = 2, HD = 8, N = B * T;
  size_t nq = (size_t)N * NH * HD, nk = (size_t)N * NKV * HD;
  float *q = rnd(nq), *k = rnd(nk), *v = rnd(nk), *out = zeros(nq), *lse = zeros((size_t)N * NH);
  float *scratch = zeros(fb_op_attention_scratch(T));
  int32_t seg[140];
  for (int n = 0; n < N; n++) seg[n] = n < T ? (n % T < 30 ? 0 : n % T < 66 ? 1 : -1) : 5;
  fb_op_attention_forward(out, lse, q, k, v, seg, scratch, B, T, NH, NKV, HD, window);
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        int si = seg[b * T + i];
        double sum = 0;
        for (int j = 0; j <= i; j++) {
          int sj = seg[b * T + j];
          if ((window > 0 && i - j >= window) || (si < 0 ? j != i : sj != si)) continue;
          double dot = 0;
          for (int d = 0; d < HD; d++)
            dot += (double)q[((size_t)(b * T + i) * NH + h) * HD + d] *
                   k[((size_t)(b * T + j) * NKV + h / 2) * HD + d];
          sum += exp(dot / sqrt((double)HD));
        }
        worst = fmax(worst, fabs(lse[((size_t)b * NH + h) * T + i] - log(sum)));
      }
  CHECK(worst < 1e-5);
  free(q);
  free(k);
  free(v);
  free(out);
  free(lse);
  free(scratch);
}
TEST(attention_saves_each_querys_log_sum_exp) {
  lse_is_the_definitions(0);
  lse_is_the_definitions(16);
}

TEST(attention_packing_equals_separate_sequences) {
  int T = 6, NH = 2, NKV = 1, HD = 4, s1 = 2; /* sequence A = rows 0..1, B = rows 2..5 */
  size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
  float *q = rnd(nq), *k = rnd(nk), *v = rnd(nk), *packed = zeros(nq), *sep = zeros(nq);
  float *scratch = zeros(fb_op_attention_scratch(T));
  int32_t seg[6] = {0, 0, 1, 1, 1, 1};
  fb_op_attention_forward(packed, NULL, q, k, v, seg, scratch, 1, T, NH, NKV, HD, 0);
  fb_op_attention_forward(sep, NULL, q, k, v, NULL, scratch, 1, s1, NH, NKV, HD, 0);
  fb_op_attention_forward(sep + s1 * NH * HD, NULL, q + s1 * NH * HD, k + s1 * NKV * HD,
                          v + s1 * NKV * HD, NULL, scratch, 1, T - s1, NH, NKV, HD, 0);
  double worst = 0;
  for (size_t i = 0; i < nq; i++) worst = fmax(worst, fabs(packed[i] - sep[i]));
  CHECK(worst < 1e-6);
  /* and without the segments the second sequence does see the first */
  fb_op_attention_forward(packed, NULL, q, k, v, NULL, scratch, 1, T, NH, NKV, HD, 0);
  CHECK(fabs(packed[s1 * NH * HD] - sep[s1 * NH * HD]) > 1e-4);
  /* padding (seg -1) changes nothing for the real tokens before it */
  int32_t pad[6] = {0, 0, 0, 0, -1, -1};
  float *a = zeros(nq), *b = zeros(nq);
  fb_op_attention_forward(a, NULL, q, k, v, pad, scratch, 1, T, NH, NKV, HD, 0);
  fb_op_attention_forward(b, NULL, q, k, v, NULL, scratch, 1, 4, NH, NKV, HD, 0);
  worst = 0;
  for (size_t i = 0; i < (size_t)4 * NH * HD; i++) worst = fmax(worst, fabs(a[i] - b[i]));
  CHECK(worst < 1e-6);
  free(q);
  free(k);
  free(v);
  free(packed);
  free(sep);
  free(scratch);
  free(a);
  free(b);
}

/* Prefill, a chunk of three blocks, then one token: the same rows as one full pass. */
static void cached_matches_full(int window) {
  int T = 150, NH = 4, NKV = 2, HD = 8, p0 = 20; /* 130 new positions: three blocks */
  size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
  float *q = rnd(nq), *k = rnd(nk), *v = rnd(nk), *full = zeros(nq), *cached = zeros(nq);
  float *scratch = zeros(fb_op_attention_scratch(T));
  fb_op_attention_forward(full, NULL, q, k, v, NULL, scratch, 1, T, NH, NKV, HD, window);
  float *cs = zeros(fb_op_attention_cached_scratch(T));
  fb_op_attention_cached(cached, q, k, v, cs, p0, 0, NH, NKV, HD, window); /* prefill */
  fb_op_attention_cached(cached + p0 * NH * HD, q + p0 * NH * HD, k, v, cs, T - p0 - 1, p0, NH, NKV,
                         HD, window); /* a chunk */
  fb_op_attention_cached(cached + (T - 1) * NH * HD, q + (T - 1) * NH * HD, k, v, cs, 1, T - 1, NH,
                         NKV, HD, window); /* one token */
  double worst = 0;
  for (size_t i = 0; i < nq; i++) worst = fmax(worst, fabs(full[i] - cached[i]));
  CHECK(worst < 1e-6);
  free(q);
  free(k);
  free(v);
  free(full);
  free(cached);
  free(scratch);
  free(cs);
}
TEST(cached_attention_matches_full_attention_rows) { cached_matches_full(0); }
TEST(cached_attention_matches_full_attention_with_a_sliding_window) { cached_matches_full(37); }

struct sw {
  float *out, *g, *u, *R;
  size_t n;
};
static double sw_loss(void *p) {
  struct sw *s = p;
  fb_op_swiglu_forward(s->out, s->g, s->u, s->n);
  return dot(s->out, s->R, s->n);
}
TEST(swiglu_gradients) {
  struct sw s = {zeros(20), rnd(20), rnd(20), rnd(20), 20};
  for (int i = 0; i < 20; i++) s.g[i] *= 3.0f;
  float *dg = zeros(20), *du = zeros(20);
  fb_op_swiglu_backward(dg, du, s.R, s.g, s.u, 20);
  CHECK(fd_check("dgate", s.g, dg, 20, sw_loss, &s) < FD_TOL);
  CHECK(fd_check("dup", s.u, du, 20, sw_loss, &s) < FD_TOL);
  free(s.out);
  free(s.g);
  free(s.u);
  free(s.R);
  free(dg);
  free(du);
}

struct ce {
  float *losses, *logits;
  int32_t *t;
  int N, V;
};
static double ce_loss(void *p) {
  struct ce *c = p;
  fb_op_crossentropy_forward(c->losses, c->logits, c->t, c->N, c->V);
  double s = 0;
  for (int n = 0; n < c->N; n++) s += c->losses[n];
  return s / 3.0;
}
TEST(crossentropy_value_and_gradient) {
  int32_t t[4] = {2, -100, 0, 6};
  struct ce c = {zeros(4), rnd(28), t, 4, 7};
  for (int i = 0; i < 28; i++) c.logits[i] *= 4.0f;
  ce_loss(&c);
  double mx = -1e30, sum = 0;
  for (int i = 0; i < 7; i++) mx = fmax(mx, c.logits[i]);
  for (int i = 0; i < 7; i++) sum += exp(c.logits[i] - mx);
  CHECK_NEAR(c.losses[0], log(sum) + mx - c.logits[2], 1e-5);
  CHECK(c.losses[1] == 0.0f);
  float *d = zeros(28);
  fb_op_crossentropy_backward(d, c.logits, t, 4, 7, 1.0f / 3.0f);
  for (int i = 7; i < 14; i++) CHECK(d[i] == 0.0f);
  CHECK(fd_check("dlogits", c.logits, d, 28, ce_loss, &c) < FD_TOL);
  /* in place: dlogits may alias logits */
  float *copy = malloc(sizeof(float) * 28);
  memcpy(copy, c.logits, sizeof(float) * 28);
  fb_op_crossentropy_backward(copy, copy, t, 4, 7, 1.0f / 3.0f);
  for (int i = 0; i < 28; i++) CHECK_NEAR(copy[i], d[i], 1e-7);
  free(c.losses);
  free(c.logits);
  free(d);
  free(copy);
}

struct em {
  float *out, *table, *R;
  int32_t *ids;
};
static double em_loss(void *p) {
  struct em *e = p;
  fb_op_embedding_forward(e->out, e->ids, e->table, 4, 3);
  return dot(e->out, e->R, 12);
}
TEST(embedding_gradient_sums_repeated_ids) {
  int32_t ids[4] = {1, 4, 1, 0};
  struct em e = {zeros(12), rnd(15), rnd(12), ids};
  float *d = zeros(15);
  fb_op_embedding_backward(d, e.R, ids, 4, 3);
  CHECK_NEAR(d[3], e.R[0] + e.R[6], 1e-7);
  CHECK(d[6] == 0.0f); /* id 2 unused */
  CHECK(fd_check("dtable", e.table, d, 15, em_loss, &e) < FD_TOL);
  free(e.out);
  free(e.table);
  free(e.R);
  free(d);
}

TEST(dropout_is_seeded_scaled_and_reusable_for_backward) {
  size_t n = 20000;
  float *x = malloc(sizeof(float) * n), *a = zeros(n), *b = zeros(n);
  for (size_t i = 0; i < n; i++) x[i] = 1.0f;
  fb_op_dropout(a, x, n, 0.25f, 42);
  fb_op_dropout(b, x, n, 0.25f, 42);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK(a[i] == b[i]);
    if (a[i] != 0.0f) {
      kept++;
      CHECK_NEAR(a[i], 1.0f / 0.75f, 1e-6);
    }
  }
  CHECK_NEAR((double)kept / n, 0.75, 0.02);
  fb_op_dropout(b, x, n, 0.25f, 43);
  CHECK(memcmp(a, b, sizeof(float) * n) != 0);
  free(x);
  free(a);
  free(b);
}

TEST(adamw_matches_formula_over_two_steps) {
  float p[2] = {0.5f, -1.0f}, g[2] = {0.1f, -0.3f}, m[2] = {0}, v[2] = {0};
  double P[2] = {0.5, -1.0}, M[2] = {0}, V[2] = {0};
  double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (int t = 1; t <= 2; t++) {
    fb_op_adamw(p, g, m, v, 2, lr, b1, b2, eps, wd, t);
    for (int i = 0; i < 2; i++) {
      P[i] *= 1 - lr * wd;
      M[i] = b1 * M[i] + (1 - b1) * g[i];
      V[i] = b2 * V[i] + (1 - b2) * g[i] * g[i];
      P[i] -= lr * (M[i] / (1 - pow(b1, t))) / (sqrt(V[i] / (1 - pow(b2, t))) + eps);
    }
  }
  for (int i = 0; i < 2; i++) {
    CHECK_NEAR(p[i], P[i], 1e-6);
    CHECK_NEAR(m[i], M[i], 1e-7);
    CHECK_NEAR(v[i], V[i], 1e-6 * V[i]);
    CHECK_NEAR(m[i], M[i], 1e-6 * fabs(M[i]));
  }
}

TEST(sumsq_and_scale) {
  float x[3] = {1, 2, 3};
  CHECK_NEAR(fb_op_sumsq(x, 3), 14.0, 1e-12);
  fb_op_scale(x, 3, 0.5f);
  CHECK_NEAR(x[2], 1.5, 1e-7);
  float o[3];
  fb_op_add(o, x, x, 3);
  CHECK_NEAR(o[1], 2.0, 1e-7);
}
