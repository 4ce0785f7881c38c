/* train_spec.c: the training spec as a table of fields (JSON path, type, place in the struct,
 * range), so parsing, checking and writing walk the same list; the few fields that are not
 * plain numbers or strings (data, mode, targets, schedule, device, prompts, select) are named
 * below. The scenarios select = "scenarios" scores are read, checked and rendered by
 * fastbrain.train and come with the data (fb_train_data): here `scenarios` need only be a list,
 * and it is not written back. */
#include "train_spec.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef enum { F_STR, F_INT, F_NUM, F_BOOL, F_SEED, F_SPECIAL } ftype;

typedef struct field {
  const char *path; /* "lora.r": its place in the JSON object */
  ftype type;
  size_t off, size; /* in fb_train_spec; size for strings */
  double lo, hi;    /* inclusive range of numbers */
} field;

#define S(p, m)                                                                                    \
  { p, F_STR, offsetof(fb_train_spec, m), sizeof(((fb_train_spec *)0)->m), 0, 0 }
#define I(p, m, lo, hi)                                                                            \
  { p, F_INT, offsetof(fb_train_spec, m), 0, lo, hi }
#define N(p, m, lo, hi)                                                                            \
  { p, F_NUM, offsetof(fb_train_spec, m), 0, lo, hi }
#define B(p, m)                                                                                    \
  { p, F_BOOL, offsetof(fb_train_spec, m), 0, 0, 1 }
#define X(p)                                                                                       \
  { p, F_SPECIAL, 0, 0, 0, 0 }

static const field fields[] = {
    S("model", model),
    X("data"),
    S("template", template_name),
    I("max_len", max_len, 8, 1 << 20),
    X("mode"),
    I("lora.r", lora.r, 1, FB_SPEC_MAX_RANK),
    N("lora.alpha", lora.lora_alpha, 1e-6, 1e6),
    N("lora.dropout", lora.lora_dropout, 0, 0.9),
    X("lora.targets"),
    B("lora.rslora", lora.use_rslora),
    I("epochs", epochs, 1, 10000),
    I("max_steps", max_steps, 0, 100000000),
    I("micro_batch", micro_batch, 1, 4096),
    I("grad_accum", grad_accum, 1, 4096),
    B("small_data", small_data),
    N("lr", lr, 0, 10),
    N("warmup", warmup, 0, 0.9),
    X("schedule"),
    N("weight_decay", weight_decay, 0, 10),
    N("clip", clip, 0, 1e9),
    N("eval.fraction", eval_fraction, 0, 0.5),
    I("eval.interval", eval_interval, 0, 100000000),
    I("patience", patience, 0, 100000),
    {"seed", F_SEED, offsetof(fb_train_spec, seed), 0, 0, 0},
    I("checkpoint_interval", checkpoint_interval, 0, 100000000),
    S("out", out),
    S("checkpoints", checkpoints),
    X("device"),
    X("samples.prompts"),
    I("samples.interval", sample_interval, 0, 100000000),
    I("samples.max_tokens", sample_tokens, 1, 4096),
    S("samples.system", sample_system),
    N("samples.repetition_penalty", sample_repetition_penalty, 1, 10),
    S("hooks", hooks),
    X("select"),
    X("scenarios"),
    I("select_max_tokens", select_tokens, 1, 4096),
};
#define N_FIELDS (int)(sizeof fields / sizeof fields[0])

static const char *const schedules[] = {"constant", "cosine", "linear"}; /* fb_schedule order */
static const char *const devices[] = {"auto", "cpu", "cuda"};            /* fb_device order */
static const char *const selects[] = {"eval_loss", "scenarios"};         /* fb_select order */

void fb_train_spec_defaults(fb_train_spec *s) {
  memset(s, 0, sizeof *s);
  s->max_len = 512;
  s->lora.r = 16;
  s->lora.lora_alpha = 32;
  s->lora.lora_dropout = 0.05;
  s->lora.targets = FB_TARGET_ALL;
  s->epochs = 3;
  s->micro_batch = 4;
  s->grad_accum = 1;
  s->small_data = 1;
  s->lr = 2e-4;
  s->warmup = 0.05;
  s->schedule = FB_SCHED_COSINE;
  s->clip = 1.0;
  s->eval_fraction = 0.1;
  s->seed = 42;
  s->device = FB_DEVICE_AUTO;
  s->sample_tokens = 48;
  s->sample_repetition_penalty = 1.2; /* as fastbrain.answer's */
  s->select = FB_SELECT_EVAL_LOSS;
  s->select_tokens = 256; /* as a scenario run's (fastbrain.scenario_runs) */
}

