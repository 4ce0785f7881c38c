/* test_gguf.c: the GGUF writer (engine/gguf.c): a file read back field by field (header,
 * typed key/values, tensor infos, 32-byte alignment, the data of F32, F16 and Q8_0 tensors), Q8_0
 * blocks against hand-computed numbers, and the refusals. (llama.cpp itself loads the exported
 * models in tests/export/llama_cpp.test.mjs.) */
#include "formats_tmp.h"
#include "gguf.h"
#include "safetensors.h"
#include "test.h"

#include <stdint.h>

/* A cursor over a file read whole. */
typedef struct rd {
  unsigned char *p;
  size_t len, at;
} rd;

static uint64_t rd_n(rd *r, int bytes) {
  uint64_t v = 0;
  if (r->at + (size_t)bytes > r->len) return r->at = r->len, 0;
  memcpy(&v, r->p + r->at, (size_t)bytes);
  r->at += (size_t)bytes;
  return v;
}

/* A GGUF string, copied into buf. */
static const char *rd_str(rd *r, char *buf, size_t cap) {
  uint64_t n = rd_n(r, 8);
  if (n >= cap || r->at + n > r->len) return "";
  memcpy(buf, r->p + r->at, n);
  buf[n] = 0;
  r->at += n;
  return buf;
}

static rd read_all(const char *path) {
  rd r = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return r;
  fseek(f, 0, SEEK_END);
  r.len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  r.p = malloc(r.len);
  if (fread(r.p, 1, r.len, f) != r.len) r.len = 0;
  fclose(f);
  return r;
}

TEST(q8_0_block_by_hand) {
  /* amax 4: d = 4/127 (f16 0x2808), q = round(x * 127/4) */
  float x[32];
  for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.25f;
  unsigned char out[34];
  fb_ggml_quantize_q8_0(x, out, 32);
  CHECK_INT(out[0] | out[1] << 8, 0x2808);
  int8_t *q = (int8_t *)(out + 2);
  CHECK_INT(q[0], -127); /* -4 */
  CHECK_INT(q[1], -119); /* -3.75 * 31.75 = -119.06 */
  CHECK_INT(q[16], 0);
  CHECK_INT(q[17], 8);  /* 7.94 */
  CHECK_INT(q[18], 16); /* 15.875 */
  CHECK_INT(q[31], 119);
  /* amax 127: d = 1 (0x3c00), halves rounded away from zero as roundf does */
  float y[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -127};
  fb_ggml_quantize_q8_0(y, out, 32);
  CHECK_INT(out[0] | out[1] << 8, 0x3c00);
  int want[7] = {127, 3, -3, 1, -1, 1, -127};
  for (int j = 0; j < 7; j++) CHECK_INT(q[j], want[j]);
  /* all zeros: d = 0 and every q 0 */
  float z[32] = {0};
  fb_ggml_quantize_q8_0(z, out, 32);
  for (int j = 0; j < 34; j++) CHECK_INT(out[j], 0);
  CHECK_INT(fb_ggml_row_size(FB_GGML_Q8_0, 64), 68);
  CHECK_INT(fb_ggml_row_size(FB_GGML_F16, 5), 10);
}

