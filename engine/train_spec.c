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

typedef enum { F_STR, F_INT, F_NUM, F_BOOL, F_SEED, F_ENUM, F_SPECIAL } ftype;

typedef struct field {
  const char *path; /* "lora.r": its place in the JSON object */
  ftype type;
  size_t off, size;         /* in fb_train_spec; size for strings */
  double lo, hi;            /* inclusive range of numbers */
  const char *const *names; /* an enum's, in its order; n_names of them */
  int n_names;
  int by_server; /* what whoever makes the spec of a request fills in (the skill's data...) */
  const char *doc;
} field;

static const char *const modes[] = {"lora", "full"};                     /* spec->full */
static const char *const schedules[] = {"constant", "cosine", "linear"}; /* fb_schedule order */
static const char *const devices[] = {"auto", "cpu", "cuda"};            /* fb_device order */
static const char *const selects[] = {"eval_loss", "scenarios"};         /* fb_select order */
_Static_assert(sizeof(fb_schedule) == sizeof(int) && sizeof(fb_device) == sizeof(int) &&
                   sizeof(fb_select) == sizeof(int),
               "enums are read and written as int");

#define MEMBER(m) offsetof(fb_train_spec, m), sizeof(((fb_train_spec *)0)->m)
#define S(p, m, doc)                                                                               \
  { p, F_STR, MEMBER(m), 0, 0, NULL, 0, 0, doc }
#define SERVER_S(p, m, doc)                                                                        \
  { p, F_STR, MEMBER(m), 0, 0, NULL, 0, 1, doc }
#define I(p, m, lo, hi, doc)                                                                       \
  { p, F_INT, MEMBER(m), lo, hi, NULL, 0, 0, doc }
#define N(p, m, lo, hi, doc)                                                                       \
  { p, F_NUM, MEMBER(m), lo, hi, NULL, 0, 0, doc }
#define B(p, m, doc)                                                                               \
  { p, F_BOOL, MEMBER(m), 0, 1, NULL, 0, 0, doc }
#define E(p, m, names, by_server, doc)                                                             \
  { p, F_ENUM, MEMBER(m), 0, 0, names, (int)(sizeof names / sizeof names[0]), by_server, doc }
#define X(p, by_server, doc)                                                                       \
  { p, F_SPECIAL, 0, 0, 0, 0, NULL, 0, by_server, doc }

static const field fields[] = {
    SERVER_S("model", model, "base model directory (Hugging Face layout)"),
    X("data", 1, "a JSONL file or a list of them"),
    S("template", template_name, "chat template name; \"\" = recognised from the model"),
    I("max_len", max_len, 8, 1 << 20, "tokens per example; longer examples are cut"),
    E("mode", full, modes, 1, "\"lora\", or \"full\": train every weight"),
    I("lora.r", lora.r, 1, FB_SPEC_MAX_RANK, "the adapter's rank"),
    N("lora.alpha", lora.lora_alpha, 1e-6, 1e6, "scales the update by alpha/r"),
    N("lora.dropout", lora.lora_dropout, 0, 0.9, "dropout on the adapter's input"),
    X("lora.targets", 0, "\"all-linear\", \"q_proj,v_proj\" or a list of projections"),
    B("lora.rslora", lora.use_rslora, "scale by alpha/sqrt(r)"),
    I("epochs", epochs, 1, 10000, "passes over the training examples"),
    I("max_steps", max_steps, 0, 100000000, "optimizer steps; 0 = from the epochs"),
    I("micro_batch", micro_batch, 1, 4096, "examples per forward pass"),
    I("grad_accum", grad_accum, 1, 4096, "forward passes per optimizer step"),
    B("small_data", small_data, "shrink the batch until a run has at least 50 steps"),
    N("lr", lr, 0, 10, "the base learning rate"),
    N("warmup", warmup, 0, 0.9, "fraction of the steps warming up linearly"),
    E("schedule", schedule, schedules, 0, "the learning rate's decay after warm-up"),
    N("weight_decay", weight_decay, 0, 10, "AdamW's decoupled weight decay"),
    N("clip", clip, 0, 1e9, "the global gradient norm's cap; 0 = off"),
    N("eval.fraction", eval_fraction, 0, 0.5, "share of the examples held out; 0 = none"),
    I("eval.interval", eval_interval, 0, 100000000, "steps between evaluations; 0 = ten per run"),
    I("patience", patience, 0, 100000,
      "evaluations without a better loss before stopping; 0 = off"),
    {"seed", F_SEED, MEMBER(seed), 0, 9007199254740992.0, NULL, 0, 0,
     "split, data order, LoRA init and dropout"},
    I("checkpoint_interval", checkpoint_interval, 0, 100000000,
      "steps between checkpoints; 0 = only at the end or on cancel"),
    SERVER_S("out", out, "output directory"),
    SERVER_S("checkpoints", checkpoints, "checkpoint directory; \"\" = out/checkpoints"),
    E("device", device, devices, 0, "where the run computes; auto = a usable GPU, else the CPU"),
    X("samples.prompts", 0, "prompts answered by the adapter as it trains"),
    I("samples.interval", sample_interval, 0, 100000000, "steps between samples; 0 = five per run"),
    I("samples.max_tokens", sample_tokens, 1, 4096, "new tokens per sample"),
    SERVER_S("samples.system", sample_system, "the system prompt samples are asked after"),
    N("samples.repetition_penalty", sample_repetition_penalty, 1, 10,
      "the samples' repetition penalty"),
    SERVER_S("hooks", hooks, "a Lua file returning {on_step, on_eval, on_done}"),
    E("select", select, selects, 0, "which weights are published"),
    X("scenarios", 1, "with select \"scenarios\": [{id, messages, checks}] to answer"),
    I("select_max_tokens", select_tokens, 1, 4096, "new tokens per scenario answer"),
};
#define N_FIELDS (int)(sizeof fields / sizeof fields[0])

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

