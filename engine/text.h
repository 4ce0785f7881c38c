/* text.h: text buffers that remember where each byte came from, so token offsets survive
 * normalization and repair. */
#ifndef FB_TEXT_H
#define FB_TEXT_H

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

#endif
