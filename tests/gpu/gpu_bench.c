/* gpu_bench.c: LoRA training speed of one model shape on one device, as the trainer computes a
 * step (forward, backward, clipping, AdamW) through model.h on the chosen backend: rank 16,
 * alpha 32, all seven targets, random weights and tokens.
 *
 *   gpu_bench CONFIG.json B T STEPS [DEVICE]   one JSON line: tokens/s, ms a step, peak bytes
 *   gpu_bench --profile CONFIG.json B T STEPS [DEVICE]
 *                                              the same steps, and each phase's milliseconds a step
 *                                              (backend.h's fb_phase: base products, LoRA,
 *                                              attention forward, dq and dk/dv, the loss,
 *                                              elementwise, the optimizer)
 *   FB_CUDA_GRAPHS=0 gpu_bench CONFIG.json B T STEPS [DEVICE]
 *                                              the same with CUDA graphs off ("what":"no graphs"):
 *                                              every launch queued one by one (docs/cuda.md)
 *   gpu_bench --attention CONFIG.json B T STEPS [DEVICE]
 *                                              one layer's causal attention, forward and backward,
 *                                              at the config's heads (sdpa_bench.py: torch's SDPA)
 *   gpu_bench --params CONFIG.json...          each config's parameter count
 *
 * DEVICE is cuda (the default), cpu or auto. Not a test: tests/gpu/run.sh runs it on a GPU beside
 * Hugging Face PEFT (hf_peft_bench.py); selfcheck.sh runs a tiny shape on the CUDA emulator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "lora.h"
#include "model.h"
#include "optim.h"

_Noreturn static void die(const fb_err *err) {
  fprintf(stderr, "gpu_bench: %s\n", err->msg);
  exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static const char *const phase_names[FB_PHASE_COUNT] = {
    "base_gemm",      "lora", "attention_fwd", "attention_bwd",
    "attention_dkdv", "loss", "elementwise",   "optimizer"};

/* What a line measures: training throughput (NULL), with graphs off, or a profile (which runs
 * without graphs: its events are per launch). */
static const char *what_measured(const fb_backend *be, int profile) {
  const char *g = getenv("FB_CUDA_GRAPHS");
  if (profile) return "profile";
  return be->device == FB_DEVICE_CUDA && g && strcmp(g, "0") == 0 ? "no graphs" : NULL;
}

static int bench(const char *config, int B, int T, int steps, const char *device, int profile) {
  fb_model_config cfg;
  fb_err err = {0};
  fb_model *m;
  fb_lora *lora;
  fb_optim *opt;
  const fb_backend *be;
  int want = fb_device_parse(device);
  if (want < 0 || B < 1 || T < 1 || steps < 1) return 2;
  if (fb_model_config_load(&cfg, config, &err) || fb_model_create(&m, &cfg, &err)) die(&err);
  fb_model_init_random(m, 1, 0.02f);
  if (fb_device_open(want, &be, NULL, 0, &err) || fb_model_place(m, be, &err)) die(&err);
  fb_adapter_config ac = {.r = 16, .lora_alpha = 32, .lora_dropout = 0, .targets = FB_TARGET_ALL};
  fb_optim_config oc = fb_optim_defaults();
  if (fb_lora_create(&lora, m, &ac, &err) || fb_lora_init(lora, 3, &err) ||
      fb_optim_create(&opt, be, lora->n_floats, &oc, &err))
    die(&err);
  int N = B * T;
  int32_t *ids = malloc(sizeof(int32_t) * N);
  uint64_t x = 42;
  for (int i = 0; i < N; i++)
    ids[i] = (int32_t)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33) % m->V;
  fb_batch b = {B, T, ids, ids, NULL, NULL};
  double t0 = 0;
  for (int s = -2; s < steps; s++) { /* two warm-up steps: allocations, cuBLAS's choices */
    if (s == 0 && profile) {
      be->sum(lora->params, 1); /* the warm-ups done */
      be->profile(1, NULL);
    }
    if (s == 0) t0 = now();
    fb_lora_zero_grad(lora);
    lora->step++;
    if (fb_model_forward(m, lora, &b, 1, &err) || fb_model_backward(m, lora, &b, &err)) die(&err);
    fb_optim_clip(opt, lora->grads, 1.0); /* waits for the step's work: the norm comes back */
    if (fb_optim_step(opt, lora->params, lora->grads, 1e-4, &err)) die(&err);
  }
  be->sum(lora->params, 1); /* the last step's update done */
  double ms[FB_PHASE_COUNT];
  if (profile) be->profile(0, ms); /* read in the window the step time covers */
  double dt = now() - t0;
  const char *what = what_measured(be, profile);
  printf("{\"engine\":\"fastbrain\",");
  if (what) printf("\"what\":\"%s\",", what);
  printf(
      "\"device\":\"%s\",\"config\":\"%s\",\"batch\":%d,"
      "\"seq\":%d,\"steps\":%d,\"tokens_per_s\":%.1f,\"step_ms\":%.2f,\"peak_bytes\":%zu,"
      "\"loss\":%.4f",
      be->device_name(), config, B, T, steps, (double)N * steps / dt, dt / steps * 1e3,
      be->peak_bytes(), m->loss);
  if (profile) {
    printf(",\"phase_ms\":{");
    for (int p = 0; p < FB_PHASE_COUNT; p++)
      printf("%s\"%s\":%.3f", p ? "," : "", phase_names[p], ms[p] / steps);
    printf("}");
  }
  printf("}\n");
  free(ids);
  fb_optim_free(opt);
  fb_lora_free(lora);
  fb_model_free(m);
  return 0;
}

