/* gguf_export.c: fb_model and fb_lora onto llama.cpp's GGUF names and keys (see gguf_export.h):
 * the architecture check, the tensor walk with the Q/K permutation, the tokenizer's vocabulary,
 * types, merges and pre-tokenizer read from tokenizer.json, and the chat template. */
#include "gguf_export.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

/* llama.cpp's names of the seven projections, in FB_PROJ order. */
static const char *const gguf_proj[FB_PROJ_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down"};

/* llama.cpp's token types. */
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 };

#define MAX_TOKENIZER_BYTES (256u << 20)

/* The llama.cpp architecture of m, or NULL with err naming what is not supported. */
static const char *gguf_arch(const fb_model *m, fb_err *err) {
  const fb_model_config *c = &m->cfg;
  /* a window in use, named by the config.json fields that put it there (model_config.c) */
  for (int i = 0; i < c->num_hidden_layers; i++)
    if (c->layer_window[i] > 0 && c->layer_window[i] < c->max_position_embeddings) {
      int qwen = c->arch == FB_ARCH_QWEN2 || c->arch == FB_ARCH_QWEN3;
      fb_err_set(err, FB_EUNSUPPORTED,
                 "gguf: config.json's sliding_window %d%s is shorter than "
                 "max_position_embeddings %d (layer %d attends through it): a sliding window is "
                 "not written to GGUF yet",
                 c->layer_window[i],
                 qwen ? " (use_sliding_window true; max_window_layers or layer_types)" : "",
                 c->max_position_embeddings, i);
      return NULL;
    }
  if (c->rope_scaling.type == FB_ROPE_LLAMA3 && c->arch != FB_ARCH_LLAMA) {
    fb_err_set(err, FB_EUNSUPPORTED, "gguf: rope_scaling 'llama3' on %s is not written yet",
               c->architecture);
    return NULL;
  }
  switch (c->arch) {
    case FB_ARCH_QWEN2: return "qwen2";
    case FB_ARCH_QWEN3: return "qwen3";
    default: return "llama"; /* Mistral too, as llama.cpp's converter writes it */
  }
}

/* llama.cpp's converter reorders the rows of Llama's q and k projections (weights, biases, and
 * a LoRA's B) from Hugging Face's rotate-half layout to interleaved pairs, per head:
 * reshape(n_head, 2, hd/2, cols).swapaxes(1, 2). */
static void permute_rows(float *dst, const float *src, int rows, int cols, int n_head) {
  int hd = rows / n_head;
  for (int h = 0; h < n_head; h++)
    for (int i = 0; i < hd / 2; i++)
      for (int j = 0; j < 2; j++)
        memcpy(dst + (size_t)(h * hd + 2 * i + j) * cols,
               src + (size_t)(h * hd + j * (hd / 2) + i) * cols, sizeof(float) * (size_t)cols);
}

/* Heads whose rows projection p permutes (0: none). Qwen's GGUFs keep Hugging Face's order:
 * llama.cpp rotates them in halves (NEOX), as transformers does. */
static int permuted_heads(const fb_model *m, int p) {
  if (m->cfg.arch == FB_ARCH_QWEN2 || m->cfg.arch == FB_ARCH_QWEN3) return 0;
  return p == FB_PROJ_Q ? m->NH : p == FB_PROJ_K ? m->NKV : 0;
}

/* Add a [rows, cols] row-major matrix (cols 0: a vector of rows) as `name`, its rows permuted
 * over `heads` heads when heads > 0 (scratch holds rows*cols floats). */
static int add(fb_gguf *g, const char *name, fb_ggml_type type, const float *w, int rows, int cols,
               int heads, float *scratch, fb_err *err) {
  if (heads) {
    permute_rows(scratch, w, rows, cols ? cols : 1, heads);
    w = scratch;
  }
  int64_t ne[2] = {cols ? cols : rows, rows};
  if (!cols) type = FB_GGML_F32; /* norms and biases stay f32, as llama.cpp keeps them */
  if (type == FB_GGML_Q8_0 && ne[0] % FB_GGML_QK8_0) type = FB_GGML_F16;
  return fb_gguf_tensor(g, name, type, cols ? 2 : 1, ne, w, err);
}

/* Llama 3's rope scaling as llama.cpp's converter writes it: rope_freqs.weight [HD/2], the factor
 * each rotary frequency is divided by (1 for high frequencies, `factor` for low ones, a blend
 * between), as model.c scales them. */