/* A string or an array of strings into dst[max][size]; *n gets the count. */
static int read_strings(char *dst, size_t size, int max, int *n, const cJSON *v, const char *path,
                        fb_err *err) {
  const cJSON *one = cJSON_IsString(v) ? v : NULL;
  int count = one ? 1 : cJSON_GetArraySize(v);
  if (!one && !cJSON_IsArray(v))
    return fb_err_set(err, FB_EINVALID, "spec.%s: must be a string or an array of strings", path);
  if (count > max) return fb_err_set(err, FB_EINVALID, "spec.%s: at most %d entries", path, max);
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

static int read_targets(fb_train_spec *s, const char *path, const cJSON *v, fb_err *err) {
  if (cJSON_IsString(v))
    return fb_targets_parse_list(v->valuestring, &s->lora.targets, err)
               ? fb_err_prefix(err, "spec.%s", path)
               : 0;
  if (!cJSON_IsArray(v))
    return fb_err_set(err, FB_EINVALID,
                      "spec.%s: must be \"all-linear\", a list string or an array of names", path);
  if (cJSON_GetArraySize(v) == 0)
    return fb_err_set(err, FB_EINVALID, "spec.%s: must name at least one projection", path);
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
  return read_targets(s, path, v, err);
}

static int read_enum(fb_train_spec *s, const field *f, const cJSON *v, fb_err *err) {
  for (int i = 0; cJSON_IsString(v) && i < f->n_names; i++)
    if (strcmp(v->valuestring, f->names[i]) == 0) {
      *(int *)at(s, f) = i;
      return 0;
    }
  char list[96] = "";
  for (int i = 0; i < f->n_names; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "",
             f->names[i]);
  return fb_err_set(err, FB_EINVALID, "spec.%s: must be one of %s", f->path, list);
}

/* What a number field takes: "an integer 1..256", "a number 0..0.9". */
static const char *range_text(const field *f, char *buf, size_t n) {
  if (f->type == F_SEED)
    snprintf(buf, n, "an integer 0..2^53");
  else if (f->type == F_INT)
    snprintf(buf, n, "an integer %.0f..%.0f", f->lo, f->hi);
  else
    snprintf(buf, n, "a number %g..%g", f->lo, f->hi);
  return buf;
}

/* A number outside its field's range: the error, as reading and checking say it. */
static int out_of_range(const field *f, double x, fb_err *err) {
  char what[64];
  if (x >= f->lo && x <= f->hi) return 0;
  return fb_err_set(err, FB_EINVALID, "spec.%s: must be %s (got %g)", f->path,
                    range_text(f, what, sizeof what), x);
}

static int read_field(fb_train_spec *s, const field *f, const cJSON *v, fb_err *err) {
  char what[64];
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
        return fb_err_set(err, FB_EINVALID, "spec.%s: must be %s", f->path,
                          range_text(f, what, sizeof what));
      if (out_of_range(f, v->valuedouble, err)) return err->code;
      if (f->type == F_SEED)
        *(uint64_t *)at(s, f) = (uint64_t)v->valuedouble;
      else
        *(int *)at(s, f) = (int)v->valuedouble;
      return 0;
    case F_NUM:
      if (!cJSON_IsNumber(v))
        return fb_err_set(err, FB_EINVALID, "spec.%s: must be %s", f->path,
                          range_text(f, what, sizeof what));
      if (out_of_range(f, v->valuedouble, err)) return err->code;
      *(double *)at(s, f) = v->valuedouble;
      return 0;
    case F_ENUM: return read_enum(s, f, v, err);
    case F_SPECIAL: return read_special(s, f->path, v, err);
  }
  return 0;
}

