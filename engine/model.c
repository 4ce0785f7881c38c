/* model.c: the weights of model.h: their table, random initialisation, placing them on a
 * backend (copies in its memory and weight dtype), the rotary tables and full-parameter
 * gradients. Loading and saving are model_io.c's; the layer sequence that computes with them is
 * layers.c's. No tokenizer, optimizer or sampling. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model_impl.h"

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
    p->dtype = FB_DT_F32;
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
      if (p == FB_PROJ_O && m->cfg.qk_norm) { /* Qwen3: self_attn.q_norm, k_norm [HD] */
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", i);
        at = add_param(m, &k, &off, name, m->HD, 0);
        if (ly) ly->q_norm = P + at;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", i);
        at = add_param(m, &k, &off, name, m->HD, 0);
        if (ly) ly->k_norm = P + at;
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

/* Point m->dev at the weights: with dev_at NULL at the host's own (a backend that reads host
 * memory in fp32), else at base + dev_at[i] (in bytes) for table entry i. */
static void place_pointers(fb_model *m, char *base, const size_t *dev_at) {
  for (int i = 0; i < m->n_table; i++) {
    const float *host = m->params + m->table[i].offset;
    const void *d = dev_at ? (const void *)(base + dev_at[i]) : (const void *)host;
    if (host == m->embed) m->dev.embed = d;
    if (host == m->lm_head) m->dev.lm_head = d;
    if (host == m->final_norm) m->dev.final_norm = d;
    for (int l = 0; l < m->L; l++) {
      const fb_layer *ly = &m->layers[l];
      fb_dev_layer *dl = &m->dev.layers[l];
      if (host == ly->attn_norm) dl->attn_norm = d;
      if (host == ly->mlp_norm) dl->mlp_norm = d;
      if (host == ly->q_norm) dl->q_norm = d;
      if (host == ly->k_norm) dl->k_norm = d;
      for (int p = 0; p < FB_PROJ_COUNT; p++) {
        if (host == ly->proj[p].w) dl->w[p] = d;
        if (host == ly->proj[p].b) dl->b[p] = d;
      }
    }
  }
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
  m->dev.layers = calloc((size_t)m->L, sizeof *m->dev.layers);
  if (!m->params || !m->table || !m->layers || !m->dev.layers) {
    fb_model_free(m);
    return fb_err_set(err, FB_ENOMEM, "model: out of memory for %zu parameters", m->n_floats);
  }
  layout(m); /* fill */
  m->be = fb_backend_cpu();
  place_pointers(m, NULL, NULL);
  *out = m;
  return 0;
}

