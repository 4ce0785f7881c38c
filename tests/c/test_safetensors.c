/* test_safetensors.c: the safetensors reader, writer and sharded directories: round trips, dtype
 * conversion, and every malformed case built here as raw bytes in a scratch directory. */
#include "formats_tmp.h"
#include "test.h"

#include <stdint.h>

#include "fsutil.h"
#include "safetensors.h"

/* A raw safetensors image: 8-byte little-endian length, the header text as given, then
 * data_len bytes counting up from 0. */
static const char *raw(const char *name, const char *header, size_t data_len) {
  size_t hlen = strlen(header), len = 8 + hlen + data_len;
  unsigned char *buf = malloc(len);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(buf + 8, header, hlen);
  for (size_t i = 0; i < data_len; i++) buf[8 + hlen + i] = (unsigned char)i;
  const char *p = tmp_write(name, buf, len);
  free(buf);
  return p;
}

/* Open a raw image that must be refused with code; returns the message for further checks. */
static const char *refused(const char *header, size_t data_len, int code) {
  static fb_err err;
  fb_st_file *f = (fb_st_file *)1;
  memset(&err, 0, sizeof err);
  int rc = fb_st_open(&f, raw("bad.safetensors", header, data_len), &err);
  if (rc != code) FB_FAIL_("header %s: rc %d, want %d (%s)", header, rc, code, err.msg);
  if (f != NULL) FB_FAIL_("header %s: *out not NULL on failure", header);
  if (!strstr(err.msg, "bad.safetensors")) FB_FAIL_("message does not name the file: %s", err.msg);
  if (rc == 0) fb_st_close(f);
  return err.msg;
}

static const char *const sample_meta[] = {"format", "pt", "rank", "4", NULL};

/* Writes sample.safetensors: a [2,3] F32, a [4] F16, a [2] BF16, a [2,2] I32, a scalar and an
 * empty tensor. */
static const char *write_sample(fb_err *err) {
  static float w[6] = {1, -2, 3.5f, 0, 1e-3f, 65504};
  static uint16_t h[4], b[2];
  static int32_t ids[4] = {7, -100, 0, 2147483647};
  static float scalar = 42;
  h[0] = fb_f32_to_f16(1.0f), h[1] = fb_f32_to_f16(-0.5f), h[2] = fb_f32_to_f16(65504.0f);
  h[3] = fb_f32_to_f16(0.1f);
  b[0] = fb_f32_to_bf16(3.0f), b[1] = fb_f32_to_bf16(-1e30f);
  fb_st_out t[] = {
      {"w", FB_DT_F32, 2, {2, 3}, w},         {"h", FB_DT_F16, 1, {4}, h},
      {"b", FB_DT_BF16, 1, {2}, b},           {"ids", FB_DT_I32, 2, {2, 2}, ids},
      {"scalar", FB_DT_F32, 0, {0}, &scalar}, {"empty", FB_DT_F32, 2, {0, 5}, NULL},
  };
  const char *p = tmp_path("sample.safetensors");
  return fb_st_write(p, t, 6, sample_meta, err) == 0 ? p : NULL;
}

TEST(dtype_names_and_sizes) {
  CHECK_STR(fb_dtype_name(FB_DT_F32), "F32");
  CHECK_STR(fb_dtype_name(FB_DT_BF16), "BF16");
  CHECK_STR(fb_dtype_name((fb_dtype)9), "?");
  CHECK_INT(fb_dtype_size(FB_DT_F16), 2);
  CHECK_INT(fb_dtype_size(FB_DT_I32), 4);
  fb_dtype dt;
  CHECK_INT(fb_dtype_parse("BF16", &dt), 0);
  CHECK_INT(dt, FB_DT_BF16);
  CHECK_INT(fb_dtype_parse("F64", &dt), FB_EUNSUPPORTED);
}

