/* tokenizer_impl.h: the tokenizer as its two files share it: tokenizer_load.c builds it from
 * tokenizer.json (or as the byte tokenizer), tokenizer.c encodes and decodes with it. Not part
 * of the API: include tokenizer.h. */
#ifndef FB_TOKENIZER_IMPL_H
#define FB_TOKENIZER_IMPL_H

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

#endif
