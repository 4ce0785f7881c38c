/* pretokenize.c: regex splitting with PCRE2 (JIT), ByteLevel and Metaspace pre-tokenizers over
 * tracked text. Words are byte ranges; mapping them to ids is bpe.c's and tokenizer.c's job. */
#include "pretokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

const char fb_pretok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void fb_pieces_free(fb_pieces *p) {
  free(p->off);
  free(p->len);
  memset(p, 0, sizeof *p);
}

int fb_pieces_push(fb_pieces *p, size_t off, size_t len) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    size_t *o = realloc(p->off, cap * sizeof *o);
    if (!o) return FB_ENOMEM;
    p->off = o;
    size_t *l = realloc(p->len, cap * sizeof *l);
    if (!l) return FB_ENOMEM;
    p->len = l;
    p->cap = cap;
  }
  p->off[p->n] = off;
  p->len[p->n++] = len;
  return 0;
}

/* JavaScript's white space (what transformers.js's regexes see as \s): PCRE2's own \s also
 * takes U+0085 and lacks U+FEFF, which would cut words differently. */
#define JS_SPACE                                                                                   \
  "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

/* Rewrite \s and \S to JS_SPACE classes; returns a malloc'd pattern or NULL (out of memory or
 * \S inside a character class, *unsupported set). */
static char *js_spaces(const char *p, size_t n, size_t *out_n, int *unsupported) {
  size_t cap = n * 4 + sizeof JS_SPACE * 8 + 1, o = 0;
  char *q = malloc(cap);
  if (!q) return NULL;
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    if (o + sizeof JS_SPACE + 8 > cap) {
      char *g = realloc(q, cap *= 2);
      if (!g) {
        free(q);
        return NULL;
      }
      q = g;
    }
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char d = p[++i];
      if (d == 's')
        o += (size_t)sprintf(q + o, in_class ? "%s" : "[%s]", JS_SPACE);
      else if (d == 'S' && !in_class)
        o += (size_t)sprintf(q + o, "[^%s]", JS_SPACE);
      else if (d == 'S') {
        *unsupported = 1;
        free(q);
        return NULL;
      } else {
        q[o++] = c;
        q[o++] = d;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = 1;
      q[o++] = c;
      if (i + 1 < n && p[i + 1] == '^') q[o++] = p[++i];
      if (i + 1 < n && p[i + 1] == ']') q[o++] = p[++i]; /* a leading ] is literal */
      continue;
    }
    if (c == ']' && in_class) in_class = 0;
    q[o++] = c;
  }
  q[o] = 0;
  *out_n = o;
  return q;
}

int fb_pretok_regex(pcre2_code **out, const char *pattern, size_t n, char *msg, size_t msg_size) {
  int code, unsupported = 0;
  PCRE2_SIZE at;
  size_t qn;
  *out = NULL;
  char *q = js_spaces(pattern, n, &qn, &unsupported);
  if (!q) {
    snprintf(msg, msg_size,
             unsupported ? "\\S inside a character class is not supported" : "out of memory");
    return unsupported ? FB_EUNSUPPORTED : FB_ENOMEM;
  }
  *out = pcre2_compile((PCRE2_SPTR)q, qn, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
  free(q);
  if (!*out) { /* compile the pattern as written, so the offset points into the user's text */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, n, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    pcre2_code_free(re);
    char text[256];
    pcre2_get_error_message(code, (PCRE2_UCHAR *)text, sizeof text);
    snprintf(msg, msg_size, "PCRE2 rejects the regex at offset %zu: %s", (size_t)at, text);
    return FB_EFORMAT;
  }
  pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets */
  return 0;
}

void fb_pretok_free(fb_pretok *steps, int n) {
  for (int i = 0; i < n; i++) pcre2_code_free(steps[i].re);
  free(steps);
}

int fb_pretok_work_init(fb_pretok_work *w, int track) {
  memset(w, 0, sizeof *w);
  w->tmp.track = track;
  w->md = pcre2_match_data_create(1, NULL);
  w->mc = pcre2_match_context_create(NULL);
  w->stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
  if (!w->md || !w->mc || !w->stack) {
    fb_pretok_work_free(w);
    return FB_ENOMEM;
  }
  pcre2_jit_stack_assign(w->mc, NULL, w->stack);
  return 0;
}

void fb_pretok_work_free(fb_pretok_work *w) {
  pcre2_match_data_free(w->md);
  pcre2_match_context_free(w->mc);
  pcre2_jit_stack_free(w->stack);
  fb_text_free(&w->tmp);
  fb_pieces_free(&w->ptmp);
  memset(w, 0, sizeof *w);
}

/* Cut t[off, off+len) by the regex's matches into `out`. An empty match yields nothing and
 * the search moves on one character, as JavaScript's matchAll does. */
static int split_piece(const pcre2_code *re, fb_split_behavior how, const fb_text *t, size_t off,
                       size_t len, fb_pieces *out, fb_pretok_work *w) {
  const char *s = t->s + off;
  size_t at = 0, prev = 0, pending = SIZE_MAX; /* MergedWithNext: start of the open piece */
  while (at <= len) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, w->md, w->mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return FB_ELIMIT; /* JIT stack or match limit */
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) {
      if (ms >= len) break;
      int32_t cp;
      at = ms + fb_utf8_decode(s + ms, len - ms, &cp);
      continue;
    }
    int rc2 = 0;
    switch (how) {
      case FB_SPLIT_ISOLATED:
        if (prev < ms) rc2 = fb_pieces_push(out, off + prev, ms - prev);
        if (!rc2) rc2 = fb_pieces_push(out, off + ms, me - ms);
        break;
      case FB_SPLIT_REMOVED:
        if (prev < ms) rc2 = fb_pieces_push(out, off + prev, ms - prev);
        break;
      case FB_SPLIT_MERGED_PREV: rc2 = fb_pieces_push(out, off + prev, me - prev); break;
      case FB_SPLIT_MERGED_NEXT:
        if (pending == SIZE_MAX && prev < ms)
          rc2 = fb_pieces_push(out, off + prev, ms - prev);
        else if (pending != SIZE_MAX)
          rc2 = fb_pieces_push(out, off + pending, ms - pending);
        pending = ms;
        break;
    }
    if (rc2) return rc2;
    prev = at = me;
  }
  if (pending != SIZE_MAX) return fb_pieces_push(out, off + pending, len - pending);
  if (prev < len) return fb_pieces_push(out, off + prev, len - prev);
  return 0;
}

