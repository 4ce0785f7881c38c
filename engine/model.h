/* model.h: a Llama-family causal LM (Llama, Qwen2, Mistral, Qwen3): load a Hugging Face model
 * directory (or make one from a config) into fp32 host memory, place it on a backend (backend.h:
 * the CPU, or a GPU through the CUDA plugin), forward to the loss, backward to LoRA gradients (or
 * to every weight in full-parameter mode, on a backend that trains base weights), decode with a KV
 * cache, write the weights back out. The layer sequence is layers.c's, written once over the
 * backend's ops; the LoRA side is lora.h. Tokenizers, optimizers and sampling live elsewhere. */
#ifndef FB_MODEL_H
#define FB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "model_config.h"

struct fb_lora;

/* The seven projections of a layer, in fb_target bit order (adapter_config.h). */
enum {
  FB_PROJ_Q,
  FB_PROJ_K,
  FB_PROJ_V,
  FB_PROJ_O,
  FB_PROJ_GATE,
  FB_PROJ_UP,
  FB_PROJ_DOWN,
  FB_PROJ_COUNT
};

typedef struct fb_linear {
  float *w; /* [out, in] */
  float *b; /* [out] or NULL */
  int in, out;
} fb_linear;

typedef struct fb_layer {
  float *attn_norm; /* [C] */
  fb_linear
      proj[FB_PROJ_COUNT]; /* q [NH*HD,C] k,v [NKV*HD,C] o [C,NH*HD] gate,up [F,C] down [C,F] */
  float *mlp_norm;         /* [C] */
  float *q_norm, *k_norm;  /* [HD]: Qwen3's per-head norms of q and k (cfg.qk_norm), else NULL */
} fb_layer;

/* One weight tensor of the model: its Hugging Face name, shape and place in the arena. */
typedef struct fb_param {
  char name[96];
  int ndim;
  int64_t shape[2];
  size_t offset, numel; /* in floats, into params (and grads) */
  int dtype;            /* fb_dtype of the checkpoint it was loaded from (F32 when made here) */
} fb_param;

/* Activations saved by forward for backward, for N = B*T positions (layers.c). */
typedef struct fb_acts fb_acts;

/* A layer's weights where the backend holds them (shapes as fb_layer's). */
typedef struct fb_dev_layer {
  const float *attn_norm, *mlp_norm; /* [C] */
  const float *q_norm, *k_norm;      /* [HD] or NULL */
  const void *w[FB_PROJ_COUNT];      /* the backend's weight_dtype */
  const float *b[FB_PROJ_COUNT];     /* or NULL */
} fb_dev_layer;

/* The weights as the model's backend holds them: pointers into params on the CPU, into one
 * allocation of the backend's memory elsewhere. */
typedef struct fb_placed {
  const void *embed, *lm_head;      /* [V,C] */
  const float *final_norm;          /* [C] */
  fb_dev_layer *layers;             /* [L] */
  const float *rope_cos, *rope_sin; /* [rope_len, HD/2] */
  void *arena, *rope_arena;         /* the backend's copies (NULL when it reads host memory) */
} fb_placed;

typedef struct fb_model {
  fb_model_config cfg;
  int C, HD, NH, NKV, F, V, L; /* hidden, head dim, heads, kv heads, ffn, vocab, layers */
  float *params;               /* one arena of n_floats; every pointer below points into it */
  size_t n_floats;
  fb_param *table; /* n_table entries, in the order tensors are written */
  int n_table;
  float *embed;      /* [V,C] */
  fb_layer *layers;  /* [L] */
  float *final_norm; /* [C] */
  float *lm_head;    /* [V,C]; == embed when tied */
  float *grads;      /* NULL, or (full-parameter mode) the backend's arena shaped like params */
  float *rope_cos, *rope_sin; /* [rope_len, HD/2] */
  int rope_len;
  const fb_backend *be; /* where it computes: the CPU until fb_model_place */
  fb_placed dev;
  fb_acts *acts;     /* sized by the largest batch seen; owned */
  char revision[41]; /* the commit of the cache's snapshot it was loaded from, or "" */
  float loss;        /* of the last forward with labels (0 if nothing counted) */
  int n_counted;     /* labels counted by that forward */
} fb_model;

/* The most positions (B*T) one forward takes. */
#define FB_MODEL_MAX_POSITIONS (1 << 22)

/* A batch. Position t of row b is trained to predict labels[b,t+1] (Hugging Face's shift), so
 * labels[b,0] is never used and a label of -100 is ignored. */
