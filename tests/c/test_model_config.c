/* test_model_config.c: HF config.json parsing (each architecture, defaults, every rule and its
 * message, caps) and PEFT adapter_config.json read/write. */
#include "formats_tmp.h"
#include "test.h"

#include <cjson/cJSON.h>

#include "adapter_config.h"
#include "fsutil.h"
#include "model_config.h"

/* SmolLM2-135M's config.json, trimmed to what matters. */
static const char *const smollm =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":0,"
    "\"eos_token_id\":0,\"hidden_act\":\"silu\",\"hidden_size\":576,\"intermediate_size\":1536,"
    "\"max_position_embeddings\":8192,\"mlp_bias\":false,\"model_type\":\"llama\","
    "\"num_attention_heads\":9,\"num_hidden_layers\":30,\"num_key_value_heads\":3,"
    "\"rms_norm_eps\":1e-05,\"rope_scaling\":null,\"rope_theta\":100000,"
    "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"vocab_size\":49152}";

/* smollm with field set to the JSON text value (NULL: removed); parsed into c. */
static int parse_with(fb_model_config *c, const char *field, const char *value, fb_err *err) {
  cJSON *root = cJSON_Parse(smollm);
  cJSON_DeleteItemFromObjectCaseSensitive(root, field);
  if (value) cJSON_AddItemToObject(root, field, cJSON_Parse(value));
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  int rc = fb_model_config_parse(c, text, strlen(text), "m/config.json", err);
  cJSON_free(text);
  return rc;
}

/* The field set to value must be refused with code and a message containing want. */
static void expect_refused(const char *field, const char *value, int code, const char *want) {
  fb_model_config c;
  fb_err err = {0};
  int rc = parse_with(&c, field, value, &err);
  if (rc != code) FB_FAIL_("%s=%s: rc %d, want %d (%s)", field, value, rc, code, err.msg);
  if (!strstr(err.msg, want)) FB_FAIL_("%s=%s: \"%s\" lacks \"%s\"", field, value, err.msg, want);
  if (!strstr(err.msg, "m/config.json")) FB_FAIL_("message does not name the file: %s", err.msg);
  if (c.hidden_size != 0) FB_FAIL_("%s=%s: config not zeroed on failure", field, value);
}

TEST(smollm_config_parses) {
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(fb_model_config_parse(&c, smollm, strlen(smollm), "smol", &err), 0);
  CHECK_INT(c.arch, FB_ARCH_LLAMA);
  CHECK_STR(c.architecture, "LlamaForCausalLM");
  CHECK_INT(c.vocab_size, 49152);
  CHECK_INT(c.hidden_size, 576);
  CHECK_INT(c.num_key_value_heads, 3);
  CHECK_INT(c.head_dim, 64);
  CHECK_NEAR(c.rms_norm_eps, 1e-5, 0);
  CHECK_NEAR(c.rope_theta, 100000, 0);
  CHECK_INT(c.rope_scaling.type, FB_ROPE_NONE);
  CHECK_INT(c.tie_word_embeddings, 1);
  CHECK_INT(c.attention_bias, 0);
  CHECK_STR(c.torch_dtype, "bfloat16");
  CHECK_INT(c.bos_token_id, 0);
  CHECK_INT(c.n_eos, 1);
  CHECK_INT(c.eos_token_ids[0], 0);
  /* SmolLM2-135M has 134,515,008 parameters */
  CHECK_INT(fb_model_config_param_count(&c), 134515008);
  CHECK_INT(fb_model_config_param_bytes(&c), 4LL * 134515008);
}

TEST(defaults_apply_when_fields_are_absent) {
  fb_model_config c;
  fb_err err = {0};
  const char *min =
      "{\"architectures\":[\"MistralForCausalLM\"],\"vocab_size\":64,"
      "\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":2,"
      "\"num_attention_heads\":4,\"max_position_embeddings\":128,"
      "\"rms_norm_eps\":1e-6,\"sliding_window\":4096}";
  CHECK_INT(fb_model_config_parse(&c, min, strlen(min), "min", &err), 0);
  CHECK_INT(c.arch, FB_ARCH_MISTRAL);
  CHECK_INT(c.num_key_value_heads, 4);
  CHECK_INT(c.head_dim, 8);
  CHECK_NEAR(c.rope_theta, 10000, 0);
  CHECK_INT(c.tie_word_embeddings, 0);
  CHECK_INT(c.bos_token_id, -1);
  CHECK_INT(c.n_eos, 0);
  CHECK_INT(c.sliding_window, 4096);
  CHECK_STR(c.torch_dtype, "");
  /* embed 64*32, per layer 4*32*32 + 3*32*64 + 2*32, final norm, lm_head */
  CHECK_INT(fb_model_config_param_count(&c), 2048 + 2 * (4096 + 6144 + 64) + 32 + 2048);
}

