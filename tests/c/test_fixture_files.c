/* test_fixture_files.c: every committed PyTorch fixture under tests/parity/fixtures opens with
 * the engine's readers and has the lora-check layout: model tensors named and shaped as the
 * config says, in.safetensors inputs and metadata, expected.safetensors outputs. Values are
 * compared by the compute tests, not here. */
#include "test.h"

#include <dirent.h>
#include <stdint.h>

#include "adapter_config.h"
#include "model_config.h"
#include "safetensors.h"

#define FIXTURES "tests/parity/fixtures"

/* Check the tensor exists with dtype and the given shape; reports the engine's message. */
static const fb_st_tensor *expect(const fb_st_file *f, const char *name, fb_dtype dt, int ndim,
                                  const int64_t *shape) {
  const fb_st_tensor *t = NULL;
  fb_err err = {0};
  if (fb_st_expect(f, name, ndim, shape, &t, &err) != 0) {
    FB_FAIL_("%s", err.msg);
    return NULL;
  }
  if (t->dtype != dt) {
    FB_FAIL_("%s: tensor '%s': dtype %s, want %s", fb_st_path(f), name, fb_dtype_name(t->dtype),
             fb_dtype_name(dt));
    return NULL;
  }
  return t;
}

/* The metadata value key must be present and parse as a number; returns it (0 when bad). */
static double meta_num(const fb_st_file *f, const char *key) {
  const char *v = fb_st_meta(f, key);
  char *end = NULL;
  double d = v ? strtod(v, &end) : 0;
  if (!v || end == v || *end)
    FB_FAIL_("%s: metadata '%s' missing or not a number", fb_st_path(f), key);
  return d;
}

/* Every I32 in t lies in [lo, hi) or equals also. */
static void check_ids(const fb_st_tensor *t, int lo, int hi, int also) {
  for (int64_t i = 0; i < t->numel; i++) {
    int32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    if ((v < lo || v >= hi) && v != also) {
      FB_FAIL_("tensor '%s'[%lld] = %d, outside [%d, %d)", t->name, (long long)i, v, lo, hi);
      return;
    }
  }
}

static void check_model(const char *dir, const fb_model_config *c) {
  fb_err err = {0};
  fb_st_file *m = NULL;
  char path[512];
  snprintf(path, sizeof path, "%s/model", dir);
  if (fb_st_open_model_dir(&m, path, &err) != 0) {
    FB_FAIL_("%s", err.msg);
    return;
  }
  int64_t C = c->hidden_size, V = c->vocab_size, n = 2; /* embed, final norm */
  fb_dtype dt = strcmp(c->torch_dtype, "bfloat16") == 0 ? FB_DT_BF16 : FB_DT_F32;
  expect(m, "model.embed_tokens.weight", dt, 2, (int64_t[]){V, C});
  expect(m, "model.norm.weight", dt, 1, (int64_t[]){C});
  if (!c->tie_word_embeddings) n++, expect(m, "lm_head.weight", dt, 2, (int64_t[]){V, C});
  for (int l = 0; l < c->num_hidden_layers; l++) {
    for (int i = 0; i < FB_TARGET_COUNT; i++) {
      int out, in;
      fb_model_config_proj_shape(c, i, &out, &in);
      snprintf(path, sizeof path, "model.layers.%d.%s.%s.weight", l, i < 4 ? "self_attn" : "mlp",
               fb_target_name(i));
      expect(m, path, dt, 2, (int64_t[]){out, in});
      n++;
      if ((i < 3 && c->attention_bias) || (i == 3 && c->o_bias)) {
        snprintf(path, sizeof path, "model.layers.%d.self_attn.%s.bias", l, fb_target_name(i));
        expect(m, path, dt, 1, (int64_t[]){out});
        n++;
      }
    }
    snprintf(path, sizeof path, "model.layers.%d.input_layernorm.weight", l);
    expect(m, path, dt, 1, (int64_t[]){C});
    snprintf(path, sizeof path, "model.layers.%d.post_attention_layernorm.weight", l);
    expect(m, path, dt, 1, (int64_t[]){C});
    n += 2;
    for (int k = 0; k < 2 && c->qk_norm; k++, n++) { /* Qwen3's per-head norms */
      snprintf(path, sizeof path, "model.layers.%d.self_attn.%s_norm.weight", l, k ? "k" : "q");
      expect(m, path, dt, 1, (int64_t[]){c->head_dim});
    }
  }
  CHECK_INT(fb_st_count(m), n); /* nothing extra */
  int64_t params = 0;
  for (int i = 0; i < fb_st_count(m); i++) params += fb_st_at(m, i)->numel;
  CHECK_INT(params, fb_model_config_param_count(c));
  fb_st_close(m);
}

