/* normalize.c: the normalizer steps of tokenizer.json (normalize.h). Unicode forms come from
 * utf8proc; it knows nothing of JSON or vocabularies. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "utf8.h"

void fb_normalize_free(fb_normalizer *steps, int n) {
  for (int i = 0; i < n; i++) {
    free(steps[i].a);
    free(steps[i].b);
  }
  free(steps);
}

/* Unicode forms. utf8proc gives no offset map, so the map keeps the unchanged prefix and
 * suffix exact and points every byte of the changed middle at the middle's first byte. */
static int unicode_form(const fb_normalizer *st, const fb_text *in, fb_text *out) {
  int ascii = 1;
  for (size_t i = 0; i < in->len && ascii; i++) ascii = !((unsigned char)in->s[i] & 0x80);
  if (ascii) return fb_text_copy(out, in, 0, in->len); /* every form is identity on ASCII */
  int opt = UTF8PROC_STABLE;
  switch (st->kind) {
    case FB_NORMALIZE_NFC: opt |= UTF8PROC_COMPOSE; break;
    case FB_NORMALIZE_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case FB_NORMALIZE_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
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

static int replace(const fb_normalizer *st, const fb_text *in, fb_text *out) {
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

int fb_normalize_apply(const fb_normalizer *steps, int n, fb_text *t, fb_text *tmp) {
  for (int i = 0; i < n; i++) {
    const fb_normalizer *st = &steps[i];
    tmp->len = 0;
    int rc;
    switch (st->kind) {
      case FB_NORMALIZE_PREPEND:
        if (t->len == 0) continue;
        rc = fb_text_put(tmp, st->a, st->alen, t->map ? t->map[0] : 0);
        if (!rc) rc = fb_text_copy(tmp, t, 0, t->len);
        break;
      case FB_NORMALIZE_REPLACE: rc = replace(st, t, tmp); break;
      case FB_NORMALIZE_LOWERCASE: rc = lowercase(t, tmp); break;
      default: rc = unicode_form(st, t, tmp); break;
    }
    if (rc) return rc;
    fb_text swap = *t;
    *t = *tmp;
    *tmp = swap;
  }
  return 0;
}
