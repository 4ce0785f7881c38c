/* tokenizer.c: encodes and decodes with a tokenizer that tokenizer_load.c built (added tokens
 * split out first, then normalizers, pre-tokenizers and BPE; decoding through the per-id
 * decoded bytes, streamed). The byte tokenizer shares the added-token and decode paths. Chat
 * templates and BOS/EOS insertion live elsewhere (templates.lua). */
#include "tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int fb_tok_ids_push(fb_tok_ids *ids, int32_t x) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) return FB_ENOMEM;
    ids->v = v;
    ids->cap = cap;
  }
  ids->v[ids->n++] = x;
  return 0;
}

void fb_tokenizer_free(fb_tokenizer *t) {
  if (!t) return;
  fb_vocab_free(&t->vocab);
  fb_merges_free(&t->merges);
  for (int i = 0; t->added && i < t->n_added; i++) free(t->added[i].s);
  free(t->added);
  free(t->kind);
  fb_normalize_free(t->norm, t->n_norm);
  fb_pretok_free(t->pre, t->n_pre);
  fb_text_free(&t->dec);
  free(t->dec_off);
  fb_text_free(&t->t0);
  fb_text_free(&t->sec);
  fb_text_free(&t->tmp);
  fb_text_free(&t->word);
  fb_pieces_free(&t->secs);
  fb_pieces_free(&t->pieces);
  free(t->sec_added.v);
  fb_pretok_work_free(&t->pw);
  fb_bpe_work_free(&t->bw);
  free(t);
}

int32_t fb_tokenizer_vocab_size(const fb_tokenizer *t) { return t->vocab.n_ids; }

int32_t fb_tokenizer_token_id(const fb_tokenizer *t, const char *s) {
  return fb_vocab_get(&t->vocab, s, strlen(s));
}

const char *fb_tokenizer_token(const fb_tokenizer *t, int32_t id, size_t *n) {
  return fb_vocab_str(&t->vocab, id, n);
}

int fb_tokenizer_is_special(const fb_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->vocab.n_ids && t->kind[id] == 2;
}

/* ---- encode ---- */

static int emit(fb_tok_ids *ids, fb_tok_ids *offs, int32_t id, uint32_t off) {
  if (fb_tok_ids_push(ids, id)) return FB_ENOMEM;
  return offs ? fb_tok_ids_push(offs, (int32_t)off) : 0;
}

/* One word of the pre-tokenized section t->sec: BPE, then byte fallback or unk for pieces that
 * are not in the vocab. */
static int encode_word(fb_tokenizer *t, size_t off, size_t len, fb_tok_ids *ids, fb_tok_ids *offs) {
  const char *w = t->sec.s + off;
  const uint32_t *map = t->sec.map + off;
  if (t->bytes_model) {
    for (size_t i = 0; i < len; i++)
      if (emit(ids, offs, (unsigned char)w[i], map[i])) return FB_ENOMEM;
    return 0;
  }
  if (t->ignore_merges) {
    int32_t id = -1;
    if (t->byte_level) {
      t->word.len = 0;
      for (size_t i = 0; i < len; i++) {
        char c[4];
        if (fb_text_put(&t->word, c, fb_utf8_encode(fb_tok_byte_char((unsigned char)w[i]), c), 0))
          return FB_ENOMEM;
      }
      id = fb_vocab_get(&t->vocab, t->word.s, t->word.len);
    } else
      id = fb_vocab_get(&t->vocab, w, len);
    if (id >= 0) return emit(ids, offs, id, map[0]);
  }
  if (fb_bpe_reserve(&t->bw, len)) return FB_ENOMEM;
  fb_bpe_sym *sym = t->bw.sym;
  size_t n = 0;
  for (size_t i = 0; i < len; n++) {
    size_t k = 1;
    if (t->byte_level)
      sym[n].id = t->byte_id[(unsigned char)w[i]];
    else {
      int32_t cp;
      k = fb_utf8_decode(w + i, len - i, &cp);
      sym[n].id = fb_vocab_get(&t->vocab, w + i, k);
    }
    sym[n].start = (uint32_t)i;
    sym[n].len = (uint32_t)k;
    i += k;
  }
  if (n == 1) sym[0].next = -1;
  if (n > 1 && fb_bpe_merge(&t->merges, &t->bw, n)) return FB_ENOMEM;
  sym = t->bw.sym;
  int last_unk = 0;
  for (int32_t i = 0; n && i >= 0; i = sym[i].next) {
    if (sym[i].id >= 0) {
      if (emit(ids, offs, sym[i].id, map[sym[i].start])) return FB_ENOMEM;
      last_unk = 0;
    } else if (t->byte_fallback && t->all_fallback) {
      for (uint32_t b = 0; b < sym[i].len; b++)
        if (emit(ids, offs, t->fallback_id[(unsigned char)w[sym[i].start + b]], map[sym[i].start]))
          return FB_ENOMEM;
      last_unk = 0;
    } else if (t->unk_id >= 0 && !(t->fuse_unk && last_unk)) {
      if (emit(ids, offs, t->unk_id, map[sym[i].start])) return FB_ENOMEM;
      last_unk = 1;
    }
  }
  return 0;
}