static void *at(fb_train_spec *s, const field *f) { return (char *)s + f->off; }
static const void *cat(const fb_train_spec *s, const field *f) { return (const char *)s + f->off; }

static int pick(const char *name, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

/* A string or an array of strings into dst[max][size]; *n gets the count. */
static int read_strings(char *dst, size_t size, int max, int *n, const cJSON *v, const char *path,
                        fb_err *err) {
  const cJSON *one = cJSON_IsString(v) ? v : NULL;
  int count = one ? 1 : cJSON_GetArraySize(v);
  if (!one && !cJSON_IsArray(v))
    return fb_err_set(err, FB_EINVALID, "spec.%s: must be a string or an array of strings", path);
  if (count > max)
    return fb_err_set(err, FB_EINVALID, "spec.%s: at most %d entries", path, max);
  for (int i = 0; i < count; i++) {
    const cJSON *e = one ? one : cJSON_GetArrayItem(v, i);
    if (!cJSON_IsString(e))
      return fb_err_set(err, FB_EINVALID, "spec.%s[%d]: must be a string", path, i);
    if (strlen(e->valuestring) >= size)
      return fb_err_set(err, FB_EINVALID, "spec.%s[%d]: longer than %zu bytes", path, i, size - 1);
    snprintf(dst + (size_t)i * size, size, "%s", e->valuestring);
  }
  *n = count;
  return 0;
}

static int read_special(fb_train_spec *s, const char *path, const cJSON *v, fb_err *err) {
  if (strcmp(path, "scenarios") == 0)
    return cJSON_IsArray(v) ? 0
                            : fb_err_set(err, FB_EINVALID,
                                         "spec.%s: must be a list of {id, messages, checks}", path);
  if (strcmp(path, "data") == 0)
    return read_strings(s->data[0], FB_SPEC_PATH, FB_SPEC_MAX_DATA, &s->n_data, v, path, err);
  if (strcmp(path, "samples.prompts") == 0)
    return read_strings(s->prompts[0], FB_SPEC_PROMPT, FB_SPEC_MAX_PROMPTS, &s->n_prompts, v, path,
                        err);
  if (strcmp(path, "lora.targets") == 0) {
    if (cJSON_IsString(v))
      return fb_targets_parse_list(v->valuestring, &s->lora.targets, err)
                 ? fb_err_prefix(err, "spec.%s", path)
                 : 0;
    if (!cJSON_IsArray(v))
      return fb_err_set(err, FB_EINVALID,
                        "spec.%s: must be \"all-linear\", a list string or an array of names",
                        path);
    s->lora.targets = 0;
    for (int i = 0; i < cJSON_GetArraySize(v); i++) {
      const cJSON *e = cJSON_GetArrayItem(v, i);
      unsigned bit = cJSON_IsString(e) ? fb_target_parse(e->valuestring) : 0;
      if (!bit || (s->lora.targets & bit))
        return fb_err_set(err, FB_EINVALID,
                          "spec.%s[%d]: must be a distinct one of q_proj, k_proj, v_proj, o_proj, "
                          "gate_proj, up_proj, down_proj",
                          path, i);
      s->lora.targets |= bit;
    }
    return 0;
  }
  const char *const *names = strcmp(path, "schedule") == 0 ? schedules
                             : strcmp(path, "device") == 0 ? devices
                             : strcmp(path, "select") == 0 ? selects
                                                           : NULL;
  static const char *const modes[] = {"lora", "full"};
  int n = names == schedules || names == devices ? 3 : 2, i = -1;
  if (!names)
    names = modes;
  if (cJSON_IsString(v))
    i = pick(v->valuestring, names, n);
  if (i < 0)
    return fb_err_set(err, FB_EINVALID, "spec.%s: must be one of \"%s\", \"%s\"%s%s%s", path,
                      names[0], names[1], n > 2 ? ", \"" : "", n > 2 ? names[2] : "",
                      n > 2 ? "\"" : "");
  if (names == schedules)
    s->schedule = (fb_schedule)i;
  else if (names == devices)
    s->device = (fb_device)i;
  else if (names == selects)
    s->select = (fb_select)i;
  else
    s->full = i;
  return 0;
}

static int read_field(fb_train_spec *s, const field *f, const cJSON *v, fb_err *err) {
  switch (f->type) {
  case F_STR:
    if (!cJSON_IsString(v))
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be a string", f->path);
    if (strlen(v->valuestring) >= f->size)
      return fb_err_set(err, FB_EINVALID, "spec.%s: longer than %zu bytes", f->path, f->size - 1);
    snprintf(at(s, f), f->size, "%s", v->valuestring);
    return 0;
  case F_BOOL:
    if (!cJSON_IsBool(v))
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be true or false", f->path);
    *(int *)at(s, f) = cJSON_IsTrue(v);
    return 0;
  case F_INT:
  case F_SEED:
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be an integer", f->path);
    if (f->type == F_SEED) {
      if (v->valuedouble < 0 || v->valuedouble > 9007199254740992.0)
        return fb_err_set(err, FB_EINVALID, "spec.seed: must be 0..2^53");
      *(uint64_t *)at(s, f) = (uint64_t)v->valuedouble;
    } else {
      if (v->valuedouble < f->lo || v->valuedouble > f->hi)
        return fb_err_set(err, FB_EINVALID, "spec.%s: must be %.0f..%.0f (got %g)", f->path, f->lo,
                          f->hi, v->valuedouble);
      *(int *)at(s, f) = (int)v->valuedouble;
    }
    return 0;
  case F_NUM:
    if (!cJSON_IsNumber(v))
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be a number", f->path);
    *(double *)at(s, f) = v->valuedouble;
    return 0;
  case F_SPECIAL:
    return read_special(s, f->path, v, err);
  }
  return 0;
}

/* Every member of object o, whose path is prefix ("" or "lora."). */
static int read_object(fb_train_spec *s, const cJSON *o, const char *prefix, fb_err *err) {
  const cJSON *v;
  cJSON_ArrayForEach(v, o) {
    char path[96];
    snprintf(path, sizeof path, "%s%s", prefix, v->string);
    size_t pl = strlen(path);
    int is_group = 0, rc;
    for (int i = 0; i < N_FIELDS; i++) {
      if (strcmp(fields[i].path, path) == 0) {
        if ((rc = read_field(s, &fields[i], v, err)))
          return rc;
        goto next;
      }
      if (strncmp(fields[i].path, path, pl) == 0 && fields[i].path[pl] == '.')
        is_group = 1;
    }
    if (!is_group)
      return fb_err_set(err, FB_EINVALID, "spec.%s: unknown field", path);
    if (!cJSON_IsObject(v))
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be an object", path);
    strcat(path, ".");
    if ((rc = read_object(s, v, path, err)))
      return rc;
  next:;
  }
  return 0;
}

int fb_train_spec_check(const fb_train_spec *s, fb_err *err) {
  for (int i = 0; i < N_FIELDS; i++) {
    const field *f = &fields[i];
    double x = f->type == F_INT   ? *(const int *)cat(s, f)
               : f->type == F_NUM ? *(const double *)cat(s, f)
                                  : 0;
    if ((f->type == F_INT || f->type == F_NUM) && !(x >= f->lo && x <= f->hi)) {
      if (f->type == F_INT)
        return fb_err_set(err, FB_EINVALID, "spec.%s: must be %.0f..%.0f (got %g)", f->path, f->lo,
                          f->hi, x);
      return fb_err_set(err, FB_EINVALID, "spec.%s: must be in [%g, %g] (got %g)", f->path, f->lo,
                        f->hi, x);
    }
  }
  if (!s->model[0])
    return fb_err_set(err, FB_EINVALID, "spec.model: required (the base model directory)");
  if (s->n_data < 1)
    return fb_err_set(err, FB_EINVALID, "spec.data: required (a JSONL file or a list of them)");
  if (!s->out[0])
    return fb_err_set(err, FB_EINVALID, "spec.out: required (the output directory)");
  if (!s->full && !(s->lora.targets && !(s->lora.targets & ~FB_TARGET_ALL)))
    return fb_err_set(err, FB_EINVALID, "spec.lora.targets: must name at least one projection");
  if (s->n_prompts > 0 && s->prompts[0][0] == '\0')
    return fb_err_set(err, FB_EINVALID, "spec.samples.prompts[0]: empty");
  if (s->full && s->device == FB_DEVICE_CUDA)
    return fb_err_set(err, FB_EINVALID,
                      "spec.device: \"cuda\" trains adapters only (its base weights are bf16); "
                      "full-parameter mode runs on the CPU: use device \"cpu\" or \"auto\"");
  return 0;
}

int fb_train_spec_from_json(fb_train_spec *s, const cJSON *json, fb_err *err) {
  fb_train_spec_defaults(s);
  if (!cJSON_IsObject(json))
    return fb_err_set(err, FB_EINVALID, "spec: must be a JSON object");
  int rc = read_object(s, json, "", err);
  return rc ? rc : fb_train_spec_check(s, err);
}

int fb_train_spec_parse(fb_train_spec *s, const char *text, size_t len, const char *label,
                        fb_err *err) {
  cJSON *j = cJSON_ParseWithLength(text, len);
  if (!j) {
    fb_train_spec_defaults(s);
    const char *at_ = cJSON_GetErrorPtr();
    return fb_err_set(err, FB_EFORMAT, "%s: not valid JSON (at byte %td)", label,
                      at_ ? at_ - text : (ptrdiff_t)0);
  }
  int rc = fb_train_spec_from_json(s, j, err);
  cJSON_Delete(j);
  return rc ? fb_err_prefix(err, "%s", label) : 0;
}

/* The object at the group of path ("lora.r" -> root.lora), made when missing; *leaf the key. */
static cJSON *group(cJSON *root, const char *path, const char **leaf) {
  const char *dot = strchr(path, '.');
  if (!dot) {
    *leaf = path;
    return root;
  }
  char name[32];
  snprintf(name, sizeof name, "%.*s", (int)(dot - path), path);
  *leaf = dot + 1;
  cJSON *g = cJSON_GetObjectItemCaseSensitive(root, name);
  return g ? g : cJSON_AddObjectToObject(root, name);
}

static cJSON *strings(const char *base, size_t size, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(base + (size_t)i * size));
  return a;
}

