/* gpu_model.c: the model of model.c and the adapter of lora.c on the GPU (see gpu_model.h).
 * The layer sequence is model.c's, step for step, so the two can be compared op by op; what
 * differs is where tensors live (device arenas), the bf16 base weights, the attention (its
 * log-sum-exp saved instead of a T x T scratch) and the loss (fused with lm_head). */
#include "gpu_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_cuda.h"
#include "log.h"

typedef struct dev_linear {
  const fb_bf16 *w; /* [out, in] */
  const float *b;   /* [out] or NULL */
  int in, out;
} dev_linear;

typedef struct dev_layer {
  const float *attn_norm, *mlp_norm;
  dev_linear proj[FB_PROJ_COUNT];
} dev_layer;

typedef struct dev_pair {
  float *A, *B, *dA, *dB; /* NULL when the projection is not targeted */
  int in, out;
} dev_pair;

/* Generation: rotated keys and values of every layer, and work for max_len new positions. */
typedef struct gpu_kv {
  int max_len, len;
  float *arena, *k, *v; /* k, v: [L][max_len, KD] */
  float *x, *ln1, *rstd1, *q, *kn, *vn, *att, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *lnf,
      *logits, *u;
  int32_t *ints; /* ids, pos: [max_len] each */
} gpu_kv;

struct fb_gpu_model {
  fb_model *m;
  fb_lora *lora;
  int C, HD, NH, NKV, F, V, L, QD, KD, r;
  int cap_N;
  fb_stream s;
  /* weights: matrices in bf16, norms and biases in fp32 */
  fb_bf16 *w16;
  float *w32;
  dev_layer *layers;
  const fb_bf16 *embed, *lm_head;
  const float *final_norm;
  float *rope; /* cos then sin, [rope_len, HD/2] each */
  int rope_len;
  /* the adapter: parameters, gradients, AdamW moments (lora.c's layout), its saved inputs */
  float *lora_arena, *lp, *lg, *lm, *lv;
  size_t n_lora;   /* floats in each of lp, lg, lm, lv */
  dev_pair *pairs; /* [L * FB_PROJ_COUNT] */
  int t;           /* AdamW steps taken */
  /* activations for cap_N positions; [L] marks one slice per layer */
  float *acts;
  float *x_in, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *rstd2, *gate, *up; /* [L] */
  float *ln, *act, *x_out, *lnf, *rstdf, *losses, *tmp, *dres, *dln, *dq, *dk, *dv, *datt, *dgate,
      *dup, *dact, *delta, *u, *lscratch, *du;
  int32_t *ints, *ids, *pos, *targets, *seg; /* device, [cap_N] each */
  int32_t *host_ints;                        /* staging for the four, [4 * cap_N] */
  fb_cuda_ce_work ce;
  int fB, fT, n_counted; /* the last forward */
  gpu_kv kv;
};

/* Where one layer's forward reads and writes (x_next may alias x_in). */
typedef struct layer_io {
  const float *x_in;
  float *ln1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *x_next;
} layer_io;

/* How attention and LoRA run: whole rows (B x T, seg; u saved per projection) or a KV cache. */
typedef struct run_plan {
  int B, T;
  const int32_t *seg;
  gpu_kv *kv;
  int training;
} run_plan;

/* The device copy of the host weight at host pointer w (the table maps offsets). */
static const void *dev_of(const fb_gpu_model *g, const size_t *dev_off, const float *w) {
  const fb_model *m = g->m;
  if (!w) return NULL;
  size_t off = (size_t)(w - m->params);
  for (int i = 0; i < m->n_table; i++)
    if (m->table[i].offset == off)
      return m->table[i].ndim == 2 ? (const void *)(g->w16 + dev_off[i])
                                   : (const void *)(g->w32 + dev_off[i]);
  return NULL;
}

