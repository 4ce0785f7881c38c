/* layers.c: the layer sequence of the model (model.h), written once over its backend's ops
 * (backend.h): forward to the loss, backward to LoRA (or every weight's) gradients, and
 * decoding against a KV cache; with the activations each keeps in the backend's memory. Inputs
 * are checked and staged on the host, then uploaded; nothing else crosses to the host but the
 * loss sum and a decoded position's logits. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lora.h"
#include "model_impl.h"

/* Activations for up to n positions in rows of up to T, in the backend's memory; [L] marks one
 * slice per layer.
 *
 * q and k are what the projections wrote: rotated in place where attention reads them directly,
 * kept un-normed where Qwen3's q_norm/k_norm (cfg.qk_norm) come between. There attention reads
 * qh and kh, one layer's per-head-normed and rotated copies, and backward recomputes them from
 * the kept projections (two row norms and two rotations, elementwise work beside the layer's
 * matrix products) rather than keep a second [L][N,QD+KD] copy. qh, kh, rstdq, rstdk, dqp and
 * dkp take no room in other models. */
struct fb_acts {
  int n, T;   /* positions and row length the buffers were sized for */
  int fB, fT; /* batch shape of the last forward */
  float *arena;
  float *x_in, *rstd1, *q, *k, *v, *att, *lse;   /* [L][N,C] [L][N] [L][N,QD] [L][N,KD] x2
                                                  * [L][N,QD] [L][B,NH,T] */
  float *qh, *kh, *rstdq, *rstdk, *dqp, *dkp;    /* qk_norm only: [N,QD] [N,KD] [N*NH] [N*NKV],
                                                  * gradients of q and k before the norms
                                                  * [N,QD] [N,KD] */
  float *x_mid, *rstd2, *gate, *up;              /* [L][N,C] [L][N] [L][N,F] x2 */
  float *ln, *act;                               /* [N,C] [N,F]: normed inputs and the SwiGLU
                                                  * output are recomputed in backward, not kept */
  float *x_out, *lnf, *rstdf, *losses, *dloss;   /* [N,C] [N,C] [N] [N] [1]: dloss is the
                                                  * loss's gradient, 1 / labels counted */
  float *tmp, *dres, *dln, *dq, *dk, *dv, *datt; /* backward/forward work: [N,C] x3 [N,QD]
                                                  * [N,KD] x2 [N,QD] */
  float *dgate, *dup, *dact, *scratch;           /* [N,F] x3, attention scratch */
  int32_t *ints;                                 /* backend: ids, pos, targets, seg [N] each */
  int32_t *staging; /* host: the same four, checked and filled before they are uploaded */
  void *ce;         /* the loss's work */
};

/* Take count floats from *p for *field (only counting when base is NULL). */
static void carve(float **field, float **p, size_t count, const float *base) {
  if (base) *field = *p;
  *p += count;
}

/* Lay the training activations out from base (NULL: only count); their size in floats. */
static size_t acts_layout(const fb_model *m, fb_acts *a, float *base, size_t N, int T) {
  size_t L = m->L, C = m->C, QD = (size_t)m->NH * m->HD, KD = (size_t)m->NKV * m->HD, F = m->F;
  float *p = base;
#define CARVE(field, count) carve(&a->field, &p, (count), base)
  CARVE(x_in, L * N * C);
  CARVE(rstd1, L * N);
  CARVE(q, L * N * QD);
  CARVE(k, L * N * KD);
  CARVE(v, L * N * KD);
  CARVE(att, L * N * QD);
  CARVE(lse, L * N * m->NH);
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
  CARVE(dloss, 1);
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
  size_t qk = m->cfg.qk_norm ? 1 : 0; /* Qwen3's buffers, or none */
  CARVE(qh, qk * N * QD);
  CARVE(kh, qk * N * KD);
  CARVE(rstdq, qk * N * m->NH);
  CARVE(rstdk, qk * N * m->NKV);
  CARVE(dqp, qk * N * QD);
  CARVE(dkp, qk * N * KD);
  CARVE(scratch, m->be->attention_scratch((int)N, T, m->NH));
#undef CARVE
  return (size_t)(p - base);
}

