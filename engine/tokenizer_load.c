/* tokenizer_load.c: a tokenizer from tokenizer.json (BPE model, normalizers, pre-tokenizers,
 * decoders, added tokens) with strict validation, every error naming the file and the field
 * (tokenizer_json.c reads the fields); or the plain byte tokenizer. Encoding and decoding are
 * tokenizer.c's. */
#include "tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "utf8.h"

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ---- */

static int32_t byte_cp(int b) {
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
  int n = 0;
  for (int k = 0; k < b; k++)
    if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) n++;
  return 256 + n;
}

static int16_t cp_byte[324]; /* inverse of byte_cp; -1 = not a byte character */
static int32_t byte_cp_tab[256];

int32_t fb_tok_byte_char(unsigned char b) { return byte_cp_tab[b]; }

static void init_byte_tables(void) {
  if (byte_cp_tab['!']) return;
  for (int i = 0; i < 324; i++) cp_byte[i] = -1;
  for (int b = 0; b < 256; b++) {
    byte_cp_tab[b] = byte_cp(b);
    cp_byte[byte_cp_tab[b]] = (int16_t)b;
  }
}

/* ---- normalizers ---- */

static int add_norm(fb_tokenizer *t, fb_normalizer st) {
  fb_normalizer *n = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *n);
  if (!n) {
    free(st.a);
    free(st.b);
    return FB_ENOMEM;
  }
  t->norm = n;
  t->norm[t->n_norm++] = st;
  return 0;
}

static char *dup_str(const char *s, size_t *n) {
  *n = strlen(s);
  char *d = malloc(*n + 1);
  if (d) memcpy(d, s, *n + 1);
  return d;
}

static int parse_normalizer(fb_tokenizer *t, const cJSON *node, const char *path, fb_err *err) {
  const char *type;
  int rc = tok_get_type(t, node, path, &type, err);
  if (rc) return rc;
  static const char *const forms[] = {"NFC", "NFD", "NFKC", "NFKD"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(type, forms[i])) return add_norm(t, (fb_normalizer){.kind = (fb_normalizer_kind)i});
  if (!strcmp(type, "Lowercase"))
    return add_norm(t, (fb_normalizer){.kind = FB_NORMALIZE_LOWERCASE});
  if (!strcmp(type, "Prepend")) {
    const char *s;
    if ((rc = tok_get_str(t, node, path, "prepend", 1, &s, err))) return rc;
    fb_normalizer st = {.kind = FB_NORMALIZE_PREPEND};
    if (!(st.a = dup_str(s, &st.alen))) return FB_ENOMEM;
    return add_norm(t, st);
  }
  if (!strcmp(type, "Replace")) {
    int is_regex;
    const char *pat, *content;
    if ((rc = tok_get_pattern(t, node, path, &is_regex, &pat, err))) return rc;
    if (is_regex)
      return tok_fail(err, FB_EUNSUPPORTED, t,
                      "%s.pattern.Regex: regex replacement is not supported", path);
    if ((rc = tok_get_str(t, node, path, "content", 1, &content, err))) return rc;
    if (!*pat) return tok_fail(err, FB_EFORMAT, t, "%s.pattern.String: empty", path);
    fb_normalizer st = {.kind = FB_NORMALIZE_REPLACE};
    st.a = dup_str(pat, &st.alen);
    st.b = dup_str(content, &st.blen);
    if (!st.a || !st.b) {
      free(st.a);
      free(st.b);
      return FB_ENOMEM;
    }
    return add_norm(t, st);
  }
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = tok_field(node, "normalizers"), *it;
    if (!cJSON_IsArray(list))
      return tok_fail(err, FB_EFORMAT, t, "%s.normalizers: expected an array", path);
    int i = 0;
    cJSON_ArrayForEach(it, list) {
      char sub[200];
      snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i++);
      if ((rc = parse_normalizer(t, it, sub, err))) return rc;
    }
    return 0;
  }
  return tok_fail(err, FB_EUNSUPPORTED, t,
                  "%s.type: \"%s\" is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                  "Prepend, Replace, Sequence)",
                  path, type);
}

/* ---- pre-tokenizers ---- */

static int add_pre(fb_tokenizer *t, fb_pretok st) {
  fb_pretok *p = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *p);
  if (!p) {
    pcre2_code_free(st.re);
    return FB_ENOMEM;
  }
  t->pre = p;
  t->pre[t->n_pre++] = st;
  return 0;
}