static int upload_weights(fb_gpu_model *g, fb_err *err) {
  const fb_model *m = g->m;
  size_t n16 = 0, n32 = 0, *dev_off = malloc(sizeof(size_t) * (size_t)m->n_table);
  if (!dev_off) return fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
  for (int i = 0; i < m->n_table; i++) {
    size_t *n = m->table[i].ndim == 2 ? &n16 : &n32;
    dev_off[i] = *n;
    *n += m->table[i].numel;
  }
  int rc = fb_cuda_alloc((void **)&g->w16, n16 * 2, "base weights (bf16)", err);
  if (!rc) rc = fb_cuda_alloc((void **)&g->w32, n32 * 4, "norm weights and biases", err);
  fb_bf16 *stage = rc ? NULL : malloc(n16 * 2);
  float *stage32 = rc ? NULL : malloc(n32 * 4 + 4);
  if (!rc && (!stage || !stage32)) rc = fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
  if (!rc) {
    for (int i = 0; i < m->n_table; i++) {
      const fb_param *p = &m->table[i];
      const float *src = m->params + p->offset;
      if (p->ndim == 2)
        for (size_t j = 0; j < p->numel; j++) stage[dev_off[i] + j] = fb_bf16_from_float(src[j]);
      else
        memcpy(stage32 + dev_off[i], src, p->numel * 4);
    }
    fb_cuda_upload(g->w16, stage, n16 * 2);
    fb_cuda_upload(g->w32, stage32, n32 * 4);
    g->embed = dev_of(g, dev_off, m->embed);
    g->lm_head = dev_of(g, dev_off, m->lm_head);
    g->final_norm = dev_of(g, dev_off, m->final_norm);
    for (int i = 0; i < m->L; i++) {
      const fb_layer *ly = &m->layers[i];
      dev_layer *d = &g->layers[i];
      d->attn_norm = dev_of(g, dev_off, ly->attn_norm);
      d->mlp_norm = dev_of(g, dev_off, ly->mlp_norm);
      for (int p = 0; p < FB_PROJ_COUNT; p++)
        d->proj[p] =
            (dev_linear){dev_of(g, dev_off, ly->proj[p].w), dev_of(g, dev_off, ly->proj[p].b),
                         ly->proj[p].in, ly->proj[p].out};
    }
  }
  free(stage);
  free(stage32);
  free(dev_off);
  return rc;
}

/* Rotary tables for positions 0..n-1 (computed by model.c, uploaded). */
static int ensure_rope(fb_gpu_model *g, int n, fb_err *err) {
  if (n <= g->rope_len) return 0;
  int rc = fb_model_rope_reserve(g->m, n, err);
  if (rc) return rc;
  size_t half = (size_t)g->HD / 2, len = (size_t)g->m->rope_len;
  float *t;
  if ((rc = fb_cuda_alloc((void **)&t, 2 * len * half * 4, "rotary tables", err))) return rc;
  fb_cuda_upload(t, g->m->rope_cos, len * half * 4);
  fb_cuda_upload(t + len * half, g->m->rope_sin, len * half * 4);
  fb_cuda_free(g->rope);
  g->rope = t;
  g->rope_len = (int)len;
  return 0;
}

static const float *rope_cos(const fb_gpu_model *g) { return g->rope; }
static const float *rope_sin(const fb_gpu_model *g) {
  return g->rope + (size_t)g->rope_len * (g->HD / 2);
}

static int upload_lora(fb_gpu_model *g, fb_err *err) {
  fb_lora *l = g->lora;
  g->n_lora = l->n_floats;
  int rc = fb_cuda_alloc((void **)&g->lora_arena, 4 * g->n_lora * 4,
                         "LoRA weights, gradients and moments", err);
  if (rc) return rc;
  g->lp = g->lora_arena;
  g->lg = g->lp + g->n_lora;
  g->lm = g->lg + g->n_lora;
  g->lv = g->lm + g->n_lora;
  fb_cuda_upload(g->lp, l->params, g->n_lora * 4);
  fb_cuda_upload(g->lg, l->grads, g->n_lora * 4);
  fb_cuda_zero(g->lm, 2 * g->n_lora * 4);
  for (int i = 0; i < g->L * FB_PROJ_COUNT; i++) {
    const fb_lora_pair *q = &l->pairs[i];
    if (!q->A) continue;
    size_t a = (size_t)(q->A - l->params), b = (size_t)(q->B - l->params);
    g->pairs[i] = (dev_pair){g->lp + a, g->lp + b, g->lg + a, g->lg + b, q->in, q->out};
  }
  return 0;
}