/* ByteLevel's prefix space and Metaspace's rewrite: rebuild the text piece by piece. */
static int rewrite(const fb_pretok *st, int first, fb_text *t, fb_pieces *p, fb_pretok_work *w) {
  fb_text *nt = &w->tmp;
  fb_pieces *np = &w->ptmp;
  nt->len = 0;
  np->n = 0;
  for (size_t i = 0; i < p->n; i++) {
    size_t off = p->off[i], len = p->len[i], start = nt->len;
    uint32_t orig = t->map ? t->map[off] : (uint32_t)off;
    if (st->kind == FB_PRE_BYTELEVEL) {
      if (len && t->s[off] != ' ' && fb_text_put(nt, " ", 1, orig)) return FB_ENOMEM;
      if (fb_text_copy(nt, t, off, len)) return FB_ENOMEM;
    } else {
      int pre = st->prepend == FB_PREPEND_ALWAYS || (st->prepend == FB_PREPEND_FIRST && first);
      if (pre && len && !(len >= st->repl_len && !memcmp(t->s + off, st->repl, st->repl_len)) &&
          fb_text_put(nt, st->repl, st->repl_len, orig))
        return FB_ENOMEM;
      for (size_t k = 0; k < len; k++) {
        int rc = t->s[off + k] == ' '
                     ? fb_text_put(nt, st->repl, st->repl_len, t->map ? t->map[off + k] : off + k)
                     : fb_text_copy(nt, t, off + k, 1);
        if (rc) return rc;
      }
    }
    if (nt->len > start && fb_pieces_push(np, start, nt->len - start)) return FB_ENOMEM;
  }
  fb_text swap = *t;
  *t = *nt;
  *nt = swap;
  fb_pieces ps = *p;
  *p = *np;
  *np = ps;
  return 0;
}

/* Metaspace split: each replacement char starts a new word. */
static int split_at_repl(const fb_pretok *st, const fb_text *t, const fb_pieces *in,
                         fb_pieces *out) {
  for (size_t i = 0; i < in->n; i++) {
    size_t off = in->off[i], end = off + in->len[i], start = off;
    for (size_t k = off + 1; k + st->repl_len <= end; k++)
      if (!memcmp(t->s + k, st->repl, st->repl_len)) {
        if (fb_pieces_push(out, start, k - start)) return FB_ENOMEM;
        start = k;
      }
    if (fb_pieces_push(out, start, end - start)) return FB_ENOMEM;
  }
  return 0;
}

int fb_pretok_apply(const fb_pretok *steps, int n, int first, fb_text *t, fb_pieces *out,
                    fb_pretok_work *w) {
  out->n = 0;
  if (fb_pieces_push(out, 0, t->len)) return FB_ENOMEM;
  for (int s = 0; s < n; s++) {
    const fb_pretok *st = &steps[s];
    int rc = 0;
    if (st->kind == FB_PRE_METASPACE || (st->kind == FB_PRE_BYTELEVEL && st->add_prefix_space))
      rc = rewrite(st, first, t, out, w);
    if (rc) return rc;
    if (st->re || (st->kind == FB_PRE_METASPACE && st->split)) {
      fb_pieces *np = &w->ptmp;
      np->n = 0;
      for (size_t i = 0; i < out->n && !rc; i++)
        if (st->re)
          rc = split_piece(st->re, st->kind == FB_PRE_SPLIT ? st->behavior : FB_SPLIT_ISOLATED, t,
                           out->off[i], out->len[i], np, w);
      if (!st->re) rc = split_at_repl(st, t, out, np);
      if (rc) return rc;
      fb_pieces ps = *out;
      *out = *np;
      *np = ps;
    }
  }
  return 0;
}