TEST(qwen2_has_qkv_bias_and_eos_array) {
  fb_model_config c;
  fb_err err = {0};
  const char *q =
      "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":151936,"
      "\"hidden_size\":896,\"intermediate_size\":4864,\"num_hidden_layers\":24,"
      "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
      "\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-6,"
      "\"rope_theta\":1000000.0,\"sliding_window\":32768,\"tie_word_embeddings\":true,"
      "\"bos_token_id\":151643,\"eos_token_id\":[151645,151643]}";
  CHECK_INT(fb_model_config_parse(&c, q, strlen(q), "qwen", &err), 0);
  CHECK_INT(c.arch, FB_ARCH_QWEN2);
  CHECK_INT(c.attention_bias, 1);
  CHECK_INT(c.o_bias, 0);
  CHECK_INT(c.head_dim, 64);
  CHECK_INT(c.sliding_window, 0);
  CHECK_INT(c.n_eos, 2);
  CHECK_INT(c.eos_token_ids[1], 151643);
  /* Qwen2.5-0.5B: 494,032,768 parameters */
  CHECK_INT(fb_model_config_param_count(&c), 494032768);
}

/* Qwen3-0.6B's config.json: head_dim 128 where hidden_size / heads is 64, no biases, q_norm and
 * k_norm per layer. */
static const char *const qwen3_06b =
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
    "\"attention_dropout\":0.0,\"bos_token_id\":151643,\"eos_token_id\":151645,\"head_dim\":128,"
    "\"hidden_act\":\"silu\",\"hidden_size\":1024,\"initializer_range\":0.02,"
    "\"intermediate_size\":3072,\"max_position_embeddings\":40960,\"max_window_layers\":28,"
    "\"model_type\":\"qwen3\",\"num_attention_heads\":16,\"num_hidden_layers\":28,"
    "\"num_key_value_heads\":8,\"rms_norm_eps\":1e-06,\"rope_scaling\":null,"
    "\"rope_theta\":1000000,\"sliding_window\":null,\"tie_word_embeddings\":true,"
    "\"torch_dtype\":\"bfloat16\",\"use_cache\":true,\"use_sliding_window\":false,"
    "\"vocab_size\":151936}";

TEST(qwen3_has_head_dim_qk_norms_and_no_bias) {
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(fb_model_config_parse(&c, qwen3_06b, strlen(qwen3_06b), "qwen3", &err), 0);
  CHECK_INT(c.arch, FB_ARCH_QWEN3);
  CHECK_STR(c.architecture, "Qwen3ForCausalLM");
  CHECK_INT(c.head_dim, 128);
  CHECK_INT(c.qk_norm, 1);
  CHECK_INT(c.attention_bias, 0);
  CHECK_INT(c.o_bias, 0);
  CHECK_INT(c.sliding_window, 0);
  for (int l = 0; l < c.num_hidden_layers; l++) CHECK_INT(c.layer_window[l], 0);
  CHECK_INT(c.tie_word_embeddings, 1);
  CHECK_NEAR(c.rope_theta, 1e6, 0);
  int out = 0, in = 0;
  CHECK_INT(fb_model_config_proj_shape(&c, 0, &out, &in), 0); /* q_proj: 16 heads of 128 */
  CHECK_INT(out, 2048);
  CHECK_INT(in, 1024);
  CHECK_INT(fb_model_config_proj_shape(&c, 3, &out, &in), 0); /* o_proj */
  CHECK_INT(out, 1024);
  CHECK_INT(in, 2048);
  /* Qwen3-0.6B's tensors: embed 151936*1024, per layer 2048*1024 + 2*1024*1024 + 1024*2048 +
   * 3*3072*1024 + 2*1024 (norms) + 2*128 (q_norm, k_norm), final norm; tied (0.44 B without the
   * embedding, as its model card says) */
  CHECK_INT(fb_model_config_param_count(&c), 596049920);
  /* without the norms it would be 28 * 256 fewer */
  c.qk_norm = 0;
  CHECK_INT(fb_model_config_param_count(&c), 596049920 - 28 * 256);
}

