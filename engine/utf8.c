/* utf8.c: UTF-8 decoding, encoding, validation and repair (utf8.h). */
#include "utf8.h"

size_t fb_utf8_decode(const char *str, size_t n, int32_t *cp) {
  const unsigned char *s = (const unsigned char *)str;
  if (s[0] < 0x80 || n < 2) {
    *cp = s[0];
    return 1;
  }
  if (s[0] < 0xE0) {
    *cp = ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if (s[0] < 0xF0 || n < 4) {
    *cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return 3;
  }
  *cp = ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  return 4;
}

size_t fb_utf8_encode(int32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = 0xC0 | (cp >> 6);
    o[1] = 0x80 | (cp & 0x3F);
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = 0xE0 | (cp >> 12);
    o[1] = 0x80 | ((cp >> 6) & 0x3F);
    o[2] = 0x80 | (cp & 0x3F);
    return 3;
  }
  o[0] = 0xF0 | (cp >> 18);
  o[1] = 0x80 | ((cp >> 12) & 0x3F);
  o[2] = 0x80 | ((cp >> 6) & 0x3F);
  o[3] = 0x80 | (cp & 0x3F);
  return 4;
}

/* Length of the valid sequence at s[0..n), or -k when its first k bytes are a maximal invalid
 * subpart (WHATWG: a bad lead byte counts 1, a truncated sequence counts what was read). */
static long seq_len(const unsigned char *s, size_t n) {
  unsigned b = s[0];
  if (b < 0x80) return 1;
  int need;
  unsigned lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF)
    need = 1;
  else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else
    return -1;
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
    if (s[i] < 0x80) {
      i++;
      continue;
    }
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
  const fb_text whole = {.s = (char *)str, .len = n};
  size_t i = 0;
  while (i < n) {
    size_t ok = fb_utf8_valid_prefix(str + i, n - i);
    if (ok) {
      if (fb_text_copy(out, &whole, i, ok)) return FB_ENOMEM; /* mapped to offsets in str */
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
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000 || c == 0xFEFF;
}
