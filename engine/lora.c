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

/* The end of proj's input group [first, end): q, k and v read one input, gate and up another; o
 * and down are groups of one. A group's A matrices lie together in the arena, so that the
 * products of the input with them are one product. */
static int group_end(int proj) {
  if (proj <= FB_PROJ_V) return FB_PROJ_O;
  if (proj <= FB_PROJ_O) return FB_PROJ_GATE;
  return proj <= FB_PROJ_UP ? FB_PROJ_DOWN : FB_PROJ_COUNT;
}
#define MAX_GROUP 3 /* q, k, v */

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
    for (int g = 0; g < FB_PROJ_COUNT; g = group_end(g)) {
      for (int p = g; p < group_end(g); p++) /* the group's A matrices, adjacent */
        if (c->targets & (1u << p)) {
          fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
          q->in = m->layers[i].proj[p].in;
          q->out = m->layers[i].proj[p].out;
          q->A = l->params + off;
          q->dA = l->grads + off;
          off += (size_t)c->r * q->in;
        }
      for (int p = g; p < group_end(g); p++) /* then their B matrices */
        if (c->targets & (1u << p)) {
          fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
          q->B = l->params + off;
          q->dB = l->grads + off;
          off += (size_t)c->r * q->out;
        }
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

/* Copy between the arena's order and file order (see lora.h), one matrix at a time. */
static void reorder(const fb_lora *l, float *dst, const float *src, int to_file) {
  size_t off = 0;
  for (int i = 0; i < l->L * FB_PROJ_COUNT; i++) {
    const fb_lora_pair *q = &l->pairs[i];
    if (!q->A) continue;
    const float *mats[2] = {q->A, q->B};
    size_t sizes[2] = {(size_t)l->r * q->in, (size_t)l->r * q->out};
    for (int w = 0; w < 2; w++) {
      size_t at = (size_t)(mats[w] - l->params);
      if (to_file)
        memcpy(dst + off, src + at, sizes[w] * sizeof(float));
      else
        memcpy(dst + at, src + off, sizes[w] * sizeof(float));
      off += sizes[w];
    }
  }
}

void fb_lora_to_file_order(const fb_lora *l, float *dst, const float *src) {
  reorder(l, dst, src, 1);
}

void fb_lora_from_file_order(const fb_lora *l, float *dst, const float *src) {
  reorder(l, dst, src, 0);
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
    rc = be->alloc((void **)&du, sizeof(float) * (size_t)N * MAX_GROUP * l->r, "the adapter's work",
                   err);
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

/* Whether A sees its input through dropout. */
static int dropping(const fb_lora *l, int training) { return training && l->cfg.lora_dropout > 0; }

void fb_lora_stage_masks(fb_lora *l, int training) {
  if (!dropping(l, training)) return;
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
  if (!dropping(l, training)) return inp;
  l->be->dropout(l->scratch, inp, (size_t)N * in, (float)l->cfg.lora_dropout,
                 staged_mask(l, layer, proj));
  return l->scratch;
}

static fb_lora_pair *pair(fb_lora *l, int layer, int proj) {
  return &l->pairs[layer * FB_PROJ_COUNT + proj];
}

/* One product for the inputs of G projections mem of one group, x being their input:
 * u[N, G*r] = x [A_mem0; ...]^T (saved), then out_j[N,out] += s u_j B_j^T, u_j = u's columns
 * j*r .. j*r + r and out_j = outs[mem[j] - first]. */
static void span_forward(fb_lora *l, int layer, int first, const int *mem, int G,
                         float *const *outs, const float *x, int N) {
  const fb_backend *be = l->be;
  const fb_lora_pair *q0 = pair(l, layer, mem[0]);
  int r = l->r, in = q0->in, w = G * r;
  float *u = saved_u(l, layer, mem[0], N);
  be->gemm(0, 1, N, w, in, 1.0f, x, in, q0->A, in, 0.0f, u, w);
  for (int j = 0; j < G; j++) {
    const fb_lora_pair *q = pair(l, layer, mem[j]);
    be->gemm(0, 1, N, q->out, r, l->scale, u + j * r, w, q->B, r, 1.0f, outs[mem[j] - first],
             q->out);
  }
}

/* span_forward's gradients (dout_j = douts[mem[j] - first]): dB_j += s dout_j^T u_j, du[N, G*r]
 * = s dout_j B_j (column slices), then in one product each d[A_mem0; ...] += du^T x and
 * dx = du [A_mem0; ...] + beta dx. */
static void span_backward(fb_lora *l, int layer, int first, const int *mem, int G,
                          const float *const *douts, const float *x, float *dx, float beta, int N) {
  const fb_backend *be = l->be;
  const fb_lora_pair *q0 = pair(l, layer, mem[0]);
  int r = l->r, in = q0->in, w = G * r;
  const float *u = saved_u(l, layer, mem[0], N);
  for (int j = 0; j < G; j++) {
    const fb_lora_pair *q = pair(l, layer, mem[j]);
    const float *dout = douts[mem[j] - first];
    be->gemm(1, 0, q->out, r, N, l->scale, dout, q->out, u + j * r, w, 1.0f, q->dB, r);
    be->gemm(0, 0, N, r, q->out, l->scale, dout, q->out, q->B, r, 0.0f, l->du + j * r, w);
  }
  be->gemm(1, 0, w, in, N, 1.0f, l->du, w, x, in, 1.0f, q0->dA, in);
  be->gemm(0, 0, N, in, w, 1.0f, l->du, w, q0->A, in, beta, dx, in);
}

/* The targeted projections among first..first+count-1 into mem; their number. */
static int targeted(const fb_lora *l, int first, int count, int *mem) {
  int G = 0;
  for (int p = first; p < first + count; p++)
    if (fb_lora_targets(l, p)) mem[G++] = p;
  return G;
}

/* Whether the projections share one product with their input. Not under dropout: PEFT drops
 * each projection's input with a mask of its own, so each takes its own product. */
static int shared(const fb_lora *l, int first, int count, int training) {
  return !dropping(l, training) && first + count <= group_end(first);
}

void fb_lora_forward(fb_lora *l, int layer, int first, int count, float *const *outs,
                     const float *inp, int N, int training) {
  int mem[FB_PROJ_COUNT], G = targeted(l, first, count, mem);
  if (G && shared(l, first, count, training)) {
    span_forward(l, layer, first, mem, G, outs, inp, N);
    return;
  }
  for (int j = 0; j < G; j++) {
    const float *x = dropped(l, layer, mem[j], inp, N, pair(l, layer, mem[j])->in, training);
    span_forward(l, layer, first, &mem[j], 1, outs, x, N);
  }
}

void fb_lora_backward(fb_lora *l, int layer, int first, int count, float *dinp,
                      const float *const *douts, const float *inp, int N, int training) {
  int mem[FB_PROJ_COUNT], G = targeted(l, first, count, mem);
  if (G && shared(l, first, count, training)) {
    span_backward(l, layer, first, mem, G, douts, inp, dinp, 1.0f, N);
    return;
  }
  for (int j = 0; j < G; j++) {
    int in = pair(l, layer, mem[j])->in;
    if (!dropping(l, training)) {
      span_backward(l, layer, first, &mem[j], 1, douts, inp, dinp, 1.0f, N);
      continue;
    }
    /* x' = the dropped input regenerated in scratch, then scratch = du A, dropped with the same
     * mask (the dropout's gradient), added to dinp */
    const float *x = dropped(l, layer, mem[j], inp, N, in, training);
    span_backward(l, layer, first, &mem[j], 1, douts, x, l->scratch, 0.0f, N);
    l->be->dropout(l->scratch, l->scratch, (size_t)N * in, (float)l->cfg.lora_dropout,
                   staged_mask(l, layer, mem[j]));
    l->be->add(dinp, dinp, l->scratch, (size_t)N * in);
  }
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
