/* cmd_lora_check.c: lora-check reads a model directory and IN.safetensors (input_ids, labels,
 * lora_init.<peft key>, hyperparameters in __metadata__) and writes OUT.safetensors with the
 * logits, loss, LoRA gradients, the state after one AdamW step and after three, and a greedy
 * continuation when asked. It prints nothing on success; it compares nothing itself. */
#include "cmd_lora_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"

static const char usage[] =
    "usage: fastbrain lora-check MODEL_DIR IN.safetensors OUT.safetensors\n"
    "  IN:  input_ids, labels [B,T] I32 (-100 = ignored); lora_init.<peft key> for every LoRA\n"
    "       matrix; __metadata__: rank, alpha, targets (comma list), lora_dropout, lr, beta1,\n"
    "       beta2, eps, weight_decay, rslora (0/1 or true/false, optional), dropout_seed\n"
    "       (optional, 0), greedy_prompt_len and greedy_new_tokens (optional). With lora_dropout\n"
    "       > 0 every training forward draws its masks from (dropout_seed, step, layer, module);\n"
    "       tests/parity/ref_llama.py dropout_mask spells the rule out\n"
    "  OUT: logits [B,T,V], loss [1], lora_grad.<key>, lora_step1.<key>, adam_m.<key>,\n"
    "       adam_v.<key>, loss_step1 [1], lora_step3.<key>, loss_step3 [1] (F32), and when\n"
    "       greedy_prompt_len is set greedy_ids (I32: that prompt of row 0, then the new tokens)\n";

/* A metadata number; missing or malformed is an error naming the key. */
static int meta_num(const fb_st_file *f, const char *key, int required, double dflt, double *out,
                    fb_err *err) {
  const char *s = fb_st_meta(f, key);
  if (!s) {
    if (required)
      return fb_err_set(err, FB_EFORMAT, "%s: __metadata__ '%s' is missing", fb_st_path(f), key);
    *out = dflt;
    return 0;
  }
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  if (end == s || *end || errno)
    return fb_err_set(err, FB_EFORMAT, "%s: __metadata__ '%s' = \"%s\" is not a number",
                      fb_st_path(f), key, s);
  return 0;
}

/* An I32 tensor [B,T]: copied out (the mapping may be unaligned). */
static int read_ids(const fb_st_file *f, const char *name, int32_t **out, int *B, int *T,
                    fb_err *err) {
  const fb_st_tensor *t = fb_st_find(f, name);
  if (!t) return fb_err_set(err, FB_ENOTFOUND, "%s: tensor '%s' is missing", fb_st_path(f), name);
  if (t->dtype != FB_DT_I32 || t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 ||
      t->shape[0] * t->shape[1] > (1 << 24))
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s' must be I32 [B,T] (got %s, ndim %d)",
                      fb_st_path(f), name, fb_dtype_name(t->dtype), t->ndim);
  if ((*B && (*B != t->shape[0] || *T != t->shape[1])))
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s' is [%lld, %lld], input_ids is [%d, %d]",
                      fb_st_path(f), name, (long long)t->shape[0], (long long)t->shape[1], *B, *T);
  *B = (int)t->shape[0];
  *T = (int)t->shape[1];
  *out = malloc(t->nbytes);
  if (!*out) return fb_err_set(err, FB_ENOMEM, "out of memory");
  memcpy(*out, t->data, t->nbytes);
  return 0;
}

/* Output tensors: names and data kept alive until the file is written. */
typedef struct outs {
  fb_st_out *t;
  char **names;
  int n, cap;
} outs;

static int out_add(outs *o, const char *prefix, const char *key, fb_dtype dt, int ndim,
                   const int64_t *shape, const void *src, size_t nbytes, fb_err *err) {
  if (o->n == o->cap) {
    int cap = o->cap ? 2 * o->cap : 64;
    fb_st_out *t = realloc(o->t, sizeof *t * cap);
    if (t) o->t = t;
    char **names = t ? realloc(o->names, sizeof *names * cap) : NULL;
    if (!names) return fb_err_set(err, FB_ENOMEM, "out of memory");
    o->names = names;
    o->cap = cap;
  }
  size_t len = strlen(prefix) + strlen(key) + 1;
  char *name = malloc(len);
  void *data = malloc(nbytes ? nbytes : 1);
  if (!name || !data) {
    free(name);
    free(data);
    return fb_err_set(err, FB_ENOMEM, "out of memory");
  }
  snprintf(name, len, "%s%s", prefix, key);
  memcpy(data, src, nbytes);
  fb_st_out *t = &o->t[o->n];
  memset(t, 0, sizeof *t);
  t->name = name;
  t->dtype = dt;
  t->ndim = ndim;
  memcpy(t->shape, shape, sizeof(int64_t) * ndim);
  t->data = data;
  o->names[o->n++] = name;
  return 0;
}