TEST(write_then_read_round_trips) {
  fb_err err = {0};
  const char *p = write_sample(&err);
  REQUIRE(p);
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, p, &err), 0);
  REQUIRE(f);
  CHECK_INT(fb_st_count(f), 6);
  CHECK_STR(fb_st_at(f, 0)->name, "w"); /* file order is the write order */
  CHECK_STR(fb_st_at(f, 5)->name, "empty");
  CHECK(fb_st_at(f, 6) == NULL && fb_st_at(f, -1) == NULL);
  CHECK_STR(fb_st_meta(f, "format"), "pt");
  CHECK_STR(fb_st_meta(f, "rank"), "4");
  CHECK(fb_st_meta(f, "nope") == NULL);
  CHECK_STR(fb_st_path(f), p);

  const fb_st_tensor *w = fb_st_find(f, "w");
  REQUIRE(w);
  CHECK_INT(w->ndim, 2);
  CHECK_INT(w->shape[0], 2);
  CHECK_INT(w->shape[1], 3);
  CHECK_INT(w->numel, 6);
  CHECK_INT(w->nbytes, 24);
  CHECK_INT(((uintptr_t)w->data) % 8, 0); /* the writer pads the header to 8 bytes */
  float out[6];
  CHECK_INT(fb_st_read_f32(w, out, &err), 0);
  CHECK_NEAR(out[2], 3.5, 0);
  CHECK_NEAR(out[5], 65504, 0);

  const fb_st_tensor *h = fb_st_find(f, "h");
  REQUIRE(h && h->dtype == FB_DT_F16 && h->nbytes == 8);
  CHECK_INT(fb_st_read_f32(h, out, &err), 0);
  CHECK_NEAR(out[0], 1.0, 0);
  CHECK_NEAR(out[1], -0.5, 0);
  CHECK_NEAR(out[2], 65504, 0);
  CHECK_NEAR(out[3], 0.1, 1e-4);

  const fb_st_tensor *b = fb_st_find(f, "b");
  REQUIRE(b && b->dtype == FB_DT_BF16);
  CHECK_INT(fb_st_read_f32(b, out, &err), 0);
  CHECK_NEAR(out[0], 3.0, 0);
  CHECK_NEAR(out[1] / -1e30, 1.0, 4e-3);

  const fb_st_tensor *ids = fb_st_find(f, "ids");
  REQUIRE(ids && ids->dtype == FB_DT_I32);
  int32_t iv[4];
  memcpy(iv, ids->data, sizeof iv);
  CHECK_INT(iv[1], -100);
  CHECK_INT(iv[3], 2147483647);
  CHECK_INT(fb_st_read_f32(ids, out, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "'ids'");
  CHECK_CONTAINS(err.msg, "I32");

  const fb_st_tensor *s = fb_st_find(f, "scalar"), *e = fb_st_find(f, "empty");
  REQUIRE(s && e);
  CHECK_INT(s->ndim, 0);
  CHECK_INT(s->numel, 1);
  CHECK_INT(e->numel, 0);
  CHECK_INT(e->nbytes, 0);
  CHECK(fb_st_find(f, "x") == NULL);
  fb_st_close(f);
  fb_st_close(NULL);
}