static int compile(fb_tokenizer *t, const char *pat, size_t n, const char *path, pcre2_code **re,
                   fb_err *err) {
  char msg[300];
  int rc = fb_pretok_regex(re, pat, n, msg, sizeof msg);
  return rc ? tok_fail(err, rc, t, "%s: %s", path, msg) : 0;
}

static int prepend_scheme(const fb_tokenizer *t, const cJSON *node, const char *path, int *out,
                          fb_err *err) {
  const char *s;
  int rc = tok_get_str(t, node, path, "prepend_scheme", 0, &s, err), add;
  if (rc) return rc;
  if (!s) { /* older files: add_prefix_space */
    if ((rc = tok_get_bool(t, node, path, "add_prefix_space", 1, &add, err))) return rc;
    *out = add ? FB_PREPEND_ALWAYS : FB_PREPEND_NEVER;
    return 0;
  }
  if (!strcmp(s, "always"))
    *out = FB_PREPEND_ALWAYS;
  else if (!strcmp(s, "first"))
    *out = FB_PREPEND_FIRST;
  else if (!strcmp(s, "never"))
    *out = FB_PREPEND_NEVER;
  else
    return tok_fail(err, FB_EFORMAT, t,
                    "%s.prepend_scheme: \"%s\" is not one of always, first, never", path, s);
  return 0;
}

static int get_replacement(const fb_tokenizer *t, const cJSON *node, const char *path, char *buf,
                           size_t *n, fb_err *err) {
  const char *s;
  int rc = tok_get_str(t, node, path, "replacement", 0, &s, err);
  if (rc) return rc;
  if (!s) s = "\xE2\x96\x81"; /* ▁ */
  *n = strlen(s);
  if (*n == 0 || *n > 4)
    return tok_fail(err, FB_EFORMAT, t, "%s.replacement: expected one character", path);
  memcpy(buf, s, *n);
  return 0;
}

static int parse_pretokenizer(fb_tokenizer *t, const cJSON *node, const char *path, fb_err *err) {
  const char *type;
  int rc = tok_get_type(t, node, path, &type, err);
  if (rc) return rc;
  fb_pretok st = {0};
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = tok_field(node, "pretokenizers"), *it;
    if (!cJSON_IsArray(list))
      return tok_fail(err, FB_EFORMAT, t, "%s.pretokenizers: expected an array", path);
    int i = 0;
    cJSON_ArrayForEach(it, list) {
      char sub[200];
      snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i++);
      if ((rc = parse_pretokenizer(t, it, sub, err))) return rc;
    }
    return 0;
  }
  if (!strcmp(type, "Split")) {
    int is_regex, invert;
    const char *pat, *beh;
    char sub[220];
    if ((rc = tok_get_pattern(t, node, path, &is_regex, &pat, err))) return rc;
    if ((rc = tok_get_bool(t, node, path, "invert", 0, &invert, err))) return rc;
    if (invert) return tok_fail(err, FB_EUNSUPPORTED, t, "%s.invert: true is not supported", path);
    if ((rc = tok_get_str(t, node, path, "behavior", 1, &beh, err))) return rc;
    static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                        "MergedWithNext"};
    int b = -1;
    for (int i = 0; i < 4; i++)
      if (!strcmp(beh, names[i])) b = i;
    if (b < 0)
      return tok_fail(err, FB_EUNSUPPORTED, t,
                      "%s.behavior: \"%s\" is not one of Isolated, Removed, "
                      "MergedWithPrevious, MergedWithNext",
                      path, beh);
    st.kind = FB_PRE_SPLIT;
    st.behavior = (fb_split_behavior)b;
    snprintf(sub, sizeof sub, "%s.pattern.%s", path, is_regex ? "Regex" : "String");
    if (is_regex)
      rc = compile(t, pat, strlen(pat), sub, &st.re, err);
    else { /* a literal: escape every ASCII punctuation character for PCRE2 */
      size_t n = strlen(pat), o = 0;
      char *q = malloc(2 * n + 1);
      if (!q) return FB_ENOMEM;
      for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pat[i];
        if (c < 0x80 && !(c >= '0' && c <= '9') && !((c | 32) >= 'a' && (c | 32) <= 'z'))
          q[o++] = '\\';
        q[o++] = (char)c;
      }
      rc = compile(t, q, o, sub, &st.re, err);
      free(q);
    }
    return rc ? rc : add_pre(t, st);
  }
  if (!strcmp(type, "Digits")) {
    /* Hugging Face's tokenizers splits off each char::is_numeric character (Unicode's Nd, Nl
     * and No: PCRE2's \p{N}), Isolated, or runs of them (Contiguous); SmolLM2 splits digits
     * one by one before ByteLevel, as llama.cpp's "smollm" pre-tokenizer does. */
    int individual;
    if ((rc = tok_get_bool(t, node, path, "individual_digits", 0, &individual, err))) return rc;
    const char *pat = individual ? "\\p{N}" : "\\p{N}+";
    st.kind = FB_PRE_SPLIT;
    st.behavior = FB_SPLIT_ISOLATED;
    rc = compile(t, pat, strlen(pat), path, &st.re, err);
    return rc ? rc : add_pre(t, st);
  }
  if (!strcmp(type, "ByteLevel")) {
    int use_regex;
    st.kind = FB_PRE_BYTELEVEL;
    if ((rc = tok_get_bool(t, node, path, "add_prefix_space", 0, &st.add_prefix_space, err)))
      return rc;
    if ((rc = tok_get_bool(t, node, path, "use_regex", 1, &use_regex, err))) return rc;
    if (use_regex && (rc = compile(t, fb_pretok_gpt2_pattern, strlen(fb_pretok_gpt2_pattern), path,
                                   &st.re, err)))
      return rc;
    t->byte_level = 1;
    return add_pre(t, st);
  }
  if (!strcmp(type, "Metaspace")) {
    int prep;
    st.kind = FB_PRE_METASPACE;
    if ((rc = get_replacement(t, node, path, st.repl, &st.repl_len, err))) return rc;
    if ((rc = prepend_scheme(t, node, path, &prep, err))) return rc;
    st.prepend = (fb_prepend_scheme)prep;
    if ((rc = tok_get_bool(t, node, path, "split", 1, &st.split, err))) return rc;
    return add_pre(t, st);
  }
  return tok_fail(err, FB_EUNSUPPORTED, t,
                  "%s.type: \"%s\" is not supported (supported: Split, "
                  "Digits, ByteLevel, Metaspace, Sequence)",
                  path, type);
}

