/* train.h: one training run from a spec over tokenized examples: shuffled micro-batches with
 * gradient accumulation, events as JSON objects (docs/protocol.md), evaluation, live samples,
 * checkpoints with exact resume, a loss watchdog, cancellation between steps, early stopping,
 * and the output (PEFT adapter or full model, summary.json, per-example losses). Reading and
 * rendering the dataset is the caller's (the chat templates live in Lua); so is loading the
 * model. */
#ifndef FB_TRAIN_H
#define FB_TRAIN_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdint.h>

#include "dataset.h"
#include "error.h"
#include "model.h"
#include "tokenizer.h"
#include "train_spec.h"

#define FB_TRAIN_MIN_STEPS 50 /* small-data mode shrinks the batch until a run has this many */
#define FB_TRAIN_KEEP_CHECKPOINTS 2
#define FB_TRAIN_EXPLOSION 5.0 /* a loss this many times the first step's stops the run */

/* A sample prompt or a scenario, already rendered by the chat template and tokenized. Borrowed. */
typedef struct fb_train_prompt {
  const char *text; /* the prompt as the user wrote it (reported in `sample` events); a
                       scenario's id (in `scenarios` events) */
  const int32_t *ids;
  int n;
} fb_train_prompt;

/* What a run trains on. Everything is borrowed for the duration of fb_train. */
typedef struct fb_train_data {
  const fb_examples *train; /* at least one example */
  const fb_examples *eval;  /* NULL or empty: no evaluation */
  const char *dataset_hash; /* reported in summary.json ("fnv1a64:..."); may be NULL */
  const fb_tokenizer *tok;  /* decodes samples; NULL: no samples */
  const fb_train_prompt *prompts;
  int n_prompts;
  /* spec select "scenarios": the scenarios answered at every evaluation (a `scenarios` event,
   * which its receiver scores: fb_train_control.score); at least one, and tok. */
  const fb_train_prompt *scenarios;
  int n_scenarios;
} fb_train_data;

/* What an event's receiver may change: stop = 1 ends the run after this step as if it had
 * reached its last step (final evaluation, checkpoint, output, `done`); lr (preset to the
 * current base learning rate) sets the base rate the schedule scales from this step on; score
 * (preset to NAN) is the receiver's verdict on a `scenarios` event: how many of its answers
 * passed their checks (0..n), which the run selects its weights by. */
typedef struct fb_train_control {
  int stop;
  double lr;
  double score;
} fb_train_control;

/* Called with each event (an object with an `event` field, owned by the trainer, valid during
 * the call). */
typedef void (*fb_train_event_fn)(void *ud, const cJSON *event, fb_train_control *ctl);

typedef struct fb_train_opts {
  fb_train_event_fn on_event; /* may be NULL */
  void *ud;
  volatile sig_atomic_t *cancel; /* may be NULL; when it becomes nonzero the run stops between
                                    steps, writes a checkpoint and returns FB_ECANCELLED */
  int resume;                    /* continue from the latest checkpoint when there is one */
} fb_train_opts;

/* How a run of spec over n_train examples goes: the batch shape (small-data mode may shrink the
 * spec's), its optimizer steps, and when it evaluates and samples. */
typedef struct fb_train_plan {
  int B, A, total; /* micro-batch, gradient accumulation, optimizer steps */
  long total_examples;
  double total_epochs;
  int eval_interval, sample_interval;
} fb_train_plan;

fb_train_plan fb_train_plan_for(const fb_train_spec *s, long n_train);

/* Train per spec on data. m is borrowed: LoRA mode leaves its weights as they were, full mode
 * trains them in place. Writes checkpoints under spec->checkpoints (or spec->out/checkpoints)
 * and, at the end, the adapter (or model), summary.json and example_losses.json (each training
 * example's final loss, worst first: {line, loss, trained_tokens}) to spec->out, all at once
 * (see output.h). Errors (bad data, a checkpoint that does not fit, a non-finite or
 * exploding loss, I/O) are also reported as an `error` event with `where`; the last good
 * checkpoint is left as it was. */
int fb_train(fb_model *m, const fb_train_spec *spec, const fb_train_data *data,
             const fb_train_opts *opts, fb_err *err);

/* The LoRA weights of one checkpoint of a run of spec s on m (step_dir: its
 * checkpoints/step-N), the step's own, saved as a PEFT adapter directory out (fb_lora_save).
 * m must be in host memory. A checkpoint of another shape (rank, targets) is an error naming
 * the tensor and both shapes. */
int fb_checkpoint_adapter(const fb_model *m, const fb_train_spec *s, const char *step_dir,
                          const char *out, fb_err *err);

#endif
