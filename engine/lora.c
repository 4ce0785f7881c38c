/* lora.c: LoRA adapters (see lora.h): one arena of A/B matrices and one of their gradients in
 * the backend's memory, the forward/backward hooks the model calls around each frozen
 * projection (backend ops only), PEFT files and merging through host copies. It never touches
 * base weights except in fb_lora_merge. */
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "safetensors.h"

static const char *proj_module(int proj) { return proj < FB_PROJ_GATE ? "self_attn" : "mlp"; }

void fb_lora_key(char *buf, size_t size, int layer, int proj, char which) {
  snprintf(buf, size, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer,
           proj_module(proj), fb_target_name(proj), which);
}

int fb_lora_create(fb_lora **out, const fb_model *m, const fb_adapter_config *c, fb_err *err) {
  *out = NULL;
  if (c->r < 1 || c->r > FB_ADAPTER_MAX_RANK)
    return fb_err_set(err, FB_EINVALID, "lora: r %d is not in 1..%d", c->r, FB_ADAPTER_MAX_RANK);
  if (!(c->lora_alpha > 0))
    return fb_err_set(err, FB_EINVALID, "lora: lora_alpha %g must be > 0", c->lora_alpha);
  if (!(c->lora_dropout >= 0 && c->lora_dropout < 1))
    return fb_err_set(err, FB_EINVALID, "lora: lora_dropout %g is not in [0, 1)", c->lora_dropout);
  if (!c->targets || (c->targets & ~FB_TARGET_ALL))
    return fb_err_set(err, FB_EINVALID,
                      "lora: target_modules must be a non-empty subset of the seven projections");
  fb_lora *l = calloc(1, sizeof *l);
  if (!l) return fb_err_set(err, FB_ENOMEM, "lora: out of memory");
  l->be = m->be;
  l->cfg = *c;
  l->L = m->L;
  l->r = c->r;
  l->scale = (float)fb_adapter_config_scale(c);
  size_t n = 0;
  for (int i = 0; i < m->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++)
      if (c->targets & (1u << p))
        n += (size_t)c->r * (m->layers[i].proj[p].in + m->layers[i].proj[p].out);
  l->n_floats = n;
  l->pairs = calloc((size_t)m->L * FB_PROJ_COUNT, sizeof *l->pairs);
  int rc = l->pairs ? 0 : fb_err_set(err, FB_ENOMEM, "lora: out of memory");
  if (!rc) rc = l->be->alloc((void **)&l->params, n * sizeof(float), "the adapter", err);
  if (!rc) rc = l->be->alloc((void **)&l->grads, n * sizeof(float), "the adapter's gradients", err);
  size_t n_masks = (size_t)m->L * FB_PROJ_COUNT;
  if (!rc) rc = l->be->alloc((void **)&l->masks, n_masks * sizeof(uint64_t), "dropout seeds", err);
  if (!rc && !(l->masks_h = calloc(n_masks, sizeof(uint64_t))))
    rc = fb_err_set(err, FB_ENOMEM, "lora: out of memory");
  if (rc) {
    fb_lora_free(l);
    return rc;
  }
  l->be->zero(l->params, n * sizeof(float));
  fb_lora_zero_grad(l);
  size_t off = 0;
  for (int i = 0; i < m->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      if (!(c->targets & (1u << p))) continue;
      fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      q->in = m->layers[i].proj[p].in;
      q->out = m->layers[i].proj[p].out;
      q->A = l->params + off;
      q->dA = l->grads + off;
      off += (size_t)c->r * q->in;
      q->B = l->params + off;
      q->dB = l->grads + off;
      off += (size_t)c->r * q->out;
    }
  *out = l;
  return 0;
}

void fb_lora_free(fb_lora *l) {
  if (!l) return;
  free(l->pairs);
  if (l->be) {
    l->be->free(l->params);
    l->be->free(l->grads);
    l->be->free(l->u);
    l->be->free(l->du);
    l->be->free(l->scratch);
    l->be->free(l->masks);
  }
  free(l->masks_h);
  free(l);
}

