/* model.c: the Llama-family model of model.h: weight table and loading, forward to logits and
 * loss, backward to LoRA (and optionally every weight) gradients, saving. All arithmetic goes
 * through backend.h; LoRA arithmetic through lora.h. No tokenizer, optimizer or sampling. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "fsutil.h"
#include "log.h"
#include "lora.h"
#include "safetensors.h"

/* Activations for up to n positions, carved from one arena; [L] marks one slice per layer. */
struct fb_acts {
  int n, T;   /* positions and sequence length the arena was sized for */
  int fB, fT; /* batch shape of the last forward */
  float *arena;
  float *x_in, *rstd1, *q, *k, *v, *att; /* [L][N,C] [L][N] [L][N,QD] [L][N,KD] x2 [L][N,QD] */
  float *x_mid, *rstd2, *gate, *up;      /* [L][N,C] [L][N] [L][N,F] x2 */
  float *ln, *act;                       /* [N,C] [N,F]: normed inputs and the SwiGLU
                                          * output are recomputed in backward, not kept */
  float *x_out, *lnf, *rstdf, *logits, *losses; /* [N,C] [N,C] [N] [N,V] [N] */
  float *tmp, *dres, *dln, *dq, *dk, *dv,
      *datt;                           /* backward/forward work: [N,C] x3 [N,QD] [N,KD] x2 [N,QD] */
  float *dgate, *dup, *dact, *scratch; /* [N,F] x3, attention scratch */
  int32_t *targets, *pos;              /* [N] */
};

static const char *const proj_names[FB_PROJ_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};

/* Append one tensor to the table (pass 1 only counts when m->table is NULL). */
static size_t add_param(fb_model *m, int *k, size_t *off, const char *name, int64_t d0,
                        int64_t d1) {
  size_t numel = (size_t)d0 * (size_t)(d1 ? d1 : 1), at = *off;
  if (m->table) {
    fb_param *p = &m->table[*k];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->offset = at;
    p->numel = numel;
  }
  (*k)++;
  *off += numel;
  return at;
}

/* Lay out every weight (Hugging Face order and names); with m->table set, fill it and the
 * pointers, else only count tensors and floats. */
static void layout(fb_model *m) {
  int k = 0;
  size_t off = 0;
  char name[96];
  int C = m->C, QD = m->NH * m->HD, KD = m->NKV * m->HD, F = m->F;
  float *P = m->params;
  size_t at = add_param(m, &k, &off, "model.embed_tokens.weight", m->V, C);
  if (P) m->embed = P + at;
  for (int i = 0; i < m->L; i++) {
    fb_layer *ly = P ? &m->layers[i] : NULL;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    at = add_param(m, &k, &off, name, C, 0);
    if (ly) ly->attn_norm = P + at;
    static const int ins[FB_PROJ_COUNT] = {0, 0, 0, 1, 0, 0, 3},
                     outs[FB_PROJ_COUNT] = {1, 2, 2, 0, 3, 3, 0};
    for (int p = 0; p < FB_PROJ_COUNT; p++) {
      if (p == FB_PROJ_GATE) {
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        at = add_param(m, &k, &off, name, C, 0);
        if (ly) ly->mlp_norm = P + at;
      }
      int dims[4] = {C, QD, KD, F}, in = dims[ins[p]], out = dims[outs[p]];
      const char *mod = p < FB_PROJ_GATE ? "self_attn" : "mlp";
      snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", i, mod, proj_names[p]);
      at = add_param(m, &k, &off, name, out, in);
      if (ly) ly->proj[p] = (fb_linear){P + at, NULL, in, out};
      int bias = (p <= FB_PROJ_V && m->cfg.attention_bias) || (p == FB_PROJ_O && m->cfg.o_bias);
      if (bias) {
        snprintf(name, sizeof name, "model.layers.%d.%s.%s.bias", i, mod, proj_names[p]);
        at = add_param(m, &k, &off, name, out, 0);
        if (ly) ly->proj[p].b = P + at;
      }
    }
  }
  at = add_param(m, &k, &off, "model.norm.weight", C, 0);
  if (P) m->final_norm = P + at;
  if (m->cfg.tie_word_embeddings) {
    if (P) m->lm_head = m->embed;
  } else {
    at = add_param(m, &k, &off, "lm_head.weight", m->V, C);
    if (P) m->lm_head = P + at;
  }
  m->n_table = k;
  m->n_floats = off;
}

