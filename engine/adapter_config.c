/* adapter_config.c: PEFT adapter_config.json <-> fb_adapter_config, with the target-module
 * names and the LoRA scale. Knows LoRA for causal LMs only; no weights. */
#include "adapter_config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"

#define MAX_ADAPTER_CONFIG_BYTES (1u << 20)

static const char *const target_names[FB_TARGET_COUNT] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

const char *fb_target_name(int index) {
  return index >= 0 && index < FB_TARGET_COUNT ? target_names[index] : NULL;
}

unsigned fb_target_parse(const char *name) {
  for (int i = 0; i < FB_TARGET_COUNT; i++)
    if (strcmp(name, target_names[i]) == 0) return 1u << i;
  return 0;
}

/* Add one module name to *mask; label and field name the list in errors. */
static int add_target(unsigned *mask, const char *name, const char *label, const char *field,
                      fb_err *err) {
  unsigned bit = fb_target_parse(name);
  if (!bit)
    return fb_err_set(err, FB_EINVALID,
                      "%s: %s: '%.64s' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, "
                      "up_proj, down_proj",
                      label, field, name);
  if (*mask & bit)
    return fb_err_set(err, FB_EINVALID, "%s: %s: '%s' given twice", label, field, name);
  *mask |= bit;
  return 0;
}

int fb_targets_parse_list(const char *list, unsigned *mask, fb_err *err) {
  *mask = 0;
  if (strcmp(list, "all-linear") == 0) {
    *mask = FB_TARGET_ALL;
    return 0;
  }
  const char *p = list;
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
    char name[32];
    if (n == 0 || n >= sizeof name)
      return fb_err_set(err, FB_EINVALID, "targets '%.128s': empty or overlong module name", list);
    memcpy(name, p, n);
    name[n] = '\0';
    int rc = add_target(mask, name, "targets", list, err);
    if (rc != 0) return rc;
    if (!end) return 0;
    p = end + 1;
  }
}

double fb_adapter_config_scale(const fb_adapter_config *c) {
  return c->use_rslora ? c->lora_alpha / sqrt((double)c->r) : c->lora_alpha / c->r;
}

/* The rules a config must meet, for parse and write alike. */
static int check(const fb_adapter_config *c, const char *label, fb_err *err) {
  if (c->r < 1 || c->r > FB_ADAPTER_MAX_RANK)
    return fb_err_set(err, FB_EINVALID, "%s: field 'r': %d is outside [1, %d]", label, c->r,
                      FB_ADAPTER_MAX_RANK);
  if (!(c->lora_alpha > 0 && c->lora_alpha < 1e6))
    return fb_err_set(err, FB_EINVALID, "%s: field 'lora_alpha': %g must be > 0 and < 1e6", label,
                      c->lora_alpha);
  if (!(c->lora_dropout >= 0 && c->lora_dropout < 1))
    return fb_err_set(err, FB_EINVALID, "%s: field 'lora_dropout': %g is outside [0, 1)", label,
                      c->lora_dropout);
  if (c->targets == 0 || (c->targets & ~FB_TARGET_ALL))
    return fb_err_set(err, FB_EINVALID,
                      "%s: field 'target_modules': must be a non-empty subset of the seven "
                      "projections",
                      label);
  return 0;
}

static int field_err(fb_err *err, const char *label, const char *field, const char *rule) {
  return fb_err_set(err, FB_EINVALID, "%s: field '%s': %s", label, field, rule);
}

/* The string field `name` must be absent/null or equal to `want` (when required, present). */
static int want_string(const cJSON *root, const char *name, const char *want, int required,
                       const char *label, fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
  if ((!v || cJSON_IsNull(v)) && !required) return 0;
  if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0) {
    char rule[96];
    snprintf(rule, sizeof rule, "must be \"%s\"%s", want, required ? " (required)" : "");
    return field_err(err, label, name, rule);
  }
  return 0;
}

/* Options this engine does not implement must be absent, null, false or empty. */
static int refuse_options(const cJSON *root, const char *label, fb_err *err) {
  static const char *const names[] = {"fan_in_fan_out",      "rank_pattern",    "alpha_pattern",
                                      "layers_to_transform", "modules_to_save", "use_dora"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, names[i]);
    int unset = !v || cJSON_IsNull(v) || cJSON_IsFalse(v) ||
                ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child);
    if (!unset) return field_err(err, label, names[i], "is not supported (must be unset)");
  }
  return 0;
}

static int parse_targets(const cJSON *root, unsigned *mask, const char *label, fb_err *err) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "target_modules"), *e;
  *mask = 0;
  if (cJSON_IsString(t)) {
    if (strcmp(t->valuestring, "all-linear") == 0) {
      *mask = FB_TARGET_ALL;
      return 0;
    }
    return field_err(err, label, "target_modules",
                     "a string other than \"all-linear\" (a regex) is not supported");
  }
  if (!cJSON_IsArray(t) || !t->child)
    return field_err(err, label, "target_modules", "must be a non-empty array of module names");
  cJSON_ArrayForEach(e, t) {
    if (!cJSON_IsString(e))
      return field_err(err, label, "target_modules", "every element must be a string");
    int rc = add_target(mask, e->valuestring, label, "field 'target_modules'", err);
    if (rc != 0) return rc;
  }
  return 0;
}