/* A backend buffer of n floats, uniform in [-1, 1). */
static float *random_buffer(const fb_backend *be, size_t n, uint64_t seed, fb_err *err) {
  float *host = malloc(n * sizeof *host), *dev = NULL;
  if (!host) die(&(fb_err){.msg = "out of memory"});
  for (size_t i = 0; i < n; i++)
    host[i] = (float)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 40) /
                  (float)(1 << 23) -
              1.0f;
  if (be->alloc((void **)&dev, n * sizeof *dev, "bench", err)) die(err);
  be->upload(dev, host, n * sizeof *host);
  free(host);
  return dev;
}

static int bench_attention(const char *config, int B, int T, int steps, const char *device) {
  fb_model_config cfg;
  fb_err err = {0};
  const fb_backend *be;
  int want = fb_device_parse(device);
  if (want < 0 || B < 1 || T < 1 || steps < 1) return 2;
  if (fb_model_config_load(&cfg, config, &err) || fb_device_open(want, &be, NULL, 0, &err))
    die(&err);
  int NH = cfg.num_attention_heads, NKV = cfg.num_key_value_heads, HD = cfg.head_dim, N = B * T;
  size_t nq = (size_t)N * NH * HD, nkv = (size_t)N * NKV * HD;
  float *q = random_buffer(be, nq, 1, &err), *k = random_buffer(be, nkv, 2, &err),
        *v = random_buffer(be, nkv, 3, &err), *dout = random_buffer(be, nq, 4, &err);
  float *out, *lse, *dq, *dk, *dv, *scratch;
  if (be->alloc((void **)&out, nq * 4, "out", &err) ||
      be->alloc((void **)&lse, (size_t)N * NH * 4, "lse", &err) ||
      be->alloc((void **)&dq, nq * 4, "dq", &err) || be->alloc((void **)&dk, nkv * 4, "dk", &err) ||
      be->alloc((void **)&dv, nkv * 4, "dv", &err) ||
      be->alloc((void **)&scratch, be->attention_scratch(N, T, NH) * 4, "scratch", &err))
    die(&err);
  double t0 = 0;
  for (int s = -2; s < steps; s++) {
    if (s == 0) {
      be->sum(lse, 1); /* the warm-ups done */
      t0 = now();
    }
    be->attention_forward(out, lse, q, k, v, NULL, scratch, B, T, NH, NKV, HD, 0);
    be->attention_backward(dq, dk, dv, dout, out, lse, q, k, v, NULL, scratch, B, T, NH, NKV, HD,
                           0);
  }
  be->sum(dv, 1);
  double dt = (now() - t0) / steps;
  /* causal: QK^T and PV over T/2 keys on average, forward once and backward twice */
  double flops = 3.0 * 2 * 2 * (double)B * NH * T * (T / 2.0) * HD;
  printf(
      "{\"engine\":\"fastbrain\",\"what\":\"attention\",\"device\":\"%s\",\"config\":\"%s\","
      "\"batch\":%d,\"seq\":%d,\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,"
      "\"fwd_bwd_ms\":%.3f,\"tflops\":%.1f}\n",
      be->device_name(), config, B, T, NH, NKV, HD, dt * 1e3, flops / dt / 1e12);
  float *bufs[] = {q, k, v, dout, out, lse, dq, dk, dv, scratch};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(bufs[i]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--params") == 0) {
    for (int i = 2; i < argc; i++) {
      fb_model_config cfg;
      fb_err err = {0};
      if (fb_model_config_load(&cfg, argv[i], &err)) die(&err);
      printf("%s: %lld parameters\n", argv[i], (long long)fb_model_config_param_count(&cfg));
    }
    return 0;
  }
  int attention = argc >= 2 && strcmp(argv[1], "--attention") == 0,
      profile = argc >= 2 && strcmp(argv[1], "--profile") == 0;
  argv += attention || profile, argc -= attention || profile;
  if (argc != 5 && argc != 6) {
    fprintf(stderr,
            "usage: gpu_bench [--attention|--profile] CONFIG.json B T STEPS [DEVICE] | --params "
            "CONFIG.json...\n");
    return 2;
  }
  if (attention)
    return bench_attention(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                           argc == 6 ? argv[5] : "cuda");
  return bench(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argc == 6 ? argv[5] : "cuda",
               profile);
}