static int add_rope_freqs(fb_gguf *g, const fb_model *m, fb_err *err) {
  const fb_rope_scaling *rs = &m->cfg.rope_scaling;
  int half = m->HD / 2;
  float *f = malloc(sizeof(float) * (size_t)half);
  if (!f) return fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
  double old = rs->original_max_position_embeddings, lo = old / rs->low_freq_factor,
         hi = old / rs->high_freq_factor;
  for (int i = 0; i < half; i++) {
    double inv = 1.0f / powf((float)m->cfg.rope_theta, (float)(2 * i) / (float)m->HD),
           wavelen = 2 * M_PI / inv, lf = rs->low_freq_factor,
           sm = (old / wavelen - lf) / (rs->high_freq_factor - lf);
    f[i] = wavelen > lo   ? (float)rs->factor
           : wavelen < hi ? 1.0f
                          : (float)(1 / ((1 - sm) / rs->factor + sm));
  }
  int rc = add(g, "rope_freqs.weight", FB_GGML_F32, f, half, 0, 0, NULL, err);
  free(f);
  return rc;
}

static int add_weights(fb_gguf *g, const fb_model *m, fb_ggml_type type, fb_err *err) {
  size_t most = (size_t)m->NH * m->HD * m->C; /* q, the largest permuted matrix */
  float *scratch = malloc(most * sizeof *scratch);
  if (!scratch) return fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
  char name[96];
  int rc = add(g, "token_embd.weight", type, m->embed, m->V, m->C, 0, NULL, err);
  for (int i = 0; i < m->L && !rc; i++) {
    const fb_layer *ly = &m->layers[i];
    snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
    rc = add(g, name, type, ly->attn_norm, m->C, 0, 0, NULL, err);
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
    if (!rc) rc = add(g, name, type, ly->mlp_norm, m->C, 0, 0, NULL, err);
    for (int p = 0; p < FB_PROJ_COUNT && !rc; p++) {
      const fb_linear *w = &ly->proj[p];
      snprintf(name, sizeof name, "blk.%d.%s.weight", i, gguf_proj[p]);
      rc = add(g, name, type, w->w, w->out, w->in, permuted_heads(m, p), scratch, err);
      snprintf(name, sizeof name, "blk.%d.%s.bias", i, gguf_proj[p]);
      if (!rc && w->b) rc = add(g, name, type, w->b, w->out, 0, permuted_heads(m, p), scratch, err);
    }
    if (ly->q_norm) { /* Qwen3's per-head norms of q and k [HD] */
      snprintf(name, sizeof name, "blk.%d.attn_q_norm.weight", i);
      if (!rc) rc = add(g, name, type, ly->q_norm, m->HD, 0, 0, NULL, err);
      snprintf(name, sizeof name, "blk.%d.attn_k_norm.weight", i);
      if (!rc) rc = add(g, name, type, ly->k_norm, m->HD, 0, 0, NULL, err);
    }
  }
  if (!rc) rc = add(g, "output_norm.weight", type, m->final_norm, m->C, 0, 0, NULL, err);
  if (!rc && !m->cfg.tie_word_embeddings) /* tied: llama.cpp reads token_embd for the output */
    rc = add(g, "output.weight", type, m->lm_head, m->V, m->C, 0, NULL, err);
  if (!rc && m->cfg.rope_scaling.type == FB_ROPE_LLAMA3) rc = add_rope_freqs(g, m, err);
  free(scratch);
  return rc;
}

static int add_hparams(fb_gguf *g, const fb_model *m, const char *arch, fb_ggml_type type,
                       fb_err *err) {
  const fb_model_config *c = &m->cfg;
  char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s." suffix, arch), k)
  static const uint32_t file_type[] = {[FB_GGML_F32] = 0, [FB_GGML_F16] = 1, [FB_GGML_Q8_0] = 7};
  int rc = fb_gguf_str(g, "general.architecture", arch, err) ||
           fb_gguf_u32(g, "general.file_type", file_type[type], err) ||
           (type == FB_GGML_Q8_0 && fb_gguf_u32(g, "general.quantization_version", 2, err)) ||
           fb_gguf_u32(g, KEY("vocab_size"), (uint32_t)m->V, err) ||
           fb_gguf_u32(g, KEY("context_length"), (uint32_t)c->max_position_embeddings, err) ||
           fb_gguf_u32(g, KEY("embedding_length"), (uint32_t)m->C, err) ||
           fb_gguf_u32(g, KEY("block_count"), (uint32_t)m->L, err) ||
           fb_gguf_u32(g, KEY("feed_forward_length"), (uint32_t)m->F, err) ||
           fb_gguf_u32(g, KEY("attention.head_count"), (uint32_t)m->NH, err) ||
           fb_gguf_u32(g, KEY("attention.head_count_kv"), (uint32_t)m->NKV, err) ||
           fb_gguf_u32(g, KEY("attention.key_length"), (uint32_t)m->HD, err) ||
           fb_gguf_u32(g, KEY("attention.value_length"), (uint32_t)m->HD, err) ||
           fb_gguf_f32(g, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps, err) ||
           fb_gguf_f32(g, KEY("rope.freq_base"), (float)c->rope_theta, err) ||
           fb_gguf_u32(g, KEY("rope.dimension_count"), (uint32_t)m->HD, err);
  if (!rc && c->rope_scaling.type == FB_ROPE_LINEAR)
    rc = fb_gguf_str(g, KEY("rope.scaling.type"), "linear", err) ||
         fb_gguf_f32(g, KEY("rope.scaling.factor"), (float)c->rope_scaling.factor, err);
#undef KEY
  return rc ? err->code : 0;
}