static void acts_free(const fb_backend *be, fb_acts *a) {
  if (!a) return;
  be->free(a->arena);
  be->free(a->ints);
  be->ce_free(a->ce);
  free(a->staging);
  free(a);
}

void fb_model_free_acts(fb_model *m) {
  acts_free(m->be, m->acts);
  m->acts = NULL;
}

/* Size the activations for B rows of T (grows, never shrinks). */
static int reserve(fb_model *m, int B, int T, fb_err *err) {
  size_t N = (size_t)B * T;
  if (m->acts && N <= (size_t)m->acts->n && T <= m->acts->T) return 0;
  if (m->acts && N < (size_t)m->acts->n) N = (size_t)m->acts->n; /* never shrink either side */
  if (m->acts && T < m->acts->T) T = m->acts->T;
  const fb_backend *be = m->be;
  fb_acts *a = calloc(1, sizeof *a);
  if (!a) return fb_err_set(err, FB_ENOMEM, "model: out of memory");
  size_t total = acts_layout(m, a, NULL, N, T);
  fb_info("model: activations for %d x %d positions: %.1f MiB", B, T, total * 4.0 / 1048576.0);
  int rc = be->alloc((void **)&a->arena, total * sizeof(float), "activations", err);
  if (!rc) rc = be->alloc((void **)&a->ints, 4 * N * sizeof(int32_t), "token ids", err);
  if (!rc) rc = be->ce_create(&a->ce, (int)N, m->C, m->V, err);
  if (!rc && !(a->staging = malloc(4 * N * sizeof(int32_t))))
    rc = fb_err_set(err, FB_ENOMEM, "out of memory for %zu token ids", N);
  if (rc) {
    acts_free(be, a);
    return fb_err_prefix(err, "model");
  }
  acts_layout(m, a, a->arena, N, T);
  a->n = (int)N;
  a->T = T;
  fb_model_free_acts(m);
  m->acts = a;
  return 0;
}

static float *grad_of(fb_model *m, const float *param) {
  return m->grads ? m->grads + (param - m->params) : NULL;
}

/* For a profile (backend.h): the work queued next counts in phase p. The products, attention
 * and the loss name theirs and go back to FB_PHASE_ELEMENTWISE after them, which is all the rest. */
static void phase(const fb_model *m, fb_phase p) { m->be->phase(p); }

/* ys[j][N,out] = x W^T (+ b) (+ LoRA) for the count projections first.. of layer i, which all
 * read x (q, k, v; gate, up; or one): their LoRA products with x are one. */
static void proj_forward(fb_model *m, fb_lora *lora, int i, int first, int count, float *const *ys,
                         const float *x, int N, int training) {
  const fb_dev_layer *d = &m->dev.layers[i];
  phase(m, FB_PHASE_BASE_GEMM);
  for (int j = 0; j < count; j++) {
    const fb_linear *w = &m->layers[i].proj[first + j];
    m->be->matmul_forward(ys[j], x, d->w[first + j], m->be->weight_dtype, d->b[first + j], N, w->in,
                          w->out, 1.0f, 0.0f);
  }
  phase(m, FB_PHASE_LORA);
  if (lora) fb_lora_forward(lora, i, first, count, ys, x, N, training);
  phase(m, FB_PHASE_ELEMENTWISE);
}

/* dx[N,in] += dys[j] W (+ LoRA path) for proj_forward's projections; LoRA grads and, in full
 * mode, dW and db accumulate. */
static void proj_backward(fb_model *m, fb_lora *lora, int i, int first, int count, float *dx,
                          const float *const *dys, const float *x, int N) {
  phase(m, FB_PHASE_LORA);
  if (lora) fb_lora_backward(lora, i, first, count, dx, dys, x, N, 1);
  phase(m, FB_PHASE_BASE_GEMM);
  for (int j = 0; j < count; j++) {
    const fb_linear *w = &m->layers[i].proj[first + j];
    float *dw = grad_of(m, w->w), *db = w->b ? grad_of(m, w->b) : NULL;
    m->be->matmul_backward(dx, dw, db, dys[j], x, m->dev.layers[i].w[first + j],
                           m->be->weight_dtype, N, w->in, w->out, 1.0f);
  }
  phase(m, FB_PHASE_ELEMENTWISE);
}