int fb_model_create(fb_model **out, const fb_model_config *cfg, fb_err *err) {
  *out = NULL;
  fb_model *m = calloc(1, sizeof *m);
  if (!m) return fb_err_set(err, FB_ENOMEM, "model: out of memory");
  m->cfg = *cfg;
  m->C = cfg->hidden_size;
  m->HD = cfg->head_dim;
  m->NH = cfg->num_attention_heads;
  m->NKV = cfg->num_key_value_heads;
  m->F = cfg->intermediate_size;
  m->V = cfg->vocab_size;
  m->L = cfg->num_hidden_layers;
  if (m->C < 1 || m->HD < 2 || (m->HD & 1) || m->NH < 1 || m->NKV < 1 || m->NH % m->NKV ||
      m->F < 1 || m->V < 1 || m->L < 1) {
    free(m);
    return fb_err_set(err, FB_EINVALID,
                      "model: inconsistent config (hidden %d, head_dim %d, heads %d, kv heads %d, "
                      "ffn %d, vocab %d, layers %d)",
                      cfg->hidden_size, cfg->head_dim, cfg->num_attention_heads,
                      cfg->num_key_value_heads, cfg->intermediate_size, cfg->vocab_size,
                      cfg->num_hidden_layers);
  }
  layout(m); /* count */
  fb_info("model: %s, %d layers, hidden %d, vocab %d: %zu parameters, %.1f MiB as f32",
          cfg->architecture[0] ? cfg->architecture : "LlamaForCausalLM", m->L, m->C, m->V,
          m->n_floats, m->n_floats * 4.0 / 1048576.0);
  m->params = calloc(m->n_floats, sizeof(float));
  m->table = calloc((size_t)m->n_table, sizeof *m->table);
  m->layers = calloc((size_t)m->L, sizeof *m->layers);
  if (!m->params || !m->table || !m->layers) {
    fb_model_free(m);
    return fb_err_set(err, FB_ENOMEM, "model: out of memory for %zu parameters", m->n_floats);
  }
  layout(m); /* fill */
  *out = m;
  return 0;
}

void fb_model_free(fb_model *m) {
  if (!m) return;
  if (m->acts) free(m->acts->arena);
  free(m->acts);
  free(m->params);
  free(m->grads);
  free(m->table);
  free(m->layers);
  free(m->rope_cos);
  free(m->rope_sin);
  free(m);
}

void fb_model_init_random(fb_model *m, uint64_t seed, float std) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  for (size_t i = 0; i < m->n_floats; i += 2) { /* Box-Muller pairs */
    double u[2];
    for (int j = 0; j < 2; j++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      u[j] = ((s >> 11) + 0.5) * 0x1.0p-53;
    }
    double r = sqrt(-2.0 * log(u[0])) * std;
    m->params[i] = (float)(r * cos(2 * M_PI * u[1]));
    if (i + 1 < m->n_floats) m->params[i + 1] = (float)(r * sin(2 * M_PI * u[1]));
  }
  for (int i = 0; i < m->n_table; i++)
    if (strstr(m->table[i].name, "norm.weight"))
      for (size_t j = 0; j < m->table[i].numel; j++) m->params[m->table[i].offset + j] = 1.0f;
}

