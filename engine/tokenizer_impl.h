/* tokenizer_impl.h: the tokenizer as its files share it: tokenizer_load.c builds it from
 * tokenizer.json (or as the byte tokenizer), reading its fields with tokenizer_json.c's
 * helpers; tokenizer.c encodes and decodes with it. Not part of the API: include tokenizer.h. */
#ifndef FB_TOKENIZER_IMPL_H
#define FB_TOKENIZER_IMPL_H

#include <cjson/cJSON.h>

#include "bpe.h"
#include "normalize.h"
#include "pretokenize.h"
#include "tokenizer.h"

typedef struct added_tok {
  char *s;
  size_t n;
  int32_t id;
  int special, lstrip, rstrip;
} added_tok;

typedef enum {
  DEC_BYTELEVEL,
  DEC_REPLACE,
  DEC_BYTEFALLBACK,
  DEC_FUSE,
  DEC_STRIP,
  DEC_METASPACE
} dec_kind;

typedef struct dec_step {
  dec_kind kind;
  char a[16], b[16]; /* Replace pattern/content, Strip content, Metaspace replacement */
  size_t alen, blen;
  int start, prepend;
} dec_step;

struct fb_tokenizer {
  char name[256];
  int bytes_model; /* the plain byte tokenizer */
  int byte_level;  /* a ByteLevel pre-tokenizer: words are bytes, not characters */
  fb_vocab vocab;
  fb_merges merges;
  int32_t byte_id[256];     /* byte-level: id of the character standing for each byte */
  int32_t fallback_id[256]; /* <0xNN> tokens, -1 when absent */
  int byte_fallback, fuse_unk, ignore_merges, all_fallback;
  int32_t unk_id;
  added_tok *added;
  int n_added;
  unsigned char first_any[32], first_plain[32]; /* first bytes of added tokens */
  unsigned char *kind; /* (n_ids) 0 model token, 1 added, 2 added special */
  fb_normalizer *norm;
  int n_norm;
  fb_pretok *pre;
  int n_pre;
  fb_text dec;     /* decoded bytes of every id, concatenated; dec_off indexes it */
  size_t *dec_off; /* (n_ids + 1) */
  char strip_char; /* decoders strip up to strip_n of these from the text's start */
  int strip_n;
  /* scratch for encode */
  fb_text t0, sec, tmp, word;
  fb_pieces secs, pieces;
  fb_tok_ids sec_added;
  fb_pretok_work pw;
  fb_bpe_work bw;
};

/* The character GPT-2's byte-level alphabet (bytes_to_unicode) writes byte b as; the tables
 * are made by the first load. */
int32_t fb_tok_byte_char(unsigned char b);

/* ---- tokenizer_json.c: tokenizer.json's fields, each error naming t's file and the path ---- */
int tok_fail(fb_err *err, int code, const fb_tokenizer *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A JSON string for messages: at most 40 bytes, quotes and controls escaped. */
const char *tok_quote(const char *s, size_t n, char *buf, size_t size);
/* obj[key], NULL when absent or null. */
const cJSON *tok_field(const cJSON *obj, const char *key);
/* obj[key] as a boolean (dflt when absent), a string (an error when absent and required), an
 * object's "type", and v as an integer in lo..hi. */
int tok_get_bool(const fb_tokenizer *t, const cJSON *obj, const char *path, const char *key,
                 int dflt, int *out, fb_err *err);
int tok_get_str(const fb_tokenizer *t, const cJSON *obj, const char *path, const char *key,
                int required, const char **out, fb_err *err);
int tok_get_type(const fb_tokenizer *t, const cJSON *obj, const char *path, const char **out,
                 fb_err *err);
int tok_get_int(const fb_tokenizer *t, const cJSON *v, const char *path, double lo, double hi,
                int32_t *out, fb_err *err);
/* obj.pattern, {"String": s} or {"Regex": r}: which one and the text. */
int tok_get_pattern(const fb_tokenizer *t, const cJSON *obj, const char *path, int *is_regex,
                    const char **text, fb_err *err);

#endif