/* Where one layer's forward reads and writes, for N positions (x_next may alias x_in). q and k
 * get the projections; qh and kh are q and k as attention reads them: q and k themselves, or
 * with cfg.qk_norm their per-head-normed copies (row norms in rstdq, rstdk). */
typedef struct layer_io {
  const float *x_in;
  float *ln1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *x_next;
  float *qh, *kh, *rstdq, *rstdk;
} layer_io;

/* How attention runs: over whole rows (B x T, seg) or against a KV cache. */
typedef struct attn_plan {
  int B, T;
  const int32_t *seg;
  float *scratch;
  fb_kv_cache *cache;
} attn_plan;

struct fb_kv_cache {
  const fb_backend *be;
  int max_len, len;
  float *k, *v; /* [L][max_len, KD] after rope */
  float *arena; /* the cache, then work for up to max_len new positions: */
  float *x, *ln1, *rstd1, *q, *kn, *vn, *att, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *lnf,
      *logits;
  float *qh, *kh, *rstdq, *rstdk; /* cfg.qk_norm only: as layer_io's */
  float *scratch;                 /* attention scratch for max_len positions */
  int32_t *ints;                  /* backend: ids, pos [max_len] each */
  int32_t *staging;               /* host: pos [max_len] */
};

/* The projections q, k (io->q, io->k) made ready for attention in io->qh, io->kh: with
 * cfg.qk_norm each head RMS-normed over head_dim first (Qwen3's q_norm, k_norm: rows N*NH and
 * N*NKV), then rotated. Without the norms qh, kh are q, k, rotated in place. */
static void qk_forward(fb_model *m, int i, const layer_io *io, const int32_t *pos, int N) {
  const fb_backend *be = m->be;
  const fb_dev_layer *ly = &m->dev.layers[i];
  if (m->cfg.qk_norm) {
    float eps = (float)m->cfg.rms_norm_eps;
    be->rmsnorm_forward(io->qh, io->rstdq, io->q, ly->q_norm, N * m->NH, m->HD, eps);
    be->rmsnorm_forward(io->kh, io->rstdk, io->k, ly->k_norm, N * m->NKV, m->HD, eps);
  }
  be->rope_forward(io->qh, m->dev.rope_cos, m->dev.rope_sin, pos, N, m->NH, m->HD);
  be->rope_forward(io->kh, m->dev.rope_cos, m->dev.rope_sin, pos, N, m->NKV, m->HD);
}

static void layer_forward(fb_model *m, fb_lora *lora, int i, const layer_io *io, const int32_t *pos,
                          int N, int training, const attn_plan *ap) {
  const fb_backend *be = m->be;
  const fb_dev_layer *ly = &m->dev.layers[i];
  int C = m->C, KD = m->NKV * m->HD;
  float eps = (float)m->cfg.rms_norm_eps;
  be->rmsnorm_forward(io->ln1, io->rstd1, io->x_in, ly->attn_norm, N, C, eps);
  proj_forward(m, lora, i, FB_PROJ_Q, 3, (float *[]){io->q, io->k, io->v}, io->ln1, N, training);
  qk_forward(m, i, io, pos, N);
  if (ap->cache) {
    fb_kv_cache *c = ap->cache;
    float *kc = c->k + (size_t)i * c->max_len * KD, *vc = c->v + (size_t)i * c->max_len * KD;
    be->copy(kc + (size_t)c->len * KD, io->kh, sizeof(float) * (size_t)N * KD);
    be->copy(vc + (size_t)c->len * KD, io->v, sizeof(float) * (size_t)N * KD);
    be->attention_cached(io->att, io->qh, kc, vc, ap->scratch, N, c->len, m->NH, m->NKV, m->HD,
                         m->cfg.layer_window[i]);
  } else {
    phase(m, FB_PHASE_ATTN_FWD);
    be->attention_forward(io->att, io->lse, io->qh, io->kh, io->v, ap->seg, ap->scratch, ap->B,
                          ap->T, m->NH, m->NKV, m->HD, m->cfg.layer_window[i]);
    phase(m, FB_PHASE_ELEMENTWISE);
  }
  proj_forward(m, lora, i, FB_PROJ_O, 1, &io->tmp, io->att, N, training);
  be->residual_rmsnorm_forward(io->x_mid, io->ln2, io->rstd2, io->x_in, io->tmp, ly->mlp_norm, N, C,
                               eps);
  proj_forward(m, lora, i, FB_PROJ_GATE, 2, (float *[]){io->gate, io->up}, io->ln2, N, training);
  be->swiglu_forward(io->act, io->gate, io->up, (size_t)N * m->F);
  proj_forward(m, lora, i, FB_PROJ_DOWN, 1, &io->tmp, io->act, N, training);
  be->add(io->x_next, io->x_mid, io->tmp, (size_t)N * C);
}

