/* model_io.c: a model's weights from a Hugging Face directory (or hub cache) of safetensors,
 * every tensor checked against the table model.c lays out, and saved back as one: weights,
 * config.json and the files the directory came with. */
#include "model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "hf_cache.h"
#include "model_impl.h"
#include "safetensors.h"

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  int w = snprintf(buf, n, "[");
  for (int d = 0; d < ndim && (size_t)w < n; d++)
    w += snprintf(buf + w, n - w, d ? ", %lld" : "%lld", (long long)shape[d]);
  if ((size_t)w < n) snprintf(buf + w, n - w, "]");
}

int fb_model_load(fb_model **out, const char *name, fb_err *err) {
  *out = NULL;
  char dir[4096], path[4200], commit[FB_HF_COMMIT];
  fb_model_config cfg;
  int rc = fb_hf_locate(name, dir, sizeof dir, commit, err);
  if (rc) return rc;
  snprintf(path, sizeof path, "%s/config.json", dir);
  if ((rc = fb_model_config_load(&cfg, path, err))) return rc;
  fb_st_file *f;
  if ((rc = fb_st_open_model_dir(&f, dir, err))) return rc;
  fb_model *m = NULL;
  if ((rc = fb_model_create(&m, &cfg, err))) goto done;
  for (int i = 0; i < m->n_table && !rc; i++) {
    const fb_param *p = &m->table[i];
    const fb_st_tensor *t = fb_st_find(f, p->name);
    char want[64], got[64];
    shape_str(want, sizeof want, p->ndim, p->shape);
    if (!t) {
      rc = fb_err_set(err, FB_ENOTFOUND, "%s: tensor '%s' %s is missing", dir, p->name, want);
      break;
    }
    shape_str(got, sizeof got, t->ndim, t->shape);
    if (t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
        (p->ndim == 2 && t->shape[1] != p->shape[1])) {
      rc = fb_err_set(err, FB_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", dir, p->name,
                      got, want);
      break;
    }
    rc = fb_st_read_f32(t, m->params + p->offset, err);
    m->table[i].dtype = t->dtype;
  }
  for (int i = 0; i < fb_st_count(f) && !rc; i++) {
    const fb_st_tensor *t = fb_st_at(f, i);
    size_t n = strlen(t->name), s = strlen("rotary_emb.inv_freq");
    if (fb_model_param(m, t->name) ||
        (n >= s && strcmp(t->name + n - s, "rotary_emb.inv_freq") == 0))
      continue; /* old checkpoints carry the rotary table as a buffer: recomputed here */
    char got[64];
    shape_str(got, sizeof got, t->ndim, t->shape);
    rc = fb_err_set(err, FB_EFORMAT,
                    "%s: unexpected tensor '%s' %s (expected none: not a weight of %s%s)", dir,
                    t->name, got, cfg.architecture,
                    strcmp(t->name, "lm_head.weight") == 0 ? " with tied embeddings" : "");
  }
done:
  fb_st_close(f);
  if (rc) {
    fb_model_free(m);
    return rc;
  }
  memcpy(m->revision, commit, sizeof m->revision);
  *out = m;
  return 0;
}

static int copy_file(const char *src, const char *dst, fb_err *err) {
  char *buf;
  size_t len;
  int rc = fb_read_file(src, &buf, &len, (size_t)1 << 30, err);
  if (rc) return rc;
  rc = fb_write_file_atomic(dst, buf, len, err);
  free(buf);
  return rc;
}

/* The sliding-window fields that parse back to c's windows (model_config.c): Mistral its window
 * or null (an absent key would mean 4096); Qwen2 and Qwen3 layer_types, which transformers reads
 * first, and max_window_layers for versions that predate it. */
static void add_windows(cJSON *j, const fb_model_config *c) {
  int first = c->num_hidden_layers;
  for (int l = c->num_hidden_layers - 1; l >= 0; l--)
    if (c->layer_window[l] > 0) first = l;
  int any = first < c->num_hidden_layers;
  if (c->arch == FB_ARCH_LLAMA) return;
  if (any)
    cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
  else
    cJSON_AddNullToObject(j, "sliding_window");
  if (c->arch != FB_ARCH_QWEN2 && c->arch != FB_ARCH_QWEN3) return;
  cJSON_AddBoolToObject(j, "use_sliding_window", any);
  cJSON_AddNumberToObject(j, "max_window_layers", first);
  cJSON *types = cJSON_AddArrayToObject(j, "layer_types");
  for (int l = 0; l < c->num_hidden_layers; l++)
    cJSON_AddItemToArray(
        types, cJSON_CreateString(c->layer_window[l] > 0 ? "sliding_attention" : "full_attention"));
}

