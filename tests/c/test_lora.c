/* test_lora.c: the model with LoRA on tiny random models: finite-difference gradients through
 * the whole network (LoRA A/B, with dropout, with a sliding window, Qwen3's q/k norms, and
 * full-parameter mode),
 * q/k/v's and gate/up's shared LoRA products against the per-projection ones and a reference,
 * the checkpoint order of the adapter's arena,
 * B = 0 leaves the base logits, merging equals base + adapter, PEFT save/load round trip, model
 * directory round trip and its loading errors, the optimizer schedule and clipping, and loss
 * going down. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "adapter_config.h"
#include "cpu_backend.h"
#include "fsutil.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"
#include "test.h"

static fb_model_config tiny_config(int tied, int bias) {
  fb_model_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.architecture, sizeof c.architecture, "%s",
           bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
  c.arch = bias ? FB_ARCH_QWEN2 : FB_ARCH_LLAMA;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.attention_bias = bias;
  c.bos_token_id = -1;
  return c;
}

/* Qwen3: head_dim 6 (hidden / heads would be 4), q_norm and k_norm, attention_bias (q, k, v and
 * o_proj) as given. */
static fb_model_config tiny_qwen3_config(int tied, int bias) {
  fb_model_config c = tiny_config(tied, 0);
  snprintf(c.architecture, sizeof c.architecture, "Qwen3ForCausalLM");
  c.arch = FB_ARCH_QWEN3;
  c.head_dim = 6;
  c.qk_norm = 1;
  c.attention_bias = c.o_bias = bias;
  return c;
}

static fb_model *model_of(const fb_model_config *c, uint64_t seed) {
  fb_model *m = NULL;
  fb_err err = {0};
  if (fb_model_create(&m, c, &err)) fprintf(stderr, "%s\n", err.msg);
  if (m) fb_model_init_random(m, seed, 0.4f);
  return m;
}

static fb_model *tiny_model(int tied, int bias, uint64_t seed) {
  fb_model_config c = tiny_config(tied, bias);
  return model_of(&c, seed);
}

/* A tiny Qwen3 whose q_norm and k_norm weights are away from 1 (else their gradients and their
 * scaling of the heads go untested). */
static fb_model *tiny_qwen3(int tied, int bias, uint64_t seed) {
  fb_model_config c = tiny_qwen3_config(tied, bias);
  fb_model *m = model_of(&c, seed);
  for (int i = 0; m && i < m->L; i++)
    for (int d = 0; d < m->HD; d++) {
      m->layers[i].q_norm[d] = 1.0f + 0.15f * (float)((d * 7 + i * 3) % 5 - 2);
      m->layers[i].k_norm[d] = 1.0f - 0.1f * (float)((d * 5 + i) % 5 - 2);
    }
  return m;
}

static fb_lora *tiny_lora(fb_model *m, unsigned targets, double dropout, int nonzero_b) {
  fb_adapter_config ac = {.r = 2, .lora_alpha = 4, .lora_dropout = dropout, .targets = targets};
  fb_lora *l = NULL;
  fb_err err = {0};
  if (fb_lora_create(&l, m, &ac, &err)) fprintf(stderr, "%s\n", err.msg);
  if (!l) return NULL;
  if (fb_lora_init(l, 5, &err)) fprintf(stderr, "%s\n", err.msg);
  unsigned s = 99;
  if (nonzero_b)
    for (size_t i = 0; i < l->n_floats; i++) {
      s = s * 1664525u + 1013904223u;
      l->params[i] += ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.6f; /* B non-zero too */
    }
  return l;
}

/* Two rows of 6: row 0 packs two sequences (segments 0, 1), row 1 ends in padding. */
static const int32_t ids[12] = {1, 4, 7, 2, 9, 3, 5, 5, 0, 10, 6, 6};
static const int32_t labels[12] = {-100, 4, 7, -100, 9, 3, -100, 5, 0, 10, -100, -100};
static const int32_t seg[12] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 0, -1, -1};
static const int32_t pos[12] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 0};
static const fb_batch batch = {2, 6, ids, labels, pos, seg};

static double loss_of(fb_model *m, fb_lora *l, int training) {
  fb_err err = {0};
  if (fb_model_forward(m, l, &batch, training, &err)) fprintf(stderr, "%s\n", err.msg);
  return m->loss;
}

/* Central differences of step h over every stride-th element of x[n] against grad[n]; the worst
 * error relative to the largest gradient. */