/* Layer i's slices of the training activations. */
static layer_io train_io(fb_model *m, int i, int N) {
  fb_acts *a = m->acts;
  size_t nc = (size_t)i * N * m->C, nq = (size_t)i * N * m->NH * m->HD,
         nk = (size_t)i * N * m->NKV * m->HD, nf = (size_t)i * N * m->F;
  int qk = m->cfg.qk_norm;
  return (layer_io){a->x_in + nc,
                    a->ln,
                    a->rstd1 + (size_t)i * N,
                    a->q + nq,
                    a->k + nk,
                    a->v + nk,
                    a->att + nq,
                    a->lse + (size_t)i * N * m->NH,
                    a->x_mid + nc,
                    a->ln,
                    a->rstd2 + (size_t)i * N,
                    a->gate + nf,
                    a->up + nf,
                    a->act,
                    a->tmp,
                    i + 1 < m->L ? a->x_in + nc + (size_t)N * m->C : a->x_out,
                    qk ? a->qh : a->q + nq,
                    qk ? a->kh : a->k + nk,
                    a->rstdq,
                    a->rstdk};
}

/* Check ids (and positions, filling pos[n]) and grow the rotary tables to cover them. */
static int check_inputs(fb_model *m, const int32_t *ids, const int32_t *given_pos, int32_t *pos,
                        int N, int T, int first, fb_err *err) {
  int maxpos = 0;
  for (int n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= m->V)
      return fb_err_set(err, FB_EINVALID,
                        "input_ids[%d][%d] = %d is outside the vocabulary [0, %d)", n / T, n % T,
                        ids[n], m->V);
    pos[n] = given_pos ? given_pos[n] : first + n % T;
    if (pos[n] < 0 || pos[n] >= FB_CFG_MAX_POSITIONS)
      return fb_err_set(err, FB_EINVALID, "positions[%d][%d] = %d is out of range", n / T, n % T,
                        pos[n]);
    if (pos[n] > maxpos) maxpos = pos[n];
  }
  return fb_model_rope_reserve(m, maxpos + 1, err);
}

/* The targets of a batch (position t predicts labels[t+1]; -1 where nothing is learned) into
 * targets[N]; the number counted, or -1 with err naming a label out of range. */
static int fill_targets(const fb_model *m, const fb_batch *b, int32_t *targets, fb_err *err) {
  int counted = 0, T = b->T;
  for (int n = 0; n < b->B * T; n++) {
    int t = n % T;
    int32_t y = b->labels && t + 1 < T ? b->labels[n + 1] : -100;
    if (y != -100 && (y < 0 || y >= m->V)) {
      fb_err_set(err, FB_EINVALID, "labels[%d][%d] = %d is neither -100 nor in [0, %d)", n / T,
                 t + 1, y, m->V);
      return -1;
    }
    targets[n] = y == -100 ? -1 : y;
    counted += y != -100;
  }
  return counted;
}

/* One forward or backward pass over a batch of the training activations, as work for the
 * backend's replay. */
typedef struct pass {
  fb_model *m;
  fb_lora *lora;
  const fb_batch *b;
  int training;
} pass;