TEST(f16_conversion_is_exact_both_ways) {
  int bad = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t hv = (uint16_t)i;
    float v = fb_f16_to_f32(hv);
    if (v != v) continue; /* NaN payloads need not survive */
    if (fb_f32_to_f16(v) != hv && bad++ < 3)
      FB_FAIL_("f16 0x%04x -> %g -> 0x%04x", hv, v, fb_f32_to_f16(v));
  }
  CHECK_INT(bad, 0);
  CHECK_INT(fb_f32_to_f16(1.0f), 0x3c00);
  CHECK_INT(fb_f32_to_f16(-2.0f), 0xc000);
  CHECK_NEAR(fb_f16_to_f32(0x0001), 5.9604644775390625e-8, 0);
  CHECK_INT(fb_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* halfway: to even */
  CHECK_INT(fb_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* halfway: to even, up */
  CHECK_INT(fb_f32_to_f16(65520.0f), 0x7c00);           /* rounds to inf */
  CHECK_INT(fb_f32_to_f16(2.9802322e-8f), 0x0000);      /* half the smallest: to even 0 */
  CHECK_INT(fb_f32_to_f16(2.9802326e-8f * 1.5f), 0x0001);
  CHECK(fb_f16_to_f32(fb_f32_to_f16(NAN)) != fb_f16_to_f32(fb_f32_to_f16(NAN)));
}

TEST(bf16_conversion_rounds_to_nearest_even) {
  int bad = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    float v = fb_bf16_to_f32((uint16_t)i);
    if (v == v && fb_f32_to_bf16(v) != i) bad++;
  }
  CHECK_INT(bad, 0);
  CHECK_INT(fb_f32_to_bf16(1.0f), 0x3f80);
  CHECK_INT(fb_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* halfway: to even */
  CHECK_INT(fb_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
  float nan_back = fb_bf16_to_f32(fb_f32_to_bf16(NAN));
  CHECK(nan_back != nan_back);
}

TEST(expect_names_missing_and_misshaped_tensors) {
  fb_err err = {0};
  const char *p = write_sample(&err);
  REQUIRE(p);
  fb_st_file *f = NULL;
  REQUIRE(fb_st_open(&f, p, &err) == 0);
  const fb_st_tensor *t = NULL;
  CHECK_INT(fb_st_expect(f, "w", 2, (int64_t[]){2, 3}, &t, &err), 0);
  CHECK(t && strcmp(t->name, "w") == 0);
  CHECK_INT(fb_st_expect(f, "w", 2, (int64_t[]){3, 2}, &t, &err), FB_EFORMAT);
  CHECK(t == NULL);
  CHECK_CONTAINS(err.msg, "sample.safetensors: tensor 'w': shape [2, 3], expected [3, 2]");
  CHECK_INT(fb_st_expect(f, "scalar", 1, (int64_t[]){1}, NULL, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "shape [], expected [1]");
  CHECK_INT(fb_st_expect(f, "scalar", 0, NULL, NULL, &err), 0);
  CHECK_INT(fb_st_expect(f, "lm_head.weight", 1, (int64_t[]){1}, &t, &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "tensor 'lm_head.weight' is missing");
  char small[6];
  CHECK_STR(fb_st_shape_str(3, (int64_t[]){10, 20, 30}, small, sizeof small), "[10, ");
  fb_st_close(f);
}

TEST(every_truncation_of_a_valid_file_is_refused) {
  fb_err err = {0};
  const char *p = write_sample(&err);
  REQUIRE(p);
  char *buf = NULL;
  size_t len = 0;
  REQUIRE(fb_read_file(p, &buf, &len, 1 << 20, &err) == 0);
  for (size_t cut = 0; cut < len; cut++) {
    fb_st_file *f = NULL;
    const char *q = tmp_write("cut.safetensors", buf, cut);
    int rc = fb_st_open(&f, q, &err);
    if (rc == 0) {
      FB_FAIL_("truncated to %zu of %zu bytes but opened", cut, len);
      fb_st_close(f);
    } else if (!strstr(err.msg, "cut.safetensors")) {
      FB_FAIL_("message does not name the file: %s", err.msg);
    }
  }
  free(buf);
}

TEST(short_file_and_header_length) {
  CHECK_CONTAINS(refused("", 0, FB_EFORMAT), "header is not a JSON object");
  fb_err err = {0};
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, tmp_write("short.safetensors", "\1\0\0", 3), &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "too short");
  /* header length past the end */
  unsigned char past[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
  CHECK_INT(fb_st_open(&f, tmp_write("past.safetensors", past, 12), &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "past the end");
  /* over the 100 MB cap (and absurd: 2^63) */
  unsigned char cap[12] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}', ' ', ' '};
  CHECK_INT(fb_st_open(&f, tmp_write("cap.safetensors", cap, 12), &err), FB_ELIMIT);
  CHECK_CONTAINS(err.msg, "over the cap");
  unsigned char cap2[12] = {1, 0, 0x40, 6, 0, 0, 0, 0, '{', '}', ' ', ' '}; /* 100 MiB + 1 */
  CHECK_INT(fb_st_open(&f, tmp_write("cap2.safetensors", cap2, 12), &err), FB_ELIMIT);
  CHECK(f == NULL);
  CHECK_INT(fb_st_open(&f, tmp_path("missing.safetensors"), &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "missing.safetensors");
  CHECK_INT(fb_st_open(&f, tmp_dir(), &err), FB_EIO);
}

TEST(bad_json_is_refused) {
  CHECK_CONTAINS(refused("{\"a\":", 0, FB_EFORMAT), "not valid JSON");
  CHECK_CONTAINS(refused("[1,2]", 0, FB_EFORMAT), "not a JSON object");
  CHECK_CONTAINS(refused("{} x", 0, FB_EFORMAT), "bytes after the JSON object");
  CHECK_CONTAINS(refused("{\"a\":1}", 0, FB_EFORMAT), "tensor 'a': entry is not an object");
  CHECK_CONTAINS(refused("{\"__metadata__\":{\"k\":1}}", 0, FB_EFORMAT), "value is not a string");
  CHECK_CONTAINS(refused("{\"__metadata__\":[]}", 0, FB_EFORMAT), "__metadata__ is not an object");
  CHECK_CONTAINS(refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, FB_EFORMAT),
                 "duplicate key 'k'");
}

TEST(header_padding_and_empty_file_are_accepted) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, raw("pad.safetensors", "{\"__metadata__\":{\"a\":\"b\"}}    ", 0), &err),
            0);
  REQUIRE(f);
  CHECK_INT(fb_st_count(f), 0);
  CHECK_STR(fb_st_meta(f, "a"), "b");
  fb_st_close(f);
}

TEST(entry_fields_are_checked) {
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                         FB_EUNSUPPORTED),
                 "tensor 't': dtype I8 is not one of F32, F16, BF16, I32");
  CHECK_CONTAINS(refused("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FB_EFORMAT),
                 "\"dtype\" missing");
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, FB_EFORMAT),
                 "\"shape\" missing");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, FB_EFORMAT),
      "shape[0] is not a non-negative integer");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, FB_EFORMAT),
      "shape[0]");
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                         "\"data_offsets\":[0,4]}}",
                         4, FB_ELIMIT),
                 "9 dimensions");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, FB_EFORMAT),
      "\"data_offsets\" is not [begin, end]");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, FB_EFORMAT),
      "end 0 < begin 4");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, FB_EFORMAT),
      "span 4 bytes, shape and dtype need 8");
}