/* A number field; required. */
static int get_number(const cJSON *root, const char *name, double *out, const char *label,
                      fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!cJSON_IsNumber(v)) return field_err(err, label, name, "missing or not a number");
  *out = v->valuedouble;
  return 0;
}

/* An optional string field (null or absent: ""), under size bytes. */
static int get_string(const cJSON *root, const char *name, char *out, size_t size,
                      const char *label, fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsString(v) || strlen(v->valuestring) >= size) {
    char what[48];
    snprintf(what, sizeof what, "must be a string under %zu bytes", size);
    return field_err(err, label, name, what);
  }
  strcpy(out, v->valuestring);
  return 0;
}

static int parse_fields(fb_adapter_config *c, const cJSON *root, const char *label, fb_err *err) {
  double r = 0;
  int rc = want_string(root, "peft_type", "LORA", 1, label, err);
  if (rc == 0) rc = want_string(root, "task_type", "CAUSAL_LM", 1, label, err);
  if (rc == 0) rc = want_string(root, "bias", "none", 0, label, err);
  if (rc == 0) rc = refuse_options(root, label, err);
  if (rc == 0) rc = get_number(root, "r", &r, label, err);
  if (rc == 0 && (r != floor(r) || r < 1 || r > FB_ADAPTER_MAX_RANK))
    rc = field_err(err, label, "r", "must be an integer in [1, 4096]");
  c->r = rc == 0 ? (int)r : 0;
  if (rc == 0) rc = get_number(root, "lora_alpha", &c->lora_alpha, label, err);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "lora_dropout");
  if (rc == 0 && v && !cJSON_IsNull(v))
    rc = get_number(root, "lora_dropout", &c->lora_dropout, label, err);
  if (rc == 0) rc = parse_targets(root, &c->targets, label, err);
  v = cJSON_GetObjectItemCaseSensitive(root, "use_rslora");
  if (rc == 0 && v && !cJSON_IsNull(v)) {
    if (!cJSON_IsBool(v)) rc = field_err(err, label, "use_rslora", "must be true or false");
    c->use_rslora = cJSON_IsTrue(v);
  }
  if (rc == 0)
    rc = get_string(root, "base_model_name_or_path", c->base_model_name_or_path,
                    sizeof c->base_model_name_or_path, label, err);
  if (rc == 0) rc = get_string(root, "revision", c->revision, sizeof c->revision, label, err);
  if (rc == 0) rc = check(c, label, err);
  return rc;
}

int fb_adapter_config_parse(fb_adapter_config *c, const char *json, size_t len, const char *label,
                            fb_err *err) {
  memset(c, 0, sizeof *c);
  cJSON *root = cJSON_ParseWithLength(json, len);
  int rc = cJSON_IsObject(root) ? parse_fields(c, root, label, err)
                                : fb_err_set(err, FB_EFORMAT, "%s: not a JSON object", label);
  cJSON_Delete(root);
  if (rc != 0) memset(c, 0, sizeof *c);
  return rc;
}

static int parse_into(void *c, const char *json, size_t len, const char *label, fb_err *err) {
  return fb_adapter_config_parse(c, json, len, label, err);
}

int fb_adapter_config_load(fb_adapter_config *c, const char *path, fb_err *err) {
  memset(c, 0, sizeof *c);
  return fb_parse_file(path, MAX_ADAPTER_CONFIG_BYTES, parse_into, c, err);
}

int fb_adapter_config_write(const fb_adapter_config *c, const char *path, fb_err *err) {
  int rc = check(c, path, err);
  if (rc != 0) return rc;
  cJSON *root = cJSON_CreateObject(), *targets = cJSON_AddArrayToObject(root, "target_modules");
  if (!targets) {
    cJSON_Delete(root);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  }
  for (int i = 0; i < FB_TARGET_COUNT; i++)
    if (c->targets & (1u << i)) cJSON_AddItemToArray(targets, cJSON_CreateString(target_names[i]));
  cJSON_AddStringToObject(root, "peft_type", "LORA");
  cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
  cJSON_AddNumberToObject(root, "r", c->r);
  cJSON_AddNumberToObject(root, "lora_alpha", c->lora_alpha);
  cJSON_AddNumberToObject(root, "lora_dropout", c->lora_dropout);
  cJSON_AddBoolToObject(root, "use_rslora", c->use_rslora);
  cJSON_AddStringToObject(root, "bias", "none");
  cJSON_AddBoolToObject(root, "fan_in_fan_out", 0);
  cJSON_AddBoolToObject(root, "inference_mode", 1);
  cJSON_AddBoolToObject(root, "init_lora_weights", 1);
  cJSON_AddStringToObject(root, "base_model_name_or_path", c->base_model_name_or_path);
  if (c->revision[0])
    cJSON_AddStringToObject(root, "revision", c->revision);
  else
    cJSON_AddNullToObject(root, "revision");
  cJSON_AddNullToObject(root, "modules_to_save");
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  rc = fb_write_file_atomic(path, text, strlen(text), err);
  cJSON_free(text);
  return rc;
}
