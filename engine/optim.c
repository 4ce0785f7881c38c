/* optim.c: AdamW, global-norm clipping and the learning-rate schedule of optim.h, on flat
 * float arrays through a backend's ops. No model or file knowledge. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

fb_optim_config fb_optim_defaults(void) {
  return (fb_optim_config){.lr = 1e-3,
                           .beta1 = 0.9,
                           .beta2 = 0.999,
                           .eps = 1e-8,
                           .weight_decay = 0.01,
                           .max_grad_norm = 0,
                           .schedule = FB_SCHED_CONSTANT,
                           .warmup_steps = 0,
                           .total_steps = 0,
                           .min_lr_ratio = 0};
}

int fb_optim_create(fb_optim **out, const fb_backend *be, size_t n, const fb_optim_config *c,
                    fb_err *err) {
  *out = NULL;
  if (!(c->lr >= 0 && isfinite(c->lr)))
    return fb_err_set(err, FB_EINVALID, "optimizer: lr %g must be >= 0", c->lr);
  if (!(c->beta1 >= 0 && c->beta1 < 1))
    return fb_err_set(err, FB_EINVALID, "optimizer: beta1 %g is not in [0, 1)", c->beta1);
  if (!(c->beta2 >= 0 && c->beta2 < 1))
    return fb_err_set(err, FB_EINVALID, "optimizer: beta2 %g is not in [0, 1)", c->beta2);
  if (!(c->eps > 0)) return fb_err_set(err, FB_EINVALID, "optimizer: eps %g must be > 0", c->eps);
  if (!(c->weight_decay >= 0))
    return fb_err_set(err, FB_EINVALID, "optimizer: weight_decay %g must be >= 0", c->weight_decay);
  if (c->warmup_steps < 0 || c->total_steps < 0)
    return fb_err_set(err, FB_EINVALID,
                      "optimizer: warmup_steps %d and total_steps %d must be >= 0", c->warmup_steps,
                      c->total_steps);
  if (!(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1))
    return fb_err_set(err, FB_EINVALID, "optimizer: min_lr_ratio %g is not in [0, 1]",
                      c->min_lr_ratio);
  fb_optim *o = calloc(1, sizeof *o);
  if (!o) return fb_err_set(err, FB_ENOMEM, "optimizer: out of memory");
  o->be = be;
  o->cfg = *c;
  o->n = n;
  int rc = be->alloc((void **)&o->m, sizeof(float) * (n ? n : 1), "the optimizer's moments", err);
  if (!rc)
    rc = be->alloc((void **)&o->v, sizeof(float) * (n ? n : 1), "the optimizer's moments", err);
  if (rc) {
    fb_optim_free(o);
    return rc;
  }
  be->zero(o->m, sizeof(float) * n);
  be->zero(o->v, sizeof(float) * n);
  *out = o;
  return 0;
}

void fb_optim_free(fb_optim *o) {
  if (!o) return;
  o->be->free(o->m);
  o->be->free(o->v);
  free(o);
}

double fb_optim_lr(const fb_optim_config *c, int step) {
  if (step < c->warmup_steps) return c->lr * (step + 1) / (double)c->warmup_steps;
  if (c->schedule == FB_SCHED_CONSTANT || c->total_steps <= c->warmup_steps) return c->lr;
  double span = c->total_steps - c->warmup_steps, p = (step - c->warmup_steps) / span;
  if (p > 1) p = 1;
  double floor = c->lr * c->min_lr_ratio,
         k = c->schedule == FB_SCHED_COSINE ? 0.5 * (1 + cos(M_PI * p)) : 1 - p;
  return floor + (c->lr - floor) * k;
}

double fb_optim_clip(const fb_optim *o, float *grads, double max_norm) {
  o->be->phase(FB_PHASE_OPTIMIZER);
  double norm = sqrt(o->be->sumsq(grads, o->n));
  if (max_norm > 0 && norm > max_norm) o->be->scale(grads, o->n, (float)(max_norm / (norm + 1e-6)));
  o->be->phase(FB_PHASE_ELEMENTWISE);
  return norm;
}

int fb_optim_step(fb_optim *o, float *params, const float *grads, double lr, fb_err *err) {
  o->be->phase(FB_PHASE_OPTIMIZER);
  int finite = isfinite(o->be->sumsq(grads, o->n));
  if (finite) {
    o->t++;
    o->be->adamw(params, grads, o->m, o->v, o->n, lr, o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                 o->cfg.weight_decay, o->t);
  }
  o->be->phase(FB_PHASE_ELEMENTWISE);
  if (!finite)
    return fb_err_set(err, FB_ENUMERIC, "optimizer: step %d: gradients are not finite", o->t + 1);
  return 0;
}