/* ---- decoders: flattened to steps, then turned into a decoded-bytes table per id ---- */

static int parse_decoder(fb_tokenizer *t, const cJSON *node, const char *path, dec_step *steps,
                         int *n, fb_err *err) {
  const char *type;
  int rc = tok_get_type(t, node, path, &type, err);
  if (rc) return rc;
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = tok_field(node, "decoders"), *it;
    if (!cJSON_IsArray(list))
      return tok_fail(err, FB_EFORMAT, t, "%s.decoders: expected an array", path);
    int i = 0;
    cJSON_ArrayForEach(it, list) {
      char sub[200];
      snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i++);
      if ((rc = parse_decoder(t, it, sub, steps, n, err))) return rc;
    }
    return 0;
  }
  if (*n == 16) return tok_fail(err, FB_ELIMIT, t, "%s: more than 16 decoders", path);
  dec_step *st = &steps[(*n)++];
  memset(st, 0, sizeof *st);
  if (!strcmp(type, "ByteLevel"))
    st->kind = DEC_BYTELEVEL;
  else if (!strcmp(type, "ByteFallback"))
    st->kind = DEC_BYTEFALLBACK;
  else if (!strcmp(type, "Fuse"))
    st->kind = DEC_FUSE;
  else if (!strcmp(type, "Replace")) {
    int is_regex;
    const char *pat, *content;
    st->kind = DEC_REPLACE;
    if ((rc = tok_get_pattern(t, node, path, &is_regex, &pat, err))) return rc;
    if (is_regex)
      return tok_fail(err, FB_EUNSUPPORTED, t, "%s.pattern.Regex: not supported in a decoder",
                      path);
    if ((rc = tok_get_str(t, node, path, "content", 1, &content, err))) return rc;
    st->alen = strlen(pat);
    st->blen = strlen(content);
    if (!st->alen || st->alen >= sizeof st->a || st->blen >= sizeof st->b)
      return tok_fail(err, FB_EUNSUPPORTED, t, "%s: pattern and content must be 1-15 bytes", path);
    memcpy(st->a, pat, st->alen);
    memcpy(st->b, content, st->blen);
  } else if (!strcmp(type, "Strip")) {
    const char *content;
    int32_t start, stop;
    st->kind = DEC_STRIP;
    if ((rc = tok_get_str(t, node, path, "content", 1, &content, err))) return rc;
    if (strlen(content) != 1)
      return tok_fail(err, FB_EUNSUPPORTED, t, "%s.content: only a one-byte character is supported",
                      path);
    st->a[0] = content[0];
    char sub[220];
    snprintf(sub, sizeof sub, "%s.start", path);
    if ((rc = tok_get_int(t, tok_field(node, "start"), sub, 0, 64, &start, err))) return rc;
    snprintf(sub, sizeof sub, "%s.stop", path);
    if ((rc = tok_get_int(t, tok_field(node, "stop"), sub, 0, 64, &stop, err))) return rc;
    if (stop) return tok_fail(err, FB_EUNSUPPORTED, t, "%s.stop: only 0 is supported", path);
    st->start = start;
  } else if (!strcmp(type, "Metaspace")) {
    st->kind = DEC_METASPACE;
    if ((rc = get_replacement(t, node, path, st->a, &st->alen, err))) return rc;
    if ((rc = prepend_scheme(t, node, path, &st->prepend, err))) return rc;
  } else
    return tok_fail(err, FB_EUNSUPPORTED, t,
                    "%s.type: \"%s\" is not supported (supported: ByteLevel, "
                    "ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)",
                    path, type);
  return 0;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Append the decoded bytes of model token s[0..n) after the per-token steps. */
