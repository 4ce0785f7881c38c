/* model_config.c: config.json -> fb_model_config, every field checked for presence, type,
 * range and consistency with an error naming the field and the rule. No weights, no I/O
 * beyond reading the one file. */
#include "model_config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "utf8.h"

#define MAX_CONFIG_BYTES (1u << 20)
#define NPROJ 7                 /* q k v o gate up down, in fb_target bit order */
#define HF_SLIDING_WINDOW 4096  /* Mistral-, Qwen2- and Qwen3Config's default sliding_window */
#define HF_MAX_WINDOW_LAYERS 28 /* Qwen2Config's and Qwen3Config's default max_window_layers */
#define HF_QWEN3_HEAD_DIM 128   /* Qwen3Config's default head_dim */
#define N_ARCH 4

/* In fb_arch order: the architectures entry and the model_type transformers pairs with it. */
static const char *const arch_names[N_ARCH] = {"LlamaForCausalLM", "Qwen2ForCausalLM",
                                               "MistralForCausalLM", "Qwen3ForCausalLM"};
static const char *const model_types[N_ARCH] = {"llama", "qwen2", "mistral", "qwen3"};

const char *fb_arch_name(fb_arch arch) { return arch_names[arch]; }

const char *fb_arch_model_type(fb_arch arch) { return model_types[arch]; }

static const char *json_type(const cJSON *v) {
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "null";
}

static int bad(fb_err *err, int code, const char *label, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(fb_err *err, int code, const char *label, const char *field, const char *fmt, ...) {
  char rule[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rule, sizeof rule, fmt, ap);
  va_end(ap);
  return fb_err_set(err, code, "%s: field '%s': %s", label, field, rule);
}

/* The member `name` names; a dotted name ("rope_scaling.factor") looks up its last part in o
 * and is shown whole in errors. */
static const cJSON *member(const cJSON *o, const char *name) {
  const char *dot = strrchr(name, '.');
  return cJSON_GetObjectItemCaseSensitive(o, dot ? dot + 1 : name);
}

/* An integer field in [lo, hi]. Absent or null: *out = dflt, or an error when required. */
static int get_int(const cJSON *o, const char *name, int required, int dflt, int lo, int hi,
                   int *out, const char *label, fb_err *err) {
  const cJSON *v = member(o, name);
  if (!v || cJSON_IsNull(v)) {
    if (required) return bad(err, FB_EFORMAT, label, name, "missing (required)");
    *out = dflt;
    return 0;
  }
  double d = v->valuedouble;
  if (!cJSON_IsNumber(v) || d != floor(d))
    return bad(err, FB_EFORMAT, label, name, "expected an integer, got %s",
               cJSON_IsNumber(v) ? "a fraction" : json_type(v));
  if (d < lo || d > hi)
    return bad(err, d > hi ? FB_ELIMIT : FB_EFORMAT, label, name,
               "%.17g is outside the allowed range [%d, %d]", d, lo, hi);
  *out = (int)d;
  return 0;
}

/* A number field with lo < value <= hi. */
static int get_num(const cJSON *o, const char *name, int required, double dflt, double lo,
                   double hi, double *out, const char *label, fb_err *err) {
  const cJSON *v = member(o, name);
  if (!v || cJSON_IsNull(v)) {
    if (required) return bad(err, FB_EFORMAT, label, name, "missing (required)");
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(v))
    return bad(err, FB_EFORMAT, label, name, "expected a number, got %s", json_type(v));
  if (!(v->valuedouble > lo && v->valuedouble <= hi))
    return bad(err, FB_EFORMAT, label, name, "%.17g must be > %g and <= %g", v->valuedouble, lo,
               hi);
  *out = v->valuedouble;
  return 0;
}

/* A boolean field; absent or null gives dflt. */
static int get_bool(const cJSON *o, const char *name, int dflt, int *out, const char *label,
                    fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!v || cJSON_IsNull(v)) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v))
    return bad(err, FB_EFORMAT, label, name, "expected true or false, got %s", json_type(v));
  *out = cJSON_IsTrue(v);
  return 0;
}