void fb_model_free(fb_model *m) {
  if (!m) return;
  fb_model_free_acts(m);
  m->be->free(m->grads);
  m->be->free(m->dev.arena);
  m->be->free(m->dev.rope_arena);
  free(m->dev.layers);
  free(m->params);
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

int fb_model_enable_grads(fb_model *m, fb_err *err) {
  if (m->grads) return 0;
  if (!m->be->trains_base)
    return fb_err_set(err, FB_EUNSUPPORTED,
                      "full-parameter training runs on the CPU only (the %s backend keeps base "
                      "weights in %s and trains adapters); use LoRA, or device \"cpu\"",
                      m->be->name, fb_dtype_name(m->be->weight_dtype));
  int rc = m->be->alloc((void **)&m->grads, sizeof(float) * m->n_floats, "full-parameter gradients",
                        err);
  if (!rc) fb_model_zero_grad(m);
  return rc;
}

void fb_model_zero_grad(fb_model *m) {
  if (m->grads) m->be->zero(m->grads, sizeof(float) * m->n_floats);
}

/* The backend's copy of the rotary tables (the host's own on a backend that reads host memory). */
static int upload_rope(fb_model *m, fb_err *err) {
  const fb_backend *be = m->be;
  if (be->host_memory) {
    m->dev.rope_cos = m->rope_cos;
    m->dev.rope_sin = m->rope_sin;
    return 0;
  }
  size_t n = (size_t)m->rope_len * (m->HD / 2);
  float *t;
  int rc = be->alloc((void **)&t, 2 * n * sizeof(float), "rotary tables", err);
  if (rc) return rc;
  be->upload(t, m->rope_cos, n * sizeof(float));
  be->upload(t + n, m->rope_sin, n * sizeof(float));
  be->free(m->dev.rope_arena);
  m->dev.rope_arena = t;
  m->dev.rope_cos = t;
  m->dev.rope_sin = t + n;
  return 0;
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
  return upload_rope(m, err);
}

int fb_model_rope_reserve(fb_model *m, int n, fb_err *err) { return ensure_rope(m, n, err); }

/* Copy every weight into one allocation of be's memory: matrices in its weight dtype, vectors
 * (norms, biases) in fp32, converted tensor by tensor through a host buffer. */
static int upload_weights(fb_model *m, const fb_backend *be, fb_err *err) {
  size_t wsize = fb_dtype_size(be->weight_dtype), bytes = 0, largest = 0;
  size_t *dev_at = malloc(sizeof(size_t) * (size_t)m->n_table);
  if (!dev_at) return fb_err_set(err, FB_ENOMEM, "model: out of memory");
  for (int i = 0; i < m->n_table; i++) {
    const fb_param *p = &m->table[i];
    dev_at[i] = bytes;
    bytes += (p->numel * (p->ndim == 2 ? wsize : sizeof(float)) + 255) / 256 * 256;
    if (p->numel > largest) largest = p->numel;
  }
  void *stage = malloc(largest * sizeof(float));
  int rc = stage ? be->alloc(&m->dev.arena, bytes, "the model's weights", err)
                 : fb_err_set(err, FB_ENOMEM, "model: out of memory");
  for (int i = 0; i < m->n_table && !rc; i++) {
    const fb_param *p = &m->table[i];
    const float *src = m->params + p->offset;
    size_t size = p->numel * sizeof(float);
    if (p->ndim == 2 && be->weight_dtype == FB_DT_BF16) {
      uint16_t *h = stage;
      for (size_t j = 0; j < p->numel; j++) h[j] = fb_f32_to_bf16(src[j]);
      size = p->numel * 2;
    } else {
      memcpy(stage, src, size);
    }
    be->upload((char *)m->dev.arena + dev_at[i], stage, size);
  }
  if (!rc) place_pointers(m, m->dev.arena, dev_at);
  free(stage);
  free(dev_at);
  return rc;
}

int fb_model_place(fb_model *m, const fb_backend *be, fb_err *err) {
  if (be == m->be) return 0;
  if (m->be != fb_backend_cpu() || m->grads)
    return fb_err_set(err, FB_EINVALID,
                      "model: already computing on %s (with its gradients): it cannot move to %s",
                      m->be->name, be->name);
  if (!be->supports_head_dim(m->HD))
    return fb_err_set(err, FB_EUNSUPPORTED,
                      "model: head_dim %d is not supported by the %s backend's attention", m->HD,
                      be->name);
  if (be->weight_dtype != FB_DT_F32 && be->weight_dtype != FB_DT_BF16)
    return fb_err_set(err, FB_EUNSUPPORTED, "model: weight dtype %s is not supported",
                      fb_dtype_name(be->weight_dtype));
  fb_model_free_acts(m); /* made for the CPU */
  int rc = 0;
  if (!be->host_memory || be->weight_dtype != FB_DT_F32) rc = upload_weights(m, be, err);
  if (rc) return rc;
  const fb_backend *was = m->be;
  m->be = be;
  if (m->rope_len && (rc = upload_rope(m, err))) {
    be->free(m->dev.arena);
    m->dev.arena = NULL;
    m->be = was;
    place_pointers(m, NULL, NULL);
    return rc;
  }
  fb_info("model: computing on %s (%s)%s", be->name, be->device_name(),
          m->dev.arena ? ", weights copied to it" : "");
  return 0;
}