static int decode_token(const dec_step *steps, int n_steps, const char *s, size_t n, fb_text *out,
                        fb_text *tmp) {
  tmp->len = 0;
  if (fb_text_put(tmp, s, n, 0)) return FB_ENOMEM;
  for (int k = 0; k < n_steps; k++) {
    const dec_step *st = &steps[k];
    if (st->kind == DEC_FUSE) break; /* what follows acts on the joined text */
    fb_text nx = {0};
    int rc = 0;
    const char *p = tmp->s;
    size_t len = tmp->len;
    if (st->kind == DEC_BYTEFALLBACK) {
      int hi = len == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' ? hex_digit(p[3]) : -1;
      int lo = hi >= 0 ? hex_digit(p[4]) : -1;
      char c = (char)(hi * 16 + lo);
      rc = lo >= 0 ? fb_text_put(&nx, &c, 1, 0) : fb_text_put(&nx, p, len, 0);
    } else if (st->kind == DEC_BYTELEVEL) {
      for (size_t i = 0; i < len && !rc;) {
        int32_t cp;
        size_t k2 = fb_utf8_decode(p + i, len - i, &cp);
        char b = (char)(cp < 324 && cp_byte[cp] >= 0 ? cp_byte[cp] : 0);
        rc = cp < 324 && cp_byte[cp] >= 0 ? fb_text_put(&nx, &b, 1, 0)
                                          : fb_text_put(&nx, p + i, k2, 0);
        i += k2;
      }
    } else if (st->kind == DEC_REPLACE || st->kind == DEC_METASPACE) {
      const char *a = st->a, *b = st->kind == DEC_REPLACE ? st->b : " ";
      size_t alen = st->alen, blen = st->kind == DEC_REPLACE ? st->blen : 1;
      for (size_t i = 0; i < len && !rc;) {
        if (i + alen <= len && !memcmp(p + i, a, alen)) {
          rc = fb_text_put(&nx, b, blen, 0);
          i += alen;
        } else
          rc = fb_text_put(&nx, p + i++, 1, 0);
      }
    } else if (st->kind == DEC_STRIP) { /* before Fuse: each token */
      size_t i = 0;
      while ((int)i < st->start && i < len && p[i] == st->a[0]) i++;
      rc = fb_text_put(&nx, p + i, len - i, 0);
    }
    if (rc) {
      fb_text_free(&nx);
      return rc;
    }
    fb_text_free(tmp);
    *tmp = nx;
  }
  return fb_text_put(out, tmp->s, tmp->len, 0);
}

static int build_decoder(fb_tokenizer *t, const cJSON *root, fb_err *err) {
  dec_step steps[16];
  int n = 0, rc;
  const cJSON *d = tok_field(root, "decoder");
  if (d && (rc = parse_decoder(t, d, "decoder", steps, &n, err))) return rc;
  int fused = 0;
  for (int k = 0; k < n; k++) {
    if (steps[k].kind == DEC_FUSE) fused = 1;
    if (steps[k].kind == DEC_STRIP && fused && steps[k].start) {
      t->strip_char = steps[k].a[0];
      t->strip_n = steps[k].start;
    }
    if (steps[k].kind == DEC_METASPACE && steps[k].prepend != FB_PREPEND_NEVER) {
      t->strip_char = ' ';
      t->strip_n = 1;
    }
  }
  int32_t n_ids = t->vocab.n_ids;
  t->dec_off = malloc(((size_t)n_ids + 1) * sizeof *t->dec_off);
  if (!t->dec_off) return FB_ENOMEM;
  fb_text tmp = {0};
  for (int32_t id = 0; id < n_ids; id++) {
    t->dec_off[id] = t->dec.len;
    size_t len;
    const char *s = fb_vocab_str(&t->vocab, id, &len);
    if (!s) continue;
    rc = t->kind[id] ? fb_text_put(&t->dec, s, len, 0)
                     : decode_token(steps, n, s, len, &t->dec, &tmp);
    if (rc) break;
  }
  t->dec_off[n_ids] = t->dec.len;
  fb_text_free(&tmp);
  return rc;
}