/* ---- the tokenizer ---- */

static cJSON *read_json(const char *path, int required, fb_err *err) {
  char *text;
  size_t len;
  if (fb_read_file(path, &text, &len, MAX_TOKENIZER_BYTES, err)) {
    if (!required && err->code == FB_ENOTFOUND) err->code = 0;
    return NULL;
  }
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  if (!j) fb_err_set(err, FB_EFORMAT, "%s: not valid JSON", path);
  return j;
}

static const cJSON *field(const cJSON *o, const char *name) {
  return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* Split regexes llama.cpp has a pre-tokenizer for, as tokenizer.json writes them. */
static const struct {
  const char *regex, *pre;
} split_pre[] = {
    /* Qwen2.5, Qwen3 */
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
     "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     "qwen2"},
    /* Llama 3 */
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
     "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     "llama-bpe"},
};

static int is_type(const cJSON *o, const char *type) {
  const cJSON *t = field(o, "type");
  return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* A ByteLevel pre-tokenizer without a prefix space (llama.cpp adds none), with GPT-2's regex
 * (use_regex true, its default) when regex is set, else with none. */
static int is_byte_level(const cJSON *o, int regex) {
  const cJSON *r = field(o, "use_regex");
  return is_type(o, "ByteLevel") && !cJSON_IsTrue(field(o, "add_prefix_space")) &&
         (regex ? !r || cJSON_IsTrue(r) : cJSON_IsFalse(r));
}

/* llama.cpp's pre-tokenizer for tokenizer.json's, for the splits llama.cpp has one for and that
 * were checked against it (tests/export/llama_cpp.test.mjs): a ByteLevel pre-tokenizer with
 * GPT-2's regex ("gpt-2"), SmolLM's Digits (each number character alone) then that ByteLevel
 * ("smollm": llama.cpp splits \p{N}, then GPT-2's regex), or a split_pre regex then ByteLevel
 * without one. */
static const char *pre_tokenizer(const cJSON *tok, const char *path, fb_err *err) {
  const cJSON *pre = field(tok, "pre_tokenizer");
  if (is_byte_level(pre, 1)) return "gpt-2";
  const cJSON *list = field(pre, "pretokenizers"), *first = cJSON_GetArrayItem(list, 0),
              *bytes = cJSON_GetArrayItem(list, 1), *behavior = field(first, "behavior"),
              *pattern = field(field(first, "pattern"), "Regex");
  int pair = is_type(pre, "Sequence") && cJSON_GetArraySize(list) == 2;
  if (pair && is_type(first, "Digits") && cJSON_IsTrue(field(first, "individual_digits")) &&
      is_byte_level(bytes, 1))
    return "smollm";
  if (pair && is_type(first, "Split") && cJSON_IsString(pattern) && cJSON_IsString(behavior) &&
      strcmp(behavior->valuestring, "Isolated") == 0 && !cJSON_IsTrue(field(first, "invert")) &&
      is_byte_level(bytes, 0))
    for (size_t i = 0; i < sizeof split_pre / sizeof *split_pre; i++)
      if (strcmp(pattern->valuestring, split_pre[i].regex) == 0) return split_pre[i].pre;
  const cJSON *type = field(pre, "type");
  fb_err_set(err, FB_EUNSUPPORTED,
             "%s: pre_tokenizer %s is not written to GGUF yet (only "
             "ByteLevel with GPT-2's regex and no prefix space, SmolLM's Digits with "
             "individual_digits then that ByteLevel, and Qwen2's and Llama 3's regex splits, "
             "are)",
             path, cJSON_IsString(type) ? type->valuestring : "(none)");
  return NULL;
}

/* The id of an added token's content, for tokenizer_config.json's bos/eos strings; -1 if none. */
static int token_id_of(const cJSON *tok, const cJSON *name) {
  if (cJSON_IsObject(name)) name = field(name, "content");
  if (!cJSON_IsString(name)) return -1;
  const cJSON *a, *v = field(field(tok, "model"), "vocab");
  cJSON_ArrayForEach(a, field(tok, "added_tokens")) {
    const cJSON *c = field(a, "content"), *id = field(a, "id");
    if (cJSON_IsString(c) && cJSON_IsNumber(id) && strcmp(c->valuestring, name->valuestring) == 0)
      return id->valueint;
  }
  v = field(v, name->valuestring);
  return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* tokens[V], types[V] from model.vocab and added_tokens; ids neither names are "[PADn]",
 * UNUSED (as llama.cpp's converter fills a vocabulary smaller than the embedding). */
static int vocab(const cJSON *tok, int V, const char *path, char **tokens, int32_t *types,
                 fb_err *err) {
  const cJSON *e, *model = field(tok, "model");
  const cJSON *mtype = field(model, "type"), *fallback = field(model, "byte_fallback");
  if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0 || cJSON_IsTrue(fallback))
    return fb_err_set(err, FB_EUNSUPPORTED,
                      "%s: model: only byte-level BPE is written to GGUF "
                      "(not %s%s)",
                      path, cJSON_IsString(mtype) ? mtype->valuestring : "(none)",
                      cJSON_IsTrue(fallback) ? " with byte_fallback" : "");
  cJSON_ArrayForEach(e, field(model, "vocab")) {
    if (!cJSON_IsNumber(e) || e->valueint < 0 || e->valueint >= V)
      return fb_err_set(err, FB_EFORMAT,
                        "%s: model.vocab['%s']: not an id below the model's "
                        "vocab_size %d",
                        path, e->string, V);
    tokens[e->valueint] = e->string;
    types[e->valueint] = TOK_NORMAL;
  }
  cJSON_ArrayForEach(e, field(tok, "added_tokens")) {
    const cJSON *id = field(e, "id"), *c = field(e, "content");
    if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= V || !cJSON_IsString(c))
      return fb_err_set(err, FB_EFORMAT,
                        "%s: added_tokens: an entry without an id below the "
                        "model's vocab_size %d and a content",
                        path, V);
    tokens[id->valueint] = c->valuestring;
    /* specials as CONTROL: llama.cpp then matches them whole in text (as NORMAL they split) */
    types[id->valueint] = cJSON_IsTrue(field(e, "special")) ? TOK_CONTROL : TOK_USER_DEFINED;
  }
  return 0;
}

/* "left right" for every merge, given as such strings or as [left, right] pairs. */
static int merges(fb_gguf *g, const cJSON *tok, const char *path, fb_err *err) {
  const cJSON *list = field(field(tok, "model"), "merges"), *e;
  int n = cJSON_GetArraySize(list), i = 0, rc = 0;
  char **v = calloc(n ? (size_t)n : 1, sizeof *v);
  if (!v) return fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
  cJSON_ArrayForEach(e, list) {
    const cJSON *l = cJSON_GetArrayItem(e, 0), *r = cJSON_GetArrayItem(e, 1);
    if (cJSON_IsString(e)) {
      v[i] = strdup(e->valuestring);
    } else if (cJSON_IsString(l) && cJSON_IsString(r)) {
      size_t len = strlen(l->valuestring) + strlen(r->valuestring) + 2;
      if ((v[i] = malloc(len))) snprintf(v[i], len, "%s %s", l->valuestring, r->valuestring);
    } else {
      rc = fb_err_set(err, FB_EFORMAT, "%s: model.merges[%d]: not a string or a pair of strings",
                      path, i);
      break;
    }
    if (!v[i]) {
      rc = fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
      break;
    }
    i++;
  }
  if (!rc)
    rc =
        fb_gguf_str_array(g, "tokenizer.ggml.merges", (const char *const *)v, NULL, (size_t)n, err);
  for (int k = 0; k < n; k++) free(v[k]);
  free(v);
  return rc;
}

static int add_tokenizer(fb_gguf *g, const fb_model *m, const char *dir, fb_err *err) {
  char path[4200], cfg_path[4200];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
  cJSON *tok = read_json(path, 1, err), *cfg = tok ? read_json(cfg_path, 0, err) : NULL;
  if (!tok || err->code) {
    cJSON_Delete(tok);
    return err->code;
  }
  int V = m->V, rc = 0;
  char **tokens = calloc((size_t)V, sizeof *tokens), **pads = calloc((size_t)V, sizeof *pads);
  int32_t *types = calloc((size_t)V, sizeof *types);
  const char *pre = pre_tokenizer(tok, path, err);
  if (!tokens || !pads || !types) rc = fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
  if (!rc) rc = pre ? vocab(tok, V, path, tokens, types, err) : err->code;
  for (int i = 0; i < V && !rc; i++)
    if (!tokens[i]) {
      pads[i] = malloc(24);
      if (!pads[i])
        rc = fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
      else
        snprintf(tokens[i] = pads[i], 24, "[PAD%d]", i);
      types[i] = TOK_UNUSED;
    }
  int bos =
      m->cfg.bos_token_id >= 0 ? m->cfg.bos_token_id : token_id_of(tok, field(cfg, "bos_token"));
  int eos = m->cfg.n_eos ? m->cfg.eos_token_ids[0] : token_id_of(tok, field(cfg, "eos_token"));
  const cJSON *tmpl = field(cfg, "chat_template");
  if (!rc)
    rc = fb_gguf_str(g, "tokenizer.ggml.model", "gpt2", err) ||
                 fb_gguf_str(g, "tokenizer.ggml.pre", pre, err) ||
                 fb_gguf_str_array(g, "tokenizer.ggml.tokens", (const char *const *)tokens, NULL,
                                   (size_t)V, err) ||
                 fb_gguf_i32_array(g, "tokenizer.ggml.token_type", types, (size_t)V, err) ||
                 merges(g, tok, path, err) ||
                 (bos >= 0 && fb_gguf_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err)) ||
                 (eos >= 0 && fb_gguf_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err)) ||
                 /* fastbrain adds no BOS: its templates write the first token as text */
                 fb_gguf_bool(g, "tokenizer.ggml.add_bos_token", 0, err) ||
                 fb_gguf_bool(g, "tokenizer.ggml.add_eos_token", 0, err) ||
                 (cJSON_IsString(tmpl) &&
                  fb_gguf_str(g, "tokenizer.chat_template", tmpl->valuestring, err))
             ? err->code
             : 0;
  for (int i = 0; i < V && pads; i++) free(pads[i]);
  free(pads);
  free(tokens);
  free(types);
  cJSON_Delete(cfg);
  cJSON_Delete(tok);
  return rc;
}

