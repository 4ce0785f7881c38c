/* utf8.h: UTF-8 decoding and encoding, validation, and repair (invalid bytes become U+FFFD the
 * way WHATWG TextDecoder does). */
#ifndef FB_UTF8_H
#define FB_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

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

#endif