TEST(qwen3_defaults_and_attention_bias) {
  fb_model_config c;
  fb_err err = {0};
  const char *min =
      "{\"architectures\":[\"Qwen3ForCausalLM\"],\"vocab_size\":64,\"hidden_size\":32,"
      "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
      "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-6}";
  CHECK_INT(fb_model_config_parse(&c, min, strlen(min), "min", &err), 0);
  CHECK_INT(c.head_dim, 128); /* Qwen3Config's default, not hidden_size / heads */
  CHECK_INT(c.num_key_value_heads, 4);
  CHECK_INT(c.attention_bias, 0);
  CHECK_INT(c.qk_norm, 1);
  /* embed 64*32; per layer q,k,v [512,32], o [32,512], MLP 3*64*32, norms 2*32 + 2*128; final
   * norm; lm_head */
  CHECK_INT(fb_model_config_param_count(&c),
            2048 + 2 * (4 * 512 * 32 + 3 * 64 * 32 + 64 + 256) + 32 + 2048);
  /* attention_bias: q, k, v and o_proj (Qwen3Attention's bias=config.attention_bias on all four) */
  cJSON *root = cJSON_Parse(min);
  cJSON_AddBoolToObject(root, "attention_bias", 1);
  cJSON_AddNumberToObject(root, "head_dim", 8);
  char *text = cJSON_PrintUnformatted(root);
  CHECK_INT(fb_model_config_parse(&c, text, strlen(text), "bias", &err), 0);
  CHECK_INT(c.attention_bias, 1);
  CHECK_INT(c.o_bias, 1);
  CHECK_INT(c.head_dim, 8);
  CHECK_INT(fb_model_config_param_count(&c),
            2048 + 2 * (4 * 32 * 32 + 3 * 32 + 32 + 3 * 64 * 32 + 64 + 16) + 32 + 2048);
  cJSON_free(text);
  /* head_dim's own rules hold for Qwen3 too */
  cJSON_ReplaceItemInObject(root, "head_dim", cJSON_CreateNumber(7));
  text = cJSON_PrintUnformatted(root);
  CHECK_INT(fb_model_config_parse(&c, text, strlen(text), "q3/config.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "q3/config.json: field 'head_dim': 7 must be even");
  cJSON_free(text);
  cJSON_ReplaceItemInObject(root, "head_dim", cJSON_CreateString("128"));
  text = cJSON_PrintUnformatted(root);
  CHECK_INT(fb_model_config_parse(&c, text, strlen(text), "q3/config.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "field 'head_dim': expected an integer, got a string");
  cJSON_free(text);
  cJSON_ReplaceItemInObject(root, "head_dim", cJSON_CreateNumber(128));
  cJSON_ReplaceItemInObject(root, "attention_bias", cJSON_CreateString("yes"));
  text = cJSON_PrintUnformatted(root);
  CHECK_INT(fb_model_config_parse(&c, text, strlen(text), "q3/config.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "field 'attention_bias': expected true or false, got a string");
  cJSON_free(text);
  cJSON_Delete(root);
}

TEST(llama32_and_mistral7b_configs_and_sizes) {
  fb_model_config c;
  fb_err err = {0};
  const char *llama =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,"
      "\"bos_token_id\":128000,\"eos_token_id\":[128001,128008,128009],\"head_dim\":64,"
      "\"hidden_act\":\"silu\",\"hidden_size\":2048,\"intermediate_size\":8192,"
      "\"max_position_embeddings\":131072,\"mlp_bias\":false,\"num_attention_heads\":32,"
      "\"num_hidden_layers\":16,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-05,"
      "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
      "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
      "\"rope_theta\":500000.0,\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\","
      "\"vocab_size\":128256}";
  CHECK_INT(fb_model_config_parse(&c, llama, strlen(llama), "llama32", &err), 0);
  CHECK_INT(c.rope_scaling.type, FB_ROPE_LLAMA3);
  CHECK_INT(c.n_eos, 3);
  CHECK_INT(fb_model_config_param_count(&c), 1235814400); /* Llama-3.2-1B */
  const char *mistral =
      "{\"architectures\":[\"MistralForCausalLM\"],\"bos_token_id\":1,"
      "\"eos_token_id\":2,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
      "\"intermediate_size\":14336,\"max_position_embeddings\":32768,"
      "\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":8,"
      "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"sliding_window\":4096,"
      "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"vocab_size\":32000}";
  CHECK_INT(fb_model_config_parse(&c, mistral, strlen(mistral), "mistral7b", &err), 0);
  CHECK_INT(c.sliding_window, 4096);
  CHECK_INT(fb_model_config_param_count(&c), 7241732096LL); /* Mistral-7B-v0.1 */
  int out = 0, in = 0;
  CHECK_INT(fb_model_config_proj_shape(&c, 1, &out, &in), 0); /* k_proj */
  CHECK_INT(out, 1024);
  CHECK_INT(in, 4096);
  CHECK_INT(fb_model_config_proj_shape(&c, 6, &out, &in), 0); /* down_proj */
  CHECK_INT(out, 4096);
  CHECK_INT(in, 14336);
  CHECK_INT(fb_model_config_proj_shape(&c, 7, &out, &in), FB_EINVALID);
}

TEST(llama_attention_bias_covers_o_proj) {
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(parse_with(&c, "attention_bias", "true", &err), 0);
  CHECK_INT(c.attention_bias, 1);
  CHECK_INT(c.o_bias, 1);
}

TEST(rope_scaling_variants) {
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(parse_with(&c, "rope_scaling", "{\"type\":\"linear\",\"factor\":2.0}", &err), 0);
  CHECK_INT(c.rope_scaling.type, FB_ROPE_LINEAR);
  CHECK_NEAR(c.rope_scaling.factor, 2, 0);
  CHECK_INT(parse_with(&c, "rope_scaling",
                       "{\"rope_type\":\"llama3\",\"factor\":32.0,\"low_freq_factor\":1.0,"
                       "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}",
                       &err),
            0);
  CHECK_INT(c.rope_scaling.type, FB_ROPE_LLAMA3);
  CHECK_NEAR(c.rope_scaling.factor, 32, 0);
  CHECK_NEAR(c.rope_scaling.high_freq_factor, 4, 0);
  CHECK_INT(c.rope_scaling.original_max_position_embeddings, 8192);
  CHECK_INT(parse_with(&c, "rope_scaling", "{\"rope_type\":\"default\"}", &err), 0);
  CHECK_INT(c.rope_scaling.type, FB_ROPE_NONE);
}

TEST(each_rule_has_its_message) {
  expect_refused("architectures", NULL, FB_EFORMAT, "field 'architectures': missing");
  expect_refused("architectures", "[\"GPT2LMHeadModel\"]", FB_EUNSUPPORTED,
                 "'GPT2LMHeadModel' is not one of LlamaForCausalLM");
  expect_refused("architectures", "[\"Qwen3MoeForCausalLM\"]", FB_EUNSUPPORTED,
                 "MistralForCausalLM, Qwen3ForCausalLM");
  expect_refused("architectures", "\"LlamaForCausalLM\"", FB_EFORMAT, "array of one string");
  expect_refused("hidden_size", NULL, FB_EFORMAT, "field 'hidden_size': missing (required)");
  expect_refused("hidden_size", "\"576\"", FB_EFORMAT,
                 "field 'hidden_size': expected an integer, got a string");
  expect_refused("hidden_size", "576.5", FB_EFORMAT, "expected an integer, got a fraction");
  expect_refused("hidden_size", "0", FB_EFORMAT, "0 is outside the allowed range [1, 65536]");
  expect_refused("vocab_size", "1e12", FB_ELIMIT, "field 'vocab_size': 1000000000000 is outside");
  expect_refused("vocab_size", "524289", FB_ELIMIT,
                 "524289 is outside the allowed range [1, 524288]");
  expect_refused("num_hidden_layers", "100000", FB_ELIMIT, "field 'num_hidden_layers'");
  expect_refused("intermediate_size", "-3", FB_EFORMAT, "field 'intermediate_size'");
  expect_refused("num_attention_heads", "7", FB_EFORMAT,
                 "field 'num_attention_heads': 7 does not divide hidden_size 576");
  expect_refused("num_key_value_heads", "2", FB_EFORMAT,
                 "field 'num_key_value_heads': 2 does not divide num_attention_heads 9");
  expect_refused("num_key_value_heads", "18", FB_EFORMAT, "does not divide");
  expect_refused("head_dim", "63", FB_EFORMAT, "field 'head_dim': 63 must be even");
  expect_refused("max_position_embeddings", NULL, FB_EFORMAT, "'max_position_embeddings': missing");
  expect_refused("rms_norm_eps", "0", FB_EFORMAT, "field 'rms_norm_eps': 0 must be > 0");
  expect_refused("rms_norm_eps", "true", FB_EFORMAT, "expected a number, got a boolean");
  expect_refused("rope_theta", "-1", FB_EFORMAT, "field 'rope_theta'");
  expect_refused("tie_word_embeddings", "1", FB_EFORMAT,
                 "field 'tie_word_embeddings': expected true or false, got a number");
  expect_refused("rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", FB_EUNSUPPORTED,
                 "field 'rope_scaling.rope_type': 'yarn' is not one of default, linear, llama3");
  expect_refused("rope_scaling", "{\"factor\":4}", FB_EFORMAT, "rope_scaling.rope_type");
  expect_refused("rope_scaling", "[]", FB_EFORMAT, "field 'rope_scaling': expected an object");
  expect_refused("rope_scaling", "{\"type\":\"linear\"}", FB_EFORMAT,
                 "field 'rope_scaling.factor': missing");
  expect_refused("rope_scaling",
                 "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,"
                 "\"high_freq_factor\":4}",
                 FB_EFORMAT, "field 'rope_scaling.original_max_position_embeddings': missing");
  expect_refused("rope_scaling",
                 "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
                 "\"high_freq_factor\":1,\"original_max_position_embeddings\":8192}",
                 FB_EFORMAT, "high_freq_factor");
  expect_refused("hidden_act", "\"gelu\"", FB_EUNSUPPORTED, "field 'hidden_act'");
  expect_refused("mlp_bias", "true", FB_EUNSUPPORTED, "field 'mlp_bias'");
  expect_refused("torch_dtype", "\"float64\"", FB_EUNSUPPORTED, "field 'torch_dtype'");
  expect_refused("eos_token_id", "[1,\"x\"]", FB_EFORMAT, "field 'eos_token_id': element 1");
  expect_refused("eos_token_id", "49152", FB_ELIMIT, "field 'eos_token_id': 49152 is outside");
  expect_refused("eos_token_id", "[1,2,3,4,5,6,7,8,9]", FB_EFORMAT, "at most 8");
  expect_refused("bos_token_id", "50000", FB_EFORMAT, "field 'bos_token_id': 50000 is not below");
}

/* model_type was not read, so a Qwen2 config.json calling itself LlamaForCausalLM passed (issue
 * 19): when given it must be the one transformers pairs with the architecture. */
TEST(model_type_must_match_architectures) {
  expect_refused("model_type", "\"qwen2\"", FB_EFORMAT,
                 "field 'model_type': 'qwen2' does not match architectures LlamaForCausalLM "
                 "('llama')");
  expect_refused("model_type", "[\"llama\"]", FB_EFORMAT,
                 "field 'model_type': expected a string, got an array");
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(parse_with(&c, "model_type", NULL, &err), 0); /* absent: nothing to contradict */
  static const char *const archs[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM",
                                      "Qwen3ForCausalLM"};
  for (int a = 0; a < 4; a++) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"architectures\":[\"%s\"],\"model_type\":\"%s\",\"vocab_size\":64,"
             "\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":4,\"max_position_embeddings\":128,\"rms_norm_eps\":1e-6}",
             archs[a], fb_arch_model_type((fb_arch)a));
    CHECK_INT(fb_model_config_parse(&c, json, strlen(json), "t", &err), 0);
    CHECK_STR(fb_arch_name(c.arch), archs[a]);
  }
  CHECK_STR(fb_arch_model_type(FB_ARCH_QWEN3), "qwen3");
}

/* Invalid UTF-8 anywhere in config.json was taken as is (issue 19); JSON text is UTF-8. */
TEST(invalid_utf8_is_refused) {
  static const struct {
    const char *add, *want;
  } cases[] = {
      {"{\"_name_or_path\":\"caf\xC3\",",
       "x/config.json: field '_name_or_path': invalid UTF-8 "
       "(byte 21 of the file)"},
      {"{\"rope_scaling\":{\"note\":\"\xED\xA0\x80\"},", "field 'rope_scaling': invalid UTF-8"},
      {"{\"\xFF\":1,", "x/config.json: invalid UTF-8 at byte 2"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char json[1024];
    snprintf(json, sizeof json, "%s%s", cases[k].add, smollm + 1);
    fb_model_config c;
    fb_err err = {0};
    CHECK_INT(fb_model_config_parse(&c, json, strlen(json), "x/config.json", &err), FB_EFORMAT);
    CHECK_CONTAINS(err.msg, cases[k].want);
  }
  char tail[1024]; /* after the object, where cJSON stops reading */
  snprintf(tail, sizeof tail, "%s\n\xC0\xAF", smollm);
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(fb_model_config_parse(&c, tail, strlen(tail), "x/config.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "invalid UTF-8 at byte");
  char ok[1024]; /* valid multi-byte text is fine */
  snprintf(ok, sizeof ok, "{\"_name_or_path\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\",%s", smollm + 1);
  CHECK_INT(fb_model_config_parse(&c, ok, strlen(ok), "x/config.json", &err), 0);
}

/* Sliding windows as Hugging Face transformers reads them (model_config.c cites the rules):
 * fields added to a 4-layer model of the architecture -> each layer's window, or the error. */
TEST(sliding_windows_follow_transformers) {
#define SLIDING4                                                                                   \
  "[\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]"
  static const struct {
    const char *arch, *fields;
    int window[4], code;
    const char *want;
  } cases[] = {
      {"MistralForCausalLM", "", {4096, 4096, 4096, 4096}, 0, NULL}, /* MistralConfig default */
      {"MistralForCausalLM", ",\"sliding_window\":null", {0, 0, 0, 0}, 0, NULL},
      {"MistralForCausalLM", ",\"sliding_window\":16", {16, 16, 16, 16}, 0, NULL},
      {"MistralForCausalLM",
       ",\"layer_types\":" SLIDING4,
       {4096, 4096, 4096, 4096},
       0,
       NULL}, /* MistralConfig has no layer_types */
      {"MistralForCausalLM",
       ",\"sliding_window\":0",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null, got a number < 1"},
      {"MistralForCausalLM",
       ",\"sliding_window\":-4096",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null, got a number < 1"},
      {"MistralForCausalLM",
       ",\"sliding_window\":\"4096\"",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null, got a string"},
      {"MistralForCausalLM",
       ",\"sliding_window\":40.5",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null, got a fraction"},
      {"MistralForCausalLM",
       ",\"sliding_window\":1e9",
       {0},
       FB_ELIMIT,
       "field 'sliding_window': 1000000000 is outside the allowed range"},
      {"Qwen2ForCausalLM",
       ",\"sliding_window\":16,\"max_window_layers\":1",
       {0, 0, 0, 0},
       0,
       NULL}, /* use_sliding_window defaults to false */
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":16,"
       "\"max_window_layers\":1",
       {0, 16, 16, 16},
       0,
       NULL},
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"max_window_layers\":3",
       {0, 0, 0, 4096},
       0,
       NULL}, /* Qwen2Config's default window */
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":16",
       {0, 0, 0, 0},
       0,
       NULL}, /* max_window_layers defaults to 28 */
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":16,"
       "\"max_window_layers\":0",
       {16, 16, 16, 16},
       0,
       NULL},
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":null,"
       "\"max_window_layers\":0",
       {0, 0, 0, 0},
       0,
       NULL},
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":8,"
       "\"max_window_layers\":3,\"layer_types\":" SLIDING4,
       {8, 0, 8, 0},
       0,
       NULL}, /* layer_types, when given, overrides max_window_layers */
      {"Qwen2ForCausalLM",
       ",\"sliding_window\":8,\"layer_types\":" SLIDING4,
       {0, 0, 0, 0},
       0,
       NULL},
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":1",
       {0},
       FB_EFORMAT,
       "field 'use_sliding_window': expected true or false, got a number"},
      {"Qwen2ForCausalLM",
       ",\"max_window_layers\":-1",
       {0},
       FB_EFORMAT,
       "field 'max_window_layers': -1 is outside the allowed range"},
      {"Qwen2ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":0",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null"},
      {"Qwen2ForCausalLM",
       ",\"layer_types\":[\"full_attention\"]",
       {0},
       FB_EFORMAT,
       "field 'layer_types': expected an array of num_hidden_layers (4) strings"},
      {"Qwen2ForCausalLM",
       ",\"layer_types\":[\"full_attention\",\"full_attention\",\"full_attention\",7]",
       {0},
       FB_EUNSUPPORTED,
       "field 'layer_types': element 3 is not \"full_attention\" or \"sliding_attention\""},
      {"LlamaForCausalLM",
       ",\"sliding_window\":16,\"use_sliding_window\":true",
       {0, 0, 0, 0},
       0,
       NULL},
      /* Qwen3Config: Qwen2's rules */
      {"Qwen3ForCausalLM", ",\"sliding_window\":16,\"max_window_layers\":1", {0, 0, 0, 0}, 0, NULL},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":16,"
       "\"max_window_layers\":1",
       {0, 16, 16, 16},
       0,
       NULL},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":true,\"max_window_layers\":2",
       {0, 0, 4096, 4096},
       0,
       NULL},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":16",
       {0, 0, 0, 0},
       0,
       NULL},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":8,"
       "\"max_window_layers\":3,\"layer_types\":" SLIDING4,
       {8, 0, 8, 0},
       0,
       NULL},
      {"Qwen3ForCausalLM",
       ",\"sliding_window\":8,\"layer_types\":" SLIDING4,
       {0, 0, 0, 0},
       0,
       NULL},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":\"yes\"",
       {0},
       FB_EFORMAT,
       "field 'use_sliding_window': expected true or false, got a string"},
      {"Qwen3ForCausalLM",
       ",\"use_sliding_window\":true,\"sliding_window\":-1",
       {0},
       FB_EFORMAT,
       "field 'sliding_window': expected a positive integer or null"},
      {"Qwen3ForCausalLM",
       ",\"layer_types\":[\"full_attention\",\"chunked_attention\","
       "\"full_attention\",\"full_attention\"]",
       {0},
       FB_EUNSUPPORTED,
       "field 'layer_types': element 1 is not \"full_attention\" or \"sliding_attention\""},
      {"Qwen3ForCausalLM",
       ",\"max_window_layers\":2.5",
       {0},
       FB_EFORMAT,
       "field 'max_window_layers': expected an integer, got a fraction"},
  };
