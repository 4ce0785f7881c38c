/* pretokenize.h: the pre-tokenizers of tokenizer.json that cut normalized text into words:
 * Split (a PCRE2 regex with the JIT, behaviours Isolated, Removed, MergedWithPrevious,
 * MergedWithNext; tokenizer.c writes Digits as one), ByteLevel (optional prefix space and
 * GPT-2 regex) and Metaspace.
 * It parses no JSON and does not map words to ids. */
#ifndef FB_PRETOKENIZE_H
#define FB_PRETOKENIZE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text.h"

typedef enum { FB_PRE_SPLIT, FB_PRE_BYTELEVEL, FB_PRE_METASPACE } fb_pre_kind;
typedef enum {
  FB_SPLIT_ISOLATED,
  FB_SPLIT_REMOVED,
  FB_SPLIT_MERGED_PREV,
  FB_SPLIT_MERGED_NEXT
} fb_split_behavior;
typedef enum { FB_PREPEND_ALWAYS, FB_PREPEND_FIRST, FB_PREPEND_NEVER } fb_prepend_scheme;

/* One step. `re` is owned by the step (fb_pretok_free). */
typedef struct fb_pretok {
  fb_pre_kind kind;
  pcre2_code *re;             /* Split, or ByteLevel with use_regex */
  fb_split_behavior behavior; /* Split */
  int add_prefix_space;       /* ByteLevel */
  char repl[8];               /* Metaspace replacement (UTF-8) */
  size_t repl_len;
  fb_prepend_scheme prepend; /* Metaspace */
  int split;                 /* Metaspace: cut before each replacement char */
} fb_pretok;

/* Byte ranges of a tracked text; owned by the struct (fb_pieces_free). */
typedef struct fb_pieces {
  size_t *off, *len;
  size_t n, cap;
} fb_pieces;

void fb_pieces_free(fb_pieces *p);
int fb_pieces_push(fb_pieces *p, size_t off, size_t len);

/* Compile a tokenizer.json regex (UTF, Unicode properties, JIT). On failure returns FB_EFORMAT
 * and writes PCRE2's message and the offset into msg. */
int fb_pretok_regex(pcre2_code **out, const char *pattern, size_t n, char *msg, size_t msg_size);
/* The GPT-2 regex that ByteLevel uses when use_regex is set. */
extern const char fb_pretok_gpt2_pattern[];

void fb_pretok_free(fb_pretok *steps, int n);

/* Scratch owned by the caller: a match block and spare buffers (fb_pretok_work_free). */
typedef struct fb_pretok_work {
  pcre2_match_data *md;
  pcre2_match_context *mc;
  pcre2_jit_stack *stack;
  fb_text tmp;
  fb_pieces ptmp;
} fb_pretok_work;

int fb_pretok_work_init(fb_pretok_work *w, int track);
void fb_pretok_work_free(fb_pretok_work *w);

/* Cut *t into words: on return `out` holds the word ranges of *t (which steps may rewrite).
 * `first` says whether this is the input's first section (Metaspace prepend_scheme "first"). */
int fb_pretok_apply(const fb_pretok *steps, int n, int first, fb_text *t, fb_pieces *out,
                    fb_pretok_work *w);

#endif