static void outs_free(outs *o) {
  for (int i = 0; i < o->n; i++) {
    free(o->names[i]);
    free((void *)o->t[i].data);
  }
  free(o->t);
  free(o->names);
}

/* Every LoRA matrix of one arena (params, grads, m or v: same layout) under prefix. */
static int add_lora(outs *o, const fb_lora *l, const float *arena, const char *prefix,
                    fb_err *err) {
  char key[192];
  for (int i = 0; i < l->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      const fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      if (!q->A) continue;
      for (int w = 0; w < 2; w++) {
        const float *src = arena + ((w ? q->B : q->A) - l->params);
        int64_t shape[2] = {w ? q->out : l->r, w ? l->r : q->in};
        fb_lora_key(key, sizeof key, i, p, w ? 'B' : 'A');
        int rc = out_add(o, prefix, key, FB_DT_F32, 2, shape, src,
                         sizeof(float) * shape[0] * shape[1], err);
        if (rc) return rc;
      }
    }
  return 0;
}

static int train_step(fb_model *m, fb_lora *l, fb_optim *opt, const fb_batch *b, double lr,
                      fb_err *err) {
  int rc = fb_model_forward(m, l, b, 1, err);
  if (rc) return rc;
  fb_lora_zero_grad(l);
  if ((rc = fb_model_backward(m, l, b, err))) return rc;
  l->step++;
  return fb_optim_step(opt, l->params, l->grads, lr, err);
}