/* ---- the model and added tokens ---- */

static int merge_parts(const fb_tokenizer *t, const cJSON *m, int i, const char **a, size_t *an,
                       const char **b, size_t *bn, fb_err *err) {
  char q[120];
  if (cJSON_IsString(m)) {
    const char *s = m->valuestring, *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
      return tok_fail(err, FB_EFORMAT, t,
                      "model.merges[%d]: %s is not two tokens separated by one space", i,
                      tok_quote(s, strlen(s), q, sizeof q));
    *a = s, *an = (size_t)(sp - s), *b = sp + 1, *bn = strlen(sp + 1);
    return 0;
  }
  if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
      cJSON_IsString(m->child->next)) {
    *a = m->child->valuestring, *an = strlen(*a);
    *b = m->child->next->valuestring, *bn = strlen(*b);
    return 0;
  }
  return tok_fail(err, FB_EFORMAT, t, "model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", i);
}

static int is_byte_fallback(const fb_tokenizer *t, int32_t id) {
  for (int b = 0; b < 256; b++)
    if (t->fallback_id[b] == id) return 1;
  return 0;
}

/* A model token of more than one character (not unk, not <0xNN>): only a merge makes it, or
 * with ignore_merges a whole word. Its id, or -1. */
static int32_t multi_char_token(const fb_tokenizer *t) {
  for (int32_t id = 0; id < t->vocab.n_ids; id++) {
    size_t n, chars = 0;
    const char *s = fb_vocab_str(&t->vocab, id, &n);
    if (!s || t->kind[id] || id == t->unk_id) continue;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars > 1 && !is_byte_fallback(t, id)) return id;
  }
  return -1;
}

/* No merges and a vocab of words would encode everything as single characters (training 5x
 * slower, on ids the model never saw): a truncated or mis-exported file, not a byte-level one. */
static int check_no_merges(const fb_tokenizer *t, fb_err *err) {
  int32_t id = t->ignore_merges ? -1 : multi_char_token(t);
  if (id < 0) return 0;
  size_t n;
  const char *s = fb_vocab_str(&t->vocab, id, &n);
  char q[120];
  return tok_fail(err, FB_EFORMAT, t,
                  "model.merges: empty, but model.vocab has tokens of several characters that only "
                  "merges make (%s, id %d)",
                  tok_quote(s, n, q, sizeof q), id);
}

static int load_merges(fb_tokenizer *t, const cJSON *model, fb_err *err) {
  const cJSON *merges = tok_field(model, "merges"), *m;
  if (!cJSON_IsArray(merges))
    return tok_fail(err, FB_EFORMAT, t, "model.merges: expected an array");
  if (fb_merges_init(&t->merges, (size_t)cJSON_GetArraySize(merges))) return FB_ENOMEM;
  if (!merges->child) return check_no_merges(t, err);
  char *cat = NULL;
  size_t cat_cap = 0;
  int i = 0, rc = 0;
  cJSON_ArrayForEach(m, merges) {
    const char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    char q[120], q2[120];
    if ((rc = merge_parts(t, m, i, &a, &an, &b, &bn, err))) break;
    int32_t l = fb_vocab_get(&t->vocab, a, an), r = fb_vocab_get(&t->vocab, b, bn);
    if (l < 0 || r < 0) {
      const char *part = l < 0 ? a : b;
      size_t pn = l < 0 ? an : bn;
      char whole[300];
      snprintf(whole, sizeof whole, "%.*s %.*s", (int)an, a, (int)bn, b);
      rc = tok_fail(err, FB_EFORMAT, t, "model.merges[%d]: %s: part %s is not in the vocab", i,
                    tok_quote(whole, strlen(whole), q, sizeof q),
                    tok_quote(part, pn, q2, sizeof q2));
      break;
    }
    if (an + bn > cat_cap) {
      cat_cap = (an + bn) * 2;
      char *c = realloc(cat, cat_cap);
      if (!c) {
        rc = FB_ENOMEM;
        break;
      }
      cat = c;
    }
    memcpy(cat, a, an);
    memcpy(cat + an, b, bn);
    int32_t id = fb_vocab_get(&t->vocab, cat, an + bn);
    if (id < 0) {
      rc = tok_fail(err, FB_EFORMAT, t, "model.merges[%d]: the merged token %s is not in the vocab",
                    i, tok_quote(cat, an + bn, q, sizeof q));
      break;
    }
    if ((rc = fb_merges_put(&t->merges, l, r, (uint32_t)i, id)) < 0) break;
    rc = 0;
    i++;
  }
  free(cat);
  return rc;
}