/* Activations for cap_N positions in one allocation. */
static int alloc_acts(fb_gpu_model *g, fb_err *err) {
  size_t N = (size_t)g->cap_N, L = g->L, C = g->C, QD = g->QD, KD = g->KD, F = g->F,
         r = g->lora ? (size_t)g->r : 0, wide = r;
  for (int i = 0; g->lora && i < g->L * FB_PROJ_COUNT; i++)
    if (g->pairs[i].A && (size_t)g->pairs[i].in > wide) wide = g->pairs[i].in;
  size_t per_layer = N * (2 * C + 2 + 2 * QD + 2 * KD + 2 * F + g->NH);
  size_t shared =
      N * (6 * C + 2 + 2 * QD + 2 * KD + 4 * F + g->NH) + N * (L * FB_PROJ_COUNT * r + wide + r);
  int rc = fb_cuda_alloc((void **)&g->acts, (L * per_layer + shared) * 4, "activations", err);
  if (!rc)
    rc = fb_cuda_alloc((void **)&g->ints, 4 * N * 4, "token ids, positions and targets", err);
  if (rc) return rc;
  float *p = g->acts;
#define CARVE(field, count) (g->field = p, p += (count))
  CARVE(x_in, L * N * C);
  CARVE(rstd1, L * N);
  CARVE(q, L * N * QD);
  CARVE(k, L * N * KD);
  CARVE(v, L * N * KD);
  CARVE(att, L * N * QD);
  CARVE(lse, L * N * g->NH);
  CARVE(x_mid, L * N * C);
  CARVE(rstd2, L * N);
  CARVE(gate, L * N * F);
  CARVE(up, L * N * F);
  CARVE(ln, N * C);
  CARVE(act, N * F);
  CARVE(x_out, N * C);
  CARVE(lnf, N * C);
  CARVE(rstdf, N);
  CARVE(losses, N);
  CARVE(tmp, N * C);
  CARVE(dres, N * C);
  CARVE(dln, N * C);
  CARVE(dq, N * QD);
  CARVE(dk, N * KD);
  CARVE(dv, N * KD);
  CARVE(datt, N * QD);
  CARVE(dgate, N * F);
  CARVE(dup, N * F);
  CARVE(dact, N * F);
  CARVE(delta, N * g->NH);
  CARVE(u, L * FB_PROJ_COUNT * N * r);
  CARVE(lscratch, N * wide);
  CARVE(du, N * r);
#undef CARVE
  g->ids = g->ints;
  g->pos = g->ints + N;
  g->targets = g->ints + 2 * N;
  g->seg = g->ints + 3 * N;
  g->host_ints = malloc(4 * N * sizeof(int32_t));
  if (!g->host_ints) return fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
  /* the widest bf16 operand a matmul rounds: [N, max(C, F, QD)] */
  size_t widest = C > F ? C : F;
  if (QD > widest) widest = QD;
  return fb_cuda_workspace_reserve(N * widest * 2 + 64, err);
}

int fb_gpu_model_create(fb_gpu_model **out, fb_model *m, fb_lora *lora, int max_B, int max_T,
                        fb_err *err) {
  *out = NULL;
  if (!fb_cuda_attention_supports(m->HD))
    return fb_err_set(err, FB_EUNSUPPORTED,
                      "cuda: head_dim %d is not supported by the attention kernels (64, 128)",
                      m->HD);
  if (max_B < 1 || max_T < 1 || (int64_t)max_B * max_T > FB_MODEL_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "cuda: batch shape [%d, %d] is empty or too large", max_B,
                      max_T);
  fb_gpu_model *g = calloc(1, sizeof *g);
  if (!g) return fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
  g->m = m;
  g->lora = lora;
  g->C = m->C;
  g->HD = m->HD;
  g->NH = m->NH;
  g->NKV = m->NKV;
  g->F = m->F;
  g->V = m->V;
  g->L = m->L;
  g->QD = m->NH * m->HD;
  g->KD = m->NKV * m->HD;
  g->r = lora ? lora->r : 0;
  g->cap_N = max_B * max_T;
  g->s = fb_cuda_stream();
  g->layers = calloc((size_t)m->L, sizeof *g->layers);
  g->pairs = calloc((size_t)m->L * FB_PROJ_COUNT, sizeof *g->pairs);
  int rc = !g->layers || !g->pairs ? fb_err_set(err, FB_ENOMEM, "cuda: out of host memory") : 0;
  if (!rc) rc = upload_weights(g, err);
  if (!rc && lora) rc = upload_lora(g, err);
  if (!rc) rc = alloc_acts(g, err);
  if (!rc) rc = fb_cuda_ce_work_create(&g->ce, g->cap_N, g->C, g->V, err);
  if (!rc) rc = ensure_rope(g, max_T, err);
  if (rc) {
    fb_gpu_model_free(g);
    return rc;
  }
  fb_info("cuda: model on %s: %.2f GiB of device memory for batches of %d x %d",
          fb_cuda_device_name(), fb_cuda_bytes_in_use() / 1073741824.0, max_B, max_T);
  *out = g;
  return 0;
}