/* For each (layer, target, A/B): call fn with the PEFT key and the expected shape. */
static void each_lora_key(const fb_model_config *c, unsigned targets, int rank,
                          void (*fn)(const char *key, const int64_t *shape, void *ctx), void *ctx) {
  char key[256];
  for (int l = 0; l < c->num_hidden_layers; l++)
    for (int i = 0; i < FB_TARGET_COUNT; i++) {
      if (!(targets & (1u << i))) continue;
      int out, in;
      fb_model_config_proj_shape(c, i, &out, &in);
      const char *part = i < 4 ? "self_attn" : "mlp";
      snprintf(key, sizeof key, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, part,
               fb_target_name(i));
      fn(key, (int64_t[]){rank, in}, ctx);
      snprintf(key, sizeof key, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, part,
               fb_target_name(i));
      fn(key, (int64_t[]){out, rank}, ctx);
    }
}

static void check_in_key(const char *key, const int64_t *shape, void *ctx) {
  char name[300];
  snprintf(name, sizeof name, "lora_init.%s", key);
  expect(ctx, name, FB_DT_F32, 2, shape);
}

static void check_expected_key(const char *key, const int64_t *shape, void *ctx) {
  static const char *const prefixes[] = {"lora_grad.",      "lora_step1.", "adam_m.",
                                         "adam_v.",         "lora_step3.", "lora_grad_step2.",
                                         "lora_grad_step3."};
  char name[300];
  for (int i = 0; i < 7; i++) {
    snprintf(name, sizeof name, "%s%s", prefixes[i], key);
    expect(ctx, name, FB_DT_F32, 2, shape);
  }
}