/* FNV-1a over n 64-bit words. */
static uint64_t hash_words(const uint64_t *w, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    for (int byte = 0; byte < 8; byte++) {
      h ^= (w[i] >> (8 * byte)) & 0xff;
      h *= 0x100000001b3ull;
    }
  return h;
}

/* The replay key of a pass (backend.h): its kind (0 forward, 1 backward) and everything its
 * ops take as arguments but the contents of memory: the model's and the batch's shapes, the
 * activations' layout and buffers, the rotary tables, the adapter's buffers, rank and dropout. */
static uint64_t pass_key(const pass *p, int kind) {
  const fb_model *m = p->m;
  const fb_acts *a = m->acts;
  const fb_lora *l = p->lora;
  double p_drop = l ? l->cfg.lora_dropout : 0;
  uint64_t dropout_bits;
  memcpy(&dropout_bits, &p_drop, sizeof dropout_bits);
  uint64_t w[] = {(uint64_t)kind,
                  (uint64_t)p->b->B,
                  (uint64_t)p->b->T,
                  (uint64_t)p->training,
                  (uint64_t)(p->b->seg != NULL),
                  (uint64_t)(uintptr_t)m,
                  (uint64_t)m->L << 32 | (uint64_t)m->C,
                  (uint64_t)m->F << 32 | (uint64_t)m->V,
                  (uint64_t)m->NH << 32 | (uint64_t)m->NKV << 16 | (uint64_t)m->HD,
                  (uint64_t)(uintptr_t)a->arena,
                  (uint64_t)(uintptr_t)a->ints,
                  (uint64_t)(uintptr_t)a->ce,
                  (uint64_t)a->n,
                  (uint64_t)a->T,
                  (uint64_t)(uintptr_t)m->dev.rope_cos,
                  (uint64_t)(uintptr_t)m->grads,
                  (uint64_t)(uintptr_t)l,
                  l ? (uint64_t)(uintptr_t)l->params : 0,
                  l ? (uint64_t)(uintptr_t)l->grads : 0,
                  l ? (uint64_t)(uintptr_t)l->u : 0,
                  l ? (uint64_t)(uintptr_t)l->du : 0,
                  l ? (uint64_t)(uintptr_t)l->scratch : 0,
                  l ? (uint64_t)l->cap_n : 0,
                  l ? (uint64_t)l->r : 0,
                  l ? (uint64_t)(uintptr_t)l->masks : 0,
                  l ? dropout_bits : 0};
  return hash_words(w, sizeof w / sizeof w[0]);
}

/* The forward's ops, from the uploaded ids to the per-position losses. */
static void forward_work(void *ctx) {
  pass *p = ctx;
  fb_model *m = p->m;
  const fb_backend *be = m->be;
  fb_acts *a = m->acts;
  int B = p->b->B, T = p->b->T, N = B * T;
  const int32_t *d_ids = a->ints, *d_pos = d_ids + N, *d_tgt = d_pos + N, *d_seg = d_tgt + N;
  be->embedding_forward(a->x_in, d_ids, m->dev.embed, N, m->C);
  attn_plan ap = {B, T, p->b->seg ? d_seg : NULL, a->scratch, NULL};
  for (int i = 0; i < m->L; i++) {
    layer_io io = train_io(m, i, N);
    layer_forward(m, p->lora, i, &io, d_pos, N, p->training, &ap);
  }
  be->rmsnorm_forward(a->lnf, a->rstdf, a->x_out, m->dev.final_norm, N, m->C,
                      (float)m->cfg.rms_norm_eps);
  phase(m, FB_PHASE_LOSS);
  be->lmhead_ce_forward(a->losses, a->lnf, m->dev.lm_head, d_tgt, N, a->ce);
  phase(m, FB_PHASE_ELEMENTWISE);
}