static double fd_step(fb_model *m, fb_lora *l, int training, float *x, const float *grad, size_t n,
                      size_t stride, float h) {
  double gmax = 1e-4, worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
  for (size_t i = 0; i < n; i += stride) {
    float keep = x[i];
    x[i] = keep + h;
    double lp = loss_of(m, l, training);
    x[i] = keep - h;
    double lm = loss_of(m, l, training);
    x[i] = keep;
    double e = fabs((lp - lm) / (2 * h) - grad[i]) / gmax;
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  if (worst > 5e-3)
    fprintf(stderr, "  worst at %zu: analytic %.6g, relative error %.3g (gmax %.3g)\n", at,
            grad[at], worst, gmax);
  return worst;
}

static double fd(fb_model *m, fb_lora *l, int training, float *x, const float *grad, size_t n,
                 size_t stride) {
  return fd_step(m, l, training, x, grad, n, stride, 5e-3f);
}

/* LoRA gradients of model m (taken, freed) against finite differences, every target on; window > 0:
 * a sliding window on layers first_window_layer.. (Qwen2's layout). *worst: the worst error. */
static void lora_grad_check_on(fb_model *m, double dropout, int window, int first_window_layer,
                               double *worst) {
  REQUIRE(m);
  fb_model_config_set_window(&m->cfg, window, first_window_layer);
  fb_lora *l = tiny_lora(m, FB_TARGET_ALL, dropout, 1);
  REQUIRE(l);
  fb_err err = {0};
  l->step = 7;
  loss_of(m, l, 1);
  CHECK_INT(m->n_counted, 7);
  fb_lora_zero_grad(l);
  CHECK_INT(fb_model_backward(m, l, &batch, &err), 0);
  float *g = malloc(sizeof(float) * l->n_floats);
  memcpy(g, l->grads, sizeof(float) * l->n_floats);
  CHECK(fb_op_sumsq(g, l->n_floats) > 1e-6);
  *worst = fd(m, l, 1, l->params, g, l->n_floats, 1);
  CHECK(*worst < 5e-3);
  free(g);
  fb_lora_free(l);
  fb_model_free(m);
}

static void lora_grad_check(int tied, int bias, double dropout, int window,
                            int first_window_layer) {
  double worst;
  lora_grad_check_on(tiny_model(tied, bias, 3), dropout, window, first_window_layer, &worst);
}

TEST(model_lora_gradients_match_finite_differences) { lora_grad_check(0, 0, 0, 0, 0); }
TEST(model_lora_gradients_tied_with_bias) { lora_grad_check(1, 1, 0, 0, 0); }
TEST(model_lora_gradients_with_dropout) { lora_grad_check(0, 0, 0.3, 0, 0); }
TEST(model_lora_gradients_with_a_sliding_window) { lora_grad_check(0, 0, 0, 2, 0); }
TEST(model_lora_gradients_with_a_window_on_the_last_layer) { lora_grad_check(1, 1, 0, 2, 1); }

/* Qwen3: the LoRA deltas of q_proj and k_proj pass through q_norm and k_norm (and rope). */
TEST(model_lora_gradients_qwen3) {
  double e = 1;
  lora_grad_check_on(tiny_qwen3(1, 0, 3), 0, 0, 0, &e);
  printf("  qwen3 (tied, no bias): LoRA A/B vs finite differences, worst relative error %.2g\n", e);
}
TEST(model_lora_gradients_qwen3_bias_dropout_window) {
  double e = 1;
  lora_grad_check_on(tiny_qwen3(0, 1, 5), 0.3, 2, 1, &e);
  printf("  qwen3 (untied, biases, dropout 0.3, window 2 on layer 1): worst relative error %.2g\n",
         e);
}

/* A sliding window as long as the rows changes nothing, a shorter one changes the loss, and
 * each layer takes its own (the windowed attention itself is checked in test_ops.c and against
 * PyTorch). */
TEST(sliding_window_applies_only_past_its_length) {
  fb_model *m = tiny_model(0, 0, 3);
  REQUIRE(m);
  double full = loss_of(m, NULL, 0);
  fb_model_config_set_window(&m->cfg, 6, 0);
  CHECK(loss_of(m, NULL, 0) == full);
  fb_model_config_set_window(&m->cfg, 2, 0);
  double all = loss_of(m, NULL, 0);
  CHECK(fabs(all - full) > 1e-4);
  fb_model_config_set_window(&m->cfg, 2, 1);
  double last = loss_of(m, NULL, 0);
  CHECK(fabs(last - full) > 1e-4 && fabs(last - all) > 1e-4);
  fb_model_free(m);
}

TEST(model_full_parameter_gradients_match_finite_differences) {
  for (int tied = 0; tied < 2; tied++) {
    fb_model *m = tiny_model(tied, !tied, 11);
    REQUIRE(m);
    fb_err err = {0};
    REQUIRE(fb_model_enable_grads(m, &err) == 0);
    fb_lora *l = tiny_lora(m, FB_TARGET_Q_PROJ | FB_TARGET_DOWN_PROJ, 0, 1); /* both at once */
    loss_of(m, l, 0);
    fb_model_zero_grad(m);
    fb_lora_zero_grad(l);
    CHECK_INT(fb_model_backward(m, l, &batch, &err), 0);
    float *g = malloc(sizeof(float) * m->n_floats);
    memcpy(g, m->grads, sizeof(float) * m->n_floats);
    CHECK(fd(m, l, 0, m->params, g, m->n_floats, 5) < 5e-3); /* 1 in 5 hits every tensor */
    free(g);
    fb_lora_free(l);
    fb_model_free(m);
  }
}

/* Qwen3 in full-parameter mode: every weight (1 in 5) and, one by one, every element of q_norm and
 * k_norm, whose gradients accumulate as the other norms' do. */
TEST(model_full_parameter_gradients_qwen3) {
  for (int bias = 0; bias < 2; bias++) {
    fb_model *m = tiny_qwen3(bias, bias, 13);
    REQUIRE(m);
    fb_err err = {0};
    REQUIRE(fb_model_enable_grads(m, &err) == 0);
    fb_lora *l = tiny_lora(m, FB_TARGET_Q_PROJ | FB_TARGET_K_PROJ, 0, 1);
    REQUIRE(l);
    loss_of(m, l, 0);
    fb_model_zero_grad(m);
    fb_lora_zero_grad(l);
    CHECK_INT(fb_model_backward(m, l, &batch, &err), 0);
    float *g = malloc(sizeof(float) * m->n_floats);
    memcpy(g, m->grads, sizeof(float) * m->n_floats);
    double all = fd(m, l, 0, m->params, g, m->n_floats, 5), norms = 0;
    CHECK(all < 5e-3);
    int seen = 0;
    for (int i = 0; i < m->n_table; i++) {
      const fb_param *p = &m->table[i];
      if (!strstr(p->name, "q_norm.weight") && !strstr(p->name, "k_norm.weight")) continue;
      CHECK_INT(p->numel, 6);
      CHECK(fb_op_sumsq(g + p->offset, p->numel) > 1e-8);
      /* their gradients are ~1e-2, where the f32 loss's rounding over 2h = 1e-2 is ~2e-5: a wider
       * step (the loss is smooth in a norm weight) keeps that noise well under the bound */
      norms =
          fmax(norms, fd_step(m, l, 0, m->params + p->offset, g + p->offset, p->numel, 1, 2e-2f));
      seen++;
    }
    CHECK_INT(seen, 4);
    CHECK(norms < 5e-3);
    printf("  qwen3 full-parameter (%s): every weight worst %.2g, q_norm/k_norm worst %.2g\n",
           bias ? "tied, q/k/v/o bias" : "untied, no bias", all, norms);
    free(g);
    fb_lora_free(l);
    fb_model_free(m);
  }
}

/* ---- q/k/v's and gate/up's shared LoRA products ---- */

static int n_products; /* gemm calls since it was last zeroed, through counting_backend */

static void counting_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *a, int lda,
                          const float *b, int ldb, float beta, float *c, int ldc) {
  n_products++;
  fb_backend_cpu()->gemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

static float *random_floats(size_t n, unsigned *s) {
  float *x = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    *s = *s * 1664525u + 1013904223u;
    x[i] = (float)(*s >> 8) / 8388608.0f - 1.0f;
  }
  return x;
}