static void kv_free(gpu_kv *kv) {
  fb_cuda_free(kv->arena);
  fb_cuda_free(kv->ints);
  memset(kv, 0, sizeof *kv);
}

void fb_gpu_model_free(fb_gpu_model *g) {
  if (!g) return;
  kv_free(&g->kv);
  fb_cuda_ce_work_free(&g->ce);
  fb_cuda_free(g->acts);
  fb_cuda_free(g->ints);
  fb_cuda_free(g->lora_arena);
  fb_cuda_free(g->rope);
  fb_cuda_free(g->w16);
  fb_cuda_free(g->w32);
  free(g->host_ints);
  free(g->layers);
  free(g->pairs);
  free(g);
}

/* ---- LoRA (lora.c's hooks) ---- */

static uint64_t mask_seed(const fb_lora *l, int layer, int proj) {
  return l->seed ^ (l->step * 0x100000001B3ull +
                    (uint64_t)(layer * FB_PROJ_COUNT + proj) * 0x9E3779B97F4A7C15ull);
}

static int dropping(const fb_gpu_model *g, int training) {
  return training && g->lora->cfg.lora_dropout > 0;
}

/* out[N,out] += s * B A dropout(inp); u = A dropout(inp) goes to u */
static void lora_forward(fb_gpu_model *g, int i, int p, float *out, const float *inp, float *u,
                         int N, int training) {
  const dev_pair *q = &g->pairs[i * FB_PROJ_COUNT + p];
  const float *x = inp;
  if (dropping(g, training)) {
    fb_cuda_dropout(g->lscratch, inp, (size_t)N * q->in, (float)g->lora->cfg.lora_dropout,
                    mask_seed(g->lora, i, p), g->s);
    x = g->lscratch;
  }
  fb_cuda_matmul_forward_f32(u, x, q->A, NULL, N, q->in, g->r, 1.0f, 0.0f, g->s);
  fb_cuda_matmul_forward_f32(out, u, q->B, NULL, N, g->r, q->out, g->lora->scale, 1.0f, g->s);
}

static void lora_backward(fb_gpu_model *g, int i, int p, float *dinp, const float *dout,
                          const float *inp, int N) {
  const dev_pair *q = &g->pairs[i * FB_PROJ_COUNT + p];
  const float *u = g->u + ((size_t)i * FB_PROJ_COUNT + p) * N * g->r;
  float *du = g->du, p_drop = (float)g->lora->cfg.lora_dropout;
  fb_cuda_zero(du, sizeof(float) * (size_t)N * g->r);
  fb_cuda_matmul_backward_f32(du, q->dB, NULL, dout, u, q->B, N, g->r, q->out, g->lora->scale,
                              g->s);
  if (!dropping(g, 1)) {
    fb_cuda_matmul_backward_f32(dinp, q->dA, NULL, du, inp, q->A, N, q->in, g->r, 1.0f, g->s);
    return;
  }
  uint64_t seed = mask_seed(g->lora, i, p);
  float *x = g->lscratch; /* dropout(inp) again, then reused for dx' */
  fb_cuda_dropout(x, inp, (size_t)N * q->in, p_drop, seed, g->s);
  fb_cuda_matmul_backward_f32(NULL, q->dA, NULL, du, x, q->A, N, q->in, g->r, 1.0f, g->s);
  fb_cuda_zero(x, sizeof(float) * (size_t)N * q->in);
  fb_cuda_matmul_backward_f32(x, NULL, NULL, du, NULL, q->A, N, q->in, g->r, 1.0f, g->s);
  fb_cuda_dropout(x, x, (size_t)N * q->in, p_drop, seed, g->s);
  fb_cuda_add(dinp, dinp, x, (size_t)N * q->in, g->s);
}

/* ---- the model (model.c's sequence) ---- */

static void proj_forward(fb_gpu_model *g, const run_plan *rp, int i, int p, float *y,
                         const float *x, int N) {
  const dev_linear *w = &g->layers[i].proj[p];
  fb_cuda_matmul_forward(y, x, w->w, w->b, N, w->in, w->out, 1.0f, 0.0f, g->s);
  if (!g->lora || !g->pairs[i * FB_PROJ_COUNT + p].A) return;
  float *u = rp->kv ? rp->kv->u : g->u + ((size_t)i * FB_PROJ_COUNT + p) * N * g->r;
  lora_forward(g, i, p, y, x, u, N, rp->training);
}