static cJSON *special(const fb_train_spec *s, const char *path) {
  if (strcmp(path, "data") == 0)
    return strings(s->data[0], FB_SPEC_PATH, s->n_data);
  if (strcmp(path, "samples.prompts") == 0)
    return strings(s->prompts[0], FB_SPEC_PROMPT, s->n_prompts);
  if (strcmp(path, "mode") == 0)
    return cJSON_CreateString(s->full ? "full" : "lora");
  if (strcmp(path, "schedule") == 0)
    return cJSON_CreateString(schedules[s->schedule]);
  if (strcmp(path, "device") == 0)
    return cJSON_CreateString(devices[s->device]);
  if (strcmp(path, "select") == 0)
    return cJSON_CreateString(selects[s->select]);
  cJSON *a = cJSON_CreateArray(); /* lora.targets */
  for (int i = 0; a && i < FB_TARGET_COUNT; i++)
    if (s->lora.targets & (1u << i))
      cJSON_AddItemToArray(a, cJSON_CreateString(fb_target_name(i)));
  return a;
}

cJSON *fb_train_spec_to_json(const fb_train_spec *s) {
  cJSON *root = cJSON_CreateObject();
  for (int i = 0; root && i < N_FIELDS; i++) {
    const field *f = &fields[i];
    if (strcmp(f->path, "scenarios") == 0)
      continue; /* fastbrain.train's, not kept here */
    const char *leaf;
    cJSON *g = group(root, f->path, &leaf), *v = NULL;
    switch (f->type) {
    case F_STR:
      v = cJSON_CreateString(cat(s, f));
      break;
    case F_INT:
      v = cJSON_CreateNumber(*(const int *)cat(s, f));
      break;
    case F_NUM:
      v = cJSON_CreateNumber(*(const double *)cat(s, f));
      break;
    case F_BOOL:
      v = cJSON_CreateBool(*(const int *)cat(s, f));
      break;
    case F_SEED:
      v = cJSON_CreateNumber((double)s->seed);
      break;
    case F_SPECIAL:
      v = special(s, f->path);
      break;
    }
    if (!g || !v || !cJSON_AddItemToObject(g, leaf, v)) {
      cJSON_Delete(v);
      cJSON_Delete(root);
      return NULL;
    }
  }
  return root;
}
