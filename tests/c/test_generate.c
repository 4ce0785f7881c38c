/* test_generate.c: generation on a tiny random model: the KV-cache path gives the logits of a
 * full forward (Llama, and Qwen3 with its q/k norms), greedy picks their argmax, sampling is
 * reproducible by seed, top-k 1 is greedy, stop tokens and max_new_tokens end it, an adapter equals
 * its merged model, bad settings are refused. */
#include <stdint.h>

#include "generate.h"
#include "lora.h"
#include "model.h"
#include "test.h"

/* A Llama, or a Qwen3 (head_dim 6, not hidden / heads = 4; q_norm and k_norm away from 1). */
static fb_model *tiny_arch(uint64_t seed, int qwen3) {
  fb_model_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.architecture, sizeof c.architecture, qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
  c.arch = qwen3 ? FB_ARCH_QWEN3 : FB_ARCH_LLAMA;
  c.qk_norm = qwen3;
  c.vocab_size = 23;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = qwen3 ? 6 : 4;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.max_position_embeddings = 128;
  fb_model *m = NULL;
  fb_err err = {0};
  if (fb_model_create(&m, &c, &err)) fprintf(stderr, "%s\n", err.msg);
  if (m) fb_model_init_random(m, seed, 0.5f);
  for (int i = 0; m && qwen3 && i < m->L; i++)
    for (int d = 0; d < m->HD; d++) {
      m->layers[i].q_norm[d] = 0.8f + 0.1f * (float)(d % 4);
      m->layers[i].k_norm[d] = 1.2f - 0.1f * (float)(d % 3);
    }
  return m;
}

static fb_model *tiny(uint64_t seed) { return tiny_arch(seed, 0); }

static const int32_t prompt[5] = {3, 17, 4, 9, 1};

static void cached_decode_matches_full_forward(int qwen3) {
  fb_model *m = tiny_arch(1, qwen3);
  REQUIRE(m);
  fb_gen_config c = fb_gen_defaults();
  c.max_new_tokens = 10;
  int32_t out[10], seq[15];
  int n = 0;
  fb_err err = {0};
  REQUIRE(fb_generate(m, NULL, prompt, 5, &c, out, &n, NULL, &err) == 0);
  CHECK_INT(n, 10);
  memcpy(seq, prompt, sizeof prompt);
  memcpy(seq + 5, out, sizeof out);
  /* replay: a full forward over prompt + first k tokens predicts token k */
  fb_kv_cache *kv = NULL;
  REQUIRE(fb_kv_cache_create(&kv, m, 15, &err) == 0);
  float logits[23];
  REQUIRE(fb_model_decode(m, NULL, kv, seq, 5, logits, &err) == 0);
  double worst = 0;
  for (int k = 0; k < 10; k++) {
    fb_batch b = {1, 5 + k, seq, NULL, NULL, NULL};
    REQUIRE(fb_model_forward(m, NULL, &b, 0, &err) == 0);
    const float *full = fb_model_logits(m) + (size_t)(4 + k) * 23;
    int best = 0;
    for (int v = 0; v < 23; v++) {
      worst = fmax(worst, fabs(full[v] - logits[v]));
      if (full[v] > full[best]) best = v;
    }
    CHECK_INT(out[k], best);
    if (k < 9) REQUIRE(fb_model_decode(m, NULL, kv, seq + 5 + k, 1, logits, &err) == 0);
  }
  CHECK(worst < 1e-5);
  CHECK_INT(fb_kv_cache_len(kv), 14);
  /* the cache refuses to overflow */
  CHECK(fb_model_decode(m, NULL, kv, seq, 2, logits, &err) == FB_ELIMIT);
  fb_kv_cache_free(kv);
  fb_model_free(m);
}

TEST(cached_decode_matches_full_forward_and_greedy_is_argmax) {
  cached_decode_matches_full_forward(0);
}
TEST(cached_decode_matches_full_forward_qwen3) { cached_decode_matches_full_forward(1); }

static void gen(fb_model *m, fb_lora *l, fb_gen_config c, int32_t *out, int *n) {
  fb_err err = {0};
  if (fb_generate(m, l, prompt, 5, &c, out, n, NULL, &err)) fprintf(stderr, "%s\n", err.msg);
}

TEST(sampling_is_reproducible_by_seed_and_top_k_one_is_greedy) {
  fb_model *m = tiny(2);
  REQUIRE(m);
  fb_gen_config c = fb_gen_defaults();
  c.max_new_tokens = 24;
  c.temperature = 1.5;
  c.top_p = 0.95;
  c.seed = 7;
  int32_t a[24], b[24], g[24];
  int na, nb, ng;
  gen(m, NULL, c, a, &na);
  gen(m, NULL, c, b, &nb);
  CHECK_INT(na, 24);
  CHECK(na == nb && memcmp(a, b, sizeof a) == 0);
  c.seed = 8;
  gen(m, NULL, c, b, &nb);
  CHECK(memcmp(a, b, sizeof a) != 0);
  c.top_k = 1;
  gen(m, NULL, c, b, &nb);
  fb_gen_config greedy = fb_gen_defaults();
  greedy.max_new_tokens = 24;
  gen(m, NULL, greedy, g, &ng);
  CHECK(memcmp(b, g, sizeof g) == 0);
  /* a tiny top_p keeps only the most likely token: greedy again */
  c.top_k = 0;
  c.top_p = 1e-6;
  gen(m, NULL, c, b, &nb);
  CHECK(memcmp(b, g, sizeof g) == 0);
  /* a repetition penalty changes a greedy run that repeats itself */
  int repeats = 0;
  for (int i = 0; i < 24; i++)
    for (int j = 0; j < i; j++) repeats += g[i] == g[j];
  REQUIRE(repeats > 0);
  greedy.repetition_penalty = 50;
  gen(m, NULL, greedy, b, &nb);
  int repeats_pen = 0;
  for (int i = 0; i < 24; i++)
    for (int j = 0; j < i; j++) repeats_pen += b[i] == b[j];
  CHECK(repeats_pen < repeats);
  fb_model_free(m);
}