int fb_model_forward(fb_model *m, fb_lora *lora, const fb_batch *b, int training, fb_err *err) {
  int B = b->B, T = b->T, rc;
  if (B < 1 || T < 1 || (int64_t)B * T > FB_MODEL_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "model: batch shape [%d, %d] is empty or over %d positions",
                      B, T, FB_MODEL_MAX_POSITIONS);
  int N = B * T;
  if ((rc = reserve(m, B, T, err))) return rc;
  if (lora && (rc = fb_lora_reserve(lora, N, err))) return rc;
  fb_acts *a = m->acts;
  int32_t *h_ids = a->staging, *h_pos = h_ids + N, *h_tgt = h_pos + N;
  int32_t *d_ids = a->ints, *d_seg = d_ids + 3 * N;
  if ((rc = check_inputs(m, b->ids, b->pos, h_pos, N, T, 0, err))) return rc;
  int counted = fill_targets(m, b, h_tgt, err);
  if (counted < 0) return err->code;
  memcpy(h_ids, b->ids, sizeof(int32_t) * N);
  const fb_backend *be = m->be;
  /* before the pass: a replayed graph reads them where it read the first step's */
  be->upload(d_ids, h_ids, 3 * sizeof(int32_t) * N); /* ids, pos, targets */
  if (b->seg) be->upload(d_seg, b->seg, sizeof(int32_t) * N);
  if (lora) fb_lora_stage_masks(lora, training);
  a->fB = B;
  a->fT = T;
  pass p = {m, lora, b, training};
  be->replay(pass_key(&p, 0), forward_work, &p); /* a graph when the key was seen before */
  m->n_counted = b->labels ? counted : 0;
  m->loss = m->n_counted ? (float)(be->sum(a->losses, (size_t)N) / m->n_counted) : 0.0f;
  return 0;
}

const float *fb_model_logits(const fb_model *m) {
  return m->acts ? m->be->ce_logits(m->acts->ce) : NULL;
}