typedef struct fb_batch {
  int B, T;
  const int32_t *ids;    /* [B,T], each in [0, vocab) */
  const int32_t *labels; /* [B,T] or NULL (no loss) */
  const int32_t *pos;    /* [B,T] rotary positions or NULL (0..T-1 on every row) */
  const int32_t *seg;    /* [B,T] sequence ids for packing/padding or NULL; see backend.h */
} fb_batch;

/* Allocate a model shaped by cfg with zeroed weights. *out is the caller's, freed with
 * fb_model_free. Logs the memory it takes before taking it. */
int fb_model_create(fb_model **out, const fb_model_config *cfg, fb_err *err);
/* Fill every weight with N(0, std) and every norm weight with 1, from seed. */
void fb_model_init_random(fb_model *m, uint64_t seed, float std);
/* Load a model directory's config.json and safetensors weights (F32/F16/BF16 -> f32). name is
 * the directory, or ORG/NAME[@REVISION] in the Hugging Face cache (hf_cache.h; m->revision gets
 * the snapshot's commit). A missing, extra or mis-shaped tensor is an error naming it and both
 * shapes. Ownership as fb_model_create. */
int fb_model_load(fb_model **out, const char *name, fb_err *err);
void fb_model_free(fb_model *m);

/* Compute on be from now on: the weights are copied to it (base matrices in its weight_dtype)
 * unless it reads host memory in fp32, as the CPU does. Once per model, before any forward or
 * full-parameter gradients; the host weights stay (saving reads them) but later changes to them
 * do not reach the backend. FB_EUNSUPPORTED for a shape the backend cannot run (naming it). */
int fb_model_place(fb_model *m, const fb_backend *be, fb_err *err);

/* Full-parameter mode: allocate (zeroed) gradients for every weight. FB_EUNSUPPORTED on a
 * backend that does not train base weights. */
int fb_model_enable_grads(fb_model *m, fb_err *err);
void fb_model_zero_grad(fb_model *m);

/* Forward the batch to logits (fb_model_logits) and, with labels, the mean cross-entropy over
 * the counted positions (m->loss, m->n_counted). lora may be NULL. training enables LoRA
 * dropout (seeded by the lora's step). Ids or positions out of range are FB_EINVALID. */
int fb_model_forward(fb_model *m, struct fb_lora *lora, const fb_batch *batch, int training,
                     fb_err *err);
/* [B,T,V] logits of the last forward on a backend that keeps them (the CPU; else NULL); valid
 * until the next backward (which reuses them). */
const float *fb_model_logits(const fb_model *m);
/* Backward of the last forward (which must have had labels): accumulates LoRA gradients into
 * lora (if not NULL) and, in full-parameter mode, weight gradients into m->grads. */
int fb_model_backward(fb_model *m, struct fb_lora *lora, const fb_batch *batch, fb_err *err);

/* A key/value cache for generation on the model's backend: every layer's rotated keys and values
 * of up to max_len positions, plus work space for that many new positions at once. Owned by the
 * caller, freed before the model. */
typedef struct fb_kv_cache fb_kv_cache;
int fb_kv_cache_create(fb_kv_cache **out, const fb_model *m, int max_len, fb_err *err);
void fb_kv_cache_free(fb_kv_cache *c);
void fb_kv_cache_reset(fb_kv_cache *c);
int fb_kv_cache_len(const fb_kv_cache *c);
/* Run ids[n] at positions len..len+n-1 (appending to the cache; lora may be NULL, no dropout)
 * and write the logits of the last of them to logits[V] (host memory). Overflowing the cache is
 * FB_ELIMIT. */
int fb_model_decode(fb_model *m, struct fb_lora *lora, fb_kv_cache *c, const int32_t *ids, int n,
                    float *logits, fb_err *err);

/* Write a model directory: out_dir/model.safetensors (every weight as F32, Hugging Face
 * names) plus config.json and the tokenizer files copied from src_dir (those present), or, with
 * src_dir NULL (a model made by fb_model_create), a config.json written from m->cfg. */
int fb_model_save(const fb_model *m, const char *src_dir, const char *out_dir, fb_err *err);
/* The same with every weight in the dtype its checkpoint had (F16/BF16 rounded to nearest even):
 * a model the size of the one loaded, as the config's torch_dtype says. */
int fb_model_save_as_loaded(const fb_model *m, const char *src_dir, const char *out_dir,
                            fb_err *err);

/* Make the rotary tables cover positions 0..n-1 (host and backend copies). */
int fb_model_rope_reserve(fb_model *m, int n, fb_err *err);

/* Find a weight by Hugging Face name; NULL if absent. */
const fb_param *fb_model_param(const fb_model *m, const char *name);

#endif