/* cJSON reads 256.0, 2.56e2 and -0 as the integer 256 or 0, and [256.0, 256.0] was taken as a
 * shape (issue 19): shapes and offsets must be written as bare digits, as every writer does. */
TEST(shapes_and_offsets_must_be_written_as_digits) {
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2.0],\"data_offsets\":[0,8]}}", 8,
                         FB_EFORMAT),
                 "tensor 't': shape[1] is not a non-negative integer in digits");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, FB_EFORMAT),
      "shape[0]");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0, FB_EFORMAT),
      "shape[0]");
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, FB_EFORMAT),
      "tensor 't': \"data_offsets\" is not [begin, end] of integers in digits");
  /* numbers inside strings (here after an escaped quote) are not tokens; digits still open */
  const char *ok =
      "{\"__metadata__\":{\"q\\\"1.5\":\"2.0 \\\\\"},"
      "\"b\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  fb_err err = {0};
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, raw("digits.safetensors", ok, 12), &err), 0);
  REQUIRE(f);
  CHECK_STR(fb_st_meta(f, "q\"1.5"), "2.0 \\");
  CHECK_INT(fb_st_find(f, "b")->shape[1], 2);
  fb_st_close(f);
}

/* before, n bytes of 'v', after; malloc'd. */
static char *padded(const char *before, size_t n, const char *after) {
  size_t b = strlen(before);
  char *s = malloc(b + n + strlen(after) + 1);
  memcpy(s, before, b);
  memset(s + b, 'v', n);
  strcpy(s + b + n, after);
  return s;
}

/* A header whose __metadata__ is {"k": n bytes}. */
static char *metadata_header(size_t n) { return padded("{\"__metadata__\":{\"k\":\"", n, "\"}}"); }

/* 50 MB of __metadata__ opened, copied on every open (issue 19): 1 MiB of keys and values. */
TEST(metadata_is_capped) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  char *h = metadata_header(FB_ST_MAX_METADATA - 1); /* with the key "k": exactly the cap */
  CHECK_INT(fb_st_open(&f, raw("meta_cap.safetensors", h, 0), &err), 0);
  REQUIRE(f);
  CHECK_INT(strlen(fb_st_meta(f, "k")), FB_ST_MAX_METADATA - 1);
  fb_st_close(f);
  free(h);
  h = metadata_header(FB_ST_MAX_METADATA);
  CHECK_INT(fb_st_open(&f, raw("meta_big.safetensors", h, 0), &err), FB_ELIMIT);
  CHECK(f == NULL);
  CHECK_CONTAINS(err.msg,
                 "meta_big.safetensors: __metadata__: 1048577 bytes of keys and values, "
                 "over the cap of 1048576");
  free(h);
}

TEST(shape_product_overflow_is_refused) {
  /* 2^32 * 2^32 overflows 64 bits; 2^62 elements * 4 bytes overflows the byte count */
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                         "\"data_offsets\":[0,0]}}",
                         0, FB_EFORMAT),
                 "tensor 't': shape product overflows");
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,1024],"
                         "\"data_offsets\":[0,0]}}",
                         0, FB_EFORMAT),
                 "overflows");
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,0]}}", 0,
                         FB_EFORMAT),
                 "shape[0]");
}

