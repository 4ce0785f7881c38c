/* normalize.h: the tokenizer.json normalizers (NFC/NFD/NFKC/NFKD through utf8proc, Prepend,
 * Replace, Lowercase, Sequence) over tracked text (text.h). It parses no JSON: tokenizer.c
 * builds the steps. */
#ifndef FB_NORMALIZE_H
#define FB_NORMALIZE_H

#include <stddef.h>

#include "text.h"

typedef enum {
  FB_NORMALIZE_NFC,
  FB_NORMALIZE_NFD,
  FB_NORMALIZE_NFKC,
  FB_NORMALIZE_NFKD,
  FB_NORMALIZE_PREPEND,
  FB_NORMALIZE_REPLACE,
  FB_NORMALIZE_LOWERCASE
} fb_normalizer_kind;

/* One normalizer step. `a` is Prepend's text or Replace's pattern, `b` Replace's content;
 * both owned by the step (fb_normalize_free). Replace matches a literal string. */
typedef struct fb_normalizer {
  fb_normalizer_kind kind;
  char *a, *b;
  size_t alen, blen;
} fb_normalizer;

void fb_normalize_free(fb_normalizer *steps, int n);
/* Run steps over *t in order, using *tmp as scratch; the result is left in *t. */
int fb_normalize_apply(const fb_normalizer *steps, int n, fb_text *t, fb_text *tmp);

#endif