/* Host room for the weights (freed by the caller), or NULL (FB_ENOMEM in err). */
static float *host_params(const fb_lora *l, fb_err *err) {
  float *h = malloc(l->n_floats * sizeof(float) + 1);
  if (!h) fb_err_set(err, FB_ENOMEM, "lora: out of memory for a copy of %zu weights", l->n_floats);
  return h;
}

/* A host copy of the weights, or NULL. */
static float *download_params(const fb_lora *l, fb_err *err) {
  float *h = host_params(l, err);
  if (h) l->be->download(h, l->params, l->n_floats * sizeof(float));
  return h;
}

/* Where pair q's matrix A or B lies in a host copy h of the arena. */
static float *in_copy(const fb_lora *l, float *h, const float *dev) {
  return h + (dev - l->params);
}

int fb_lora_init(fb_lora *l, uint64_t seed, fb_err *err) {
  float *h = host_params(l, err);
  if (!h) return err->code;
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  l->seed = seed;
  for (int i = 0; i < l->L * FB_PROJ_COUNT; i++) {
    fb_lora_pair *q = &l->pairs[i];
    if (!q->A) continue;
    float bound = 1.0f / sqrtf((float)q->in), *A = in_copy(l, h, q->A);
    for (size_t j = 0; j < (size_t)l->r * q->in; j++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17; /* xorshift64 */
      A[j] = bound * (2.0f * (float)((s >> 40) * 0x1.0p-24) - 1.0f);
    }
    memset(in_copy(l, h, q->B), 0, sizeof(float) * (size_t)l->r * q->out);
  }
  l->be->upload(l->params, h, l->n_floats * sizeof(float));
  free(h);
  return 0;
}

void fb_lora_zero_grad(fb_lora *l) { l->be->zero(l->grads, sizeof(float) * l->n_floats); }

int fb_lora_targets(const fb_lora *l, int proj) { return (l->cfg.targets >> proj) & 1u; }

int fb_lora_reserve(fb_lora *l, int N, fb_err *err) {
  if ((size_t)N <= l->cap_n) return 0;
  int wide = 1;
  for (int i = 0; i < l->L * FB_PROJ_COUNT; i++)
    if (l->pairs[i].A && l->pairs[i].in > wide) wide = l->pairs[i].in;
  const fb_backend *be = l->be;
  float *u = NULL, *du = NULL, *s = NULL;
  int rc = be->alloc((void **)&u, sizeof(float) * l->L * FB_PROJ_COUNT * N * l->r,
                     "the adapter's activations", err);
  if (!rc)
    rc = be->alloc((void **)&du, sizeof(float) * (size_t)N * l->r, "the adapter's work", err);
  if (!rc) rc = be->alloc((void **)&s, sizeof(float) * (size_t)N * wide, "the adapter's work", err);
  if (rc) {
    be->free(u);
    be->free(du);
    return rc;
  }
  be->free(l->u);
  be->free(l->du);
  be->free(l->scratch);
  l->u = u;
  l->du = du;
  l->scratch = s;
  l->cap_n = (size_t)N;
  return 0;
}

static float *saved_u(fb_lora *l, int layer, int proj, int N) {
  return l->u + ((size_t)layer * FB_PROJ_COUNT + proj) * N * l->r;
}

/* The dropout mask of one projection at the current step (the same in forward and backward). */
static uint64_t mask_seed(const fb_lora *l, int layer, int proj) {
  return l->seed ^ (l->step * 0x100000001B3ull +
                    (uint64_t)(layer * FB_PROJ_COUNT + proj) * 0x9E3779B97F4A7C15ull);
}

void fb_lora_stage_masks(fb_lora *l) {
  size_t n = (size_t)l->L * FB_PROJ_COUNT;
  for (size_t i = 0; i < n; i++)
    l->masks_h[i] = mask_seed(l, (int)(i / FB_PROJ_COUNT), i % FB_PROJ_COUNT);
  l->be->upload(l->masks, l->masks_h, n * sizeof(uint64_t));
}

/* Where the ops read the mask seed of one projection (fb_lora_stage_masks). */
static const uint64_t *staged_mask(const fb_lora *l, int layer, int proj) {
  return l->masks + (size_t)layer * FB_PROJ_COUNT + proj;
}