static int load_added(fb_tokenizer *t, const cJSON *list, int32_t n_model, fb_err *err) {
  int i = 0, rc;
  const cJSON *it;
  cJSON_ArrayForEach(it, list) {
    char path[64], q[120], q2[120];
    snprintf(path, sizeof path, "added_tokens[%d]", i);
    added_tok *a = &t->added[i++];
    const char *content;
    int32_t id;
    int single, normalized;
    if (!cJSON_IsObject(it)) return tok_fail(err, FB_EFORMAT, t, "%s: expected an object", path);
    if ((rc = tok_get_str(t, it, path, "content", 1, &content, err))) return rc;
    if (!*content) return tok_fail(err, FB_EFORMAT, t, "%s.content: empty", path);
    if ((rc = tok_get_bool(t, it, path, "special", 0, &a->special, err)) ||
        (rc = tok_get_bool(t, it, path, "lstrip", 0, &a->lstrip, err)) ||
        (rc = tok_get_bool(t, it, path, "rstrip", 0, &a->rstrip, err)) ||
        (rc = tok_get_bool(t, it, path, "single_word", 0, &single, err)) ||
        (rc = tok_get_bool(t, it, path, "normalized", 0, &normalized, err)))
      return rc;
    if (single)
      return tok_fail(err, FB_EUNSUPPORTED, t, "%s.single_word: true is not supported", path);
    char idpath[80];
    snprintf(idpath, sizeof idpath, "%s.id", path);
    if ((rc = tok_get_int(t, tok_field(it, "id"), idpath, 0, 2147483646.0, &id, err))) return rc;
    if (id >= n_model + t->n_added)
      return tok_fail(err, FB_EFORMAT, t,
                      "%s: %d is past the vocab (%d model tokens + %d added tokens)", idpath, id,
                      n_model, t->n_added);
    if (!(a->s = dup_str(content, &a->n))) return FB_ENOMEM;
    a->id = id;
    size_t have_n;
    const char *have = fb_vocab_str(&t->vocab, id, &have_n);
    if (have && (have_n != a->n || memcmp(have, content, a->n)))
      return tok_fail(err, FB_EFORMAT, t, "%s: id %d is %s in the vocab, not %s", path, id,
                      tok_quote(have, have_n, q, sizeof q),
                      tok_quote(content, a->n, q2, sizeof q2));
    if (!have) {
      int32_t other;
      if (fb_vocab_put(&t->vocab, content, a->n, id, &other))
        return other >= 0 ? tok_fail(err, FB_EFORMAT, t, "%s: %s already has id %d", path,
                                     tok_quote(content, a->n, q, sizeof q), other)
                          : FB_ENOMEM;
    }
    t->kind[id] = a->special ? 2 : 1;
    unsigned char c = (unsigned char)content[0];
    t->first_any[c / 8] |= (unsigned char)(1u << (c % 8));
    if (!a->special) t->first_plain[c / 8] |= (unsigned char)(1u << (c % 8));
  }
  return 0;
}

