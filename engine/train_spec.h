/* train_spec.h: the training spec, the one object that describes a run (the JSON a job's
 * spec.json holds and `fastbrain train` builds from its options): defaults suited to 50-500
 * examples, parsing with every field checked and named in errors ("spec.lora.r: must be
 * an integer 1..256"), and writing it back as JSON. It does not load models or data. */
#ifndef FB_TRAIN_SPEC_H
#define FB_TRAIN_SPEC_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "adapter_config.h"
#include "device.h"
#include "error.h"
#include "optim.h"

#define FB_SPEC_PATH 1024
#define FB_SPEC_MAX_DATA 8
#define FB_SPEC_MAX_PROMPTS 8
#define FB_SPEC_PROMPT 1024
#define FB_SPEC_SYSTEM 16384 /* a skill's system prompt may hold 16,000 bytes */
#define FB_SPEC_MAX_RANK 256

/* Which weights a run publishes (spec.select). */
typedef enum {
  FB_SELECT_EVAL_LOSS, /* the last, or with patience the best by eval loss */
  FB_SELECT_SCENARIOS  /* the best by the pass count of the skill's scenarios (fb_train_data) */
} fb_select;

/* Plain value; nothing to free. */
typedef struct fb_train_spec {
  char model[FB_SPEC_PATH];                  /* base model directory (required) */
  char data[FB_SPEC_MAX_DATA][FB_SPEC_PATH]; /* JSONL files (at least one) */
  int n_data;
  char template_name[32];  /* chat template; "" = recognised from the model's tokenizer */
  int max_len;             /* tokens per example, longer ones are cut: 512 */
  int full;                /* full-parameter mode instead of LoRA: 0 */
  fb_adapter_config lora;  /* r 16, alpha 32, dropout 0.05, all seven projections, no rslora */
  int epochs;              /* 3 */
  int max_steps;           /* optimizer steps; 0 = from epochs */
  int micro_batch;         /* examples per forward: 4 */
  int grad_accum;          /* micro-batches per optimizer step: 1 */
  int small_data;          /* shrink the batch until a run has >= 50 steps: 1 */
  double lr;               /* 2e-4 */
  double warmup;           /* fraction of the steps warming up linearly: 0.05 */
  fb_schedule schedule;    /* cosine */
  double weight_decay;     /* 0 */
  double clip;             /* global gradient norm; 0 = off: 1.0 */
  double eval_fraction;    /* of the examples held out: 0.1 (0 = no evaluation) */
  int eval_interval;       /* steps between evaluations; 0 = ten per run */
  int patience;            /* evaluations without improvement before stopping; 0 = off */
  uint64_t seed;           /* split, order, LoRA init and dropout: 42 */
  int checkpoint_interval; /* steps between checkpoints; 0 = only at the end or on cancel */
  char out[FB_SPEC_PATH];  /* output directory (required) */
  char checkpoints[FB_SPEC_PATH];                    /* "" = out/checkpoints */
  fb_device device;                                  /* auto */
  char prompts[FB_SPEC_MAX_PROMPTS][FB_SPEC_PROMPT]; /* sample prompts */
  int n_prompts;
  int sample_interval; /* steps between samples; 0 = five per run */
  int sample_tokens;   /* new tokens per sample: 48 */
  char sample_system
      [FB_SPEC_SYSTEM];             /* system prompt the sample prompts are asked with; "" = none */
  double sample_repetition_penalty; /* greedy samples' penalty (a small model loops): 1.2 */
  char hooks[FB_SPEC_PATH]; /* a Lua file returning {on_step, on_eval, on_done}; "" = none */
  fb_select select;         /* eval_loss */
  int select_tokens;        /* new tokens per scenario answer: 256 (a scenario run's) */
} fb_train_spec;

/* The defaults above, with no model, data or output. */
void fb_train_spec_defaults(fb_train_spec *s);
/* Defaults overridden by a JSON object's fields. An unknown field, a wrong type or a value out
 * of range is FB_EINVALID naming it ("spec.lora.r: must be an integer 1..256 (got 0)"); so is a
 * missing model, data or out. On failure *s holds what was read so far. */
int fb_train_spec_from_json(fb_train_spec *s, const cJSON *json, fb_err *err);
/* The same from JSON text; label names the source ("jobs/7/spec.json"). */
int fb_train_spec_parse(fb_train_spec *s, const char *text, size_t len, const char *label,
                        fb_err *err);
/* Check every field of s (as from_json does). */
int fb_train_spec_check(const fb_train_spec *s, fb_err *err);
/* The problems of a request's overrides (the part of a spec a form or an API client sets), each
 * given to report as (path, problem): ("lora.r", "must be an integer 1..256 (got 0)"). Unlike
 * from_json it goes on past the first, and a field the server fills in (model, data, out,
 * checkpoints, hooks, mode, samples.system, scenarios) is "set by the server". -> how many. */
typedef void (*fb_train_spec_report)(void *ctx, const char *path, const char *problem);
int fb_train_spec_request_problems(const cJSON *overrides, fb_train_spec_report report, void *ctx);
/* Every field described, in order: [{name, type, min, max, choices, default, set_by, doc}]
 * (type: string, integer, number, boolean, enum, strings, targets, scenarios; min and max for
 * numbers, choices for enums and targets); the caller deletes it; NULL when out of memory. */
cJSON *fb_train_spec_fields(void);
/* s as a JSON object with every field (the caller deletes it); NULL when out of memory. */
cJSON *fb_train_spec_to_json(const fb_train_spec *s);

#endif