static float *copy_of(const float *x, size_t n) {
  float *y = malloc(n * sizeof(float));
  memcpy(y, x, n * sizeof(float));
  return y;
}

/* The largest |a - b| / (1 + |b|) over n. */
static double max_rel(const float *a, const float *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
    worst = d > worst ? d : worst;
  }
  return worst;
}

/* out[N,out] + s (x A^T) B^T in double, or out where p is not targeted: the forward's reference. */
static void naive_forward(const fb_lora *l, int layer, int p, const float *x, int N, float *out) {
  const fb_lora_pair *q = &l->pairs[layer * FB_PROJ_COUNT + p];
  if (!q->A) return;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < q->out; o++) {
      double acc = 0;
      for (int k = 0; k < l->r; k++) {
        double u = 0;
        for (int c = 0; c < q->in; c++) u += (double)x[n * q->in + c] * q->A[k * q->in + c];
        acc += u * q->B[o * l->r + k];
      }
      out[n * q->out + o] += (float)(l->scale * acc);
    }
}

/* One group (first, count) of layer 1 through the shared path (path 0) or projection by
 * projection (path 1): outputs, input gradient and the adapter's gradients, and the products
 * each direction took. */
typedef struct group_run {
  float *outs[3], *dinp, *grads;
  int fwd_products, bwd_products;
} group_run;

static group_run run_group(fb_lora *l, int first, int count, int shared, const float *x,
                           float *const *init, const size_t *sizes, const float *const *douts,
                           const float *dinp0, int N, int in) {
  group_run g = {{NULL}, copy_of(dinp0, (size_t)N * in), NULL, 0, 0};
  for (int j = 0; j < count; j++) g.outs[j] = copy_of(init[j], sizes[j]);
  fb_lora_zero_grad(l);
  n_products = 0;
  for (int j = 0; j < (shared ? 1 : count); j++)
    fb_lora_forward(l, 1, first + j, shared ? count : 1, g.outs + j, x, N, 1);
  g.fwd_products = n_products;
  n_products = 0;
  for (int j = 0; j < (shared ? 1 : count); j++)
    fb_lora_backward(l, 1, first + j, shared ? count : 1, g.dinp, douts + j, x, N, 1);
  g.bwd_products = n_products;
  g.grads = copy_of(l->grads, l->n_floats);
  return g;
}

static void free_run(group_run *g, int count) {
  for (int j = 0; j < count; j++) free(g->outs[j]);
  free(g->dinp);
  free(g->grads);
}

/* For each group (q, k, v; gate, up): the shared path's outputs equal a double-precision
 * reference, its outputs and gradients equal the per-projection path's, and it takes 1 + G
 * products forward (2G per projection) and 2 + 2G backward (4G) for G targeted projections. */
