/* normalize.c: tracked text buffers, UTF-8 decode/repair and the normalizer steps of
 * tokenizer.json. Unicode forms come from utf8proc; it knows nothing of JSON or vocabularies. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

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
    if (src->map) memcpy(t->map + t->len, src->map + off, n * sizeof *t->map);
    else
      for (size_t i = 0; i < n; i++) t->map[t->len + i] = (uint32_t)(off + i);
  }
  t->len += n;
  return 0;
}

size_t fb_utf8_decode(const char *str, size_t n, int32_t *cp) {
  const unsigned char *s = (const unsigned char *)str;
  if (s[0] < 0x80 || n < 2) { *cp = s[0]; return 1; }
  if (s[0] < 0xE0) { *cp = ((s[0] & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
  if (s[0] < 0xF0 || n < 4) {
    *cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return 3;
  }
  *cp = ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  return 4;
}

size_t fb_utf8_encode(int32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
  if (cp < 0x10000) {
    o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
    return 3;
  }
  o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
  o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
  return 4;
}

/* Length of the valid sequence at s[0..n), or -k when its first k bytes are a maximal invalid
 * subpart (WHATWG: a bad lead byte counts 1, a truncated sequence counts what was read). */
static long seq_len(const unsigned char *s, size_t n) {
  unsigned b = s[0];
  if (b < 0x80) return 1;
  int need;
  unsigned lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) need = 1;
  else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else return -1;
  for (int k = 1; k <= need; k++) {
    if ((size_t)k >= n || s[k] < lo || s[k] > hi) return -k;
    lo = 0x80, hi = 0xBF;
  }
  return need + 1;
}

size_t fb_utf8_valid_prefix(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) { i++; continue; }
    long k = seq_len(s + i, n - i);
    if (k < 0) break;
    i += (size_t)k;
  }
  return i;
}

size_t fb_utf8_incomplete_tail(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  for (size_t k = 1; k <= 3 && k <= n; k++) {
    const unsigned char *p = s + n - k;
    if (*p >= 0xC2 && *p <= 0xF4) return seq_len(p, k) == -(long)k ? k : 0;
    if (*p < 0x80 || *p > 0xBF) return 0;
  }
  return 0;
}

int fb_utf8_repair(fb_text *out, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    size_t ok = fb_utf8_valid_prefix(str + i, n - i);
    if (ok) {
      if (reserve(out, ok)) return FB_ENOMEM;
      memcpy(out->s + out->len, str + i, ok);
      if (out->track)
        for (size_t k = 0; k < ok; k++) out->map[out->len + k] = (uint32_t)(i + k);
      out->len += ok;
      i += ok;
      if (i == n) break;
    }
    long k = seq_len(s + i, n - i);
    if (fb_text_put(out, "\xEF\xBF\xBD", 3, (uint32_t)i)) return FB_ENOMEM;
    i += (size_t)(-k);
  }
  return 0;
}

int fb_utf8_is_js_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

void fb_norm_free(fb_norm *steps, int n) {
  for (int i = 0; i < n; i++) {
    free(steps[i].a);
    free(steps[i].b);
  }
  free(steps);
}

/* Unicode forms. utf8proc gives no offset map, so the map keeps the unchanged prefix and
 * suffix exact and points every byte of the changed middle at the middle's first byte. */
static int unicode_form(const fb_norm *st, const fb_text *in, fb_text *out) {
  int ascii = 1;
  for (size_t i = 0; i < in->len && ascii; i++) ascii = !((unsigned char)in->s[i] & 0x80);
  if (ascii) return fb_text_copy(out, in, 0, in->len);  /* every form is identity on ASCII */
  int opt = UTF8PROC_STABLE;
  switch (st->kind) {
    case FB_NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case FB_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case FB_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)in->s, (utf8proc_ssize_t)in->len,
                                    &res, (utf8proc_option_t)opt);
  if (m < 0) return m == UTF8PROC_ERROR_NOMEM ? FB_ENOMEM : FB_EFORMAT;
  size_t n = (size_t)m, pre = 0, suf = 0;
  while (pre < n && pre < in->len && res[pre] == (unsigned char)in->s[pre]) pre++;
  while (suf < n - pre && suf < in->len - pre &&
         res[n - 1 - suf] == (unsigned char)in->s[in->len - 1 - suf])
    suf++;
  int rc = fb_text_copy(out, in, 0, pre);
  uint32_t mid = in->track && in->map && pre < in->len ? in->map[pre] : (uint32_t)pre;
  if (!rc) rc = fb_text_put(out, (const char *)res + pre, n - pre - suf, mid);
  if (!rc) rc = fb_text_copy(out, in, in->len - suf, suf);
  free(res);
  return rc;
}

static int replace(const fb_norm *st, const fb_text *in, fb_text *out) {
  size_t i = 0;
  while (i < in->len) {
    if (st->alen && i + st->alen <= in->len && memcmp(in->s + i, st->a, st->alen) == 0) {
      uint32_t orig = in->map ? in->map[i] : (uint32_t)i;
      if (fb_text_put(out, st->b, st->blen, orig)) return FB_ENOMEM;
      i += st->alen;
    } else {
      if (fb_text_copy(out, in, i, 1)) return FB_ENOMEM;
      i++;
    }
  }
  return 0;
}

static int lowercase(const fb_text *in, fb_text *out) {
  size_t i = 0;
  while (i < in->len) {
    int32_t cp;
    size_t k = fb_utf8_decode(in->s + i, in->len - i, &cp);
    char buf[4];
    size_t m = fb_utf8_encode(utf8proc_tolower(cp), buf);
    if (fb_text_put(out, buf, m, in->map ? in->map[i] : (uint32_t)i)) return FB_ENOMEM;
    i += k;
  }
  return 0;
}

int fb_norm_apply(const fb_norm *steps, int n, fb_text *t, fb_text *tmp) {
  for (int i = 0; i < n; i++) {
    const fb_norm *st = &steps[i];
    tmp->len = 0;
    int rc;
    switch (st->kind) {
      case FB_NORM_PREPEND:
        if (t->len == 0) continue;
        rc = fb_text_put(tmp, st->a, st->alen, t->map ? t->map[0] : 0);
        if (!rc) rc = fb_text_copy(tmp, t, 0, t->len);
        break;
      case FB_NORM_REPLACE: rc = replace(st, t, tmp); break;
      case FB_NORM_LOWERCASE: rc = lowercase(t, tmp); break;
      default: rc = unicode_form(st, t, tmp); break;
    }
    if (rc) return rc;
    fb_text swap = *t;
    *t = *tmp;
    *tmp = swap;
  }
  return 0;
}