static void check_case(const char *name) {
  fb_err err = {0};
  char dir[256], path[512];
  snprintf(dir, sizeof dir, FIXTURES "/%s", name);
  fb_model_config c;
  snprintf(path, sizeof path, "%s/model/config.json", dir);
  if (fb_model_config_load(&c, path, &err) != 0) {
    FB_FAIL_("%s", err.msg);
    return;
  }
  check_model(dir, &c);

  fb_st_file *in = NULL, *ex = NULL;
  snprintf(path, sizeof path, "%s/in.safetensors", dir);
  if (fb_st_open(&in, path, &err) != 0) FB_FAIL_("%s", err.msg);
  snprintf(path, sizeof path, "%s/expected.safetensors", dir);
  if (fb_st_open(&ex, path, &err) != 0) FB_FAIL_("%s", err.msg);
  if (in && ex) {
    const fb_st_tensor *ids = fb_st_find(in, "input_ids");
    REQUIRE(ids && ids->ndim == 2);
    int64_t B = ids->shape[0], T = ids->shape[1], V = c.vocab_size;
    expect(in, "input_ids", FB_DT_I32, 2, (int64_t[]){B, T});
    const fb_st_tensor *labels = expect(in, "labels", FB_DT_I32, 2, (int64_t[]){B, T});
    check_ids(ids, 0, (int)V, 0);
    if (labels) check_ids(labels, 0, (int)V, -100);
    int rank = (int)meta_num(in, "rank");
    double alpha = meta_num(in, "alpha");
    CHECK(rank >= 1 && alpha > 0);
    double dropout = meta_num(in, "lora_dropout");
    CHECK(dropout >= 0 && dropout < 1);
    CHECK((dropout > 0) == (fb_st_meta(in, "dropout_seed") != NULL)); /* the masks' seed */
    CHECK(meta_num(in, "lr") > 0);
    CHECK(meta_num(in, "beta1") > 0 && meta_num(in, "beta2") > 0 && meta_num(in, "eps") > 0);
    CHECK(meta_num(in, "weight_decay") > 0); /* non-zero, so decay is exercised */
    const char *rs = fb_st_meta(in, "rslora");
    CHECK(rs && (strcmp(rs, "0") == 0 || strcmp(rs, "1") == 0));
    unsigned targets = 0;
    const char *tl = fb_st_meta(in, "targets");
    REQUIRE(tl && fb_targets_parse_list(tl, &targets, &err) == 0);
    int nkeys = 2 * c.num_hidden_layers * __builtin_popcount(targets);
    each_lora_key(&c, targets, rank, check_in_key, in);
    CHECK_INT(fb_st_count(in), 2 + nkeys);

    expect(ex, "logits", FB_DT_F32, 3, (int64_t[]){B, T, V});
    static const char *const scalars[] = {"loss", "loss_step1", "loss_step3"};
    for (int i = 0; i < 3; i++) {
      const fb_st_tensor *s = expect(ex, scalars[i], FB_DT_F32, 1, (int64_t[]){1});
      float v = 0;
      if (s) fb_st_read_f32(s, &v, &err);
      CHECK(v > 0 && v < 50);
    }
    each_lora_key(&c, targets, rank, check_expected_key, ex);
    int plen = (int)meta_num(ex, "greedy_prompt_len"),
        nnew = (int)meta_num(ex, "greedy_new_tokens");
    const fb_st_tensor *g = expect(ex, "greedy_ids", FB_DT_I32, 1, (int64_t[]){plen + nnew});
    if (g) {
      check_ids(g, 0, (int)V, 0);
      CHECK(memcmp(g->data, ids->data, 4 * (size_t)plen) == 0); /* prompt = sequence 0's start */
    }
    CHECK_INT(fb_st_count(ex), 5 + 7 * nkeys);
  }
  fb_st_close(in);
  fb_st_close(ex);
}

TEST(every_fixture_has_the_lora_check_layout) {
  DIR *d = opendir(FIXTURES);
  REQUIRE(d);
  int cases = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    check_case(e->d_name);
    cases++;
  }
  closedir(d);
  CHECK(cases >= 5);
}

TEST(fixtures_cover_the_required_variants) {
  static const char *const names[] = {"llama_gqa_tied",         "qwen2_bias_linear_rope",
                                      "llama3_rope_mqa_untied", "mistral_mha_tied_window",
                                      "llama_gqa_bf16_weights", "qwen2_window_split",
                                      "qwen3_qk_norm"};
  int gqa = 0, bias = 0, nobias = 0, tied = 0, untied = 0, linear = 0, llama3 = 0, bf16 = 0,
      window = 0, split = 0, qk_norm = 0;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char path[256];
    fb_model_config c;
    fb_err err = {0};
    snprintf(path, sizeof path, FIXTURES "/%s/model/config.json", names[i]);
    REQUIRE(fb_model_config_load(&c, path, &err) == 0);
    gqa += c.num_key_value_heads < c.num_attention_heads;
    bias += c.attention_bias, nobias += !c.attention_bias;
    tied += c.tie_word_embeddings, untied += !c.tie_word_embeddings;
    linear += c.rope_scaling.type == FB_ROPE_LINEAR;
    llama3 += c.rope_scaling.type == FB_ROPE_LLAMA3;
    bf16 += strcmp(c.torch_dtype, "bfloat16") == 0;
    window += c.sliding_window > 0 && c.sliding_window < 12; /* shorter than the rows */
    int windowed = 0;
    for (int l = 0; l < c.num_hidden_layers; l++) windowed += c.layer_window[l] > 0;
    split += windowed > 0 && windowed < c.num_hidden_layers; /* windowed and full layers */
    qk_norm += c.qk_norm && c.head_dim * c.num_attention_heads != c.hidden_size; /* Qwen3 */
  }
  CHECK(gqa && bias && nobias && tied && untied && linear && llama3 && bf16 && window && split &&
        qk_norm);
}
