/* bench_train.c: LoRA training throughput of the CPU core (tokens/s, peak RSS) on two shapes
 * with random weights, rank 16, alpha 32, all seven targets: (a) a 4-layer 256-wide model,
 * seq 256, batch 4; (b) the SmolLM2-135M shape, seq 512, batch 1. Also measures this machine's
 * sgemm GFLOP/s (OpenBLAS and the path fb_gemm chose) and the fraction step (b) achieves, and
 * ("gen") generation speed on shape (b) with the adapter.
 * Not a test: `cmake --build BUILD --target bench_train && BUILD/bench_train [a] [b] [gen]`. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gemm.h"
#include "generate.h"
#include "log.h"
#include "lora.h"
#include "model.h"
#include "optim.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

/* GFLOP/s of C[n,n] = A B^T, best of a few runs, through fn (1 = fb_gemm, 0 = cblas_sgemm). */
static double gemm_gflops(int via_fb, int n) {
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)((i % 13) - 6) * 0.01f;
  double best = 0;
  for (int r = 0; r < 6; r++) {
    double t = now();
    if (via_fb)
      fb_gemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    t = now() - t;
    if (r && 2.0 * n * n * n / t / 1e9 > best) best = 2.0 * n * n * n / t / 1e9;
  }
  free(a);
  free(b);
  free(c);
  return best;
}

typedef struct shape {
  const char *name, *desc;
  int V, C, L, NH, NKV, F, tied, T, B, steps;
} shape;

/* FLOPs of one LoRA step as this engine computes it: forward and input-gradient products of
 * every frozen matrix, LoRA's six small products per target, attention's 2 forward and 5
 * backward T x T products per head (full squares, the mask is applied after). */
static double step_flops(const shape *s, int r) {
  double N = (double)s->B * s->T, HD = s->C / s->NH, QD = s->NH * HD, KD = s->NKV * HD;
  double lin = s->C * QD * 2 + s->C * KD * 2 + 3.0 * s->C * s->F; /* per layer weights */
  double lora = r * (2 * s->C + QD) * 1 + r * (s->C + KD) * 2 + r * (QD + s->C) +
                2.0 * r * (s->C + s->F) + r * (s->F + s->C);
  double attn = 7.0 * 2 * s->T * (double)s->T * HD * s->NH * s->B;
  return s->L * (4 * N * lin + 6 * N * lora + attn) + 4 * N * (double)s->V * s->C;
}

/* Prefill a 256-token prompt, then 64 greedy tokens, through the KV cache. */
static void bench_generate(fb_model *m, fb_lora *l) {
  int32_t prompt[256], out[64];
  for (int i = 0; i < 256; i++) prompt[i] = (i * 7919) % m->V;
  fb_err err = {0};
  fb_kv_cache *kv = NULL;
  float *logits = malloc(sizeof(float) * m->V);
  if (!logits || fb_kv_cache_create(&kv, m, 256, &err)) {
    fprintf(stderr, "bench_train: %s\n", err.msg);
    free(logits);
    return;
  }
  double t = now();
  int rc = fb_model_decode(m, l, kv, prompt, 256, logits, &err);
  double prefill = now() - t;
  fb_kv_cache_free(kv);
  fb_gen_config g = fb_gen_defaults();
  g.max_new_tokens = 64;
  int n = 0;
  t = now();
  if (!rc) rc = fb_generate(m, l, prompt, 1, &g, out, &n, NULL, &err);
  double gen = now() - t;
  if (rc)
    fprintf(stderr, "bench_train: %s\n", err.msg);
  else
    printf(
        "(gen) prefill 256 tokens %.0f tok/s; greedy decode %.1f tok/s (%d tokens), adapter on\n",
        256 / prefill, n / gen, n);
  free(logits);
}