/* How fields are read: a spec stops at its first problem; a request's overrides (checked for a
 * form or an API client) report every one, and may not set the fields the server fills in. */
typedef struct reader {
  fb_err *err;
  fb_train_spec_report report; /* NULL: stop at the first problem */
  void *ctx;
  int problems; /* reported so far */
} reader;

/* err's problem given to the reporter as (path, what is wrong): its "spec.<path>: " dropped. */
static void report(reader *rd, const char *path) {
  const char *msg = rd->err->msg, *rest = msg;
  size_t pl = strlen(path);
  if (strncmp(rest, "spec.", 5) == 0 && strncmp(rest + 5, path, pl) == 0) rest += 5 + pl;
  if (strncmp(rest, ": ", 2) == 0) rest += 2;
  rd->report(rd->ctx, path, rest);
  rd->problems++;
  *rd->err = (fb_err){0};
}

static int read_member(fb_train_spec *s, const cJSON *v, const char *path, reader *rd);

/* Every member of object o, whose path is prefix ("" or "lora."). */
static int read_object(fb_train_spec *s, const cJSON *o, const char *prefix, reader *rd) {
  const cJSON *v;
  cJSON_ArrayForEach(v, o) {
    char path[96];
    snprintf(path, sizeof path, "%s%s", prefix, v->string);
    int rc = read_member(s, v, path, rd);
    if (rc && !rd->report) return rc;
    if (rc) report(rd, path);
  }
  return 0;
}

static int read_member(fb_train_spec *s, const cJSON *v, const char *path, reader *rd) {
  size_t pl = strlen(path);
  int is_group = 0;
  for (int i = 0; i < N_FIELDS; i++) {
    if (strcmp(fields[i].path, path) == 0) {
      if (rd->report && fields[i].by_server)
        return fb_err_set(rd->err, FB_EINVALID, "spec.%s: set by the server", path);
      return read_field(s, &fields[i], v, rd->err);
    }
    if (strncmp(fields[i].path, path, pl) == 0 && fields[i].path[pl] == '.') is_group = 1;
  }
  if (!is_group) return fb_err_set(rd->err, FB_EINVALID, "spec.%s: unknown field", path);
  if (!cJSON_IsObject(v))
    return fb_err_set(rd->err, FB_EINVALID, "spec.%s: must be an object", path);
  char prefix[96];
  snprintf(prefix, sizeof prefix, "%s.", path);
  return read_object(s, v, prefix, rd);
}

int fb_train_spec_check(const fb_train_spec *s, fb_err *err) {
  for (int i = 0; i < N_FIELDS; i++) {
    const field *f = &fields[i];
    if (f->type == F_INT && out_of_range(f, *(const int *)cat(s, f), err)) return err->code;
    if (f->type == F_NUM && out_of_range(f, *(const double *)cat(s, f), err)) return err->code;
  }
  if (!s->model[0])
    return fb_err_set(err, FB_EINVALID, "spec.model: required (the base model directory)");
  if (s->n_data < 1)
    return fb_err_set(err, FB_EINVALID, "spec.data: required (a JSONL file or a list of them)");
  if (!s->out[0]) return fb_err_set(err, FB_EINVALID, "spec.out: required (the output directory)");
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
  if (!cJSON_IsObject(json)) return fb_err_set(err, FB_EINVALID, "spec: must be a JSON object");
  int rc = read_object(s, json, "", &(reader){.err = err});
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

int fb_train_spec_request_problems(const cJSON *overrides, fb_train_spec_report to, void *ctx) {
  if (!cJSON_IsObject(overrides)) {
    to(ctx, "body", "must be an object");
    return 1;
  }
  fb_err err = {0};
  reader rd = {&err, to, ctx, 0};
  fb_train_spec s;
  fb_train_spec_defaults(&s);
  read_object(&s, overrides, "", &rd);
  return rd.problems;
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

static cJSON *targets(unsigned mask) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < FB_TARGET_COUNT; i++)
    if (mask & (1u << i)) cJSON_AddItemToArray(a, cJSON_CreateString(fb_target_name(i)));
  return a;
}