int fb_lora_check_run(const char *model_dir, const char *in_path, const char *out_path,
                      fb_err *err) {
  fb_model *m = NULL;
  fb_lora *l = NULL;
  fb_optim *opt = NULL;
  fb_st_file *in = NULL;
  int32_t *ids = NULL, *labels = NULL;
  outs o = {0};
  int rc, B = 0, T = 0;
  if ((rc = fb_st_open(&in, in_path, err))) goto done;
  if ((rc = read_ids(in, "input_ids", &ids, &B, &T, err))) goto done;
  if ((rc = read_ids(in, "labels", &labels, &B, &T, err))) goto done;
  double rank, alpha, dropout, dropout_seed, greedy_len, greedy_new;
  fb_optim_config oc = fb_optim_defaults();
  if ((rc = meta_num(in, "rank", 1, 0, &rank, err)) ||
      (rc = meta_num(in, "alpha", 1, 0, &alpha, err)) ||
      (rc = meta_num(in, "lora_dropout", 0, 0, &dropout, err)) ||
      (rc = meta_num(in, "dropout_seed", 0, 0, &dropout_seed, err)) ||
      (rc = meta_num(in, "lr", 1, 0, &oc.lr, err)) ||
      (rc = meta_num(in, "beta1", 1, 0, &oc.beta1, err)) ||
      (rc = meta_num(in, "beta2", 1, 0, &oc.beta2, err)) ||
      (rc = meta_num(in, "eps", 1, 0, &oc.eps, err)) ||
      (rc = meta_num(in, "weight_decay", 1, 0, &oc.weight_decay, err)) ||
      (rc = meta_num(in, "greedy_prompt_len", 0, 0, &greedy_len, err)) ||
      (rc = meta_num(in, "greedy_new_tokens", 0, 8, &greedy_new, err)))
    goto done;
  fb_adapter_config ac = {.r = (int)rank, .lora_alpha = alpha, .lora_dropout = dropout};
  if (rank != (int)rank) {
    rc = fb_err_set(err, FB_EFORMAT, "%s: __metadata__ 'rank' = %g is not an integer", in_path,
                    rank);
    goto done;
  }
  if (!(dropout_seed >= 0 && dropout_seed <= 0x1p53 && dropout_seed == (uint64_t)dropout_seed)) {
    rc = fb_err_set(err, FB_EFORMAT,
                    "%s: __metadata__ 'dropout_seed' = %g is not an integer in [0, 2^53]", in_path,
                    dropout_seed);
    goto done;
  }
  const char *targets = fb_st_meta(in, "targets"), *rs = fb_st_meta(in, "rslora");
  if (!targets) {
    rc = fb_err_set(err, FB_EFORMAT, "%s: __metadata__ 'targets' is missing", in_path);
    goto done;
  }
  if ((rc = fb_targets_parse_list(targets, &ac.targets, err))) {
    fb_err_prefix(err, "%s: __metadata__", in_path);
    goto done;
  }
  ac.use_rslora =
      rs && (strcmp(rs, "true") == 0 || strcmp(rs, "True") == 0 || strcmp(rs, "1") == 0);
  if ((rc = fb_model_load(&m, model_dir, err))) goto done;
  if ((rc = fb_lora_create(&l, m, &ac, err))) goto done;
  if ((rc = fb_lora_read(l, in, "lora_init.", err))) goto done;
  l->seed = (uint64_t)dropout_seed;
  if ((rc = fb_optim_create(&opt, m->be, l->n_floats, &oc, err))) goto done;
  fb_batch b = {B, T, ids, labels, NULL, NULL};
  int64_t one[1] = {1}, lshape[3] = {B, T, m->V};

  /* greedy continuation of row 0's first greedy_prompt_len tokens, base + initial LoRA */
  if (greedy_len > 0) {
    fb_gen_config gc = fb_gen_defaults();
    gc.max_new_tokens = (int)greedy_new;
    int np = (int)greedy_len, n_gen = 0;
    if (np > T || gc.max_new_tokens < 1 || gc.max_new_tokens > 4096) {
      rc = fb_err_set(err, FB_EFORMAT,
                      "%s: greedy_prompt_len %d / greedy_new_tokens %d out of range", in_path, np,
                      gc.max_new_tokens);
      goto done;
    }
    int32_t *gen = malloc(sizeof(int32_t) * (np + gc.max_new_tokens));
    if (!gen) {
      rc = fb_err_set(err, FB_ENOMEM, "out of memory");
      goto done;
    }
    memcpy(gen, ids, sizeof(int32_t) * np); /* greedy_ids = prompt, then the new tokens */
    rc = fb_generate(m, l, ids, np, &gc, gen + np, &n_gen, NULL, err);
    int64_t gshape[1] = {np + n_gen};
    if (!rc)
      rc = out_add(&o, "", "greedy_ids", FB_DT_I32, 1, gshape, gen, sizeof(int32_t) * (np + n_gen),
                   err);
    free(gen);
    if (rc) goto done;
  }
  if ((rc = fb_model_forward(m, l, &b, 1, err))) goto done;
  if ((rc = out_add(&o, "", "logits", FB_DT_F32, 3, lshape, fb_model_logits(m),
                    sizeof(float) * B * T * m->V, err)) ||
      (rc = out_add(&o, "", "loss", FB_DT_F32, 1, one, &m->loss, sizeof(float), err)))
    goto done;
  fb_lora_zero_grad(l);
  if ((rc = fb_model_backward(m, l, &b, err)) ||
      (rc = add_lora(&o, l, l->grads, "lora_grad.", err)))
    goto done;
  l->step++;
  if ((rc = fb_optim_step(opt, l->params, l->grads, oc.lr, err)) ||
      (rc = add_lora(&o, l, l->params, "lora_step1.", err)) ||
      (rc = add_lora(&o, l, opt->m, "adam_m.", err)) ||
      (rc = add_lora(&o, l, opt->v, "adam_v.", err)))
    goto done;
  if ((rc = fb_model_forward(m, l, &b, 1, err)) ||
      (rc = out_add(&o, "", "loss_step1", FB_DT_F32, 1, one, &m->loss, sizeof(float), err)))
    goto done;
  for (int s = 2; s <= 3; s++)
    if ((rc = train_step(m, l, opt, &b, oc.lr, err))) goto done;
  if ((rc = add_lora(&o, l, l->params, "lora_step3.", err)) ||
      (rc = fb_model_forward(m, l, &b, 1, err)) ||
      (rc = out_add(&o, "", "loss_step3", FB_DT_F32, 1, one, &m->loss, sizeof(float), err)))
    goto done;
  rc = fb_st_write(out_path, o.t, o.n, NULL, err);
done:
  outs_free(&o);
  fb_optim_free(opt);
  fb_lora_free(l);
  fb_model_free(m);
  fb_st_close(in);
  free(ids);
  free(labels);
  return rc;
}

int fb_cmd_lora_check(int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs(usage, stdout);
    return 0;
  }
  if (argc != 4) {
    fprintf(stderr, "fastbrain lora-check: expected 3 arguments, got %d\n%s", argc - 1, usage);
    return 2;
  }
  fb_err err = {0};
  if (fb_lora_check_run(argv[1], argv[2], argv[3], &err)) {
    fprintf(stderr, "fastbrain lora-check: %s\n", err.msg);
    return 1;
  }
  return 0;
}