static int run(const shape *s, double blas_gflops, int gen) {
  fb_model_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
  c.vocab_size = s->V;
  c.hidden_size = s->C;
  c.num_hidden_layers = s->L;
  c.num_attention_heads = s->NH;
  c.num_key_value_heads = s->NKV;
  c.head_dim = s->C / s->NH;
  c.intermediate_size = s->F;
  c.tie_word_embeddings = s->tied;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.max_position_embeddings = 2048;
  fb_err err = {0};
  fb_model *m = NULL;
  fb_lora *l = NULL;
  fb_optim *o = NULL;
  fb_adapter_config ac = {.r = 16, .lora_alpha = 32, .targets = FB_TARGET_ALL};
  fb_optim_config oc = fb_optim_defaults();
  if (fb_model_create(&m, &c, &err) || fb_lora_create(&l, m, &ac, &err) ||
      fb_optim_create(&o, m->be, l->n_floats, &oc, &err) || fb_lora_init(l, 1, &err)) {
    fprintf(stderr, "bench_train: %s\n", err.msg);
    return 1;
  }
  fb_model_init_random(m, 1, 0.02f);
  int N = s->B * s->T;
  int32_t *ids = malloc(sizeof(int32_t) * N);
  uint64_t x = 42;
  for (int i = 0; i < N; i++)
    ids[i] = (int32_t)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33) % s->V;
  fb_batch b = {s->B, s->T, ids, ids, NULL, NULL};
  double t0 = 0, best = 1e30;
  for (int step = 0; step <= s->steps; step++) { /* step 0 warms up (allocations, first touch) */
    double ts = now();
    if (step == 1) t0 = ts;
    if (fb_model_forward(m, l, &b, 1, &err) ||
        (fb_lora_zero_grad(l), fb_model_backward(m, l, &b, &err)) ||
        (fb_optim_clip(o, l->grads, 1.0),
         fb_optim_step(o, l->params, l->grads, 1e-4, &err))) {
      fprintf(stderr, "bench_train: %s\n", err.msg);
      return 1;
    }
    if (step) best = fmin(best, now() - ts);
  }
  double dt = (now() - t0) / s->steps, gf = step_flops(s, 16) / dt / 1e9;
  printf("(%s) %s: %.0f tok/s mean over %d steps (best step %.0f tok/s), %.3f s/step, "
         "%.1f GFLOP/s = %.0f%% of cblas_sgemm, peak RSS %.0f MiB, loss %.4f\n",
         s->name, s->desc, N / dt, s->steps, N / best, dt, gf, 100 * gf / blas_gflops,
         peak_rss_mb(), m->loss);
  if (gen) bench_generate(m, l);
  free(ids);
  fb_optim_free(o);
  fb_lora_free(l);
  fb_model_free(m);
  return 0;
}

int main(int argc, char **argv) {
  static const shape shapes[] = {
      {"a", "vocab 256, hidden 256, 4 layers, 4/4 heads, ffn 688, seq 256 x 4", 256, 256, 4, 4, 4,
       688, 0, 256, 4, 10},
      {"b", "SmolLM2-135M shape, tied, seq 512 x 1", 49152, 576, 30, 9, 3, 1536, 1, 512, 1, 3},
  };
  fb_log_set_level(FB_LOG_WARN);
  double blas = gemm_gflops(0, 1024), fast = gemm_gflops(1, 1024);
  printf("sgemm 1024^3: cblas_sgemm (OpenBLAS) %.1f GFLOP/s, fb_gemm (%s) %.1f GFLOP/s\n", blas,
         fb_gemm_path(), fast);
  int rc = 0, gen = 0;
  for (int a = 1; a < argc; a++) gen |= strcmp(argv[a], "gen") == 0;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int want = argc < 2 || (gen && i == 1);
    for (int a = 1; a < argc; a++) want |= strcmp(argv[a], shapes[i].name) == 0;
    if (want) rc |= run(&shapes[i], blas, gen && i == 1);
  }
  return rc;
}