static void proj_backward(fb_gpu_model *g, int i, int p, float *dx, const float *dy, const float *x,
                          int N) {
  const dev_linear *w = &g->layers[i].proj[p];
  if (g->lora && g->pairs[i * FB_PROJ_COUNT + p].A) lora_backward(g, i, p, dx, dy, x, N);
  fb_cuda_matmul_backward(dx, dy, w->w, N, w->in, w->out, 1.0f, g->s);
}

static void layer_forward(fb_gpu_model *g, int i, const layer_io *io, const int32_t *pos, int N,
                          const run_plan *rp) {
  const dev_layer *ly = &g->layers[i];
  int C = g->C;
  float eps = (float)g->m->cfg.rms_norm_eps;
  fb_stream s = g->s;
  fb_cuda_rmsnorm_forward(io->ln1, io->rstd1, io->x_in, ly->attn_norm, N, C, eps, s);
  proj_forward(g, rp, i, FB_PROJ_Q, io->q, io->ln1, N);
  proj_forward(g, rp, i, FB_PROJ_K, io->k, io->ln1, N);
  proj_forward(g, rp, i, FB_PROJ_V, io->v, io->ln1, N);
  fb_cuda_rope_forward(io->q, rope_cos(g), rope_sin(g), pos, N, g->NH, g->HD, s);
  fb_cuda_rope_forward(io->k, rope_cos(g), rope_sin(g), pos, N, g->NKV, g->HD, s);
  if (rp->kv) {
    gpu_kv *kv = rp->kv;
    size_t KD = g->KD;
    float *kc = kv->k + (size_t)i * kv->max_len * KD, *vc = kv->v + (size_t)i * kv->max_len * KD;
    fb_cuda_copy(kc + (size_t)kv->len * KD, io->k, sizeof(float) * N * KD);
    fb_cuda_copy(vc + (size_t)kv->len * KD, io->v, sizeof(float) * N * KD);
    fb_cuda_attention_cached(io->att, io->q, kc, vc, N, kv->len, g->NH, g->NKV, g->HD,
                             g->m->cfg.layer_window[i], s);
  } else {
    fb_cuda_attention_forward(io->att, io->lse, io->q, io->k, io->v, rp->seg, rp->B, rp->T, g->NH,
                              g->NKV, g->HD, g->m->cfg.layer_window[i], s);
  }
  proj_forward(g, rp, i, FB_PROJ_O, io->tmp, io->att, N);
  fb_cuda_add(io->x_mid, io->x_in, io->tmp, (size_t)N * C, s);
  fb_cuda_rmsnorm_forward(io->ln2, io->rstd2, io->x_mid, ly->mlp_norm, N, C, eps, s);
  proj_forward(g, rp, i, FB_PROJ_GATE, io->gate, io->ln2, N);
  proj_forward(g, rp, i, FB_PROJ_UP, io->up, io->ln2, N);
  fb_cuda_swiglu_forward(io->act, io->gate, io->up, (size_t)N * g->F, s);
  proj_forward(g, rp, i, FB_PROJ_DOWN, io->tmp, io->act, N);
  fb_cuda_add(io->x_next, io->x_mid, io->tmp, (size_t)N * C, s);
}

static layer_io train_io(fb_gpu_model *g, int i, int N) {
  size_t nc = (size_t)i * N * g->C, nq = (size_t)i * N * g->QD, nk = (size_t)i * N * g->KD,
         nf = (size_t)i * N * g->F;
  return (layer_io){g->x_in + nc,
                    g->ln,
                    g->rstd1 + (size_t)i * N,
                    g->q + nq,
                    g->k + nk,
                    g->v + nk,
                    g->att + nq,
                    g->lse + (size_t)i * N * g->NH,
                    g->x_mid + nc,
                    g->ln,
                    g->rstd2 + (size_t)i * N,
                    g->gate + nf,
                    g->up + nf,
                    g->act,
                    g->tmp,
                    i + 1 < g->L ? g->x_in + nc + (size_t)N * g->C : g->x_out};
}

/* model.c's check_inputs: ids in the vocabulary, positions in range (pos[n] filled), the
 * rotary tables grown to cover them. */