static void shared_products_match(unsigned targets) {
  fb_model *m = tiny_model(0, 0, 3);
  fb_lora *l = m ? tiny_lora(m, targets, 0, 1) : NULL;
  REQUIRE(l);
  fb_backend counting = *l->be;
  counting.gemm = counting_gemm;
  l->be = &counting;
  int N = 5, C = m->C;
  fb_err err = {0};
  REQUIRE(fb_lora_reserve(l, N, &err) == 0);
  static const int groups[2][2] = {{FB_PROJ_Q, 3}, {FB_PROJ_GATE, 2}};
  unsigned s = 7;
  float *x = random_floats((size_t)N * C, &s), *dinp0 = random_floats((size_t)N * C, &s);
  for (int gi = 0; gi < 2; gi++) {
    int first = groups[gi][0], count = groups[gi][1], G = 0;
    float *init[3], *douts[3];
    size_t sizes[3];
    for (int j = 0; j < count; j++) {
      sizes[j] = (size_t)N * m->layers[1].proj[first + j].out;
      init[j] = random_floats(sizes[j], &s);
      douts[j] = random_floats(sizes[j], &s);
      G += fb_lora_targets(l, first + j);
    }
    const float *const *d = (const float *const *)douts;
    group_run sh = run_group(l, first, count, 1, x, init, sizes, d, dinp0, N, C);
    group_run one = run_group(l, first, count, 0, x, init, sizes, d, dinp0, N, C);
    for (int j = 0; j < count; j++) {
      naive_forward(l, 1, first + j, x, N, init[j]);
      CHECK(max_rel(sh.outs[j], init[j], sizes[j]) < 1e-6);
      CHECK(max_rel(sh.outs[j], one.outs[j], sizes[j]) < 1e-6);
    }
    CHECK(max_rel(sh.dinp, one.dinp, (size_t)N * C) < 1e-6);
    CHECK(max_rel(sh.grads, one.grads, l->n_floats) < 1e-6);
    CHECK(max_rel(sh.dinp, dinp0, (size_t)N * C) > 1e-3 || G == 0); /* the gradient got there */
    CHECK_INT(sh.fwd_products, G ? 1 + G : 0);
    CHECK_INT(one.fwd_products, 2 * G);
    CHECK_INT(sh.bwd_products, G ? 2 + 2 * G : 0);
    CHECK_INT(one.bwd_products, 4 * G);
    free_run(&sh, count);
    free_run(&one, count);
    for (int j = 0; j < count; j++) free(init[j]), free(douts[j]);
  }
  free(x);
  free(dinp0);
  fb_lora_free(l);
  fb_model_free(m);
}

TEST(shared_lora_products_q_v) { shared_products_match(FB_TARGET_Q_PROJ | FB_TARGET_V_PROJ); }
TEST(shared_lora_products_all) { shared_products_match(FB_TARGET_ALL); }
TEST(shared_lora_products_k_up) { shared_products_match(FB_TARGET_K_PROJ | FB_TARGET_UP_PROJ); }

/* Checkpoints store the arena in file order (pair by pair, A then B) whatever the arena's: the
 * order is the one they always had, and from_file_order undoes to_file_order. */
TEST(lora_file_order_is_pair_by_pair) {
  fb_model *m = tiny_model(0, 0, 3);
  fb_lora *l = m ? tiny_lora(m, FB_TARGET_ALL & ~FB_TARGET_K_PROJ, 0, 1) : NULL;
  REQUIRE(l);
  float *file = malloc(l->n_floats * sizeof(float)), *back = malloc(l->n_floats * sizeof(float));
  fb_lora_to_file_order(l, file, l->params);
  size_t off = 0;
  for (int i = 0; i < l->L * FB_PROJ_COUNT; i++) {
    const fb_lora_pair *q = &l->pairs[i];
    if (!q->A) continue;
    CHECK(memcmp(file + off, q->A, sizeof(float) * l->r * q->in) == 0);
    off += (size_t)l->r * q->in;
    CHECK(memcmp(file + off, q->B, sizeof(float) * l->r * q->out) == 0);
    off += (size_t)l->r * q->out;
  }
  CHECK(off == l->n_floats);
  fb_lora_from_file_order(l, back, file);
  CHECK(memcmp(back, l->params, l->n_floats * sizeof(float)) == 0);
  /* the arena is not in file order: q's A is followed by v's (k is not targeted) */
  CHECK(l->pairs[FB_PROJ_V].A == l->pairs[FB_PROJ_Q].A + l->r * m->C);
  free(file);
  free(back);
  fb_lora_free(l);
  fb_model_free(m);
}

TEST(lora_with_zero_b_leaves_base_logits) {
  fb_model *m = tiny_model(0, 1, 4);
  REQUIRE(m);
  size_t n = (size_t)12 * m->V;
  float *base = malloc(sizeof(float) * n);
  loss_of(m, NULL, 0);
  memcpy(base, fb_model_logits(m), sizeof(float) * n);
  fb_lora *l = tiny_lora(m, FB_TARGET_ALL, 0, 0);
  REQUIRE(l);
  CHECK(fb_op_sumsq(l->params, l->n_floats) > 0); /* A is initialised, B is zero */
  loss_of(m, l, 0);
  double worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(base[i] - fb_model_logits(m)[i]));
  CHECK(worst == 0.0);
  free(base);
  fb_lora_free(l);
  fb_model_free(m);
}

