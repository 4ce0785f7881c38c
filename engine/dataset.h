/* dataset.h: training conversations from JSONL (OpenAI `messages`, ShareGPT `conversations`,
 * Alpaca `instruction/input/output`; the shape is detected per file and every line checked),
 * then tokenized examples with loss labels only on assistant text, truncation, a seeded
 * shuffle and split, and data-quality statistics. Rendering a conversation to text is the chat
 * template's job (lua/fastbrain/templates.lua): fb_examples_add takes its text and spans. */
#ifndef FB_DATASET_H
#define FB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"

#define FB_DS_MAX_LINE (1u << 20) /* bytes per JSONL line */
#define FB_DS_MAX_PROBLEMS 20
#define FB_IGNORE_INDEX (-100) /* label of a token that carries no loss */

typedef enum { FB_ROLE_SYSTEM, FB_ROLE_USER, FB_ROLE_ASSISTANT } fb_role;
typedef enum { FB_SHAPE_MESSAGES, FB_SHAPE_SHAREGPT, FB_SHAPE_ALPACA } fb_ds_shape;

typedef struct fb_msg {
  fb_role role;
  const char *content; /* NUL-terminated, owned by the dataset */
  size_t len;
} fb_msg;

typedef struct fb_conv {
  fb_msg *msgs;
  int n;
  int line; /* 1-based line in the file */
} fb_conv;

/* The bad lines of a refused file: "data.jsonl:17: messages[2].role: ...", at most
 * FB_DS_MAX_PROBLEMS of them; `total` counts all. Caller-provided, no allocation. */
typedef struct fb_ds_report {
  char lines[FB_DS_MAX_PROBLEMS][320];
  int n, total;
} fb_ds_report;

typedef struct fb_dataset fb_dataset;

/* Read and check a JSONL file. A UTF-8 BOM, CRLF line ends, blank lines and a missing final
 * newline are accepted. Any bad line refuses the whole file (FB_EFORMAT; `report`, if given,
 * lists them and err->msg holds the first plus a count); an empty file is FB_EFORMAT too.
 * On success *out is the caller's (fb_dataset_free). */
int fb_dataset_read(fb_dataset **out, const char *path, fb_ds_report *report, fb_err *err);
void fb_dataset_free(fb_dataset *ds);

size_t fb_dataset_count(const fb_dataset *ds);
const fb_conv *fb_dataset_conv(const fb_dataset *ds, size_t i);
fb_ds_shape fb_dataset_shape(const fb_dataset *ds);
const char *fb_dataset_shape_name(fb_ds_shape shape); /* "messages", "sharegpt", "alpaca" */
const char *fb_role_name(fb_role role);               /* "system", "user", "assistant" */
/* The file's content hash: "fnv1a64:" + 16 hex digits, over the raw bytes. */
const char *fb_dataset_hash(const fb_dataset *ds);

/* One tokenized example. labels[i] is ids[i] on trained tokens, FB_IGNORE_INDEX elsewhere
 * (not shifted: the trainer predicts position i+1 from i). */
typedef struct fb_example {
  int32_t *ids, *labels;
  int32_t n;         /* after truncation */
  int32_t full_len;  /* before truncation */
  int32_t n_trained; /* labels that are not FB_IGNORE_INDEX */
  int line;          /* source line, or 0 */
} fb_example;

/* A list of examples; owns their arrays (fb_examples_free). Zero-initialise. */
typedef struct fb_examples {
  fb_example *v;
  size_t n, cap;
  size_t truncated; /* examples cut to max_len */
} fb_examples;

typedef struct fb_span {
  size_t start, end; /* byte range [start, end) of an assistant turn in the rendered text */
} fb_span;

typedef struct fb_ex_opts {
  int32_t max_len;  /* 0 = no limit */
  int train_on_all; /* labels on every token, not only the spans */
} fb_ex_opts;

/* Tokenize rendered text (special tokens written in it become their ids) and append the
 * example. A token is trained when it starts inside a span; spans include the turn's
 * end-of-turn token so a trained model learns to stop. */
int fb_examples_add(fb_examples *ex, fb_tokenizer *tok, const char *text, size_t len,
                    const fb_span *spans, int n_spans, int line, const fb_ex_opts *opts,
                    fb_err *err);
void fb_examples_free(fb_examples *ex);

/* A seeded permutation of 0..n-1 (same seed, same order, on every machine); the caller frees
 * it. Split: the first n_eval indices are the evaluation set, where n_eval is `count` if > 0,
 * else round(fraction * n), and always leaves at least one training example. */
int fb_dataset_order(size_t n, uint64_t seed, size_t **order);
size_t fb_dataset_eval_count(size_t n, double fraction, size_t count);

#define FB_DS_HIST 12
#define FB_DS_LONGEST 5

typedef struct fb_ds_stats {
  size_t examples, tokens, trained_tokens, truncated;
  int32_t min_len, max_len;
  double mean_len;
  int32_t hist_upper[FB_DS_HIST]; /* bucket i holds lengths <= hist_upper[i] (last: the rest) */
  size_t hist[FB_DS_HIST];
  size_t duplicate_prompts;            /* examples whose prompt repeats an earlier one exactly */
  size_t near_duplicate_prompts;       /* ... equal after case, space and punctuation folding */
  size_t empty_answers, short_answers; /* an assistant turn empty / under 8 characters */
  size_t no_trained_tokens;            /* truncation cut every answer token */
  int n_longest;
  int longest_line[FB_DS_LONGEST];
  int32_t longest_len[FB_DS_LONGEST];
} fb_ds_stats;

/* Statistics of ds (prompts and answers) and ex (lengths); ex may be NULL. */
int fb_dataset_stats(const fb_dataset *ds, const fb_examples *ex, fb_ds_stats *st);

#endif
