/* lora.h: LoRA adapters on any subset of the seven projections of an fb_model:
 * y = W x + s * B(A(dropout(x))), PEFT initialisation, forward/backward hooks the model calls,
 * PEFT save/load (adapter_config.json + adapter_model.safetensors) and merging into the base.
 * An adapter lives on its model's backend (its matrices, gradients and saved inputs are in that
 * backend's memory); files and merging go through host copies. Optimizer state is not here
 * (optim.h). */
#ifndef FB_LORA_H
#define FB_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "adapter_config.h"
#include "error.h"
#include "model.h"

struct fb_st_file;

typedef struct fb_lora_pair {
  float *A, *B;   /* [r,in], [out,r]; NULL when the projection is not targeted */
  float *dA, *dB; /* gradients, same shapes */
  int in, out;
} fb_lora_pair;

typedef struct fb_lora {
  const fb_backend *be; /* the model's, when the adapter was made */
  fb_adapter_config cfg;
  int L, r;
  float scale;           /* alpha/r or alpha/sqrt(r) */
  float *params, *grads; /* two arenas of n_floats (backend), layer by layer; in a layer the A
                          * matrices of q, k, v (those targeted) together, then their B, then
                          * o's A and B, gate's and up's A, their B, down's A and B */
  size_t n_floats;
  fb_lora_pair *pairs; /* [L * FB_PROJ_COUNT], pointing into the arenas */
  uint64_t seed;       /* dropout masks come from (seed, step, layer, projection) */
  uint64_t step;       /* bumped by the caller between training steps */
  uint64_t *masks;     /* [L*7] the masks' seeds at step (backend), fb_lora_stage_masks */
  uint64_t *masks_h;   /* [L*7] their host copy */
  float *u;            /* [L*7][N,r] saved A(dropout(x)) of the last forward; projections that
                        * shared their A product keep it as [N, G*r] in the first's slots */
  float *du;           /* [N, 3r] */
  float *scratch;      /* [N, max(in)]: the dropped input, then its gradient */
  size_t cap_n;        /* N the three buffers above hold */
} fb_lora;

/* An adapter for model m on m's backend with config c (checked: r, alpha, dropout, targets),
 * A and B zero. *out is the caller's, freed with fb_lora_free (before the model). */
int fb_lora_create(fb_lora **out, const fb_model *m, const fb_adapter_config *c, fb_err *err);
void fb_lora_free(fb_lora *l);
/* PEFT's initialisation from seed: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
 * B = 0. Also sets l->seed. FB_ENOMEM for the host copy it is made in. */
int fb_lora_init(fb_lora *l, uint64_t seed, fb_err *err);
void fb_lora_zero_grad(fb_lora *l);

/* The PEFT key of one matrix: "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight". */
void fb_lora_key(char *buf, size_t size, int layer, int proj, char which /* 'A' or 'B' */);

/* Model hooks for projections first..first+count-1 of layer, which all read inp[N,in] (N =
 * positions): q, k, v; gate, up; or any one. forward: outs[p-first][N,out] += s * B A
 * dropout(inp) for each; saves A dropout(inp). backward: dA, dB += ...; dinp[N,in] += ...
 * (through the LoRA path only) from douts[p-first]. Projections that are not targeted are
 * skipped (their outs may be NULL). The targeted ones of q/k/v (of gate/up) take one product
 * with inp (and one for each of its gradients) unless dropout is on. fb_lora_reserve sizes the
 * saved buffers for N. */
int fb_lora_reserve(fb_lora *l, int N, fb_err *err);
/* Write the dropout masks' seeds of l->step where the ops read them (before a training forward;
 * its backward reads the same): the ops take them from the backend's memory, so a pass
 * replayed as a graph gets each step's masks. Nothing when the pass drops nothing. */
void fb_lora_stage_masks(fb_lora *l, int training);
int fb_lora_targets(const fb_lora *l, int proj);
void fb_lora_forward(fb_lora *l, int layer, int first, int count, float *const *outs,
                     const float *inp, int N, int training);
void fb_lora_backward(fb_lora *l, int layer, int first, int count, float *dinp,
                      const float *const *douts, const float *inp, int N, int training);

/* Host arrays of n_floats between the arena's order and file order: layer by layer, projection
 * by projection, A then B: the order training checkpoints have always stored the arena in
 * ("params", the AdamW moments). dst and src do not overlap. */
void fb_lora_to_file_order(const fb_lora *l, float *dst, const float *src);
void fb_lora_from_file_order(const fb_lora *l, float *dst, const float *src);

/* Fill every A and B from tensors named prefix + PEFT key in f (F32/F16/BF16). A missing or
 * mis-shaped tensor is an error naming it and both shapes; a tensor under prefix that is not a
 * matrix of this adapter is an error naming it. */
int fb_lora_read(fb_lora *l, const struct fb_st_file *f, const char *prefix, fb_err *err);
/* Save as a PEFT adapter directory (created if missing): adapter_config.json and
 * adapter_model.safetensors, each written atomically. */
int fb_lora_save(const fb_lora *l, const char *dir, fb_err *err);
/* Load a PEFT adapter directory for model m. Ownership as fb_lora_create. */
int fb_lora_load(fb_lora **out, const fb_model *m, const char *dir, fb_err *err);
/* W += s * B @ A for every targeted projection of m's host weights (the adapter is left as it
 * is); before the model is placed on another backend, which would not see the change. */
int fb_lora_merge(const fb_lora *l, fb_model *m, fb_err *err);

#endif