static int parse_architecture(fb_model_config *c, const cJSON *root, const char *label,
                              fb_err *err) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  if (!a) return bad(err, FB_EFORMAT, label, "architectures", "missing (required)");
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 1 || !cJSON_IsString(a->child))
    return bad(err, FB_EFORMAT, label, "architectures", "expected an array of one string");
  int i = 0;
  while (i < N_ARCH && strcmp(a->child->valuestring, arch_names[i]) != 0) i++;
  if (i == N_ARCH)
    return bad(err, FB_EUNSUPPORTED, label, "architectures",
               "'%.64s' is not one of LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, "
               "Qwen3ForCausalLM",
               a->child->valuestring);
  c->arch = (fb_arch)i;
  snprintf(c->architecture, sizeof c->architecture, "%s", arch_names[i]);
  /* transformers builds the config class model_type names, so a mismatch is a different model */
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (!t || cJSON_IsNull(t)) return 0;
  if (!cJSON_IsString(t))
    return bad(err, FB_EFORMAT, label, "model_type", "expected a string, got %s", json_type(t));
  if (strcmp(t->valuestring, model_types[i]) != 0)
    return bad(err, FB_EFORMAT, label, "model_type",
               "'%.64s' does not match architectures %s ('%s')", t->valuestring, arch_names[i],
               model_types[i]);
  return 0;
}

static int parse_rope_scaling(fb_model_config *c, const cJSON *root, const char *label,
                              fb_err *err) {
  fb_rope_scaling *r = &c->rope_scaling;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  r->type = FB_ROPE_NONE;
  if (!s || cJSON_IsNull(s)) return 0;
  if (!cJSON_IsObject(s))
    return bad(err, FB_EFORMAT, label, "rope_scaling", "expected an object or null, got %s",
               json_type(s));
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
  if (!t) t = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (!cJSON_IsString(t))
    return bad(err, FB_EFORMAT, label, "rope_scaling.rope_type", "missing or not a string");
  const char *type = t->valuestring;
  int rc;
  if (strcmp(type, "default") == 0) return 0;
  if (strcmp(type, "linear") == 0) {
    r->type = FB_ROPE_LINEAR;
    return get_num(s, "rope_scaling.factor", 1, 0, 0, 1024, &r->factor, label, err);
  }
  if (strcmp(type, "llama3") != 0)
    return bad(err, FB_EUNSUPPORTED, label, "rope_scaling.rope_type",
               "'%.32s' is not one of default, linear, llama3", type);
  r->type = FB_ROPE_LLAMA3;
  rc = get_num(s, "rope_scaling.factor", 1, 0, 0, 1024, &r->factor, label, err);
  if (rc == 0)
    rc = get_num(s, "rope_scaling.low_freq_factor", 1, 0, 0, 1024, &r->low_freq_factor, label, err);
  if (rc == 0)
    rc = get_num(s, "rope_scaling.high_freq_factor", 1, 0, 0, 1024, &r->high_freq_factor, label,
                 err);
  if (rc == 0)
    rc = get_int(s, "rope_scaling.original_max_position_embeddings", 1, 0, 1, FB_CFG_MAX_POSITIONS,
                 &r->original_max_position_embeddings, label, err);
  if (rc != 0) return rc;
  if (r->high_freq_factor <= r->low_freq_factor)
    return bad(err, FB_EFORMAT, label, "rope_scaling.high_freq_factor",
               "%g must be greater than low_freq_factor %g", r->high_freq_factor,
               r->low_freq_factor);
  return 0;
}

/* sliding_window: absent gives transformers' default, null none, else a positive integer. */
static int get_window(const cJSON *root, int *out, const char *label, fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
  *out = !v ? HF_SLIDING_WINDOW : 0;
  if (!v || cJSON_IsNull(v)) return 0;
  double d = v->valuedouble;
  if (!cJSON_IsNumber(v) || d != floor(d) || d < 1)
    return bad(err, FB_EFORMAT, label, "sliding_window",
               "expected a positive integer or null, got %s",
               !cJSON_IsNumber(v) ? json_type(v)
               : d != floor(d)    ? "a fraction"
                                  : "a number < 1");
  return get_int(root, "sliding_window", 1, 0, 1, FB_CFG_MAX_POSITIONS, out, label, err);
}

/* Qwen2's and Qwen3's layer_types, when given: one "full_attention" or "sliding_attention" per
 * layer. */
static int parse_layer_types(fb_model_config *c, const cJSON *types, int window, const char *label,
                             fb_err *err) {
  if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->num_hidden_layers)
    return bad(err, FB_EFORMAT, label, "layer_types",
               "expected an array of num_hidden_layers (%d) strings", c->num_hidden_layers);
  int l = 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, types) {
    int sliding = cJSON_IsString(t) && strcmp(t->valuestring, "sliding_attention") == 0;
    if (!sliding && !(cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0))
      return bad(err, FB_EUNSUPPORTED, label, "layer_types",
                 "element %d is not \"full_attention\" or \"sliding_attention\"", l);
    c->layer_window[l++] = sliding ? window : 0;
  }
  return 0;
}