static int check_inputs(fb_gpu_model *g, const int32_t *ids, const int32_t *given_pos, int32_t *pos,
                        int N, int T, int first, fb_err *err) {
  int maxpos = 0;
  for (int n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= g->V)
      return fb_err_set(err, FB_EINVALID,
                        "input_ids[%d][%d] = %d is outside the vocabulary [0, %d)", n / T, n % T,
                        ids[n], g->V);
    pos[n] = given_pos ? given_pos[n] : first + n % T;
    if (pos[n] < 0 || pos[n] >= FB_CFG_MAX_POSITIONS)
      return fb_err_set(err, FB_EINVALID, "positions[%d][%d] = %d is out of range", n / T, n % T,
                        pos[n]);
    if (pos[n] > maxpos) maxpos = pos[n];
  }
  return ensure_rope(g, maxpos + 1, err);
}

int fb_gpu_forward(fb_gpu_model *g, const fb_batch *b, int training, float *loss, int *n_counted,
                   fb_err *err) {
  int B = b->B, T = b->T, N = B * T, rc;
  if (B < 1 || T < 1 || (int64_t)B * T > g->cap_N)
    return fb_err_set(err, FB_EINVALID,
                      "cuda: batch shape [%d, %d] is empty or over the %d "
                      "positions the model was set up for",
                      B, T, g->cap_N);
  if (training && !g->lora) return fb_err_set(err, FB_EINVALID, "cuda: training needs an adapter");
  int32_t *h_ids = g->host_ints, *h_pos = h_ids + N, *h_tgt = h_pos + N, *h_seg = h_tgt + N;
  if ((rc = check_inputs(g, b->ids, b->pos, h_pos, N, T, 0, err))) return rc;
  memcpy(h_ids, b->ids, sizeof(int32_t) * N);
  int counted = 0;
  for (int n = 0; n < N; n++) {
    int t = n % T;
    int32_t y = b->labels && t + 1 < T ? b->labels[n + 1] : -100;
    if (y != -100 && (y < 0 || y >= g->V))
      return fb_err_set(err, FB_EINVALID, "labels[%d][%d] = %d is neither -100 nor in [0, %d)",
                        n / T, t + 1, y, g->V);
    h_tgt[n] = y == -100 ? -1 : y;
    counted += y != -100;
  }
  if (b->seg) memcpy(h_seg, b->seg, sizeof(int32_t) * N);
  fb_cuda_upload(g->ids, h_ids, sizeof(int32_t) * N);
  fb_cuda_upload(g->pos, h_pos, sizeof(int32_t) * N);
  fb_cuda_upload(g->targets, h_tgt, sizeof(int32_t) * N);
  if (b->seg) fb_cuda_upload(g->seg, h_seg, sizeof(int32_t) * N);
  g->fB = B;
  g->fT = T;
  g->n_counted = b->labels ? counted : 0;
  fb_cuda_embedding_forward(g->x_in, g->ids, g->embed, N, g->C, g->s);
  run_plan rp = {B, T, b->seg ? g->seg : NULL, NULL, training};
  for (int i = 0; i < g->L; i++) {
    layer_io io = train_io(g, i, N);
    layer_forward(g, i, &io, g->pos, N, &rp);
  }
  fb_cuda_rmsnorm_forward(g->lnf, g->rstdf, g->x_out, g->final_norm, N, g->C,
                          (float)g->m->cfg.rms_norm_eps, g->s);
  float mean = 0.0f;
  if (b->labels) {
    fb_cuda_lmhead_ce_forward(g->losses, g->lnf, g->lm_head, g->targets, N, &g->ce, g->s);
    if (counted) mean = (float)(fb_cuda_sum(g->losses, (size_t)N, g->s) / counted);
  }
  if (loss) *loss = mean;
  if (n_counted) *n_counted = g->n_counted;
  return 0;
}