TEST(data_area_must_be_tiled_exactly) {
  /* past the end */
  CHECK_CONTAINS(
      refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, FB_EFORMAT),
      "tensor 't': data_offsets end 8 is past the data area (4 bytes)");
  CHECK_CONTAINS(refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
                         "[9007199254740988,9007199254740992]}}",
                         4, FB_EFORMAT),
                 "past the data area");
  /* overlap */
  CHECK_CONTAINS(refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         8, FB_EFORMAT),
                 "tensor 'b': overlaps");
  /* gap */
  CHECK_CONTAINS(refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                         12, FB_EFORMAT),
                 "tensor 'b': gap of 4 bytes");
  /* gap at the start */
  CHECK_CONTAINS(
      refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, FB_EFORMAT),
      "gap of 4 bytes");
  /* bytes after the last tensor */
  CHECK_CONTAINS(
      refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5, FB_EFORMAT),
      "1 bytes after the last tensor");
  /* out-of-order entries in the header are fine when the offsets tile */
  fb_err err = {0};
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f,
                       raw("order.safetensors",
                           "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                           "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                           8),
                       &err),
            0);
  REQUIRE(f);
  CHECK_STR(fb_st_at(f, 0)->name, "a");
  CHECK_INT(((const unsigned char *)fb_st_find(f, "b")->data)[0], 4);
  fb_st_close(f);
}

TEST(duplicate_names_are_refused) {
  CHECK_CONTAINS(refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         8, FB_EFORMAT),
                 "tensor 'a': duplicate name");
}

TEST(writer_refuses_bad_input_and_writes_nothing) {
  fb_err err = {0};
  float x[2] = {1, 2};
  const char *p = tmp_path("w.safetensors");
  fb_st_out dup[] = {{"a", FB_DT_F32, 1, {1}, x}, {"a", FB_DT_F32, 1, {1}, x + 1}};
  CHECK_INT(fb_st_write(p, dup, 2, NULL, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "tensor 'a': duplicate name");
  CHECK(access(p, F_OK) != 0);
  fb_st_out meta_name[] = {{"__metadata__", FB_DT_F32, 1, {1}, x}};
  CHECK_INT(fb_st_write(p, meta_name, 1, NULL, &err), FB_EINVALID);
  fb_st_out neg[] = {{"n", FB_DT_F32, 1, {-1}, x}};
  CHECK_INT(fb_st_write(p, neg, 1, NULL, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "tensor 'n'");
  fb_st_out big[] = {{"big", FB_DT_F32, 2, {INT64_MAX, 2}, x}};
  CHECK_INT(fb_st_write(p, big, 1, NULL, &err), FB_EINVALID);
  fb_st_out nodata[] = {{"nd", FB_DT_F32, 1, {2}, NULL}};
  CHECK_INT(fb_st_write(p, nodata, 1, NULL, &err), FB_EINVALID);
  fb_st_out dims[] = {{"d", FB_DT_F32, 9, {1}, x}};
  CHECK_INT(fb_st_write(p, dims, 1, NULL, &err), FB_EINVALID);
  const char *odd[] = {"k", NULL};
  fb_st_out ok[] = {{"a", FB_DT_F32, 1, {2}, x}};
  CHECK_INT(fb_st_write(p, ok, 1, odd, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "metadata key 'k' has no value");
  CHECK(access(p, F_OK) != 0);
  CHECK_INT(fb_st_write(p, ok, 1, NULL, &err), 0);
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, p, &err), 0);
  CHECK(f && fb_st_meta(f, "format") == NULL);
  fb_st_close(f);
}

/* A model directory with two shards and an index. */
static const char *make_sharded(const char *name, const char *index_json) {
  fb_err err = {0};
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s", tmp_path(name));
  if (fb_mkdir_p(dir, &err) != 0) return NULL;
  float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
  fb_st_out s1[] = {{"model.embed_tokens.weight", FB_DT_F32, 2, {2, 2}, a}};
  fb_st_out s2[] = {{"model.norm.weight", FB_DT_F32, 1, {2}, b},
                    {"lm_head.weight", FB_DT_F32, 2, {1, 2}, b}};
  snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
  if (fb_st_write(path, s1, 1, NULL, &err) != 0) return NULL;
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
  if (fb_st_write(path, s2, 2, NULL, &err) != 0) return NULL;
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  if (fb_write_file_atomic(path, index_json, strlen(index_json), &err) != 0) return NULL;
  return tmp_path(name);
}

#define GOOD_MAP                                                                                   \
  "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","                            \
  "\"model.norm.weight\":\"model-00002-of-00002.safetensors\","                                    \
  "\"lm_head.weight\":\"model-00002-of-00002.safetensors\""

TEST(sharded_model_directory_opens_as_one) {
  fb_err err = {0};
  const char *dir = make_sharded(
      "sharded", "{\"metadata\":{\"total_size\":32,\"note\":\"x\"},\"weight_map\":{" GOOD_MAP "}}");
  REQUIRE(dir);
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), 0);
  REQUIRE(f);
  CHECK_INT(fb_st_count(f), 3);
  CHECK_STR(fb_st_meta(f, "note"), "x");
  CHECK(fb_st_meta(f, "total_size") == NULL); /* numbers are not kept */
  const fb_st_tensor *t = fb_st_find(f, "lm_head.weight");
  REQUIRE(t);
  float v[2];
  CHECK_INT(fb_st_read_f32(t, v, &err), 0);
  CHECK_NEAR(v[1], 6, 0);
  CHECK(fb_st_find(f, "model.embed_tokens.weight") != NULL);
  fb_st_close(f);
}