/* The added token allowed by flags that starts at s[0..n) and is longest, or NULL. */
static const added_tok *added_at(const fb_tokenizer *t, const char *s, size_t n, int flags) {
  const added_tok *best = NULL;
  for (int i = 0; i < t->n_added; i++) {
    const added_tok *a = &t->added[i];
    if ((a->special && !(flags & FB_TOK_SPECIAL)) || a->n > n || (best && a->n <= best->n))
      continue;
    if (!memcmp(s, a->s, a->n)) best = a;
  }
  return best;
}

/* Cut t->t0 into sections: text, or an added token (sec_added holds its index, else -1). */
static int split_added(fb_tokenizer *t, int flags) {
  const unsigned char *first = flags & FB_TOK_SPECIAL ? t->first_any : t->first_plain;
  const char *s = t->t0.s;
  size_t n = t->t0.len, start = 0, i = 0;
  t->secs.n = t->sec_added.n = 0;
  fb_pieces *secs = &t->secs;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    const added_tok *a = first[c / 8] & (1u << (c % 8)) ? added_at(t, s + i, n - i, flags) : NULL;
    if (!a) {
      i++;
      continue;
    }
    if (i > start && (fb_pieces_push(secs, start, i - start) || fb_tok_ids_push(&t->sec_added, -1)))
      return FB_ENOMEM;
    if (fb_pieces_push(secs, i, a->n) || fb_tok_ids_push(&t->sec_added, (int32_t)(a - t->added)))
      return FB_ENOMEM;
    i += a->n;
    start = i;
  }
  if (n > start && (fb_pieces_push(secs, start, n - start) || fb_tok_ids_push(&t->sec_added, -1)))
    return FB_ENOMEM;
  /* lstrip/rstrip: an added token swallows the white space beside it */
  for (size_t k = 0; k < secs->n; k++) {
    int32_t ai = t->sec_added.v[k];
    if (ai < 0) continue;
    if (t->added[ai].lstrip && k > 0 && t->sec_added.v[k - 1] < 0) {
      size_t o = secs->off[k - 1], e = o + secs->len[k - 1];
      while (e > o) {
        size_t b = e - 1;
        while (b > o && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
        int32_t cp;
        fb_utf8_decode(s + b, e - b, &cp);
        if (!fb_utf8_is_js_space(cp)) break;
        e = b;
      }
      secs->len[k - 1] = e - o;
    }
    if (t->added[ai].rstrip && k + 1 < secs->n && t->sec_added.v[k + 1] < 0) {
      size_t o = secs->off[k + 1], e = o + secs->len[k + 1];
      while (o < e) {
        int32_t cp;
        size_t m = fb_utf8_decode(s + o, e - o, &cp);
        if (!fb_utf8_is_js_space(cp)) break;
        o += m;
      }
      secs->len[k + 1] = e - o;
      secs->off[k + 1] = o;
    }
  }
  return 0;
}