int fb_gpu_backward(fb_gpu_model *g, const fb_batch *b, fb_err *err) {
  if (!g->lora || !b->labels || b->B != g->fB || b->T != g->fT)
    return fb_err_set(err, FB_EINVALID,
                      "cuda: backward needs an adapter and a forward with labels on this batch");
  int B = b->B, T = b->T, N = B * T, C = g->C, F = g->F;
  if (g->n_counted == 0) return 0;
  size_t NC = (size_t)N * C;
  fb_stream s = g->s;
  const int32_t *seg = b->seg ? g->seg : NULL;
  float eps = (float)g->m->cfg.rms_norm_eps;
  fb_cuda_zero(g->dln, sizeof(float) * NC);
  fb_cuda_lmhead_ce_backward(g->dln, g->lm_head, g->targets, N, 1.0f / g->n_counted, &g->ce, s);
  fb_cuda_zero(g->dres, sizeof(float) * NC);
  fb_cuda_rmsnorm_backward(g->dres, NULL, g->dln, g->x_out, g->final_norm, g->rstdf, N, C, s);
  for (int i = g->L - 1; i >= 0; i--) {
    const dev_layer *ly = &g->layers[i];
    layer_io io = train_io(g, i, N);
    /* MLP: x_next = x_mid + down(swiglu(gate(ln2), up(ln2))); ln2, act recomputed */
    fb_cuda_rmsnorm_forward(io.ln2, io.rstd2, io.x_mid, ly->mlp_norm, N, C, eps, s);
    fb_cuda_swiglu_forward(io.act, io.gate, io.up, (size_t)N * F, s);
    fb_cuda_zero(g->dact, sizeof(float) * (size_t)N * F);
    proj_backward(g, i, FB_PROJ_DOWN, g->dact, g->dres, io.act, N);
    fb_cuda_swiglu_backward(g->dgate, g->dup, g->dact, io.gate, io.up, (size_t)N * F, s);
    fb_cuda_zero(g->dln, sizeof(float) * NC);
    proj_backward(g, i, FB_PROJ_GATE, g->dln, g->dgate, io.ln2, N);
    proj_backward(g, i, FB_PROJ_UP, g->dln, g->dup, io.ln2, N);
    fb_cuda_rmsnorm_backward(g->dres, NULL, g->dln, io.x_mid, ly->mlp_norm, io.rstd2, N, C, s);
    /* attention: x_mid = x_in + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))) */
    fb_cuda_zero(g->datt, sizeof(float) * (size_t)N * g->QD);
    proj_backward(g, i, FB_PROJ_O, g->datt, g->dres, io.att, N);
    fb_cuda_attention_backward(g->dq, g->dk, g->dv, g->datt, io.att, io.lse, io.q, io.k, io.v, seg,
                               g->delta, B, T, g->NH, g->NKV, g->HD, g->m->cfg.layer_window[i], s);
    fb_cuda_rope_backward(g->dq, rope_cos(g), rope_sin(g), g->pos, N, g->NH, g->HD, s);
    fb_cuda_rope_backward(g->dk, rope_cos(g), rope_sin(g), g->pos, N, g->NKV, g->HD, s);
    fb_cuda_zero(g->dln, sizeof(float) * NC);
    fb_cuda_rmsnorm_forward(io.ln1, io.rstd1, io.x_in, ly->attn_norm, N, C, eps, s);
    proj_backward(g, i, FB_PROJ_Q, g->dln, g->dq, io.ln1, N);
    proj_backward(g, i, FB_PROJ_K, g->dln, g->dk, io.ln1, N);
    proj_backward(g, i, FB_PROJ_V, g->dln, g->dv, io.ln1, N);
    fb_cuda_rmsnorm_backward(g->dres, NULL, g->dln, io.x_in, ly->attn_norm, io.rstd1, N, C, s);
  }
  return 0;
}

void fb_gpu_zero_grad(fb_gpu_model *g) {
  if (g->lora) fb_cuda_zero(g->lg, sizeof(float) * g->n_lora);
}

int fb_gpu_step(fb_gpu_model *g, const fb_optim_config *cfg, double lr, double *norm, fb_err *err) {
  if (!g->lora) return fb_err_set(err, FB_EINVALID, "cuda: no adapter to update");
  double n2 = sqrt(fb_cuda_sumsq(g->lg, g->n_lora, g->s));
  if (norm) *norm = n2;
  if (!isfinite(n2))
    return fb_err_set(err, FB_ENUMERIC, "optimizer: step %d: gradients are not finite", g->t + 1);
  if (cfg->max_grad_norm > 0 && n2 > cfg->max_grad_norm)
    fb_cuda_scale(g->lg, g->n_lora, (float)(cfg->max_grad_norm / (n2 + 1e-6)), g->s);
  g->t++;
  fb_cuda_adamw(g->lp, g->lg, g->lm, g->lv, g->n_lora, lr, cfg->beta1, cfg->beta2, cfg->eps,
                cfg->weight_decay, g->t, g->s);
  return 0;
}

void fb_gpu_lora_download(const fb_gpu_model *g, fb_lora *lora, float *m, float *v) {
  if (!g->lora) return;
  fb_cuda_download(lora->params, g->lp, sizeof(float) * g->n_lora);
  fb_cuda_download(lora->grads, g->lg, sizeof(float) * g->n_lora);
  if (m) fb_cuda_download(m, g->lm, sizeof(float) * g->n_lora);
  if (v) fb_cuda_download(v, g->lv, sizeof(float) * g->n_lora);
}

/* ---- generation ---- */