/* The backward's ops, from the loss's gradient to the adapter's (or every weight's). */
static void backward_work(void *ctx) {
  pass *p = ctx;
  fb_model *m = p->m;
  fb_lora *lora = p->lora;
  fb_acts *a = m->acts;
  int B = p->b->B, T = p->b->T, N = B * T;
  const fb_backend *be = m->be;
  int C = m->C, QD = m->NH * m->HD, KD = m->NKV * m->HD, F = m->F;
  size_t NC = (size_t)N * C;
  const int32_t *d_ids = a->ints, *d_pos = d_ids + N, *d_tgt = d_pos + N;
  const int32_t *d_seg = p->b->seg ? d_tgt + N : NULL;
  float eps = (float)m->cfg.rms_norm_eps;
  /* lm_head with the loss, then the final norm */
  be->zero(a->dln, sizeof(float) * NC);
  phase(m, FB_PHASE_LOSS);
  be->lmhead_ce_backward(a->dln, grad_of(m, m->lm_head), a->lnf, m->dev.lm_head, d_tgt, N, a->dloss,
                         a->ce);
  phase(m, FB_PHASE_ELEMENTWISE);
  be->zero(a->dres, sizeof(float) * NC);
  be->rmsnorm_backward(a->dres, grad_of(m, m->final_norm), a->dln, a->x_out, m->dev.final_norm,
                       a->rstdf, N, C);
  for (int i = m->L - 1; i >= 0; i--) {
    const fb_layer *ly = &m->layers[i];
    const fb_dev_layer *dl = &m->dev.layers[i];
    layer_io io = train_io(m, i, N);
    /* MLP: x_next = x_mid + down(swiglu(gate(ln2), up(ln2))); ln2 and act recomputed */
    be->rmsnorm_forward(io.ln2, io.rstd2, io.x_mid, dl->mlp_norm, N, C, eps);
    be->swiglu_forward(io.act, io.gate, io.up, (size_t)N * F);
    be->zero(a->dact, sizeof(float) * (size_t)N * F);
    proj_backward(m, lora, i, FB_PROJ_DOWN, 1, a->dact, (const float *[]){a->dres}, io.act, N);
    be->swiglu_backward(a->dgate, a->dup, a->dact, io.gate, io.up, (size_t)N * F);
    be->zero(a->dln, sizeof(float) * NC);
    proj_backward(m, lora, i, FB_PROJ_GATE, 2, a->dln, (const float *[]){a->dgate, a->dup}, io.ln2,
                  N);
    be->rmsnorm_backward(a->dres, grad_of(m, ly->mlp_norm), a->dln, io.x_mid, dl->mlp_norm,
                         io.rstd2, N, C);
    /* attention: x_mid = x_in + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))), Qwen3's
     * q_norm and k_norm between the projections and rope */
    be->zero(a->datt, sizeof(float) * (size_t)N * QD);
    proj_backward(m, lora, i, FB_PROJ_O, 1, a->datt, (const float *[]){a->dres}, io.att, N);
    if (m->cfg.qk_norm) qk_forward(m, i, &io, d_pos, N); /* qh, kh, rstdq, rstdk again */
    phase(m, FB_PHASE_ATTN_BWD);
    be->attention_backward(a->dq, a->dk, a->dv, a->datt, io.att, io.lse, io.qh, io.kh, io.v, d_seg,
                           a->scratch, B, T, m->NH, m->NKV, m->HD, m->cfg.layer_window[i]);
    phase(m, FB_PHASE_ELEMENTWISE);
    be->rope_backward(a->dq, m->dev.rope_cos, m->dev.rope_sin, d_pos, N, m->NH, m->HD);
    be->rope_backward(a->dk, m->dev.rope_cos, m->dev.rope_sin, d_pos, N, m->NKV, m->HD);
    const float *dq = a->dq, *dk = a->dk; /* of the projections' outputs */
    if (m->cfg.qk_norm) {
      be->zero(a->dqp, sizeof(float) * (size_t)N * QD);
      be->zero(a->dkp, sizeof(float) * (size_t)N * KD);
      be->rmsnorm_backward(a->dqp, grad_of(m, ly->q_norm), a->dq, io.q, dl->q_norm, io.rstdq,
                           N * m->NH, m->HD);
      be->rmsnorm_backward(a->dkp, grad_of(m, ly->k_norm), a->dk, io.k, dl->k_norm, io.rstdk,
                           N * m->NKV, m->HD);
      dq = a->dqp;
      dk = a->dkp;
    }
    be->zero(a->dln, sizeof(float) * NC);
    be->rmsnorm_forward(io.ln1, io.rstd1, io.x_in, dl->attn_norm, N, C, eps);
    proj_backward(m, lora, i, FB_PROJ_Q, 3, a->dln, (const float *[]){dq, dk, a->dv}, io.ln1, N);
    be->rmsnorm_backward(a->dres, grad_of(m, ly->attn_norm), a->dln, io.x_in, dl->attn_norm,
                         io.rstd1, N, C);
  }
  if (m->grads) be->embedding_backward(grad_of(m, m->embed), a->dres, d_ids, N, C);
}

int fb_model_backward(fb_model *m, fb_lora *lora, const fb_batch *b, fb_err *err) {
  fb_acts *a = m->acts;
  if (!a || !b->labels || b->B != a->fB || b->T != a->fT)
    return fb_err_set(err, FB_EINVALID,
                      "model: backward needs a forward with labels on this batch");
  if (m->n_counted == 0) return 0;   /* nothing to learn from: gradients stay as they are */
  float dloss = 1.0f / m->n_counted; /* the mean's: through memory, as it changes per batch */
  m->be->upload(a->dloss, &dloss, sizeof dloss);
  pass p = {m, lora, b, 1};
  m->be->replay(pass_key(&p, 1), backward_work, &p);
  return 0;
}

/* Lay a cache for P positions out from base (NULL: only count); its size in floats. */
static size_t kv_layout(const fb_model *m, fb_kv_cache *c, float *base, size_t P) {
  size_t L = m->L, C = m->C, QD = (size_t)m->NH * m->HD, KD = (size_t)m->NKV * m->HD, F = m->F;
  float *p = base;
#define CARVE(field, count) carve(&c->field, &p, (count), base)
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
  CARVE(lnf, C);
  CARVE(logits, m->V);
  size_t qk = m->cfg.qk_norm ? 1 : 0;
  CARVE(qh, qk * P * QD);
  CARVE(kh, qk * P * KD);
  CARVE(rstdq, qk * P * m->NH);
  CARVE(rstdk, qk * P * m->NKV);
  CARVE(scratch, m->be->attention_cached_scratch((int)P));
#undef CARVE
  return (size_t)(p - base);
}