int fb_tokenizer_encode(fb_tokenizer *t, const char *text, size_t n, int flags, fb_tok_ids *ids,
                        fb_tok_ids *offs, fb_err *err) {
  if (n > (size_t)INT32_MAX / 4)
    return fb_err_set(err, FB_ELIMIT, "tokenizer: text of %zu bytes is too long", n);
  t->t0.len = 0;
  int rc = fb_utf8_repair(&t->t0, text, n);
  if (!rc) rc = split_added(t, flags);
  for (size_t k = 0; !rc && k < t->secs.n; k++) {
    size_t off = t->secs.off[k], len = t->secs.len[k];
    int32_t ai = t->sec_added.v[k];
    if (ai >= 0) {
      rc = emit(ids, offs, t->added[ai].id, t->t0.map[off]);
      continue;
    }
    if (!len) continue;
    t->sec.len = 0;
    if ((rc = fb_text_copy(&t->sec, &t->t0, off, len))) break;
    if ((rc = fb_normalize_apply(t->norm, t->n_norm, &t->sec, &t->tmp))) break;
    if (!t->sec.len) continue;
    if ((rc = fb_pretok_apply(t->pre, t->n_pre, k == 0, &t->sec, &t->pieces, &t->pw))) break;
    for (size_t p = 0; !rc && p < t->pieces.n; p++)
      if (t->pieces.len[p]) rc = encode_word(t, t->pieces.off[p], t->pieces.len[p], ids, offs);
  }
  if (rc == FB_ELIMIT)
    return fb_err_set(err, rc, "%s: the pre-tokenizer regex hit its match limit", t->name);
  if (rc) return fb_err_set(err, rc, "%s: encode: %s", t->name, fb_strerror(rc));
  return 0;
}

/* ---- decode ---- */

/* Append the raw bytes of id; `started` tracks whether leading characters were stripped. */
static int token_bytes(const fb_tokenizer *t, int32_t id, int flags, int *started, fb_text *raw) {
  if ((flags & FB_TOK_SKIP_SPECIAL) && t->kind[id] == 2) return 0;
  const char *s = t->dec.s + t->dec_off[id];
  size_t n = t->dec_off[id + 1] - t->dec_off[id];
  if (!*started && n) {
    for (int k = 0; k < t->strip_n && n && *s == t->strip_char; k++) s++, n--;
    *started = 1;
  }
  return fb_text_put(raw, s, n, 0);
}

static int bad_id(const fb_tokenizer *t, size_t i, int32_t id, fb_err *err) {
  return fb_err_set(err, FB_EINVALID, "%s: decode: ids[%zu] = %d is not in 0..%d", t->name, i, id,
                    t->vocab.n_ids - 1);
}

int fb_tokenizer_decode(const fb_tokenizer *t, const int32_t *ids, size_t n, int flags,
                        fb_text *out, fb_err *err) {
  fb_text raw = {0};
  int started = 0, rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (ids[i] < 0 || ids[i] >= t->vocab.n_ids)
      rc = bad_id(t, i, ids[i], err);
    else
      rc = token_bytes(t, ids[i], flags, &started, &raw);
  }
  if (!rc) rc = fb_utf8_repair(out, raw.s ? raw.s : "", raw.len);
  fb_text_free(&raw);
  if (rc == FB_ENOMEM) fb_err_set(err, rc, "%s: decode: out of memory", t->name);
  return rc;
}

int fb_tokenizer_decode_next(const fb_tokenizer *t, fb_tok_stream *st, int32_t id, int flags,
                             fb_text *out, fb_err *err) {
  if (id < 0 || id >= t->vocab.n_ids) return bad_id(t, 0, id, err);
  fb_text raw = {0};
  int rc = fb_text_put(&raw, (const char *)st->pend, (size_t)st->npend, 0);
  if (!rc) rc = token_bytes(t, id, flags, &st->started, &raw);
  if (!rc) {
    size_t hold = fb_utf8_incomplete_tail(raw.s ? raw.s : "", raw.len);
    rc = fb_utf8_repair(out, raw.s ? raw.s : "", raw.len - hold);
    if (hold) memcpy(st->pend, raw.s + raw.len - hold, hold);
    st->npend = (int)hold;
  }
  fb_text_free(&raw);
  if (rc) fb_err_set(err, rc, "%s: decode: out of memory", t->name);
  return rc;
}

int fb_tokenizer_decode_flush(fb_tok_stream *st, fb_text *out) {
  int rc = fb_utf8_repair(out, (const char *)st->pend, (size_t)st->npend);
  st->npend = 0;
  return rc;
}
