/* optim.h: AdamW over one flat parameter arena in a backend's memory (decoupled weight decay,
 * bias correction), clipping by global norm, and the learning-rate schedule (linear warm-up,
 * then cosine or linear decay to a floor, or constant). It knows nothing about models or LoRA. */
#ifndef FB_OPTIM_H
#define FB_OPTIM_H

#include <stddef.h>

#include "backend.h"
#include "error.h"

typedef enum { FB_SCHED_CONSTANT, FB_SCHED_COSINE, FB_SCHED_LINEAR } fb_schedule;

typedef struct fb_optim_config {
  double lr, beta1, beta2, eps, weight_decay;
  double max_grad_norm; /* clip to this global norm; <= 0: no clipping */
  fb_schedule schedule;
  int warmup_steps, total_steps;
  double min_lr_ratio; /* the floor, as a fraction of lr */
} fb_optim_config;

/* torch.optim.AdamW's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01;
 * no clipping, constant schedule. */
fb_optim_config fb_optim_defaults(void);

typedef struct fb_optim {
  const fb_backend *be;
  fb_optim_config cfg;
  size_t n;
  float *m, *v; /* [n] moments in the backend's memory, zeroed at creation */
  int t;        /* steps taken */
} fb_optim;

/* State for n parameters on be; *out is the caller's, freed with fb_optim_free. Hyperparameters
 * are checked (lr >= 0, betas in [0,1), eps > 0, ...) with errors naming the field. */
int fb_optim_create(fb_optim **out, const fb_backend *be, size_t n, const fb_optim_config *cfg,
                    fb_err *err);
void fb_optim_free(fb_optim *o);

/* The learning rate of step (0-based) under cfg's schedule. */
double fb_optim_lr(const fb_optim_config *cfg, int step);
/* Global L2 norm of grads[o->n]; scales them down to max_norm when above it (max_norm > 0). */
double fb_optim_clip(const fb_optim *o, float *grads, double max_norm);
/* One AdamW step at lr: params[n] updated from grads[n]. Non-finite gradients are FB_ENUMERIC
 * and leave everything unchanged. */
int fb_optim_step(fb_optim *o, float *params, const float *grads, double lr, fb_err *err);

#endif