const fb_param *fb_model_param(const fb_model *m, const char *name) {
  for (int i = 0; i < m->n_table; i++)
    if (strcmp(m->table[i].name, name) == 0) return &m->table[i];
  return NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  int w = snprintf(buf, n, "[");
  for (int d = 0; d < ndim && (size_t)w < n; d++)
    w += snprintf(buf + w, n - w, d ? ", %lld" : "%lld", (long long)shape[d]);
  if ((size_t)w < n) snprintf(buf + w, n - w, "]");
}

int fb_model_load(fb_model **out, const char *dir, fb_err *err) {
  *out = NULL;
  char path[4096];
  fb_model_config cfg;
  snprintf(path, sizeof path, "%s/config.json", dir);
  int rc = fb_model_config_load(&cfg, path, err);
  if (rc) return rc;
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
  *out = m;
  return 0;
}

int fb_model_enable_grads(fb_model *m, fb_err *err) {
  if (m->grads) return 0;
  m->grads = calloc(m->n_floats, sizeof(float));
  if (!m->grads)
    return fb_err_set(err, FB_ENOMEM, "model: out of memory for %zu gradients", m->n_floats);
  return 0;
}

void fb_model_zero_grad(fb_model *m) {
  if (m->grads) memset(m->grads, 0, sizeof(float) * m->n_floats);
}

/* Rotary tables for positions [0, n): inv_freq in f32 as Hugging Face computes it, with
 * linear or llama3 scaling. */
static int ensure_rope(fb_model *m, int n, fb_err *err) {
  if (n <= m->rope_len) return 0;
  int half = m->HD / 2;
  float *c = malloc(sizeof(float) * (size_t)n * half),
        *s = malloc(sizeof(float) * (size_t)n * half);
  float *inv = malloc(sizeof(float) * half);
  if (!c || !s || !inv) {
    free(c);
    free(s);
    free(inv);
    return fb_err_set(err, FB_ENOMEM, "model: out of memory for rotary tables of %d positions", n);
  }
  const fb_rope_scaling *rs = &m->cfg.rope_scaling;
  for (int i = 0; i < half; i++) {
    float f = 1.0f / powf((float)m->cfg.rope_theta, (float)(2 * i) / (float)m->HD);
    if (rs->type == FB_ROPE_LINEAR) f /= (float)rs->factor;
    if (rs->type == FB_ROPE_LLAMA3) {
      double old = rs->original_max_position_embeddings, lo = old / rs->low_freq_factor,
             hi = old / rs->high_freq_factor, wavelen = 2 * M_PI / f;
      if (wavelen > lo)
        f = (float)(f / rs->factor);
      else if (wavelen >= hi) {
        double sm =
            (old / wavelen - rs->low_freq_factor) / (rs->high_freq_factor - rs->low_freq_factor);
        f = (float)((1 - sm) * f / rs->factor + sm * f);
      }
    }
    inv[i] = f;
  }
  for (int p = 0; p < n; p++)
    for (int i = 0; i < half; i++) {
      float a = (float)p * inv[i];
      c[(size_t)p * half + i] = (float)cos((double)a);
      s[(size_t)p * half + i] = (float)sin((double)a);
    }
  free(inv);
  free(m->rope_cos);
  free(m->rope_sin);
  m->rope_cos = c;
  m->rope_sin = s;
  m->rope_len = n;
  return 0;
}

int fb_model_rope_reserve(fb_model *m, int n, fb_err *err) { return ensure_rope(m, n, err); }