/* Each layer's sliding window, as Hugging Face transformers defines it per architecture:
 * - Mistral: every layer; sliding_window defaults to 4096 (MistralConfig), null means none.
 * - Qwen2 (transformers configuration_qwen2.py): `self.sliding_window = sliding_window if
 *   self.use_sliding_window else None`; layer_types defaults to "sliding_attention" for layer i
 *   when `self.sliding_window is not None and i >= self.max_window_layers`, else
 *   "full_attention"; Qwen2Attention takes `config.sliding_window if layer_type ==
 *   "sliding_attention" else None`. use_sliding_window defaults to false, max_window_layers to 28.
 * - Qwen3 (configuration_qwen3.py, modeling_qwen3.py): Qwen2's rules, field for field.
 * - Llama: no window (LlamaConfig has none; a sliding_window key is ignored as there). */
static int parse_windows(fb_model_config *c, const cJSON *root, const char *label, fb_err *err) {
  int window = 0, use = 0, first = 0, qwen = c->arch == FB_ARCH_QWEN2 || c->arch == FB_ARCH_QWEN3;
  if (c->arch == FB_ARCH_LLAMA) return 0;
  int rc = get_window(root, &window, label, err);
  if (rc == 0 && qwen) {
    rc = get_bool(root, "use_sliding_window", 0, &use, label, err);
    if (rc == 0)
      rc = get_int(root, "max_window_layers", 0, HF_MAX_WINDOW_LAYERS, 0, INT_MAX, &first, label,
                   err);
    if (!use) window = 0;
  }
  if (rc != 0) return rc;
  fb_model_config_set_window(c, window, first);
  const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
  if (qwen && types && !cJSON_IsNull(types)) return parse_layer_types(c, types, window, label, err);
  return 0;
}

void fb_model_config_set_window(fb_model_config *c, int window, int first_layer) {
  c->sliding_window = window;
  for (int l = 0; l < FB_CFG_MAX_LAYERS; l++)
    c->layer_window[l] = l >= first_layer && l < c->num_hidden_layers ? window : 0;
}

static int parse_tokens(fb_model_config *c, const cJSON *root, const char *label, fb_err *err) {
  int rc = get_int(root, "bos_token_id", 0, -1, 0, FB_CFG_MAX_VOCAB, &c->bos_token_id, label, err);
  if (rc != 0) return rc;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
  c->n_eos = 0;
  if (!e || cJSON_IsNull(e)) return 0;
  if (cJSON_IsNumber(e)) {
    c->n_eos = 1;
    return get_int(root, "eos_token_id", 1, 0, 0, c->vocab_size - 1, &c->eos_token_ids[0], label,
                   err);
  }
  if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) > FB_CFG_MAX_EOS)
    return bad(err, FB_EFORMAT, label, "eos_token_id",
               "expected an integer or an array of at most %d integers", FB_CFG_MAX_EOS);
  const cJSON *v;
  cJSON_ArrayForEach(v, e) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble >= c->vocab_size)
      return bad(err, FB_EFORMAT, label, "eos_token_id",
                 "element %d is not a token id in [0, vocab_size)", c->n_eos);
    c->eos_token_ids[c->n_eos++] = (int)v->valuedouble;
  }
  return 0;
}

/* Fields the CPU path does not implement, refused rather than silently ignored. */
static int parse_unsupported(const cJSON *root, const char *label, fb_err *err) {
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
    return bad(err, FB_EUNSUPPORTED, label, "hidden_act", "only \"silu\" is supported");
  int mlp_bias = 0, rc = get_bool(root, "mlp_bias", 0, &mlp_bias, label, err);
  if (rc == 0 && mlp_bias)
    return bad(err, FB_EUNSUPPORTED, label, "mlp_bias", "true is not supported");
  return rc;
}