int fb_gguf_export_model(const fb_model *m, const char *src_dir, fb_ggml_type type,
                         const char *path, fb_err *err) {
  const char *arch = gguf_arch(m, err);
  if (!arch) return err->code;
  fb_gguf *g;
  if (fb_gguf_new(&g, err)) return err->code;
  int rc = add_hparams(g, m, arch, type, err) || add_tokenizer(g, m, src_dir, err) ||
           add_weights(g, m, type, err) || fb_gguf_write(g, path, err);
  fb_gguf_free(g);
  return rc ? err->code : 0;
}

int fb_gguf_export_lora(const fb_lora *l, const fb_model *m, const char *path, fb_err *err) {
  const char *arch = gguf_arch(m, err);
  if (!arch) return err->code;
  if (l->be != fb_backend_cpu())
    return fb_err_set(err, FB_EINVALID, "gguf: the adapter must be loaded on the CPU");
  fb_gguf *g;
  if (fb_gguf_new(&g, err)) return err->code;
  float *scratch = malloc(sizeof(float) * (size_t)m->NH * m->HD * l->r);
  char name[96];
  /* llama.cpp scales by alpha / r (r read from lora_b): alpha = scale * r covers rsLoRA too */
  int rc = !scratch ? fb_err_set(err, FB_ENOMEM, "gguf: out of memory")
           : fb_gguf_str(g, "general.architecture", arch, err) ||
                   fb_gguf_str(g, "general.type", "adapter", err) ||
                   fb_gguf_str(g, "adapter.type", "lora", err) ||
                   fb_gguf_f32(g, "adapter.lora.alpha", l->scale * (float)l->r, err)
               ? err->code
               : 0;
  for (int i = 0; i < l->L && !rc; i++)
    for (int p = 0; p < FB_PROJ_COUNT && !rc; p++) {
      const fb_lora_pair *q = &l->pairs[i * FB_PROJ_COUNT + p];
      if (!q->A) continue;
      /* P W = (P B) A: only B's rows follow the base's permutation */
      snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", i, gguf_proj[p]);
      rc = add(g, name, FB_GGML_F32, q->A, l->r, q->in, 0, NULL, err);
      snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", i, gguf_proj[p]);
      if (!rc)
        rc = add(g, name, FB_GGML_F32, q->B, q->out, l->r, permuted_heads(m, p), scratch, err);
    }
  if (!rc) rc = fb_gguf_write(g, path, err);
  free(scratch);
  fb_gguf_free(g);
  return rc;
}