/* Size the activations for B rows of T (grows, never shrinks). */
static int reserve(fb_model *m, int B, int T, fb_err *err) {
  size_t N = (size_t)B * T;
  if (m->acts && N <= (size_t)m->acts->n && T <= m->acts->T) return 0;
  size_t L = m->L, C = m->C, QD = (size_t)m->NH * m->HD, KD = (size_t)m->NKV * m->HD, F = m->F,
         V = m->V;
  size_t per_layer = N * (2 * C + 2 + 2 * QD + 2 * KD + 2 * F);
  size_t total = L * per_layer + N * (C + F) + N * (2 * C + 1 + V + 1) +
                 N * (3 * C + 2 * QD + 2 * KD + 3 * F) + fb_op_attention_scratch(T) +
                 2 * N; /* + targets, pos as int32 */
  fb_info("model: activations for %d x %d positions: %.1f MiB", B, T, total * 4.0 / 1048576.0);
  fb_acts *a = m->acts ? m->acts : calloc(1, sizeof *a);
  float *arena = malloc(sizeof(float) * total);
  if (!a || !arena) {
    if (!m->acts) free(a);
    free(arena);
    return fb_err_set(err, FB_ENOMEM, "model: out of memory for activations (%zu floats)", total);
  }
  if (m->acts) free(m->acts->arena);
  m->acts = a;
  a->arena = arena;
  a->n = (int)N;
  a->T = T;
  float *p = arena;
#define CARVE(field, count) (a->field = p, p += (count))
  CARVE(x_in, L * N * C);
  CARVE(rstd1, L * N);
  CARVE(q, L * N * QD);
  CARVE(k, L * N * KD);
  CARVE(v, L * N * KD);
  CARVE(att, L * N * QD);
  CARVE(x_mid, L * N * C);
  CARVE(rstd2, L * N);
  CARVE(gate, L * N * F);
  CARVE(up, L * N * F);
  CARVE(ln, N * C);
  CARVE(act, N * F);
  CARVE(x_out, N * C);
  CARVE(lnf, N * C);
  CARVE(rstdf, N);
  CARVE(logits, N * V);
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
  CARVE(scratch, fb_op_attention_scratch(T));
#undef CARVE
  a->targets = (int32_t *)p;
  a->pos = (int32_t *)p + N;
  return 0;
}

/* y[N,out] = x W^T (+ b) (+ LoRA) for projection p of layer i. */
static void proj_forward(fb_model *m, fb_lora *lora, int i, int p, float *y, const float *x, int N,
                         int training) {
  const fb_linear *w = &m->layers[i].proj[p];
  fb_op_matmul_forward(y, x, w->w, w->b, N, w->in, w->out, 1.0f, 0.0f);
  if (lora) fb_lora_forward(lora, i, p, y, x, N, training);
}

/* dx[N,in] += dy W (+ LoRA path); LoRA grads and, in full mode, dW and db accumulate. */
static void proj_backward(fb_model *m, fb_lora *lora, int i, int p, float *dx, const float *dy,
                          const float *x, int N) {
  const fb_linear *w = &m->layers[i].proj[p];
  float *dw = m->grads ? m->grads + (w->w - m->params) : NULL;
  float *db = m->grads && w->b ? m->grads + (w->b - m->params) : NULL;
  if (lora) fb_lora_backward(lora, i, p, dx, dy, x, N, 1);
  fb_op_matmul_backward(dx, dw, db, dy, x, w->w, N, w->in, w->out, 1.0f);
}

static float *grad_of(fb_model *m, const float *param) {
  return m->grads ? m->grads + (param - m->params) : NULL;
}

/* Where one layer's forward reads and writes, for N positions (x_next may alias x_in). */
typedef struct layer_io {
  const float *x_in;
  float *ln1, *rstd1, *q, *k, *v, *att, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *x_next;
} layer_io;

/* How attention runs: over whole rows (B x T, seg) or against a KV cache. */
typedef struct attn_plan {
  int B, T;
  const int32_t *seg;
  float *scratch;
  fb_kv_cache *cache;
} attn_plan;

struct fb_kv_cache {
  int max_len, len;
  float *k, *v; /* [L][max_len, KD] after rope */
  float *arena; /* work for up to max_len new positions: */
  float *x, *ln1, *rstd1, *q, *kn, *vn, *att, *x_mid, *ln2, *rstd2, *gate, *up, *act, *tmp, *lnf;
  float *scratch; /* attention scratch for max_len positions */
  int32_t *pos;   /* [max_len] */
};