static int load_model(fb_tokenizer *t, const cJSON *root, fb_err *err) {
  const cJSON *model = tok_field(root, "model"), *added = tok_field(root, "added_tokens"), *it;
  const char *type, *s;
  int rc;
  if ((rc = tok_get_type(t, model, "model", &type, err))) return rc;
  if (strcmp(type, "BPE"))
    return tok_fail(err, FB_EUNSUPPORTED, t, "model.type: \"%s\" is not supported (supported: BPE)",
                    type);
  const cJSON *vocab = tok_field(model, "vocab");
  if (!cJSON_IsObject(vocab))
    return tok_fail(err, FB_EFORMAT, t, "model.vocab: expected an object");
  if (added && !cJSON_IsArray(added))
    return tok_fail(err, FB_EFORMAT, t, "added_tokens: expected an array");
  int32_t n_model = 0, max_added = -1, id, entries = cJSON_GetArraySize(vocab);
  t->n_added = added ? cJSON_GetArraySize(added) : 0;
  if (entries > FB_TOK_MAX_VOCAB || t->n_added > FB_TOK_MAX_VOCAB - entries)
    return tok_fail(err, FB_ELIMIT, t,
                    "%s: %d model tokens and %d added tokens, over the cap of %d ids",
                    entries > FB_TOK_MAX_VOCAB ? "model.vocab" : "added_tokens", entries,
                    t->n_added, FB_TOK_MAX_VOCAB);
  cJSON_ArrayForEach(it, vocab) { /* ids are checked before any array is sized by them */
    char path[200], q[120];
    snprintf(path, sizeof path, "model.vocab[%s]",
             tok_quote(it->string, strlen(it->string), q, sizeof q));
    if ((rc = tok_get_int(t, it, path, 0, 2147483646.0, &id, err))) return rc;
    if (id >= entries)
      return tok_fail(err, FB_EFORMAT, t,
                      "%s: id %d is past the vocab's %d entries (ids are 0..%d)", path, id, entries,
                      entries - 1);
    if (id >= n_model) n_model = id + 1;
  }
  cJSON_ArrayForEach(it, added) {
    const cJSON *v = tok_field(it, "id");
    if (cJSON_IsNumber(v) && v->valuedouble > max_added && v->valuedouble < n_model + t->n_added)
      max_added = (int32_t)v->valuedouble;
  }
  int32_t n_ids = max_added + 1 > n_model ? max_added + 1 : n_model;
  if (fb_vocab_init(&t->vocab, n_ids)) return FB_ENOMEM;
  t->kind = calloc((size_t)n_ids + 1, 1);
  t->added = calloc((size_t)t->n_added + 1, sizeof *t->added);
  if (!t->kind || !t->added) return FB_ENOMEM;
  cJSON_ArrayForEach(it, vocab) {
    int32_t other;
    char q[120], q2[120];
    const char *k = it->string;
    id = (int32_t)it->valuedouble;
    if (fb_vocab_put(&t->vocab, k, strlen(k), id, &other)) {
      size_t on;
      const char *os = other >= 0 ? fb_vocab_str(&t->vocab, other, &on) : NULL;
      if (!os) return FB_ENOMEM;
      return tok_fail(err, FB_EFORMAT, t, "model.vocab[%s]: id %d is already %s",
                      tok_quote(k, strlen(k), q, sizeof q), id, tok_quote(os, on, q2, sizeof q2));
    }
  }
  if (added && (rc = load_added(t, added, n_model, err))) return rc;
  if ((rc = tok_get_str(t, model, "model", "unk_token", 0, &s, err))) return rc;
  t->unk_id = -1;
  if (s && (t->unk_id = fb_vocab_get(&t->vocab, s, strlen(s))) < 0) {
    char q[120];
    return tok_fail(err, FB_EFORMAT, t, "model.unk_token: %s is not in the vocab",
                    tok_quote(s, strlen(s), q, sizeof q));
  }
  if ((rc = tok_get_bool(t, model, "model", "byte_fallback", 0, &t->byte_fallback, err)) ||
      (rc = tok_get_bool(t, model, "model", "fuse_unk", 0, &t->fuse_unk, err)) ||
      (rc = tok_get_bool(t, model, "model", "ignore_merges", 0, &t->ignore_merges, err)))
    return rc;
  const cJSON *dropout = tok_field(model, "dropout");
  if (dropout && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
    return tok_fail(err, FB_EUNSUPPORTED, t, "model.dropout: only null or 0 is supported");
  static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    if ((rc = tok_get_str(t, model, "model", affixes[i], 0, &s, err))) return rc;
    if (s && *s)
      return tok_fail(err, FB_EUNSUPPORTED, t, "model.%s: only \"\" or null is supported",
                      affixes[i]);
  }
  t->all_fallback = 1;
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    t->fallback_id[b] = fb_vocab_get(&t->vocab, name, 6);
    if (t->fallback_id[b] < 0) t->all_fallback = 0;
  }
  return load_merges(t, model, err);
}