#undef SLIDING4
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"architectures\":[\"%s\"],\"vocab_size\":64,\"hidden_size\":32,"
             "\"intermediate_size\":64,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
             "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-6%s}",
             cases[k].arch, cases[k].fields);
    fb_model_config c;
    fb_err err = {0};
    int rc = fb_model_config_parse(&c, json, strlen(json), "w/config.json", &err);
    if (rc != cases[k].code)
      FB_FAIL_("case %zu (%s%s): rc %d, want %d (%s)", k, cases[k].arch, cases[k].fields, rc,
               cases[k].code, err.msg);
    else if (rc != 0 && (!strstr(err.msg, cases[k].want) || !strstr(err.msg, "w/config.json")))
      FB_FAIL_("case %zu: \"%s\" lacks \"%s\"", k, err.msg, cases[k].want);
    for (int l = 0; rc == 0 && l < 4; l++)
      if (c.layer_window[l] != cases[k].window[l])
        FB_FAIL_("case %zu (%s%s): layer %d window %d, want %d", k, cases[k].arch, cases[k].fields,
                 l, c.layer_window[l], cases[k].window[l]);
  }
}

TEST(absurd_head_dimensions_are_capped) {
  fb_model_config c;
  fb_err err = {0};
  const char *j =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":64,"
      "\"hidden_size\":65536,\"intermediate_size\":64,\"num_hidden_layers\":1,"
      "\"num_attention_heads\":1,\"max_position_embeddings\":16,\"rms_norm_eps\":1e-6}";
  CHECK_INT(fb_model_config_parse(&c, j, strlen(j), "cap", &err), FB_ELIMIT);
  CHECK_CONTAINS(err.msg, "field 'head_dim'");
  CHECK_INT(parse_with(&c, "head_dim", "1024", &err), 0);
  CHECK_INT(c.head_dim, 1024);
  CHECK_INT(parse_with(&c, "head_dim", "2048", &err), FB_ELIMIT);
}