static int parse_fields(fb_model_config *c, const cJSON *root, const char *label, fb_err *err) {
  int rc = parse_architecture(c, root, label, err);
  if (rc == 0) rc = parse_unsupported(root, label, err);
  if (rc == 0)
    rc = get_int(root, "vocab_size", 1, 0, 1, FB_CFG_MAX_VOCAB, &c->vocab_size, label, err);
  if (rc == 0)
    rc = get_int(root, "hidden_size", 1, 0, 1, FB_CFG_MAX_HIDDEN, &c->hidden_size, label, err);
  if (rc == 0)
    rc = get_int(root, "intermediate_size", 1, 0, 1, FB_CFG_MAX_FFN, &c->intermediate_size, label,
                 err);
  if (rc == 0)
    rc = get_int(root, "num_hidden_layers", 1, 0, 1, FB_CFG_MAX_LAYERS, &c->num_hidden_layers,
                 label, err);
  if (rc == 0)
    rc = get_int(root, "num_attention_heads", 1, 0, 1, FB_CFG_MAX_HEADS, &c->num_attention_heads,
                 label, err);
  if (rc == 0)
    rc = get_int(root, "num_key_value_heads", 0, c->num_attention_heads, 1, FB_CFG_MAX_HEADS,
                 &c->num_key_value_heads, label, err);
  if (rc == 0) /* 0: hidden_size / num_attention_heads, set by check_consistency */
    rc = get_int(root, "head_dim", 0, c->arch == FB_ARCH_QWEN3 ? HF_QWEN3_HEAD_DIM : 0, 1,
                 FB_CFG_MAX_HEAD_DIM, &c->head_dim, label, err);
  if (rc == 0)
    rc = get_int(root, "max_position_embeddings", 1, 0, 1, FB_CFG_MAX_POSITIONS,
                 &c->max_position_embeddings, label, err);
  if (rc == 0) rc = get_num(root, "rms_norm_eps", 1, 0, 0, 0.1, &c->rms_norm_eps, label, err);
  if (rc == 0) rc = get_num(root, "rope_theta", 0, 10000.0, 0, 1e12, &c->rope_theta, label, err);
  if (rc == 0) rc = parse_rope_scaling(c, root, label, err);
  if (rc == 0) rc = get_bool(root, "tie_word_embeddings", 0, &c->tie_word_embeddings, label, err);
  if (rc == 0) rc = get_bool(root, "attention_bias", 0, &c->attention_bias, label, err);
  if (rc == 0) rc = parse_windows(c, root, label, err);
  if (rc == 0) rc = parse_tokens(c, root, label, err);
  if (rc != 0) return rc;
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
  if (dt && !cJSON_IsNull(dt)) {
    if (!cJSON_IsString(dt) ||
        (strcmp(dt->valuestring, "float32") != 0 && strcmp(dt->valuestring, "float16") != 0 &&
         strcmp(dt->valuestring, "bfloat16") != 0))
      return bad(err, FB_EUNSUPPORTED, label, "torch_dtype",
                 "expected \"float32\", \"float16\" or \"bfloat16\"");
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", dt->valuestring);
  }
  if (c->arch == FB_ARCH_QWEN2) { /* Qwen2: q/k/v always carry a bias, o_proj never */
    c->attention_bias = 1;
    c->o_bias = 0;
  } else { /* elsewhere attention_bias covers q, k, v and o (Llama's and Qwen3's rule) */
    c->o_bias = c->attention_bias;
  }
  c->qk_norm = c->arch == FB_ARCH_QWEN3;
  return 0;
}

/* Rules between fields. */
static int check_consistency(fb_model_config *c, const char *label, fb_err *err) {
  if (c->head_dim == 0) {
    if (c->hidden_size % c->num_attention_heads != 0)
      return bad(err, FB_EFORMAT, label, "num_attention_heads",
                 "%d does not divide hidden_size %d (and head_dim is not given)",
                 c->num_attention_heads, c->hidden_size);
    c->head_dim = c->hidden_size / c->num_attention_heads;
    if (c->head_dim > FB_CFG_MAX_HEAD_DIM)
      return bad(err, FB_ELIMIT, label, "head_dim",
                 "hidden_size / num_attention_heads = %d is over %d", c->head_dim,
                 FB_CFG_MAX_HEAD_DIM);
  }
  if (c->head_dim % 2 != 0)
    return bad(err, FB_EFORMAT, label, "head_dim", "%d must be even for rotary embeddings",
               c->head_dim);
  if (c->num_key_value_heads > c->num_attention_heads ||
      c->num_attention_heads % c->num_key_value_heads != 0)
    return bad(err, FB_EFORMAT, label, "num_key_value_heads",
               "%d does not divide num_attention_heads %d", c->num_key_value_heads,
               c->num_attention_heads);
  if ((int64_t)c->num_attention_heads * c->head_dim > 4 * (int64_t)FB_CFG_MAX_HIDDEN)
    return bad(err, FB_ELIMIT, label, "num_attention_heads",
               "num_attention_heads * head_dim = %lld is over %d",
               (long long)c->num_attention_heads * c->head_dim, 4 * FB_CFG_MAX_HIDDEN);
  if (c->bos_token_id >= c->vocab_size)
    return bad(err, FB_EFORMAT, label, "bos_token_id", "%d is not below vocab_size %d",
               c->bos_token_id, c->vocab_size);
  return 0;
}