static int finish_byte_level(fb_tokenizer *t, fb_err *err) {
  if (!t->byte_level) return 0;
  for (int b = 0; b < 256; b++) {
    char c[4], q[16];
    size_t n = fb_utf8_encode(byte_cp_tab[b], c);
    if ((t->byte_id[b] = fb_vocab_get(&t->vocab, c, n)) < 0)
      return tok_fail(err, FB_EFORMAT, t,
                      "model.vocab: the byte-level token %s for byte 0x%02X is missing",
                      tok_quote(c, n, q, sizeof q), b);
  }
  return 0;
}

static fb_tokenizer *new_tokenizer(const char *name) {
  init_byte_tables();
  fb_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->t0.track = t->sec.track = t->tmp.track = 1;
  if (fb_pretok_work_init(&t->pw, 1)) {
    free(t);
    return NULL;
  }
  return t;
}

int fb_tokenizer_from_json(fb_tokenizer **out, const char *json, size_t n, const char *name,
                           fb_err *err) {
  *out = NULL;
  fb_tokenizer *t = new_tokenizer(name);
  if (!t) return fb_err_set(err, FB_ENOMEM, "%s: out of memory", name);
  const char *end = json;
  cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
  while (root && end < json + n && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
    end++;
  int rc;
  if (!root || !cJSON_IsObject(root)) {
    rc = tok_fail(err, FB_EFORMAT, t, "not a JSON object");
  } else if (end < json + n) {
    rc = tok_fail(err, FB_EFORMAT, t, "text after the JSON object at byte %zu",
                  (size_t)(end - json));
  } else {
    const cJSON *norm = tok_field(root, "normalizer"), *pre = tok_field(root, "pre_tokenizer");
    rc = load_model(t, root, err);
    if (!rc && norm) rc = parse_normalizer(t, norm, "normalizer", err);
    if (!rc && pre) rc = parse_pretokenizer(t, pre, "pre_tokenizer", err);
    if (!rc) rc = build_decoder(t, root, err);
    if (!rc) rc = finish_byte_level(t, err);
  }
  cJSON_Delete(root);
  if (rc == FB_ENOMEM) fb_err_set(err, rc, "%s: out of memory", name);
  if (rc) {
    fb_tokenizer_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

#define MAX_TOKENIZER_BYTES ((size_t)256 << 20) /* real ones are a few MB; Qwen's is 11 */

int fb_tokenizer_load(fb_tokenizer **out, const char *path, fb_err *err) {
  *out = NULL;
  char file[4096];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
  else
    snprintf(file, sizeof file, "%s", path);
  char *buf;
  size_t size;
  int rc = fb_read_file(file, &buf, &size, MAX_TOKENIZER_BYTES, err);
  if (rc) return rc;
  rc = fb_tokenizer_from_json(out, buf, size, file, err);
  free(buf);
  return rc;
}

int fb_tokenizer_bytes(fb_tokenizer **out, const char *const *specials, int n_specials,
                       fb_err *err) {
  *out = NULL;
  fb_tokenizer *t = new_tokenizer("byte tokenizer");
  int rc = FB_ENOMEM;
  if (!t || fb_vocab_init(&t->vocab, 256 + n_specials) ||
      !(t->kind = calloc((size_t)n_specials + 257, 1)) ||
      !(t->added = calloc((size_t)n_specials + 1, sizeof *t->added)))
    goto fail;
  t->bytes_model = 1;
  t->unk_id = -1;
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    if (fb_vocab_put(&t->vocab, &c, 1, b, NULL)) goto fail;
    t->fallback_id[b] = -1;
  }
  for (int i = 0; i < n_specials; i++) {
    added_tok *a = &t->added[i];
    if (!specials[i][0] || !(a->s = dup_str(specials[i], &a->n))) {
      rc = specials[i][0]
               ? FB_ENOMEM
               : fb_err_set(err, FB_EINVALID, "byte tokenizer: special token %d is empty", i);
      goto fail;
    }
    t->n_added = i + 1;
    a->id = 256 + i;
    a->special = 1;
    if (fb_vocab_put(&t->vocab, a->s, a->n, a->id, NULL)) {
      rc =
          fb_err_set(err, FB_EINVALID, "byte tokenizer: special token \"%s\" is given twice", a->s);
      goto fail;
    }
    t->kind[a->id] = 2;
    unsigned char c = (unsigned char)a->s[0];
    t->first_any[c / 8] |= (unsigned char)(1u << (c % 8));
  }
  if (!(rc = build_decoder(t, NULL, err))) {
    *out = t;
    return 0;
  }
fail:
  if (rc == FB_ENOMEM) fb_err_set(err, rc, "byte tokenizer: out of memory");
  fb_tokenizer_free(t);
  return rc;
}
