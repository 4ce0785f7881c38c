/* text.c: growable byte strings that remember where each byte came from (text.h). */
#include "text.h"

#include <stdlib.h>
#include <string.h>

void fb_text_free(fb_text *t) {
  free(t->s);
  free(t->map);
  t->s = NULL;
  t->map = NULL;
  t->len = t->cap = 0;
}

static int reserve(fb_text *t, size_t extra) {
  if (t->len + extra <= t->cap) return 0;
  size_t cap = t->cap ? t->cap : 64;
  while (cap < t->len + extra) cap *= 2;
  char *s = realloc(t->s, cap);
  if (!s) return FB_ENOMEM;
  t->s = s;
  if (t->track) {
    uint32_t *m = realloc(t->map, cap * sizeof *m);
    if (!m) return FB_ENOMEM;
    t->map = m;
  }
  t->cap = cap;
  return 0;
}

int fb_text_put(fb_text *t, const char *s, size_t n, uint32_t orig) {
  if (n == 0) return 0;
  if (reserve(t, n)) return FB_ENOMEM;
  memcpy(t->s + t->len, s, n);
  if (t->track)
    for (size_t i = 0; i < n; i++) t->map[t->len + i] = orig;
  t->len += n;
  return 0;
}

int fb_text_copy(fb_text *t, const fb_text *src, size_t off, size_t n) {
  if (n == 0) return 0;
  if (reserve(t, n)) return FB_ENOMEM;
  memcpy(t->s + t->len, src->s + off, n);
  if (t->track) {
    if (src->map)
      memcpy(t->map + t->len, src->map + off, n * sizeof *t->map);
    else
      for (size_t i = 0; i < n; i++) t->map[t->len + i] = (uint32_t)(off + i);
  }
  t->len += n;
  return 0;
}