TEST(file_read_back) {
  fb_gguf *g;
  fb_err err = {0};
  CHECK_INT(fb_gguf_new(&g, &err), 0);
  const char *words[] = {"a", "bc", ""};
  int32_t ints[] = {1, -2, 3};
  CHECK_INT(fb_gguf_str(g, "general.architecture", "llama", &err), 0);
  CHECK_INT(fb_gguf_u32(g, "llama.block_count", 4, &err), 0);
  CHECK_INT(fb_gguf_f32(g, "adapter.lora.alpha", 16.0f, &err), 0);
  CHECK_INT(fb_gguf_bool(g, "tokenizer.ggml.add_bos_token", 0, &err), 0);
  CHECK_INT(fb_gguf_i32(g, "x.i32", -7, &err), 0);
  CHECK_INT(fb_gguf_str_array(g, "tokenizer.ggml.tokens", words, NULL, 3, &err), 0);
  CHECK_INT(fb_gguf_i32_array(g, "tokenizer.ggml.token_type", ints, 3, &err), 0);
  float v3[3] = {1.5f, -2, 3}, m64[64], q32[32];
  for (int i = 0; i < 64; i++) m64[i] = (float)i / 8;
  for (int i = 0; i < 32; i++) q32[i] = (float)(i - 16) * 0.25f;
  int64_t ne3[1] = {3}, ne64[2] = {32, 2}, ne32[2] = {32, 1};
  CHECK_INT(fb_gguf_tensor(g, "norm.weight", FB_GGML_F32, 1, ne3, v3, &err), 0);
  CHECK_INT(fb_gguf_tensor(g, "half.weight", FB_GGML_F16, 2, ne64, m64, &err), 0);
  CHECK_INT(fb_gguf_tensor(g, "q.weight", FB_GGML_Q8_0, 2, ne32, q32, &err), 0);
  const char *path = tmp_path("t.gguf");
  CHECK_INT(fb_gguf_write(g, path, &err), 0);
  fb_gguf_free(g);

  rd r = read_all(path);
  char s[64];
  CHECK(r.len > 24 && memcmp(r.p, "GGUF", 4) == 0);
  r.at = 4;
  CHECK_INT(rd_n(&r, 4), 3); /* version */
  CHECK_INT(rd_n(&r, 8), 3); /* tensors */
  CHECK_INT(rd_n(&r, 8), 7); /* key/values */
  CHECK_STR(rd_str(&r, s, sizeof s), "general.architecture");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_STRING);
  CHECK_STR(rd_str(&r, s, sizeof s), "llama");
  CHECK_STR(rd_str(&r, s, sizeof s), "llama.block_count");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_U32);
  CHECK_INT(rd_n(&r, 4), 4);
  CHECK_STR(rd_str(&r, s, sizeof s), "adapter.lora.alpha");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_F32);
  uint32_t bits = (uint32_t)rd_n(&r, 4);
  float alpha;
  memcpy(&alpha, &bits, 4);
  CHECK(alpha == 16.0f);
  CHECK_STR(rd_str(&r, s, sizeof s), "tokenizer.ggml.add_bos_token");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_BOOL);
  CHECK_INT(rd_n(&r, 1), 0);
  CHECK_STR(rd_str(&r, s, sizeof s), "x.i32");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_I32);
  CHECK_INT((int32_t)rd_n(&r, 4), -7);
  CHECK_STR(rd_str(&r, s, sizeof s), "tokenizer.ggml.tokens");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_ARRAY);
  CHECK_INT(rd_n(&r, 4), FB_GGUF_STRING);
  CHECK_INT(rd_n(&r, 8), 3);
  CHECK_STR(rd_str(&r, s, sizeof s), "a");
  CHECK_STR(rd_str(&r, s, sizeof s), "bc");
  CHECK_STR(rd_str(&r, s, sizeof s), "");
  CHECK_STR(rd_str(&r, s, sizeof s), "tokenizer.ggml.token_type");
  CHECK_INT(rd_n(&r, 4), FB_GGUF_ARRAY);
  CHECK_INT(rd_n(&r, 4), FB_GGUF_I32);
  CHECK_INT(rd_n(&r, 8), 3);
  CHECK_INT((int32_t)rd_n(&r, 4), 1);
  CHECK_INT((int32_t)rd_n(&r, 4), -2);
  CHECK_INT((int32_t)rd_n(&r, 4), 3);
  /* tensor infos: name, dims, ne, type, offset (each a multiple of 32) */
  const char *names[3] = {"norm.weight", "half.weight", "q.weight"};
  int ndims[3] = {1, 2, 2}, types[3] = {FB_GGML_F32, FB_GGML_F16, FB_GGML_Q8_0};
  uint64_t offs[3], want_off[3] = {0, 32, 160}; /* 12 bytes -> 32; 128 bytes -> 160 */
  for (int t = 0; t < 3; t++) {
    CHECK_STR(rd_str(&r, s, sizeof s), names[t]);
    CHECK_INT(rd_n(&r, 4), ndims[t]);
    for (int d = 0; d < ndims[t]; d++) rd_n(&r, 8);
    CHECK_INT(rd_n(&r, 4), types[t]);
    offs[t] = rd_n(&r, 8);
    CHECK_INT(offs[t], want_off[t]);
  }
  size_t data = (r.at + 31) & ~(size_t)31;
  CHECK_INT(r.len, data + 160 + 34 + 30); /* the last tensor padded too */
  float f;
  memcpy(&f, r.p + data + 4, 4);
  CHECK(f == -2.0f);
  uint16_t h;
  memcpy(&h, r.p + data + offs[1] + 2 * 63, 2);
  CHECK(fb_f16_to_f32(h) == 63.0f / 8);
  CHECK_INT(r.p[data + offs[2]] | r.p[data + offs[2] + 1] << 8, 0x2808);
  CHECK_INT((int8_t)r.p[data + offs[2] + 2], -127);
  free(r.p);
}

TEST(refusals) {
  fb_gguf *g;
  fb_err err = {0};
  CHECK_INT(fb_gguf_new(&g, &err), 0);
  CHECK_INT(fb_gguf_u32(g, "a.b", 1, &err), 0);
  CHECK_INT(fb_gguf_u32(g, "a.b", 2, &err), FB_EINVALID);
  CHECK(strstr(err.msg, "'a.b' given twice") != NULL);
  float x[48] = {0};
  int64_t ne[2] = {48, 1};
  CHECK_INT(fb_gguf_tensor(g, "w", FB_GGML_Q8_0, 2, ne, x, &err), FB_EINVALID);
  CHECK(strstr(err.msg, "'w': rows of 48 values are not whole Q8_0 blocks") != NULL);
  CHECK_INT(fb_gguf_tensor(g, "w", FB_GGML_F16, 2, ne, x, &err), 0);
  CHECK_INT(fb_gguf_tensor(g, "w", FB_GGML_F32, 2, ne, x, &err), FB_EINVALID);
  CHECK(strstr(err.msg, "'w' given twice") != NULL);
  char path[512]; /* a folder that is a file: the write fails naming the path, leaving nothing */
  snprintf(path, sizeof path, "%s/x.gguf", tmp_write("plain", "x", 1));
  CHECK(fb_gguf_write(g, path, &err) != 0);
  CHECK(strstr(err.msg, "plain/x.gguf") != NULL);
  fb_gguf_free(g);
}
