/* tokenizer.h: text <-> token ids for Hugging Face tokenizer.json files with a BPE model
 * (byte-level BPE as in GPT-2/Llama-3/Qwen, SentencePiece-style BPE with byte fallback as in
 * Llama-2/Mistral) and a plain byte tokenizer (256 byte ids, then specials). It does not add
 * BOS/EOS (post_processor is not applied: chat templates write those tokens as text), and it
 * does not render chat templates. Encode is transformers.js-exact on the tested files. */
#ifndef FB_TOKENIZER_H
#define FB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "text.h"

typedef struct fb_tokenizer fb_tokenizer;

/* The most ids (model.vocab entries plus added_tokens) a tokenizer.json may hold: twice the
 * largest real vocabularies (Gemma's 256000, Llama 4's 202048). Past it the file is refused
 * before anything is sized by it. */
#define FB_TOK_MAX_VOCAB (1 << 19)

/* A growable list of ids (or byte offsets); owned by the caller, who frees `v` with free(). */
typedef struct fb_tok_ids {
  int32_t *v;
  size_t n, cap;
} fb_tok_ids;

int fb_tok_ids_push(fb_tok_ids *ids, int32_t x);

/* Load `path`: a tokenizer.json file, or a folder holding one. Every unsupported or
 * inconsistent field is an error naming its JSON path ("tokenizer.json: model.merges[17]: ...").
 * On success *out is owned by the caller (fb_tokenizer_free). */
int fb_tokenizer_load(fb_tokenizer **out, const char *path, fb_err *err);
/* The same from JSON text in memory; `name` stands for the file in messages. */
int fb_tokenizer_from_json(fb_tokenizer **out, const char *json, size_t n, const char *name,
                           fb_err *err);
/* The byte tokenizer: ids 0-255 are bytes, ids 256.. the given special tokens, in order. */
int fb_tokenizer_bytes(fb_tokenizer **out, const char *const *specials, int n_specials,
                       fb_err *err);
void fb_tokenizer_free(fb_tokenizer *tok);

int32_t fb_tokenizer_vocab_size(const fb_tokenizer *tok);
/* The id whose token string (as written in the vocab or added_tokens) is s; -1 if none. */
int32_t fb_tokenizer_token_id(const fb_tokenizer *tok, const char *s);
/* The token string of id (not NUL-terminated), or NULL for an unused id. */
const char *fb_tokenizer_token(const fb_tokenizer *tok, int32_t id, size_t *n);
/* 1 when id is an added token marked special. */
int fb_tokenizer_is_special(const fb_tokenizer *tok, int32_t id);

enum {
  FB_TOK_SPECIAL = 1,      /* encode: special added tokens written in the text become their ids */
  FB_TOK_SKIP_SPECIAL = 2, /* decode: leave special tokens out */
};

/* Append the ids of text[0..n) to *ids and, if offsets is not NULL, the byte offset in text
 * where each token starts. Invalid UTF-8 is first replaced by U+FFFD as a browser decodes it.
 * Not thread-safe: a tokenizer keeps scratch buffers; use one per thread. */
int fb_tokenizer_encode(fb_tokenizer *tok, const char *text, size_t n, int flags, fb_tok_ids *ids,
                        fb_tok_ids *offsets, fb_err *err);

/* Append the text of ids to *out (valid UTF-8: broken sequences become U+FFFD). An id out of
 * range is FB_EINVALID naming its index. */
int fb_tokenizer_decode(const fb_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                        fb_text *out, fb_err *err);

/* Streaming decode: feed one id at a time; only complete UTF-8 characters are appended, the
 * bytes of a character split across tokens wait for the next id. Zero-initialise. */
typedef struct fb_tok_stream {
  unsigned char pend[8];
  int npend;
  int started; /* a token has been emitted (leading-space stripping is done) */
} fb_tok_stream;

int fb_tokenizer_decode_next(const fb_tokenizer *tok, fb_tok_stream *st, int32_t id, int flags,
                             fb_text *out, fb_err *err);
/* End of stream: any held-back bytes become U+FFFD. */
int fb_tokenizer_decode_flush(fb_tok_stream *st, fb_text *out);

#endif