/* config.json for m->cfg, in Hugging Face's spelling, written atomically to path. */
static int write_config(const fb_model *m, const char *path, fb_err *err) {
  const fb_model_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "architectures");
  cJSON_AddItemToArray(a, cJSON_CreateString(fb_arch_name(c->arch)));
  cJSON_AddStringToObject(j, "model_type", fb_arch_model_type(c->arch));
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
  cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_hidden_layers);
  cJSON_AddNumberToObject(j, "num_attention_heads", c->num_attention_heads);
  cJSON_AddNumberToObject(j, "num_key_value_heads", c->num_key_value_heads);
  cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
  cJSON_AddNumberToObject(j, "rms_norm_eps", c->rms_norm_eps);
  cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
  if (c->rope_scaling.type == FB_ROPE_NONE) {
    cJSON_AddNullToObject(j, "rope_scaling");
  } else {
    cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
    int llama3 = c->rope_scaling.type == FB_ROPE_LLAMA3;
    cJSON_AddStringToObject(r, "rope_type", llama3 ? "llama3" : "linear");
    cJSON_AddNumberToObject(r, "factor", c->rope_scaling.factor);
    if (llama3) {
      cJSON_AddNumberToObject(r, "low_freq_factor", c->rope_scaling.low_freq_factor);
      cJSON_AddNumberToObject(r, "high_freq_factor", c->rope_scaling.high_freq_factor);
      cJSON_AddNumberToObject(r, "original_max_position_embeddings",
                              c->rope_scaling.original_max_position_embeddings);
    }
  }
  cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
  cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
  if (c->arch != FB_ARCH_QWEN2) cJSON_AddBoolToObject(j, "attention_bias", c->attention_bias);
  add_windows(j, c);
  if (c->bos_token_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
  if (c->n_eos == 1) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_token_ids[0]);
  if (c->n_eos > 1)
    cJSON_AddItemToObject(j, "eos_token_id", cJSON_CreateIntArray(c->eos_token_ids, c->n_eos));
  cJSON_AddStringToObject(j, "hidden_act", "silu");
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  if (!text) return fb_err_set(err, FB_ENOMEM, "model: out of memory writing %s", path);
  int rc = fb_write_file_atomic(path, text, strlen(text), err);
  cJSON_free(text);
  return rc;
}

/* Weight i as safetensors writes it: the f32 host copy, or (as_loaded, a narrower checkpoint
 * dtype) a converted copy in *owned, freed by the caller. */
static int out_tensor(const fb_model *m, int i, int as_loaded, fb_st_out *t, void **owned,
                      fb_err *err) {
  const fb_param *p = &m->table[i];
  const float *src = m->params + p->offset;
  *t = (fb_st_out){p->name, FB_DT_F32, p->ndim, {p->shape[0], p->shape[1]}, src};
  *owned = NULL;
  if (!as_loaded || p->dtype == FB_DT_F32) return 0;
  uint16_t *h = malloc(p->numel * sizeof *h);
  if (!h) return fb_err_set(err, FB_ENOMEM, "model: out of memory converting %s", p->name);
  for (size_t j = 0; j < p->numel; j++)
    h[j] = p->dtype == FB_DT_BF16 ? fb_f32_to_bf16(src[j]) : fb_f32_to_f16(src[j]);
  t->dtype = (fb_dtype)p->dtype;
  t->data = *owned = h;
  return 0;
}

static int save(const fb_model *m, const char *src_dir, const char *out_dir, int as_loaded,
                fb_err *err) {
  int rc = fb_mkdir_p(out_dir, err);
  if (rc) return rc;
  fb_st_out *t = calloc((size_t)m->n_table, sizeof *t);
  void **owned = calloc((size_t)m->n_table, sizeof *owned);
  if (!t || !owned) rc = fb_err_set(err, FB_ENOMEM, "model: out of memory saving %s", out_dir);
  for (int i = 0; i < m->n_table && !rc; i++)
    rc = out_tensor(m, i, as_loaded, &t[i], &owned[i], err);
  char path[4096], src[4096];
  static const char *const meta[] = {"format", "pt", NULL};
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  if (!rc) rc = fb_st_write(path, t, m->n_table, meta, err);
  for (int i = 0; owned && i < m->n_table; i++) free(owned[i]);
  free(owned);
  free(t);
  if (rc || !src_dir) {
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    return rc ? rc : write_config(m, path, err);
  }
  static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json", "generation_config.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0] && !rc; i++) {
    snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
    FILE *probe = fopen(src, "rb");
    if (!probe) {
      if (i == 0) rc = fb_err_set(err, FB_ENOTFOUND, "%s: cannot open for copying", src);
      continue;
    }
    fclose(probe);
    snprintf(path, sizeof path, "%s/%s", out_dir, files[i]);
    rc = copy_file(src, path, err);
  }
  return rc;
}

int fb_model_save(const fb_model *m, const char *src_dir, const char *out_dir, fb_err *err) {
  return save(m, src_dir, out_dir, 0, err);
}

int fb_model_save_as_loaded(const fb_model *m, const char *src_dir, const char *out_dir,
                            fb_err *err) {
  return save(m, src_dir, out_dir, 1, err);
}