/* f's value in s as JSON; NULL for scenarios (fastbrain.train's, not kept here) or out of memory. */
static cJSON *value(const fb_train_spec *s, const field *f) {
  switch (f->type) {
    case F_STR: return cJSON_CreateString(cat(s, f));
    case F_INT: return cJSON_CreateNumber(*(const int *)cat(s, f));
    case F_NUM: return cJSON_CreateNumber(*(const double *)cat(s, f));
    case F_BOOL: return cJSON_CreateBool(*(const int *)cat(s, f));
    case F_SEED: return cJSON_CreateNumber((double)s->seed);
    case F_ENUM: return cJSON_CreateString(f->names[*(const int *)cat(s, f)]);
    case F_SPECIAL: break;
  }
  if (strcmp(f->path, "data") == 0) return strings(s->data[0], FB_SPEC_PATH, s->n_data);
  if (strcmp(f->path, "samples.prompts") == 0)
    return strings(s->prompts[0], FB_SPEC_PROMPT, s->n_prompts);
  if (strcmp(f->path, "lora.targets") == 0) return targets(s->lora.targets);
  return NULL;
}

cJSON *fb_train_spec_to_json(const fb_train_spec *s) {
  cJSON *root = cJSON_CreateObject();
  for (int i = 0; root && i < N_FIELDS; i++) {
    const field *f = &fields[i];
    if (strcmp(f->path, "scenarios") == 0) continue;
    const char *leaf;
    cJSON *g = group(root, f->path, &leaf), *v = value(s, f);
    if (!g || !v || !cJSON_AddItemToObject(g, leaf, v)) {
      cJSON_Delete(v);
      cJSON_Delete(root);
      return NULL;
    }
  }
  return root;
}

static const char *type_name(const field *f) {
  static const char *const names[] = {"string", "integer", "number", "boolean", "integer", "enum"};
  if (f->type != F_SPECIAL) return names[f->type];
  return strcmp(f->path, "lora.targets") == 0 ? "targets"
         : strcmp(f->path, "scenarios") == 0  ? "scenarios"
                                              : "strings";
}

/* One field's description: {name, type, min, max, choices, default, set_by, doc}. */
static cJSON *describe(const field *f, const fb_train_spec *defaults) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  int ok = cJSON_AddStringToObject(o, "name", f->path) &&
           cJSON_AddStringToObject(o, "type", type_name(f));
  if (f->type == F_INT || f->type == F_NUM || f->type == F_SEED)
    ok = ok && cJSON_AddNumberToObject(o, "min", f->lo) && cJSON_AddNumberToObject(o, "max", f->hi);
  cJSON *choices = f->type == F_ENUM ? cJSON_CreateStringArray(f->names, f->n_names)
                   : strcmp(f->path, "lora.targets") == 0 ? targets(FB_TARGET_ALL)
                                                          : NULL;
  if (choices && !cJSON_AddItemToObject(o, "choices", choices)) {
    cJSON_Delete(choices);
    ok = 0;
  }
  cJSON *def = value(defaults, f);
  if (def && !cJSON_AddItemToObject(o, "default", def)) {
    cJSON_Delete(def);
    ok = 0;
  }
  ok = ok && cJSON_AddStringToObject(o, "set_by", f->by_server ? "server" : "request") &&
       cJSON_AddStringToObject(o, "doc", f->doc);
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *fb_train_spec_fields(void) {
  fb_train_spec defaults;
  fb_train_spec_defaults(&defaults);
  cJSON *list = cJSON_CreateArray();
  for (int i = 0; list && i < N_FIELDS; i++) {
    cJSON *o = describe(&fields[i], &defaults);
    if (!o || !cJSON_AddItemToArray(list, o)) {
      cJSON_Delete(o);
      cJSON_Delete(list);
      return NULL;
    }
  }
  return list;
}