int fb_kv_cache_create(fb_kv_cache **out, const fb_model *m, int max_len, fb_err *err) {
  *out = NULL;
  if (max_len < 1 || max_len > FB_CFG_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "kv cache: length %d is not in 1..%d", max_len,
                      FB_CFG_MAX_POSITIONS);
  const fb_backend *be = m->be;
  fb_kv_cache *c = calloc(1, sizeof *c);
  if (!c) return fb_err_set(err, FB_ENOMEM, "kv cache: out of memory");
  c->be = be;
  size_t total = kv_layout(m, c, NULL, (size_t)max_len);
  int rc = be->alloc((void **)&c->arena, total * sizeof(float), "the KV cache", err);
  if (!rc) rc = be->alloc((void **)&c->ints, 2 * sizeof(int32_t) * max_len, "the KV cache", err);
  if (!rc && !(c->staging = malloc(sizeof(int32_t) * max_len)))
    rc = fb_err_set(err, FB_ENOMEM, "kv cache: out of memory for %d positions", max_len);
  if (rc) {
    fb_kv_cache_free(c);
    return rc;
  }
  kv_layout(m, c, c->arena, (size_t)max_len);
  c->max_len = max_len;
  *out = c;
  return 0;
}

void fb_kv_cache_free(fb_kv_cache *c) {
  if (!c) return;
  c->be->free(c->arena);
  c->be->free(c->ints);
  free(c->staging);
  free(c);
}

void fb_kv_cache_reset(fb_kv_cache *c) { c->len = 0; }
int fb_kv_cache_len(const fb_kv_cache *c) { return c->len; }

int fb_model_decode(fb_model *m, fb_lora *lora, fb_kv_cache *c, const int32_t *ids, int n,
                    float *logits, fb_err *err) {
  if (n < 1 || c->len + n > c->max_len)
    return fb_err_set(err, FB_ELIMIT, "kv cache: %d new positions after %d exceed its length %d", n,
                      c->len, c->max_len);
  if (c->be != m->be)
    return fb_err_set(err, FB_EINVALID, "kv cache: made on %s, the model computes on %s",
                      c->be->name, m->be->name);
  int rc;
  if (lora && (rc = fb_lora_reserve(lora, n, err))) return rc;
  if ((rc = check_inputs(m, ids, NULL, c->staging, n, n, c->len, err))) return rc;
  const fb_backend *be = m->be;
  int32_t *d_ids = c->ints, *d_pos = c->ints + c->max_len;
  be->upload(d_ids, ids, sizeof(int32_t) * n);
  be->upload(d_pos, c->staging, sizeof(int32_t) * n);
  be->embedding_forward(c->x, d_ids, m->dev.embed, n, m->C);
  attn_plan ap = {1, n, NULL, c->scratch, c};
  float *qh = m->cfg.qk_norm ? c->qh : c->q, *kh = m->cfg.qk_norm ? c->kh : c->kn;
  for (int i = 0; i < m->L; i++) {
    layer_io io = {c->x,   c->ln1,   c->rstd1, c->q,     c->kn,    c->vn,   c->att,
                   NULL,   c->x_mid, c->ln2,   c->rstd2, c->gate,  c->up,   c->act,
                   c->tmp, c->x,     qh,       kh,       c->rstdq, c->rstdk};
    layer_forward(m, lora, i, &io, d_pos, n, 0, &ap);
  }
  const float *last = c->x + (size_t)(n - 1) * m->C;
  be->rmsnorm_forward(c->lnf, c->rstd1, last, m->dev.final_norm, 1, m->C,
                      (float)m->cfg.rms_norm_eps);
  be->matmul_forward(c->logits, c->lnf, m->dev.lm_head, be->weight_dtype, NULL, 1, m->C, m->V, 1.0f,
                     0.0f);
  be->download(logits, c->logits, sizeof(float) * m->V);
  c->len += n;
  return 0;
}