static void layer_forward(fb_model *m, fb_lora *lora, int i, const layer_io *io, const int32_t *pos,
                          int N, int training, const attn_plan *ap) {
  const fb_layer *ly = &m->layers[i];
  int C = m->C, KD = m->NKV * m->HD;
  float eps = (float)m->cfg.rms_norm_eps;
  fb_op_rmsnorm_forward(io->ln1, io->rstd1, io->x_in, ly->attn_norm, N, C, eps);
  proj_forward(m, lora, i, FB_PROJ_Q, io->q, io->ln1, N, training);
  proj_forward(m, lora, i, FB_PROJ_K, io->k, io->ln1, N, training);
  proj_forward(m, lora, i, FB_PROJ_V, io->v, io->ln1, N, training);
  fb_op_rope_forward(io->q, m->rope_cos, m->rope_sin, pos, N, m->NH, m->HD);
  fb_op_rope_forward(io->k, m->rope_cos, m->rope_sin, pos, N, m->NKV, m->HD);
  if (ap->cache) {
    fb_kv_cache *c = ap->cache;
    float *kc = c->k + (size_t)i * c->max_len * KD, *vc = c->v + (size_t)i * c->max_len * KD;
    memcpy(kc + (size_t)c->len * KD, io->k, sizeof(float) * (size_t)N * KD);
    memcpy(vc + (size_t)c->len * KD, io->v, sizeof(float) * (size_t)N * KD);
    fb_op_attention_cached(io->att, io->q, kc, vc, ap->scratch, N, c->len, m->NH, m->NKV, m->HD,
                           m->cfg.layer_window[i]);
  } else {
    fb_op_attention_forward(io->att, io->q, io->k, io->v, ap->seg, ap->scratch, ap->B, ap->T, m->NH,
                            m->NKV, m->HD, m->cfg.layer_window[i]);
  }
  proj_forward(m, lora, i, FB_PROJ_O, io->tmp, io->att, N, training);
  fb_op_add(io->x_mid, io->x_in, io->tmp, (size_t)N * C);
  fb_op_rmsnorm_forward(io->ln2, io->rstd2, io->x_mid, ly->mlp_norm, N, C, eps);
  proj_forward(m, lora, i, FB_PROJ_GATE, io->gate, io->ln2, N, training);
  proj_forward(m, lora, i, FB_PROJ_UP, io->up, io->ln2, N, training);
  fb_op_swiglu_forward(io->act, io->gate, io->up, (size_t)N * m->F);
  proj_forward(m, lora, i, FB_PROJ_DOWN, io->tmp, io->act, N, training);
  fb_op_add(io->x_next, io->x_mid, io->tmp, (size_t)N * C);
}

/* Layer i's slices of the training activations. */
static layer_io train_io(fb_model *m, int i, int N) {
  fb_acts *a = m->acts;
  size_t nc = (size_t)i * N * m->C, nq = (size_t)i * N * m->NH * m->HD,
         nk = (size_t)i * N * m->NKV * m->HD, nf = (size_t)i * N * m->F;
  return (layer_io){a->x_in + nc,
                    a->ln,
                    a->rstd1 + (size_t)i * N,
                    a->q + nq,
                    a->k + nk,
                    a->v + nk,
                    a->att + nq,
                    a->x_mid + nc,
                    a->ln,
                    a->rstd2 + (size_t)i * N,
                    a->gate + nf,
                    a->up + nf,
                    a->act,
                    a->tmp,
                    i + 1 < m->L ? a->x_in + nc + (size_t)N * m->C : a->x_out};
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
  return ensure_rope(m, maxpos + 1, err);
}