TEST(stop_tokens_and_max_new_tokens_end_generation) {
  fb_model *m = tiny(3);
  REQUIRE(m);
  fb_gen_config c = fb_gen_defaults();
  c.max_new_tokens = 12;
  int32_t g[12], out[12];
  int ng, n, stopped = -1;
  gen(m, NULL, c, g, &ng);
  int k = 0;
  while (k < 12 && (g[k] == g[0])) k++; /* first token that differs from the first */
  REQUIRE(k > 0 && k < 12);
  c.stop[0] = g[k];
  c.n_stop = 1;
  fb_err err = {0};
  REQUIRE(fb_generate(m, NULL, prompt, 5, &c, out, &n, &stopped, &err) == 0);
  CHECK_INT(stopped, 1);
  CHECK(n <= k);
  CHECK(memcmp(out, g, sizeof(int32_t) * n) == 0);
  c.n_stop = 0;
  c.max_new_tokens = 3;
  REQUIRE(fb_generate(m, NULL, prompt, 5, &c, out, &n, &stopped, &err) == 0);
  CHECK_INT(n, 3);
  CHECK_INT(stopped, 0);
  c.top_p = 0;
  CHECK(fb_generate(m, NULL, prompt, 5, &c, out, &n, NULL, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "top_p");
  c.top_p = 1;
  CHECK(fb_generate(m, NULL, prompt, 0, &c, out, &n, NULL, &err) == FB_EINVALID);
  int32_t bad[1] = {23};
  CHECK(fb_generate(m, NULL, bad, 1, &c, out, &n, NULL, &err) == FB_EINVALID);
  CHECK_CONTAINS(err.msg, "23");
  fb_model_free(m);
}

TEST(generation_with_adapter_equals_merged_model) {
  fb_model *m = tiny(4);
  REQUIRE(m);
  fb_adapter_config ac = {.r = 4, .lora_alpha = 8, .targets = FB_TARGET_ALL};
  fb_lora *l = NULL;
  fb_err err = {0};
  REQUIRE(fb_lora_create(&l, m, &ac, &err) == 0);
  REQUIRE(fb_lora_init(l, 1, &err) == 0);
  for (size_t i = 0; i < l->n_floats; i++)
    l->params[i] += 0.3f * (float)((i * 37) % 11) / 11.0f - 0.15f;
  fb_gen_config c = fb_gen_defaults();
  c.max_new_tokens = 16;
  int32_t base[16], with[16], merged[16];
  int n1, n2, n3;
  gen(m, NULL, c, base, &n1);
  gen(m, l, c, with, &n2);
  CHECK(memcmp(base, with, sizeof base) != 0);
  REQUIRE(fb_lora_merge(l, m, &err) == 0);
  gen(m, NULL, c, merged, &n3);
  CHECK(memcmp(with, merged, sizeof with) == 0);
  fb_lora_free(l);
  fb_model_free(m);
}

/* Two streams stepped in turn on one model (as the model server interleaves its requests) give
 * each its own tokens, the same as alone; an ended stream gives -1 and says why it ended. */
TEST(interleaved_streams_are_independent) {
  fb_model *m = tiny(5);
  REQUIRE(m);
  fb_gen_config greedy = fb_gen_defaults(), sampled = fb_gen_defaults();
  greedy.max_new_tokens = sampled.max_new_tokens = 12;
  sampled.temperature = 0.9;
  sampled.seed = 11;
  int32_t want_a[12];
  int na;
  gen(m, NULL, greedy, want_a, &na);
  fb_gen_stream *a, *b;
  fb_err err = {0};
  REQUIRE(fb_gen_start(&a, m, NULL, prompt, 5, &greedy, &err) == 0);
  REQUIRE(fb_gen_start(&b, m, NULL, prompt + 1, 4, &sampled, &err) == 0);
  int32_t got_a[12], got_b[12], id;
  for (int i = 0; i < 12; i++) {
    REQUIRE(fb_gen_next(a, &id, &err) == 0);
    got_a[i] = id;
    REQUIRE(fb_gen_next(b, &id, &err) == 0);
    got_b[i] = id;
  }
  CHECK(memcmp(got_a, want_a, sizeof got_a) == 0);
  fb_gen_stream *alone; /* b alone, from its own prompt */
  REQUIRE(fb_gen_start(&alone, m, NULL, prompt + 1, 4, &sampled, &err) == 0);
  for (int i = 0; i < 12; i++) {
    REQUIRE(fb_gen_next(alone, &id, &err) == 0);
    CHECK_INT(id, got_b[i]);
  }
  REQUIRE(fb_gen_next(a, &id, &err) == 0);
  CHECK_INT(id, -1);
  CHECK_INT(fb_gen_stopped(a), 0);
  fb_gen_free(a);
  fb_gen_free(b);
  fb_gen_free(alone);
  fb_model_free(m);
}