static int utf8_ok(const char *s) {
  size_t n = strlen(s);
  return fb_utf8_valid_prefix(s, n) == n;
}

/* Is a key or string at or under v not UTF-8? */
static int bad_utf8_under(const cJSON *v) {
  if ((v->string && !utf8_ok(v->string)) || (cJSON_IsString(v) && !utf8_ok(v->valuestring)))
    return 1;
  for (const cJSON *c = v->child; c; c = c->next)
    if (bad_utf8_under(c)) return 1;
  return 0;
}

/* JSON text is UTF-8 (RFC 8259), and cJSON copies any bytes into strings. Names the top-level
 * field holding the first bad byte, unless its own name is the bad part. */
static int check_utf8(const cJSON *root, const char *json, size_t len, const char *label,
                      fb_err *err) {
  size_t ok = fb_utf8_valid_prefix(json, len);
  if (ok == len) return 0;
  for (const cJSON *c = root->child; c; c = c->next)
    if (bad_utf8_under(c) && utf8_ok(c->string))
      return bad(err, FB_EFORMAT, label, c->string, "invalid UTF-8 (byte %zu of the file)", ok);
  return fb_err_set(err, FB_EFORMAT, "%s: invalid UTF-8 at byte %zu", label, ok);
}

int fb_model_config_parse(fb_model_config *c, const char *json, size_t len, const char *label,
                          fb_err *err) {
  memset(c, 0, sizeof *c);
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) return fb_err_set(err, FB_EFORMAT, "%s: not valid JSON", label);
  int rc = cJSON_IsObject(root) ? 0 : fb_err_set(err, FB_EFORMAT, "%s: not a JSON object", label);
  if (rc == 0) rc = check_utf8(root, json, len, label, err);
  if (rc == 0) rc = parse_fields(c, root, label, err);
  if (rc == 0) rc = check_consistency(c, label, err);
  cJSON_Delete(root);
  if (rc != 0) memset(c, 0, sizeof *c);
  return rc;
}

static int parse_into(void *c, const char *json, size_t len, const char *label, fb_err *err) {
  return fb_model_config_parse(c, json, len, label, err);
}

int fb_model_config_load(fb_model_config *c, const char *path, fb_err *err) {
  memset(c, 0, sizeof *c);
  return fb_parse_file(path, MAX_CONFIG_BYTES, parse_into, c, err);
}

int fb_model_config_proj_shape(const fb_model_config *c, int index, int *out, int *in) {
  int h = c->hidden_size, f = c->intermediate_size;
  int q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
  const int shapes[NPROJ][2] = {{q, h}, {kv, h}, {kv, h}, {h, q}, {f, h}, {f, h}, {h, f}};
  if (index < 0 || index >= NPROJ) return FB_EINVALID;
  *out = shapes[index][0];
  *in = shapes[index][1];
  return 0;
}

int64_t fb_model_config_param_count(const fb_model_config *c) {
  int64_t h = c->hidden_size, v = c->vocab_size, layer = 2 * h; /* two norms per layer */
  if (c->qk_norm) layer += 2 * (int64_t)c->head_dim;            /* and Qwen3's q_norm, k_norm */
  for (int i = 0; i < NPROJ; i++) {
    int out, in;
    fb_model_config_proj_shape(c, i, &out, &in);
    layer += (int64_t)out * in;
    if ((i < 3 && c->attention_bias) || (i == 3 && c->o_bias)) layer += out;
  }
  return v * h + layer * c->num_hidden_layers + h + (c->tie_word_embeddings ? 0 : v * h);
}

int64_t fb_model_config_param_bytes(const fb_model_config *c) {
  return fb_model_config_param_count(c) * (int64_t)sizeof(float);
}