int fb_model_forward(fb_model *m, fb_lora *lora, const fb_batch *b, int training, fb_err *err) {
  int B = b->B, T = b->T, rc;
  if (B < 1 || T < 1 || (int64_t)B * T > FB_MODEL_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "model: batch shape [%d, %d] is empty or over %d positions",
                      B, T, FB_MODEL_MAX_POSITIONS);
  int N = B * T;
  if ((rc = reserve(m, B, T, err))) return rc;
  m->acts->fB = B;
  m->acts->fT = T;
  if (lora && (rc = fb_lora_reserve(lora, N, err))) return rc;
  fb_acts *a = m->acts;
  if ((rc = check_inputs(m, b->ids, b->pos, a->pos, N, T, 0, err))) return rc;
  int C = m->C;
  fb_op_embedding_forward(a->x_in, b->ids, m->embed, N, C);
  attn_plan ap = {B, T, b->seg, a->scratch, NULL};
  for (int i = 0; i < m->L; i++) {
    layer_io io = train_io(m, i, N);
    layer_forward(m, lora, i, &io, a->pos, N, training, &ap);
  }
  fb_op_rmsnorm_forward(a->lnf, a->rstdf, a->x_out, m->final_norm, N, C,
                        (float)m->cfg.rms_norm_eps);
  fb_op_matmul_forward(a->logits, a->lnf, m->lm_head, NULL, N, C, m->V, 1.0f, 0.0f);
  m->loss = 0.0f;
  m->n_counted = 0;
  if (!b->labels) return 0;
  for (int n = 0; n < N; n++) {
    int t = n % T;
    int32_t y = t + 1 < T ? b->labels[n + 1] : -100;
    if (y != -100 && (y < 0 || y >= m->V))
      return fb_err_set(err, FB_EINVALID, "labels[%d][%d] = %d is neither -100 nor in [0, %d)",
                        n / T, t + 1, y, m->V);
    a->targets[n] = y == -100 ? -1 : y;
    m->n_counted += y != -100;
  }
  fb_op_crossentropy_forward(a->losses, a->logits, a->targets, N, m->V);
  double sum = 0.0;
  for (int n = 0; n < N; n++) sum += a->losses[n];
  m->loss = m->n_counted ? (float)(sum / m->n_counted) : 0.0f;
  return 0;
}

int fb_kv_cache_create(fb_kv_cache **out, const fb_model *m, int max_len, fb_err *err) {
  *out = NULL;
  if (max_len < 1 || max_len > FB_CFG_MAX_POSITIONS)
    return fb_err_set(err, FB_EINVALID, "kv cache: length %d is not in 1..%d", max_len,
                      FB_CFG_MAX_POSITIONS);
  size_t P = max_len, L = m->L, C = m->C, QD = (size_t)m->NH * m->HD, KD = (size_t)m->NKV * m->HD,
         F = m->F;
  size_t total = 2 * L * P * KD + P * (6 * C + 2 + 2 * QD + 2 * KD + 3 * F) +
                 fb_op_attention_cached_scratch(max_len) + P;
  fb_kv_cache *c = calloc(1, sizeof *c);
  float *arena = malloc(sizeof(float) * total);
  if (!c || !arena) {
    free(c);
    free(arena);
    return fb_err_set(err, FB_ENOMEM, "kv cache: out of memory for %d positions", max_len);
  }
  c->max_len = max_len;
  c->arena = arena;
  float *p = arena;
#define CARVE(field, count) (c->field = p, p += (count))
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
  CARVE(scratch, fb_op_attention_cached_scratch(max_len));
#undef CARVE
  c->pos = (int32_t *)p;
  *out = c;
  return 0;
}

void fb_kv_cache_free(fb_kv_cache *c) {
  if (!c) return;
  free(c->arena);
  free(c);
}

void fb_kv_cache_reset(fb_kv_cache *c) { c->len = 0; }
int fb_kv_cache_len(const fb_kv_cache *c) { return c->len; }

