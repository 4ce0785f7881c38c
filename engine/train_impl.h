/* train_impl.h: what the training loop's files share and nothing else includes (libuv's
 * internal.h pattern): the state of a run and the functions one file gives the others.
 *   train.c             the run: plan, batches, steps, the loop, events
 *   train_checkpoint.c  checkpoints: written, pruned, read back to resume exactly
 *   train_eval.c        evaluations, early stopping, samples, select "scenarios" scoring
 *   train_output.c      the published output: adapter or model, summary, example losses */
#ifndef FB_TRAIN_IMPL_H
#define FB_TRAIN_IMPL_H

#include <cjson/cJSON.h>

#include "lora.h"
#include "optim.h"
#include "train.h"

/* The training loss people see is an exponential moving average, bias-corrected as Adam's
 * moments are: loss_ema = SMOOTHING * loss_ema + (1 - SMOOTHING) * loss from 0, and
 * loss_smoothed = loss_ema / (1 - SMOOTHING^step), so it follows the first steps instead of
 * lagging at the first loss. */
#define SMOOTHING 0.9

typedef struct run {
  fb_model *m;
  const fb_backend *be; /* where it computes (the model's) */
  const fb_train_spec *spec;
  const fb_train_data *data;
  const fb_train_opts *opts;
  fb_lora *lora; /* NULL in full-parameter mode */
  fb_optim *optim;
  float *params, *grads; /* what the optimizer updates: the LoRA arena or the model's */
  size_t n;
  float *best;  /* params at the best evaluation (by eval loss with patience, or by scenarios),
                   or NULL */
  float *stage; /* host room for 4 arrays of n floats (checkpoints) and one to reorder them in
                 * (lora: fb_lora_to_file_order), off a host-memory backend or with lora */
  char device_note[400]; /* why "auto" took the CPU, logged after the start event */
  long n_train;
  fb_train_plan plan;
  char ckdir[FB_SPEC_PATH + 16];
  /* State kept in checkpoints. */
  int step; /* steps done */
  double loss_first, loss_smoothed, loss_last, loss_best, eval_last, eval_best, tokens, elapsed;
  double loss_ema;  /* loss_smoothed before its bias correction (SMOOTHING) */
  double eval_base; /* eval loss before the first step: the base model's, or NAN */
  int bad_evals;
  int eval_best_step; /* the step of eval_best; 0: none yet */
  /* select "scenarios": the pass count and step of the weights in best (-1 and 0: none yet),
   * the eval loss at that step (NAN without eval examples), and each evaluation's pass count
   * (pairs step, passed). */
  int sel_passed, sel_step;
  double sel_eval;
  int *hist, n_hist, cap_hist;
  /* This session only. */
  int stop; /* a hook or early stopping ended the run */
  int start_step;
  double session_time, session_tokens;
  size_t *order;
  long order_epoch;
  int32_t *ids, *labels;
  size_t cap;
} run;

/* ---- train.c ---- */
cJSON *train_event(const char *name);
/* Where the run computes: the device, its name and the most memory the run held on it. */
void train_add_device(const run *r, cJSON *e);
/* Hand e to the caller and free it; the caller may ask to stop or set the learning rate.
 * Returns the caller's score (of a `scenarios` event), NAN when it gave none. */
double train_emit(run *r, cJSON *e);
void train_emit_log(run *r, const char *level, const char *msg);
int train_selects_scenarios(const run *r);
/* Record that the weights of `step` passed `passed` scenarios (an evaluation of the same step
 * again, as a run resumed at its end makes, replaces its entry). */
int train_push_history(run *r, int step, int passed, fb_err *err);
/* Epochs done after `step` steps (the last batch may be cut short). */
double train_epochs_at(const run *r, int step);
/* Fill b with rows ex[0..n), padded on the right (id 0, no label) to the longest. */
int train_fill_batch(run *r, fb_batch *b, const fb_example *const *ex, int n, fb_err *err);
/* Mean loss over the eval examples (by counted token); NAN when there are none to count. */
int train_evaluate(run *r, double *out, fb_err *err);

/* ---- train_checkpoint.c ---- */
/* A checkpoint of the run at its step: step-N written whole (step-N.tmp renamed; the same step
 * saved again steps aside as step-N.old until the new one is in), `latest` naming it, older
 * ones pruned, then the `checkpoint` event. */
int train_save_checkpoint(run *r, fb_err *err);
/* Load the latest checkpoint when there is one; *found says whether there was. */
int train_load_checkpoint(run *r, int *found, fb_err *err);

/* ---- train_eval.c ---- */
int train_has_eval(const run *r);
/* The eval loss before the first step (LoRA's B starts at zero, so the base model's), which is
 * what the adapter's eval loss is judged against. */
int train_evaluate_base(run *r, fb_err *err);
/* Evaluation at its interval: the eval loss, with early stopping, and with select "scenarios"
 * the scenarios' answers. */
int train_maybe_evaluate(run *r, int force, fb_err *err);
/* At the sample interval and the last step: the in-memory weights' greedy answers to the sample
 * prompts, as `sample` events. */
int train_samples(run *r, fb_err *err);

/* ---- train_output.c ---- */
/* The run's output (the best weights when it kept them): the adapter (or model), summary.json
 * and example_losses.json built in a partial folder and published whole (fb_output_publish),
 * then the `done` event. */
int train_write_output(run *r, fb_err *err);

#endif
