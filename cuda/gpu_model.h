/* gpu_model.h: an fb_model and its fb_lora on the GPU: the base weights uploaded once in bf16,
 * the adapter, its gradients and AdamW moments in fp32, activations for batches of up to B x T
 * positions, and the same forward, backward, optimizer step and KV-cache decoding as model.c,
 * lora.c and optim.c, on fb_cuda.h ops. The host model and adapter stay the reference: the
 * adapter is copied back with fb_gpu_lora_download (to save or compare it).
 *
 * Not here: full-parameter training (LoRA only). */
#ifndef FB_GPU_MODEL_H
#define FB_GPU_MODEL_H

#include "error.h"
#include "lora.h"
#include "model.h"
#include "optim.h"

typedef struct fb_gpu_model fb_gpu_model;

/* Upload m (bf16) and lora (fp32; may be NULL for generation only) for batches of up to
 * max_B x max_T. m and lora must outlive the result: the adapter's config, seed and step are
 * read from it (the caller bumps lora->step between steps, as on the CPU). Needs fb_cuda_init.
 * Errors: FB_EUNSUPPORTED (a head dim the kernels lack), FB_ENOMEM (naming what and how much). */
int fb_gpu_model_create(fb_gpu_model **out, fb_model *m, fb_lora *lora, int max_B, int max_T,
                        fb_err *err);
void fb_gpu_model_free(fb_gpu_model *g);

/* The forward of model.c on the GPU; with labels, the mean loss over counted positions. The
 * [B,T,V] logits are never formed (the loss is fused with lm_head). */
int fb_gpu_forward(fb_gpu_model *g, const fb_batch *b, int training, float *loss, int *n_counted,
                   fb_err *err);
/* Accumulate LoRA gradients for the last forward (same batch, with labels). */
int fb_gpu_backward(fb_gpu_model *g, const fb_batch *b, fb_err *err);
void fb_gpu_zero_grad(fb_gpu_model *g);
/* Clip to cfg->max_grad_norm (if > 0) and take one AdamW step at lr, as fb_optim_clip +
 * fb_optim_step do; *norm gets the norm before clipping. Non-finite gradients are FB_ENUMERIC
 * and change nothing. */
int fb_gpu_step(fb_gpu_model *g, const fb_optim_config *cfg, double lr, double *norm, fb_err *err);
/* Copy the adapter's weights and gradients into lora (the one given at creation); m and v
 * (each lora->n_floats, may be NULL) get the AdamW moments. */
void fb_gpu_lora_download(const fb_gpu_model *g, fb_lora *lora, float *m, float *v);

/* Generation: a KV cache of max_len positions (replacing any earlier one), then decode like
 * fb_model_decode: append ids[n] and write the last position's logits[V] (host memory). */
int fb_gpu_kv_reserve(fb_gpu_model *g, int max_len, fb_err *err);
void fb_gpu_kv_reset(fb_gpu_model *g);
int fb_gpu_decode(fb_gpu_model *g, const int32_t *ids, int n, float *logits, fb_err *err);

#endif