int fb_model_decode(fb_model *m, fb_lora *lora, fb_kv_cache *c, const int32_t *ids, int n,
                    float *logits, fb_err *err) {
  if (n < 1 || c->len + n > c->max_len)
    return fb_err_set(err, FB_ELIMIT, "kv cache: %d new positions after %d exceed its length %d", n,
                      c->len, c->max_len);
  int rc;
  if (lora && (rc = fb_lora_reserve(lora, n, err))) return rc;
  if ((rc = check_inputs(m, ids, NULL, c->pos, n, n, c->len, err))) return rc;
  fb_op_embedding_forward(c->x, ids, m->embed, n, m->C);
  attn_plan ap = {1, n, NULL, c->scratch, c};
  for (int i = 0; i < m->L; i++) {
    layer_io io = {c->x,   c->ln1,   c->rstd1, c->q,  c->kn,  c->vn,  c->att, c->x_mid,
                   c->ln2, c->rstd2, c->gate,  c->up, c->act, c->tmp, c->x};
    layer_forward(m, lora, i, &io, c->pos, n, 0, &ap);
  }
  const float *last = c->x + (size_t)(n - 1) * m->C;
  fb_op_rmsnorm_forward(c->lnf, c->rstd1, last, m->final_norm, 1, m->C, (float)m->cfg.rms_norm_eps);
  fb_op_matmul_forward(logits, c->lnf, m->lm_head, NULL, 1, m->C, m->V, 1.0f, 0.0f);
  c->len += n;
  return 0;
}

const float *fb_model_logits(const fb_model *m) { return m->acts ? m->acts->logits : NULL; }