TEST(bad_json_and_files) {
  fb_model_config c;
  fb_err err = {0};
  CHECK_INT(fb_model_config_parse(&c, "{", 1, "x.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "x.json: not valid JSON");
  CHECK_INT(fb_model_config_parse(&c, "[]", 2, "x.json", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "not a JSON object");
  CHECK_INT(fb_model_config_load(&c, tmp_path("nope/config.json"), &err), FB_ENOTFOUND);
  const char *p = tmp_write("config.json", smollm, strlen(smollm));
  CHECK_INT(fb_model_config_load(&c, p, &err), 0);
  CHECK_INT(c.num_hidden_layers, 30);
}

/* ---- adapter_config.json ---- */

static const char *const peft_json =
    "{\"alpha_pattern\":{},\"auto_mapping\":null,\"base_model_name_or_path\":\"HuggingFaceTB/"
    "SmolLM2-135M\",\"bias\":\"none\",\"fan_in_fan_out\":false,\"inference_mode\":true,"
    "\"init_lora_weights\":true,\"layers_pattern\":null,\"layers_to_transform\":null,"
    "\"lora_alpha\":32,\"lora_dropout\":0.05,\"modules_to_save\":null,\"peft_type\":\"LORA\","
    "\"r\":16,\"rank_pattern\":{},\"revision\":null,\"target_modules\":[\"v_proj\",\"q_proj\","
    "\"down_proj\"],\"task_type\":\"CAUSAL_LM\",\"use_dora\":false,\"use_rslora\":false}";

static int adapter_with(fb_adapter_config *a, const char *field, const char *value, fb_err *err) {
  cJSON *root = cJSON_Parse(peft_json);
  cJSON_DeleteItemFromObjectCaseSensitive(root, field);
  if (value) cJSON_AddItemToObject(root, field, cJSON_Parse(value));
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  int rc = fb_adapter_config_parse(a, text, strlen(text), "ad/adapter_config.json", err);
  cJSON_free(text);
  return rc;
}

TEST(target_names_and_lists) {
  CHECK_STR(fb_target_name(0), "q_proj");
  CHECK_STR(fb_target_name(6), "down_proj");
  CHECK(fb_target_name(7) == NULL);
  CHECK_INT(fb_target_parse("up_proj"), FB_TARGET_UP_PROJ);
  CHECK_INT(fb_target_parse("lm_head"), 0);
  unsigned m = 0;
  fb_err err = {0};
  CHECK_INT(fb_targets_parse_list("q_proj, v_proj,o_proj", &m, &err), 0);
  CHECK_INT(m, FB_TARGET_Q_PROJ | FB_TARGET_V_PROJ | FB_TARGET_O_PROJ);
  CHECK_INT(fb_targets_parse_list("all-linear", &m, &err), 0);
  CHECK_INT(m, FB_TARGET_ALL);
  CHECK_INT(fb_targets_parse_list("q_proj,lm_head", &m, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "'lm_head' is not one of");
  CHECK_INT(fb_targets_parse_list("q_proj,,k_proj", &m, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "empty");
  CHECK_INT(fb_targets_parse_list("k_proj,k_proj", &m, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "'k_proj' given twice");
}

TEST(peft_adapter_config_parses) {
  fb_adapter_config a;
  fb_err err = {0};
  CHECK_INT(fb_adapter_config_parse(&a, peft_json, strlen(peft_json), "ad", &err), 0);
  CHECK_INT(a.r, 16);
  CHECK_NEAR(a.lora_alpha, 32, 0);
  CHECK_NEAR(a.lora_dropout, 0.05, 0);
  CHECK_INT(a.targets, FB_TARGET_Q_PROJ | FB_TARGET_V_PROJ | FB_TARGET_DOWN_PROJ);
  CHECK_INT(a.use_rslora, 0);
  CHECK_STR(a.base_model_name_or_path, "HuggingFaceTB/SmolLM2-135M");
  CHECK_STR(a.revision, ""); /* null */
  CHECK_NEAR(fb_adapter_config_scale(&a), 2.0, 0);
  a.use_rslora = 1;
  CHECK_NEAR(fb_adapter_config_scale(&a), 8.0, 0);
  CHECK_INT(adapter_with(&a, "target_modules", "\"all-linear\"", &err), 0);
  CHECK_INT(a.targets, FB_TARGET_ALL);
}

TEST(adapter_config_write_and_load_round_trip) {
  fb_adapter_config a = {.r = 8,
                         .lora_alpha = 16,
                         .lora_dropout = 0.1,
                         .use_rslora = 1,
                         .targets = FB_TARGET_K_PROJ | FB_TARGET_GATE_PROJ};
  strcpy(a.base_model_name_or_path, "models/tiny \"quoted\"");
  strcpy(a.revision, "5d8c1e30a3f2b4c6d8e0f1a2b3c4d5e6f7a8b9c0");
  fb_err err = {0};
  const char *p = tmp_path("adapter_config.json");
  CHECK_INT(fb_adapter_config_write(&a, p, &err), 0);
  fb_adapter_config b;
  CHECK_INT(fb_adapter_config_load(&b, p, &err), 0);
  CHECK_INT(b.r, 8);
  CHECK_NEAR(b.lora_alpha, 16, 0);
  CHECK_NEAR(b.lora_dropout, 0.1, 0);
  CHECK_INT(b.use_rslora, 1);
  CHECK_INT(b.targets, a.targets);
  CHECK_STR(b.base_model_name_or_path, a.base_model_name_or_path);
  CHECK_STR(b.revision, a.revision);
  char *text = NULL;
  REQUIRE(fb_read_file(p, &text, NULL, 1 << 16, &err) == 0);
  CHECK_CONTAINS(text, "\"peft_type\":\t\"LORA\"");
  CHECK_CONTAINS(text, "\"k_proj\", \"gate_proj\"");
  free(text);
  a.r = 0;
  CHECK_INT(fb_adapter_config_write(&a, tmp_path("bad.json"), &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "field 'r'");
  CHECK(access(tmp_path("bad.json"), F_OK) != 0);
}

TEST(adapter_config_errors) {
  struct {
    const char *field, *value, *want;
  } cases[] = {
      {"peft_type", "\"IA3\"", "field 'peft_type': must be \"LORA\" (required)"},
      {"peft_type", NULL, "field 'peft_type'"},
      {"task_type", "\"SEQ_CLS\"", "field 'task_type': must be \"CAUSAL_LM\""},
      {"bias", "\"all\"", "field 'bias': must be \"none\""},
      {"r", "0", "field 'r': must be an integer in [1, 4096]"},
      {"r", "2.5", "field 'r'"},
      {"r", NULL, "field 'r': missing or not a number"},
      {"lora_alpha", "\"32\"", "field 'lora_alpha': missing or not a number"},
      {"lora_alpha", "-1", "field 'lora_alpha': -1 must be > 0"},
      {"lora_alpha", "1e7", "field 'lora_alpha': 1e+07 must be > 0 and < 1e6"},
      {"lora_dropout", "1", "field 'lora_dropout': 1 is outside [0, 1)"},
      {"target_modules", "[\"q_proj\",\"lm_head\"]", "'lm_head' is not one of"},
      {"target_modules", "[]", "field 'target_modules': must be a non-empty array"},
      {"target_modules", "\".*proj\"", "(a regex) is not supported"},
      {"target_modules", "[\"q_proj\",\"q_proj\"]", "'q_proj' given twice"},
      {"use_rslora", "1", "field 'use_rslora'"},
      {"fan_in_fan_out", "true", "field 'fan_in_fan_out': is not supported"},
      {"rank_pattern", "{\"q_proj\":4}", "field 'rank_pattern'"},
      {"modules_to_save", "[\"lm_head\"]", "field 'modules_to_save'"},
      {"use_dora", "true", "field 'use_dora'"},
      {"base_model_name_or_path", "7", "field 'base_model_name_or_path'"},
      {"revision", "[1]", "field 'revision': must be a string under 64 bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fb_adapter_config a;
    fb_err err = {0};
    int rc = adapter_with(&a, cases[i].field, cases[i].value, &err);
    if (rc != FB_EINVALID)
      FB_FAIL_("%s=%s: rc %d (%s)", cases[i].field, cases[i].value, rc, err.msg);
    if (!strstr(err.msg, cases[i].want) || !strstr(err.msg, "ad/adapter_config.json"))
      FB_FAIL_("%s=%s: \"%s\" lacks \"%s\"", cases[i].field, cases[i].value, err.msg,
               cases[i].want);
  }
  fb_adapter_config a;
  fb_err err = {0};
  CHECK_INT(fb_adapter_config_parse(&a, "nope", 4, "x", &err), FB_EFORMAT);
  CHECK_INT(fb_adapter_config_load(&a, tmp_path("none.json"), &err), FB_ENOTFOUND);
}