TEST(sharded_index_errors) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  const char *dir = make_sharded("s_missing_tensor", "{\"weight_map\":{" GOOD_MAP
                                                     ",\"extra.weight\":"
                                                     "\"model-00002-of-00002.safetensors\"}}");
  REQUIRE(dir);
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "tensor 'extra.weight': listed in the index but missing");
  dir = make_sharded("s_unlisted",
                     "{\"weight_map\":{"
                     "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
                     "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "tensor 'lm_head.weight': in ");
  dir = make_sharded("s_wrong_shard",
                     "{\"weight_map\":{"
                     "\"model.embed_tokens.weight\":\"model-00002-of-00002.safetensors\","
                     "\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
                     "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "model.embed_tokens.weight");
  dir = make_sharded("s_traversal",
                     "{\"weight_map\":{\"x\":\"../sharded/model-00001-of-00002.safetensors\"}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "weight_map 'x': value must be a file name");
  dir = make_sharded("s_no_shard", "{\"weight_map\":{\"x\":\"nope.safetensors\"}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "nope.safetensors");
  dir = make_sharded("s_bad_json", "{\"weight_map\":");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "model.safetensors.index.json: not a JSON object");
  dir = make_sharded("s_empty_map", "{\"weight_map\":{}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "\"weight_map\" is empty");
  dir = make_sharded("s_no_map", "{\"metadata\":{}}");
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "\"weight_map\" missing");
  CHECK(f == NULL);
}

/* An index's "metadata" strings are kept like __metadata__, under the same cap. */
TEST(sharded_index_metadata_is_capped) {
  char *index =
      padded("{\"metadata\":{\"k\":\"", FB_ST_MAX_METADATA, "\"},\"weight_map\":{" GOOD_MAP "}}");
  const char *dir = make_sharded("s_big_meta", index);
  free(index);
  REQUIRE(dir);
  fb_err err = {0};
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_ELIMIT);
  CHECK(f == NULL);
  CHECK_CONTAINS(err.msg, "model.safetensors.index.json: metadata: 1048577 bytes");
}

TEST(model_directory_with_one_file_or_none) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  const char *dir = tmp_path("single");
  REQUIRE(fb_mkdir_p(dir, &err) == 0);
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "neither model.safetensors nor");
  float x = 1;
  fb_st_out t[] = {{"x", FB_DT_F32, 1, {1}, &x}};
  REQUIRE(fb_st_write(tmp_path("single/model.safetensors"), t, 1, sample_meta, &err) == 0);
  CHECK_INT(fb_st_open_model_dir(&f, dir, &err), 0);
  REQUIRE(f);
  CHECK_INT(fb_st_count(f), 1);
  CHECK_STR(fb_st_meta(f, "format"), "pt");
  fb_st_close(f);
}

TEST(open_memory_validates_the_same_way) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  const char img[] = "\x02\0\0\0\0\0\0\0{}";
  CHECK_INT(fb_st_open_memory(&f, img, 10, "mem", &err), 0);
  REQUIRE(f);
  CHECK_INT(fb_st_count(f), 0);
  fb_st_close(f);
  CHECK_INT(fb_st_open_memory(&f, img, 9, "mem", &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "mem: header length 2 runs past the end");
}