int fb_model_backward(fb_model *m, fb_lora *lora, const fb_batch *b, fb_err *err) {
  fb_acts *a = m->acts;
  if (!a || !b->labels || b->B != a->fB || b->T != a->fT)
    return fb_err_set(err, FB_EINVALID,
                      "model: backward needs a forward with labels on this batch");
  int B = b->B, T = b->T, N = B * T;
  if (m->n_counted == 0) return 0; /* nothing to learn from: gradients stay as they are */
  int C = m->C, QD = m->NH * m->HD, F = m->F;
  size_t NC = (size_t)N * C;
  /* logits -> dlogits in place; lm_head and final norm */
  fb_op_crossentropy_backward(a->logits, a->logits, a->targets, N, m->V, 1.0f / m->n_counted);
  memset(a->dln, 0, sizeof(float) * NC);
  fb_op_matmul_backward(a->dln, grad_of(m, m->lm_head), NULL, a->logits, a->lnf, m->lm_head, N, C,
                        m->V, 1.0f);
  memset(a->dres, 0, sizeof(float) * NC);
  fb_op_rmsnorm_backward(a->dres, grad_of(m, m->final_norm), a->dln, a->x_out, m->final_norm,
                         a->rstdf, N, C);
  for (int i = m->L - 1; i >= 0; i--) {
    const fb_layer *ly = &m->layers[i];
    layer_io io = train_io(m, i, N);
    const float *x_in = io.x_in, *x_mid = io.x_mid, *att = io.att;
    const float *q = io.q, *k = io.k, *v = io.v, *gate = io.gate, *up = io.up;
    float *ln2 = io.ln2, *act = io.act, *ln1 = io.ln1; /* recomputed here, as forward made them */
    float eps = (float)m->cfg.rms_norm_eps;
    /* MLP: x_next = x_mid + down(swiglu(gate(ln2), up(ln2))) */
    fb_op_rmsnorm_forward(ln2, io.rstd2, x_mid, ly->mlp_norm, N, C, eps);
    fb_op_swiglu_forward(act, gate, up, (size_t)N * F);
    memset(a->dact, 0, sizeof(float) * (size_t)N * F);
    proj_backward(m, lora, i, FB_PROJ_DOWN, a->dact, a->dres, act, N);
    fb_op_swiglu_backward(a->dgate, a->dup, a->dact, gate, up, (size_t)N * F);
    memset(a->dln, 0, sizeof(float) * NC);
    proj_backward(m, lora, i, FB_PROJ_GATE, a->dln, a->dgate, ln2, N);
    proj_backward(m, lora, i, FB_PROJ_UP, a->dln, a->dup, ln2, N);
    fb_op_rmsnorm_backward(a->dres, grad_of(m, ly->mlp_norm), a->dln, x_mid, ly->mlp_norm, io.rstd2,
                           N, C);
    /* attention: x_mid = x_in + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))) */
    memset(a->datt, 0, sizeof(float) * (size_t)N * QD);
    proj_backward(m, lora, i, FB_PROJ_O, a->datt, a->dres, att, N);
    fb_op_attention_backward(a->dq, a->dk, a->dv, a->datt, q, k, v, b->seg, a->scratch, B, T, m->NH,
                             m->NKV, m->HD, m->cfg.layer_window[i]);
    fb_op_rope_backward(a->dq, m->rope_cos, m->rope_sin, a->pos, N, m->NH, m->HD);
    fb_op_rope_backward(a->dk, m->rope_cos, m->rope_sin, a->pos, N, m->NKV, m->HD);
    memset(a->dln, 0, sizeof(float) * NC);
    fb_op_rmsnorm_forward(ln1, io.rstd1, x_in, ly->attn_norm, N, C, eps);
    proj_backward(m, lora, i, FB_PROJ_Q, a->dln, a->dq, ln1, N);
    proj_backward(m, lora, i, FB_PROJ_K, a->dln, a->dk, ln1, N);
    proj_backward(m, lora, i, FB_PROJ_V, a->dln, a->dv, ln1, N);
    fb_op_rmsnorm_backward(a->dres, grad_of(m, ly->attn_norm), a->dln, x_in, ly->attn_norm,
                           io.rstd1, N, C);
  }
  if (m->grads) fb_op_embedding_backward(grad_of(m, m->embed), a->dres, b->ids, N, C);
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
 * or null (an absent key would mean 4096); Qwen2 layer_types, which transformers reads first,
 * and max_window_layers for versions that predate it. */
static void add_windows(cJSON *j, const fb_model_config *c) {
  int first = c->num_hidden_layers;
  for (int l = c->num_hidden_layers - 1; l >= 0; l--)
    if (c->layer_window[l] > 0) first = l;
  int any = first < c->num_hidden_layers;
  if (c->arch == FB_ARCH_LLAMA) return;
  if (any) cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
  else cJSON_AddNullToObject(j, "sliding_window");
  if (c->arch != FB_ARCH_QWEN2) return;
  cJSON_AddBoolToObject(j, "use_sliding_window", any);
  cJSON_AddNumberToObject(j, "max_window_layers", first);
  cJSON *types = cJSON_AddArrayToObject(j, "layer_types");
  for (int l = 0; l < c->num_hidden_layers; l++)
    cJSON_AddItemToArray(types, cJSON_CreateString(c->layer_window[l] > 0 ? "sliding_attention"
                                                                          : "full_attention"));
}

/* config.json for m->cfg, in Hugging Face's spelling, written atomically to path. */
static int write_config(const fb_model *m, const char *path, fb_err *err) {
  static const char *const archs[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"};
  static const char *const types[] = {"llama", "qwen2", "mistral"};
  const fb_model_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "architectures");
  cJSON_AddItemToArray(a, cJSON_CreateString(archs[c->arch]));
  cJSON_AddStringToObject(j, "model_type", types[c->arch]);
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

int fb_model_save(const fb_model *m, const char *src_dir, const char *out_dir, fb_err *err) {
  int rc = fb_mkdir_p(out_dir, err);
  if (rc) return rc;
  fb_st_out *t = calloc((size_t)m->n_table, sizeof *t);
  if (!t) return fb_err_set(err, FB_ENOMEM, "model: out of memory saving %s", out_dir);
  for (int i = 0; i < m->n_table; i++) {
    const fb_param *p = &m->table[i];
    t[i] =
        (fb_st_out){p->name, FB_DT_F32, p->ndim, {p->shape[0], p->shape[1]}, m->params + p->offset};
  }
  char path[4096], src[4096];
  static const char *const meta[] = {"format", "pt", NULL};
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  rc = fb_st_write(path, t, m->n_table, meta, err);
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