/* The input A sees: inp itself, or its dropout (regenerated identically in backward). */
static const float *dropped(fb_lora *l, int layer, int proj, const float *inp, int N, int in,
                            int training) {
  if (!training || l->cfg.lora_dropout <= 0) return inp;
  l->be->dropout(l->scratch, inp, (size_t)N * in, (float)l->cfg.lora_dropout,
                 staged_mask(l, layer, proj));
  return l->scratch;
}

void fb_lora_forward(fb_lora *l, int layer, int proj, float *out, const float *inp, int N,
                     int training) {
  fb_lora_pair *q = &l->pairs[layer * FB_PROJ_COUNT + proj];
  if (!q->A) return;
  const fb_backend *be = l->be;
  float *u = saved_u(l, layer, proj, N);
  const float *x = dropped(l, layer, proj, inp, N, q->in, training);
  be->matmul_forward(u, x, q->A, FB_DT_F32, NULL, N, q->in, l->r, 1.0f, 0.0f); /* u = x A^T */
  be->matmul_forward(out, u, q->B, FB_DT_F32, NULL, N, l->r, q->out, l->scale,
                     1.0f); /* += s uB^T */
}

void fb_lora_backward(fb_lora *l, int layer, int proj, float *dinp, const float *dout,
                      const float *inp, int N, int training) {
  fb_lora_pair *q = &l->pairs[layer * FB_PROJ_COUNT + proj];
  if (!q->A) return;
  const fb_backend *be = l->be;
  const float *u = saved_u(l, layer, proj, N);
  int drop = training && l->cfg.lora_dropout > 0;
  /* dB += s dout^T u;  du[N,r] = s dout B */
  be->zero(l->du, sizeof(float) * (size_t)N * l->r);
  be->matmul_backward(l->du, q->dB, NULL, dout, u, q->B, FB_DT_F32, N, l->r, q->out, l->scale);
  if (!drop) { /* dA += du^T x;  dinp += du A */
    be->matmul_backward(dinp, q->dA, NULL, l->du, inp, q->A, FB_DT_F32, N, q->in, l->r, 1.0f);
    return;
  }
  /* dA += du^T x' with x' the dropped input regenerated; dinp += dropout(du A) (same mask) */
  const float *x = dropped(l, layer, proj, inp, N, q->in, training);
  be->matmul_backward(NULL, q->dA, NULL, l->du, x, q->A, FB_DT_F32, N, q->in, l->r, 1.0f);
  float *dx = l->scratch;
  be->zero(dx, sizeof(float) * (size_t)N * q->in);
  be->matmul_backward(dx, NULL, NULL, l->du, NULL, q->A, FB_DT_F32, N, q->in, l->r, 1.0f);
  be->dropout(dx, dx, (size_t)N * q->in, (float)l->cfg.lora_dropout, staged_mask(l, layer, proj));
  be->add(dinp, dinp, dx, (size_t)N * q->in);
}

/* Read one matrix named name (rows x cols) from f into dst. */
static int read_matrix(const struct fb_st_file *f, const char *name, int rows, int cols, float *dst,
                       fb_err *err) {
  const fb_st_tensor *t = fb_st_find(f, name);
  if (!t)
    return fb_err_set(err, FB_ENOTFOUND, "%s: tensor '%s' [%d, %d] is missing", fb_st_path(f), name,
                      rows, cols);
  if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
    return fb_err_set(err, FB_EFORMAT,
                      "%s: tensor '%s' has shape [%lld, %lld] (ndim %d), expected [%d, %d]",
                      fb_st_path(f), name, t->ndim > 0 ? (long long)t->shape[0] : 0,
                      t->ndim > 1 ? (long long)t->shape[1] : 0, t->ndim, rows, cols);
  return fb_st_read_f32(t, dst, err);
}

/* Every matrix of the adapter into the host copy h. */
static int read_matrices(fb_lora *l, const struct fb_st_file *f, const char *prefix, float *h,
                         fb_err *err) {
  char key[192], name[256];
  for (int i = 0; i < l->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      if (!q->A) continue;
      for (int w = 0; w < 2; w++) {
        fb_lora_key(key, sizeof key, i, p, w ? 'B' : 'A');
        snprintf(name, sizeof name, "%s%s", prefix, key);
        int rc = read_matrix(f, name, w ? q->out : l->r, w ? l->r : q->in,
                             in_copy(l, h, w ? q->B : q->A), err);
        if (rc) return rc;
      }
    }
  return 0;
}

