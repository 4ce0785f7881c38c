/* normalize.h: text buffers that remember where each byte came from, UTF-8 decoding and repair
 * (invalid bytes become U+FFFD the way WHATWG TextDecoder does), and the tokenizer.json
 * normalizers (NFC/NFD/NFKC/NFKD through utf8proc, Prepend, Replace, Lowercase, Sequence).
 * It parses no JSON: tokenizer.c builds the steps. */
#ifndef FB_NORMALIZE_H
#define FB_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A growable byte string. When `track` is set, map[i] is the offset in the caller's original
 * text that byte i came from (so token offsets survive normalization); otherwise map is NULL.
 * The struct owns s and map; fb_text_free releases them. Zero-initialise before first use. */
typedef struct fb_text {
  char *s;
  uint32_t *map;
  size_t len, cap;
  int track;
} fb_text;

void fb_text_free(fb_text *t);
/* Append n bytes that all come from original offset `orig`. */
int fb_text_put(fb_text *t, const char *s, size_t n, uint32_t orig);
/* Append src[off, off+n), carrying its map (or `off` + i when src does not track). */
int fb_text_copy(fb_text *t, const fb_text *src, size_t off, size_t n);

/* Decode one code point from valid UTF-8 (s[0..n) with n > 0); returns its byte length. */
size_t fb_utf8_decode(const char *s, size_t n, int32_t *cp);
/* Encode cp as UTF-8 into out[4]; returns the byte length. */
size_t fb_utf8_encode(int32_t cp, char *out);
/* Length of the longest prefix of s that is a complete, valid UTF-8 sequence run. */
size_t fb_utf8_valid_prefix(const char *s, size_t n);
/* How many bytes at the end of s begin a character that is valid so far but incomplete
 * (0-3): a streaming decoder holds them back until the next bytes arrive. */
size_t fb_utf8_incomplete_tail(const char *s, size_t n);
/* Append s to out, each maximal invalid subpart replaced by U+FFFD (WHATWG "replacement"). */
int fb_utf8_repair(fb_text *out, const char *s, size_t n);
/* White space as JavaScript's \s and String.trim see it (transformers.js parity). */
int fb_utf8_is_js_space(int32_t cp);

typedef enum { FB_NORM_NFC, FB_NORM_NFD, FB_NORM_NFKC, FB_NORM_NFKD, FB_NORM_PREPEND,
               FB_NORM_REPLACE, FB_NORM_LOWERCASE } fb_norm_kind;

/* One normalizer step. `a` is Prepend's text or Replace's pattern, `b` Replace's content;
 * both owned by the step (fb_norm_free). Replace matches a literal string. */
typedef struct fb_norm {
  fb_norm_kind kind;
  char *a, *b;
  size_t alen, blen;
} fb_norm;

void fb_norm_free(fb_norm *steps, int n);
/* Run steps over *t in order, using *tmp as scratch; the result is left in *t. */
int fb_norm_apply(const fb_norm *steps, int n, fb_text *t, fb_text *tmp);

#endif
