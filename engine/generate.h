/* generate.h: text continuation from token ids with a KV cache: greedy or sampled (temperature,
 * top-k, top-p), repetition penalty, stop tokens, a cap on new tokens, with or without a LoRA
 * adapter, seeded so the same call gives the same tokens. No tokenizer, no chat templates. */
#ifndef FB_GENERATE_H
#define FB_GENERATE_H

#include <stdint.h>

#include "error.h"
#include "lora.h"
#include "model.h"

#define FB_GEN_MAX_STOP 16

typedef struct fb_gen_config {
  int max_new_tokens;        /* >= 1 */
  double temperature;        /* 0 = greedy (argmax, ties to the lowest id) */
  int top_k;                 /* 0 = off */
  double top_p;              /* 1 = off; keeps the smallest set whose mass reaches top_p */
  double repetition_penalty; /* 1 = off; HF's rule over prompt and generated ids */
  int32_t stop[FB_GEN_MAX_STOP];
  int n_stop; /* a stop token ends generation and is not returned */
  uint64_t seed;
} fb_gen_config;

/* Greedy, 128 new tokens, no penalty, no stop tokens, seed 0. */
fb_gen_config fb_gen_defaults(void);

/* Continue prompt[n_prompt] (>= 1 ids); writes up to max_new_tokens ids to out (caller-owned,
 * that many slots) and their count to *n_out; *stopped is 1 when a stop token ended it (may be
 * NULL). lora may be NULL. Bad settings are FB_EINVALID naming the field. */
int fb_generate(fb_model *m, fb_lora *lora, const int32_t *prompt, int n_prompt,
                const fb_gen_config *c, int32_t *out, int *n_out, int *stopped, fb_err *err);

/* The same loop one token at a time, for a caller that streams or stops early: start checks c
 * and reads the prompt (the long step); each next gives one id, or -1 once a stop token or
 * max_new_tokens ended it (stopped says which). m and lora must outlive the stream. */
typedef struct fb_gen_stream fb_gen_stream;
int fb_gen_start(fb_gen_stream **out, fb_model *m, fb_lora *lora, const int32_t *prompt,
                 int n_prompt, const fb_gen_config *c, fb_err *err);
int fb_gen_next(fb_gen_stream *s, int32_t *id, fb_err *err);
int fb_gen_stopped(const fb_gen_stream *s);
void fb_gen_free(fb_gen_stream *s);

#endif