int fb_lora_read(fb_lora *l, const struct fb_st_file *f, const char *prefix, fb_err *err) {
  char key[192];
  size_t plen = strlen(prefix);
  float *h = host_params(l, err);
  if (!h) return err->code;
  int rc = read_matrices(l, f, prefix, h, err);
  if (!rc) l->be->upload(l->params, h, l->n_floats * sizeof(float));
  free(h);
  if (rc) return rc;
  for (int k = 0; k < fb_st_count(f); k++) {
    const char *n = fb_st_at(f, k)->name;
    if (strncmp(n, prefix, plen) != 0 || (plen == 0 && !strstr(n, ".lora_"))) continue;
    int known = 0;
    for (int i = 0; i < l->L && !known; i++)
      for (int p = 0; p < FB_PROJ_COUNT && !known; p++)
        for (int w = 0; w < 2 && l->pairs[i * FB_PROJ_COUNT + p].A && !known; w++) {
          fb_lora_key(key, sizeof key, i, p, w ? 'B' : 'A');
          known = strcmp(n + plen, key) == 0;
        }
    if (!known)
      return fb_err_set(err, FB_EFORMAT,
                        "%s: tensor '%s' is not a LoRA matrix of this adapter (r %d, targets 0x%x)",
                        fb_st_path(f), n, l->r, l->cfg.targets);
  }
  return 0;
}

int fb_lora_save(const fb_lora *l, const char *dir, fb_err *err) {
  int rc = fb_mkdir_p(dir, err);
  if (rc) return rc;
  int n = 0;
  for (int i = 0; i < l->L * FB_PROJ_COUNT; i++) n += l->pairs[i].A ? 2 : 0;
  fb_st_out *t = calloc((size_t)n, sizeof *t);
  char(*names)[192] = calloc((size_t)n, sizeof *names);
  float *h = download_params(l, err);
  if (!t || !names || !h) {
    free(t);
    free(names);
    free(h);
    return fb_err_set(err, FB_ENOMEM, "lora: out of memory saving %s", dir);
  }
  int k = 0;
  for (int i = 0; i < l->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      const fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      if (!q->A) continue;
      for (int w = 0; w < 2; w++, k++) {
        fb_lora_key(names[k], sizeof names[k], i, p, w ? 'B' : 'A');
        t[k] = (fb_st_out){names[k],
                           FB_DT_F32,
                           2,
                           {w ? q->out : l->r, w ? l->r : q->in},
                           in_copy(l, h, w ? q->B : q->A)};
      }
    }
  char path[4096];
  static const char *const meta[] = {"format", "pt", NULL};
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  rc = fb_st_write(path, t, n, meta, err);
  free(t);
  free(names);
  free(h);
  if (rc) return rc;
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  return fb_adapter_config_write(&l->cfg, path, err);
}

int fb_lora_load(fb_lora **out, const fb_model *m, const char *dir, fb_err *err) {
  *out = NULL;
  char path[4096];
  fb_adapter_config c;
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  int rc = fb_adapter_config_load(&c, path, err);
  if (rc) return rc;
  fb_lora *l;
  if ((rc = fb_lora_create(&l, m, &c, err))) return fb_err_prefix(err, "%s", path);
  fb_st_file *f;
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  if ((rc = fb_st_open(&f, path, err))) {
    fb_lora_free(l);
    return rc;
  }
  rc = fb_lora_read(l, f, "", err);
  fb_st_close(f);
  if (rc) {
    fb_lora_free(l);
    return rc;
  }
  *out = l;
  return 0;
}

int fb_lora_merge(const fb_lora *l, fb_model *m, fb_err *err) {
  float *h = download_params(l, err);
  if (!h) return err->code;
  for (int i = 0; i < l->L; i++)
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      const fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      if (!q->A) continue;
      fb_backend_cpu()->addmm(m->layers[i].proj[p].w, in_copy(l, h, q->B), in_copy(l, h, q->A),
                              q->out, q->in, l->r, l->scale);
    }
  free(h);
  return 0;
}