TEST(merged_model_gives_base_plus_adapter_logits) {
  fb_model *m = tiny_model(1, 0, 8);
  REQUIRE(m);
  fb_lora *l = tiny_lora(m, FB_TARGET_ALL & ~FB_TARGET_K_PROJ, 0, 1);
  REQUIRE(l);
  size_t n = (size_t)12 * m->V;
  float *with = malloc(sizeof(float) * n);
  loss_of(m, l, 0);
  memcpy(with, fb_model_logits(m), sizeof(float) * n);
  loss_of(m, NULL, 0);
  double differs = 0;
  for (size_t i = 0; i < n; i++) differs = fmax(differs, fabs(with[i] - fb_model_logits(m)[i]));
  CHECK(differs > 1e-3); /* the adapter matters */
  fb_err err = {0};
  REQUIRE(fb_lora_merge(l, m, &err) == 0);
  loss_of(m, NULL, 0);
  double worst = 0, mag = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs(with[i] - fb_model_logits(m)[i]));
    mag = fmax(mag, fabs(with[i]));
  }
  CHECK(worst <= 1e-5 * fmax(1.0, mag));
  free(with);
  fb_lora_free(l);
  fb_model_free(m);
}

static char tmpdir[256];
static const char *make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fb_test_lora_XXXXXX");
  return mkdtemp(tmpdir);
}
static void rm_rf(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

TEST(adapter_save_load_round_trip) {
  fb_model *m = tiny_model(0, 0, 2);
  REQUIRE(m);
  fb_lora *l = tiny_lora(m, FB_TARGET_V_PROJ | FB_TARGET_UP_PROJ, 0.1, 1);
  REQUIRE(l && make_tmpdir());
  l->cfg.use_rslora = 1;
  fb_err err = {0};
  CHECK_INT(fb_lora_save(l, tmpdir, &err), 0);
  fb_lora *back = NULL;
  CHECK_INT(fb_lora_load(&back, m, tmpdir, &err), 0);
  REQUIRE(back);
  CHECK_INT(back->r, 2);
  CHECK_INT(back->cfg.targets, FB_TARGET_V_PROJ | FB_TARGET_UP_PROJ);
  CHECK(back->cfg.use_rslora);
  CHECK_NEAR(back->scale, 4 / sqrt(2.0), 1e-6);
  CHECK_NEAR(back->cfg.lora_dropout, 0.1, 1e-12);
  REQUIRE(back->n_floats == l->n_floats);
  CHECK(memcmp(back->params, l->params, sizeof(float) * l->n_floats) == 0);
  /* the file holds PEFT's names and shapes */
  char path[512];
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", tmpdir);
  fb_st_file *f = NULL;
  REQUIRE(fb_st_open(&f, path, &err) == 0);
  const fb_st_tensor *t =
      fb_st_find(f, "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight");
  REQUIRE(t);
  CHECK_INT(t->shape[0], 12);
  CHECK_INT(t->shape[1], 2);
  CHECK_INT(fb_st_count(f), 8);
  /* an adapter of another rank does not read it: the error names the tensor and both shapes */
  fb_adapter_config other = l->cfg;
  other.r = 3;
  fb_lora *wrong = NULL;
  REQUIRE(fb_lora_create(&wrong, m, &other, &err) == 0);
  CHECK(fb_lora_read(wrong, f, "", &err) != 0);
  CHECK_CONTAINS(err.msg, "layers.0.self_attn.v_proj.lora_A.weight");
  CHECK_CONTAINS(err.msg, "[2, 8]");
  CHECK_CONTAINS(err.msg, "[3, 8]");
  fb_lora_free(wrong);
  /* one with fewer targets finds tensors it does not own */
  other.r = 2;
  other.targets = FB_TARGET_V_PROJ;
  REQUIRE(fb_lora_create(&wrong, m, &other, &err) == 0);
  CHECK(fb_lora_read(wrong, f, "", &err) != 0);
  CHECK_CONTAINS(err.msg, "up_proj");
  fb_lora_free(wrong);
  fb_st_close(f);
  fb_lora_free(back);
  fb_lora_free(l);
  fb_model_free(m);
  rm_rf(tmpdir);
}

static const char config_json[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 11,"
    " \"hidden_size\": 8, \"intermediate_size\": 12, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 10000.0, \"max_position_embeddings\": 64, \"tie_word_embeddings\": false}";

TEST(model_directory_round_trip_and_load_errors) {
  fb_model *m = tiny_model(0, 0, 6);
  REQUIRE(m && make_tmpdir());
  char path[512];
  fb_err err = {0};
  snprintf(path, sizeof path, "%s/config.json", tmpdir);
  FILE *fp = fopen(path, "w");
  REQUIRE(fp);
  fputs(config_json, fp);
  fclose(fp);
  CHECK_INT(fb_model_save(m, tmpdir, tmpdir, &err), 0);
  fb_model *back = NULL;
  CHECK_INT(fb_model_load(&back, tmpdir, &err), 0);
  REQUIRE(back);
  REQUIRE(back->n_floats == m->n_floats);
  CHECK(memcmp(back->params, m->params, sizeof(float) * m->n_floats) == 0);
  fb_model_free(back);
  const fb_param *down = fb_model_param(m, "model.layers.1.mlp.down_proj.weight");
  REQUIRE(down);
  CHECK(down->shape[0] == 8 && down->shape[1] == 12); /* [hidden, ffn] */
  /* rewrite the weights with one tensor missing, then one mis-shaped, then one extra */
  snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
  fb_st_out *t = calloc((size_t)m->n_table + 1, sizeof *t);
  for (int i = 0; i < m->n_table; i++) {
    const fb_param *p = &m->table[i];
    t[i] =
        (fb_st_out){p->name, FB_DT_F32, p->ndim, {p->shape[0], p->shape[1]}, m->params + p->offset};
  }
  const fb_param *wq = fb_model_param(m, "model.layers.1.self_attn.k_proj.weight");
  REQUIRE(wq);
  int k = (int)(wq - m->table);
  fb_st_out saved = t[k];
  t[k] = t[m->n_table - 1];
  REQUIRE(fb_st_write(path, t, m->n_table - 1, NULL, &err) == 0);
  CHECK(fb_model_load(&back, tmpdir, &err) != 0);
  CHECK(back == NULL);
  CHECK_CONTAINS(err.msg, "model.layers.1.self_attn.k_proj.weight");
  CHECK_CONTAINS(err.msg, "[4, 8]");
  CHECK_CONTAINS(err.msg, "missing");
  t[k] = saved;
  t[k].shape[0] = 2; /* [2, 8]: the data is 16 floats of the real 32 */
  REQUIRE(fb_st_write(path, t, m->n_table, NULL, &err) == 0);
  CHECK(fb_model_load(&back, tmpdir, &err) != 0);
  CHECK_CONTAINS(err.msg, "has shape [2, 8], expected [4, 8]");
  t[k] = saved;
  t[m->n_table] = (fb_st_out){"model.layers.2.mlp.up_proj.weight", FB_DT_F32, 1, {4, 0}, m->params};
  REQUIRE(fb_st_write(path, t, m->n_table + 1, NULL, &err) == 0);
  CHECK(fb_model_load(&back, tmpdir, &err) != 0);
  CHECK_CONTAINS(err.msg, "unexpected tensor 'model.layers.2.mlp.up_proj.weight' [4]");
  free(t);
  fb_model_free(m);
  rm_rf(tmpdir);
}

TEST(bad_inputs_are_refused_with_a_named_position) {
  fb_model *m = tiny_model(0, 0, 1);
  REQUIRE(m);
  fb_err err = {0};
  int32_t bad_ids[2] = {3, 11}, bad_labels[2] = {0, 12};
  fb_batch b = {1, 2, bad_ids, NULL, NULL, NULL};
  CHECK(fb_model_forward(m, NULL, &b, 0, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "input_ids[0][1] = 11");
  bad_ids[1] = 2;
  b.labels = bad_labels;
  CHECK(fb_model_forward(m, NULL, &b, 0, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "labels[0][1] = 12");
  fb_batch huge = {1 << 16, 1 << 16, bad_ids, NULL, NULL, NULL}; /* B*T overflows an int */
  CHECK(fb_model_forward(m, NULL, &huge, 0, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "[65536, 65536]");
  fb_adapter_config ac = {.r = 0, .lora_alpha = 1, .targets = FB_TARGET_Q_PROJ};
  fb_lora *l = NULL;
  CHECK(fb_lora_create(&l, m, &ac, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "r 0");
  fb_model_free(m);
}

TEST(training_steps_lower_the_loss) {
  fb_model *m = tiny_model(0, 0, 21);
  REQUIRE(m);
  fb_lora *l = tiny_lora(m, FB_TARGET_ALL, 0, 0);
  fb_optim_config oc = fb_optim_defaults();
  oc.lr = 3e-2;
  oc.max_grad_norm = 1.0;
  fb_optim *o = NULL;
  fb_err err = {0};
  REQUIRE(fb_optim_create(&o, m->be, l->n_floats, &oc, &err) == 0);
  double first = loss_of(m, l, 1), last = first;
  for (int s = 0; s < 30; s++) {
    last = loss_of(m, l, 1);
    fb_lora_zero_grad(l);
    REQUIRE(fb_model_backward(m, l, &batch, &err) == 0);
    fb_optim_clip(o, l->grads, oc.max_grad_norm);
    REQUIRE(fb_optim_step(o, l->params, l->grads, fb_optim_lr(&oc, s), &err) == 0);
  }
  CHECK(last < 0.7 * first);
  fb_optim_free(o);
  fb_lora_free(l);
  fb_model_free(m);
}

TEST(optimizer_schedule_clipping_and_refusals) {
  fb_optim_config c = fb_optim_defaults();
  c.lr = 1.0;
  c.warmup_steps = 4;
  c.total_steps = 14;
  c.min_lr_ratio = 0.1;
  c.schedule = FB_SCHED_COSINE;
  CHECK_NEAR(fb_optim_lr(&c, 0), 0.25, 1e-12);
  CHECK_NEAR(fb_optim_lr(&c, 3), 1.0, 1e-12);
  CHECK_NEAR(fb_optim_lr(&c, 4), 1.0, 1e-12);
  CHECK_NEAR(fb_optim_lr(&c, 9), 0.55, 1e-12); /* halfway: floor + (1 - floor) / 2 */
  CHECK_NEAR(fb_optim_lr(&c, 14), 0.1, 1e-12);
  CHECK_NEAR(fb_optim_lr(&c, 99), 0.1, 1e-12);
  c.schedule = FB_SCHED_LINEAR;
  CHECK_NEAR(fb_optim_lr(&c, 9), 0.55, 1e-12);
  CHECK_NEAR(fb_optim_lr(&c, 6), 1.0 - 0.9 * 0.2, 1e-12);
  fb_optim *o = NULL;
  fb_err err = {0};
  c.beta2 = 1.0;
  CHECK(fb_optim_create(&o, fb_backend_cpu(), 2, &c, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "beta2");
  c.beta2 = 0.999;
  REQUIRE(fb_optim_create(&o, fb_backend_cpu(), 2, &c, &err) == 0);
  float g[2] = {3, 4};
  CHECK_NEAR(fb_optim_clip(o, g, 1.0), 5.0, 1e-9);
  CHECK_NEAR(sqrt(fb_op_sumsq(g, 2)), 1.0, 1e-5);
  CHECK_NEAR(fb_optim_clip(o, g, 0), 1.0, 1e-5);
  float p[2] = {1, 1}, bad[2] = {NAN, 0};
  CHECK(fb_optim_step(o, p, bad, 0.1, &err) == FB_ENUMERIC);
  CHECK(p[0] == 1.0f && o->t == 0);
  fb_optim_free(o);
}

TEST(merged_model_directory_loads_with_the_adapter_logits) {
  fb_model *m = tiny_model(0, 0, 6); /* the shape config_json describes */
  REQUIRE(m && make_tmpdir());
  fb_lora *l = tiny_lora(m, FB_TARGET_ALL, 0, 1);
  REQUIRE(l);
  char src[300], out[300], path[400];
  fb_err err = {0};
  snprintf(src, sizeof src, "%s/base", tmpdir);
  snprintf(out, sizeof out, "%s/merged", tmpdir);
  REQUIRE(fb_mkdir_p(src, &err) == 0);
  snprintf(path, sizeof path, "%s/config.json", src);
  FILE *fp = fopen(path, "w");
  REQUIRE(fp);
  fputs(config_json, fp);
  fclose(fp);
  size_t n = (size_t)12 * m->V;
  float *with = malloc(sizeof(float) * n);
  loss_of(m, l, 0);
  memcpy(with, fb_model_logits(m), sizeof(float) * n);
  CHECK_INT(fb_lora_merge(l, m, &err), 0);
  CHECK_INT(fb_model_save(m, src, out, &err), 0);
  fb_model *merged = NULL;
  CHECK_INT(fb_model_load(&merged, out, &err), 0);
  REQUIRE(merged);
  loss_of(merged, NULL, 0);
  double worst = 0, mag = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs(with[i] - fb_model_logits(merged)[i]));
    mag = fmax(mag, fabs(with[i]));
  }
  CHECK(worst <= 1e-5 * fmax(1.0, mag));
  free(with);
  fb_model_free(merged);
  fb_lora_free(l);
  fb_model_free(m);
  rm_rf(tmpdir);
}

TEST(created_model_saves_a_config_that_loads_back) {
  fb_model_config c = tiny_config(1, 1); /* Qwen2, tied */
  c.rope_scaling.type = FB_ROPE_LLAMA3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 32;
  c.n_eos = 2;
  c.eos_token_ids[0] = 2;
  c.eos_token_ids[1] = 7;
  fb_model *m = NULL, *back = NULL;
  fb_err err = {0};
  REQUIRE(fb_model_create(&m, &c, &err) == 0 && make_tmpdir());
  fb_model_init_random(m, 9, 0.3f);
  CHECK_INT(fb_model_save(m, NULL, tmpdir, &err), 0);
  CHECK_INT(fb_model_load(&back, tmpdir, &err), 0);
  REQUIRE(back);
  CHECK_STR(back->cfg.architecture, "Qwen2ForCausalLM");
  CHECK(back->cfg.tie_word_embeddings && back->cfg.attention_bias && !back->cfg.o_bias);
  CHECK_INT(back->cfg.head_dim, 4);
  CHECK_INT(back->cfg.rope_scaling.type, FB_ROPE_LLAMA3);
  CHECK_INT(back->cfg.rope_scaling.original_max_position_embeddings, 32);
  CHECK_INT(back->cfg.n_eos, 2);
  CHECK_INT(back->cfg.eos_token_ids[1], 7);
  CHECK_NEAR(back->cfg.rms_norm_eps, 1e-6, 1e-18);
  REQUIRE(back->n_floats == m->n_floats);
  CHECK(memcmp(back->params, m->params, sizeof(float) * m->n_floats) == 0);
  fb_model_free(back);
  fb_model_free(m);
  rm_rf(tmpdir);
}

/* Qwen3 made from a config: its config.json parses back the same (head_dim that is not hidden /
 * heads, q_norm/k_norm, attention_bias on q, k, v and o), its weights load back bit for bit, and
 * a checkpoint without a layer's k_norm is refused by name. */
TEST(created_qwen3_saves_a_config_that_loads_back) {
  for (int bias = 0; bias < 2; bias++) {
    fb_model_config c = tiny_qwen3_config(bias, bias);
    fb_model_config_set_window(&c, 3, 1);
    fb_model *m = NULL, *back = NULL;
    fb_err err = {0};
    REQUIRE(fb_model_create(&m, &c, &err) == 0 && make_tmpdir());
    fb_model_init_random(m, 9, 0.3f);
    const fb_param *qn = fb_model_param(m, "model.layers.1.self_attn.q_norm.weight");
    REQUIRE(qn);
    CHECK(qn->ndim == 1 && qn->shape[0] == 6);
    CHECK(m->params[qn->offset] == 1.0f); /* random init: norms at 1 */
    CHECK(fb_model_param(m, "model.layers.0.self_attn.k_norm.weight") != NULL);
    CHECK_INT(fb_model_config_param_count(&c), (int64_t)m->n_floats);
    CHECK_INT(m->n_table, 1 + 2 * (11 + 4 * bias) + 1 + !bias);
    m->params[qn->offset + 2] = 0.75f; /* a value init does not give */
    CHECK_INT(fb_model_save(m, NULL, tmpdir, &err), 0);
    CHECK_INT(fb_model_load(&back, tmpdir, &err), 0);
    REQUIRE(back);
    CHECK_STR(back->cfg.architecture, "Qwen3ForCausalLM");
    CHECK_INT(back->cfg.arch, FB_ARCH_QWEN3);
    CHECK_INT(back->cfg.qk_norm, 1);
    CHECK_INT(back->cfg.head_dim, 6);
    CHECK_INT(back->cfg.attention_bias, bias);
    CHECK_INT(back->cfg.o_bias, bias);
    CHECK_INT(back->cfg.tie_word_embeddings, bias);
    CHECK_INT(back->cfg.layer_window[0], 0);
    CHECK_INT(back->cfg.layer_window[1], 3);
    REQUIRE(back->n_floats == m->n_floats);
    CHECK(memcmp(back->params, m->params, sizeof(float) * m->n_floats) == 0);
    fb_model_free(back);
    /* the weights again without layer 1's k_norm */
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    fb_st_out *t = calloc((size_t)m->n_table, sizeof *t);
    int n = 0;
    for (int i = 0; i < m->n_table; i++) {
      const fb_param *p = &m->table[i];
      if (strcmp(p->name, "model.layers.1.self_attn.k_norm.weight") == 0) continue;
      t[n++] = (fb_st_out){
          p->name, FB_DT_F32, p->ndim, {p->shape[0], p->shape[1]}, m->params + p->offset};
    }
    REQUIRE(fb_st_write(path, t, n, NULL, &err) == 0);
    CHECK(fb_model_load(&back, tmpdir, &err) != 0);
    CHECK_CONTAINS(err.msg, "'model.layers.1.self_attn.k_norm.weight' [6] is missing");
    free(t);
    fb_model_free(m);
    rm_rf(tmpdir);
  }
}

/* A saved config.json keeps every layer's window: Mistral's null (absent would mean 4096), and
 * Qwen2's and Qwen3's windowed and full layers. */
TEST(saved_configs_keep_each_layers_window) {
  static const struct {
    fb_arch arch;
    const char *name;
    int window, first_layer;
  } cases[] = {
      {FB_ARCH_MISTRAL, "MistralForCausalLM", 0, 0}, {FB_ARCH_MISTRAL, "MistralForCausalLM", 3, 0},
      {FB_ARCH_QWEN2, "Qwen2ForCausalLM", 0, 0},     {FB_ARCH_QWEN2, "Qwen2ForCausalLM", 5, 1},
      {FB_ARCH_QWEN2, "Qwen2ForCausalLM", 5, 0},     {FB_ARCH_QWEN3, "Qwen3ForCausalLM", 0, 0},
      {FB_ARCH_QWEN3, "Qwen3ForCausalLM", 5, 1},     {FB_ARCH_QWEN3, "Qwen3ForCausalLM", 5, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    fb_model_config c = cases[k].arch == FB_ARCH_QWEN3
                            ? tiny_qwen3_config(0, 0)
                            : tiny_config(0, cases[k].arch == FB_ARCH_QWEN2);
    c.arch = cases[k].arch;
    snprintf(c.architecture, sizeof c.architecture, "%s", cases[k].name);
    fb_model_config_set_window(&c, cases[k].window, cases[k].first_layer);
    fb_model *m = NULL, *back = NULL;
    fb_err err = {0};
    REQUIRE(fb_model_create(&m, &c, &err) == 0 && make_tmpdir());
    CHECK_INT(fb_model_save(m, NULL, tmpdir, &err), 0);
    CHECK_INT(fb_model_load(&back, tmpdir, &err), 0);
    REQUIRE(back);
    for (int l = 0; l < c.num_hidden_layers; l++)
      if (back->cfg.layer_window[l] != c.layer_window[l])
        FB_FAIL_("case %zu layer %d: window %d, want %d", k, l, back->cfg.layer_window[l],
                 c.layer_window[l]);
    fb_model_free(back);
    fb_model_free(m);
    rm_rf(tmpdir);
  }
}