int fb_gpu_kv_reserve(fb_gpu_model *g, int max_len, fb_err *err) {
  if (max_len < 1 || max_len > FB_CFG_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "kv cache: length %d is not in 1..%d", max_len,
                      FB_CFG_MAX_POSITIONS);
  kv_free(&g->kv);
  gpu_kv *kv = &g->kv;
  size_t P = max_len, L = g->L, C = g->C, QD = g->QD, KD = g->KD, F = g->F;
  size_t total = 2 * L * P * KD + P * (6 * C + 2 + 2 * QD + 2 * KD + 3 * F + g->r) + g->V;
  int rc = fb_cuda_alloc((void **)&kv->arena, total * 4, "the KV cache", err);
  if (!rc) rc = fb_cuda_alloc((void **)&kv->ints, 2 * P * 4, "the KV cache's positions", err);
  if (!rc) rc = ensure_rope(g, max_len, err);
  if (!rc && (size_t)g->cap_N < 2 * P) { /* host staging for ids and positions */
    int32_t *h = realloc(g->host_ints, 2 * P * sizeof(int32_t));
    if (!h)
      rc = fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
    else
      g->host_ints = h;
  }
  size_t widest = (C > F ? C : F) > QD ? (C > F ? C : F) : QD;
  if (!rc) rc = fb_cuda_workspace_reserve(P * widest * 2 + 64, err);
  if (rc) {
    kv_free(kv);
    return rc;
  }
  kv->max_len = max_len;
  float *p = kv->arena;
#define CARVE(field, count) (kv->field = p, p += (count))
  CARVE(k, L * P * KD);
  CARVE(v, L * P * KD);
  CARVE(x, P * C);
  CARVE(ln1, P * C);
  CARVE(rstd1, P);
  CARVE(q, P * QD);
  CARVE(kn, P * KD);
  CARVE(vn, P * KD);
  CARVE(att, P * QD);
  CARVE(x_mid, P * C);
  CARVE(ln2, P * C);
  CARVE(rstd2, P);
  CARVE(gate, P * F);
  CARVE(up, P * F);
  CARVE(act, P * F);
  CARVE(tmp, P * C);
  CARVE(lnf, P * C);
  CARVE(u, P * g->r);
  CARVE(logits, g->V);
#undef CARVE
  return 0;
}

void fb_gpu_kv_reset(fb_gpu_model *g) { g->kv.len = 0; }

int fb_gpu_decode(fb_gpu_model *g, const int32_t *ids, int n, float *logits, fb_err *err) {
  gpu_kv *kv = &g->kv;
  if (!kv->arena) return fb_err_set(err, FB_EINVALID, "cuda: decode needs fb_gpu_kv_reserve");
  if (n < 1 || kv->len + n > kv->max_len)
    return fb_err_set(err, FB_ELIMIT, "kv cache: %d new positions after %d exceed its length %d", n,
                      kv->len, kv->max_len);
  int32_t *h_ids = g->host_ints, *h_pos = h_ids + n;
  int rc;
  if ((rc = check_inputs(g, ids, NULL, h_pos, n, n, kv->len, err))) return rc;
  memcpy(h_ids, ids, sizeof(int32_t) * n);
  fb_cuda_upload(kv->ints, h_ids, sizeof(int32_t) * 2 * n);
  const int32_t *d_ids = kv->ints, *d_pos = kv->ints + n;
  fb_cuda_embedding_forward(kv->x, d_ids, g->embed, n, g->C, g->s);
  run_plan rp = {1, n, NULL, kv, 0};
  for (int i = 0; i < g->L; i++) {
    layer_io io = {kv->x,     kv->ln1, kv->rstd1, kv->q,    kv->kn, kv->vn,  kv->att, NULL,
                   kv->x_mid, kv->ln2, kv->rstd2, kv->gate, kv->up, kv->act, kv->tmp, kv->x};
    layer_forward(g, i, &io, d_pos, n, &rp);
  }
  const float *last = kv->x + (size_t)(n - 1) * g->C;
  fb_cuda_rmsnorm_forward(kv->lnf, kv->rstd1, last, g->final_norm, 1, g->C,
                          (float)g->m->cfg.rms_norm_eps, g->s);
  fb_cuda_matmul_forward(kv->logits, kv->lnf, g->lm_head, NULL, 1, g->C, g->V, 1.0f, 0.0f, g->s);
  fb_cuda_download(logits, kv->logits, sizeof(float) * g->V);
  kv->len += n;
  return 0;
}
