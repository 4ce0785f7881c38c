/* gguf.c: the GGUF v3 writer (see gguf.h). Metadata is serialized as it is added into one
 * growing buffer; tensors are converted to their stored type when added; fb_gguf_write lays out
 * header, key/values, tensor infos, padding and data, and hands the pieces to fsutil. */
#include "gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "safetensors.h"

typedef struct gguf_tensor {
  char *name;
  int ndim;
  int64_t ne[FB_GGUF_MAX_DIMS];
  fb_ggml_type type;
  void *data;
  size_t nbytes;
} gguf_tensor;

struct fb_gguf {
  unsigned char *kv; /* the key/values, serialized */
  size_t kv_len, kv_cap;
  uint64_t n_kv;
  char **keys; /* [n_kv], for the duplicate check */
  gguf_tensor *t;
  int n_t, cap_t;
};

int fb_gguf_new(fb_gguf **out, fb_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
}

void fb_gguf_free(fb_gguf *g) {
  if (!g) return;
  for (uint64_t i = 0; i < g->n_kv; i++) free(g->keys[i]);
  for (int i = 0; i < g->n_t; i++) {
    free(g->t[i].name);
    free(g->t[i].data);
  }
  free(g->keys);
  free(g->kv);
  free(g->t);
  free(g);
}

static int put(fb_gguf *g, const void *p, size_t n) {
  if (g->kv_len + n > g->kv_cap) {
    size_t cap = g->kv_cap ? g->kv_cap : 4096;
    while (cap < g->kv_len + n) cap *= 2;
    unsigned char *kv = realloc(g->kv, cap);
    if (!kv) return FB_ENOMEM;
    g->kv = kv;
    g->kv_cap = cap;
  }
  memcpy(g->kv + g->kv_len, p, n);
  g->kv_len += n;
  return 0;
}

/* Little-endian integers, as GGUF stores them (this engine runs on little-endian hosts). */
static int put_u32(fb_gguf *g, uint32_t v) { return put(g, &v, 4); }
static int put_u64(fb_gguf *g, uint64_t v) { return put(g, &v, 8); }
static int put_string(fb_gguf *g, const char *s, size_t n) {
  return put_u64(g, n) || put(g, s, n) ? FB_ENOMEM : 0;
}

/* Start key/value `key` of value type `type`: the key and the type; refuses a repeated key. */
static int begin_kv(fb_gguf *g, const char *key, uint32_t type, fb_err *err) {
  if (!key || !*key) return fb_err_set(err, FB_EINVALID, "gguf: an empty key");
  for (uint64_t i = 0; i < g->n_kv; i++)
    if (strcmp(g->keys[i], key) == 0)
      return fb_err_set(err, FB_EINVALID, "gguf: key '%s' given twice", key);
  char **keys = realloc(g->keys, (size_t)(g->n_kv + 1) * sizeof *keys);
  if (keys) g->keys = keys;
  char *copy = keys ? strdup(key) : NULL;
  if (!copy || put_string(g, key, strlen(key)) || put_u32(g, type))
    return free(copy), fb_err_set(err, FB_ENOMEM, "gguf: out of memory for key '%s'", key);
  g->keys[g->n_kv++] = copy;
  return 0;
}

static int scalar(fb_gguf *g, const char *key, uint32_t type, const void *v, size_t n,
                  fb_err *err) {
  int rc = begin_kv(g, key, type, err);
  if (!rc && put(g, v, n)) rc = fb_err_set(err, FB_ENOMEM, "gguf: out of memory for '%s'", key);
  return rc;
}

int fb_gguf_u32(fb_gguf *g, const char *key, uint32_t v, fb_err *err) {
  return scalar(g, key, FB_GGUF_U32, &v, 4, err);
}
int fb_gguf_i32(fb_gguf *g, const char *key, int32_t v, fb_err *err) {
  return scalar(g, key, FB_GGUF_I32, &v, 4, err);
}
int fb_gguf_f32(fb_gguf *g, const char *key, float v, fb_err *err) {
  return scalar(g, key, FB_GGUF_F32, &v, 4, err);
}
int fb_gguf_bool(fb_gguf *g, const char *key, int v, fb_err *err) {
  uint8_t b = v != 0;
  return scalar(g, key, FB_GGUF_BOOL, &b, 1, err);
}
int fb_gguf_str(fb_gguf *g, const char *key, const char *v, fb_err *err) {
  int rc = begin_kv(g, key, FB_GGUF_STRING, err);
  if (!rc && put_string(g, v, strlen(v)))
    rc = fb_err_set(err, FB_ENOMEM, "gguf: out of memory for '%s'", key);
  return rc;
}

int fb_gguf_str_array(fb_gguf *g, const char *key, const char *const *v, const size_t *lens,
                      size_t n, fb_err *err) {
  int rc = begin_kv(g, key, FB_GGUF_ARRAY, err);
  if (rc) return rc;
  rc = put_u32(g, FB_GGUF_STRING) || put_u64(g, n);
  for (size_t i = 0; i < n && !rc; i++) rc = put_string(g, v[i], lens ? lens[i] : strlen(v[i]));
  return rc ? fb_err_set(err, FB_ENOMEM, "gguf: out of memory for '%s'", key) : 0;
}

int fb_gguf_i32_array(fb_gguf *g, const char *key, const int32_t *v, size_t n, fb_err *err) {
  int rc = begin_kv(g, key, FB_GGUF_ARRAY, err);
  if (rc) return rc;
  if (put_u32(g, FB_GGUF_I32) || put_u64(g, n) || put(g, v, n * sizeof *v))
    return fb_err_set(err, FB_ENOMEM, "gguf: out of memory for '%s'", key);
  return 0;
}

size_t fb_ggml_row_size(fb_ggml_type type, int64_t n) {
  switch (type) {
    case FB_GGML_F32: return (size_t)n * 4;
    case FB_GGML_F16: return (size_t)n * 2;
    case FB_GGML_Q8_0: return (size_t)(n / FB_GGML_QK8_0) * (2 + FB_GGML_QK8_0);
  }
  return 0;
}

void fb_ggml_quantize_q8_0(const float *x, void *out, int64_t n) {
  unsigned char *o = out;
  for (int64_t b = 0; b < n / FB_GGML_QK8_0; b++, x += FB_GGML_QK8_0, o += 2 + FB_GGML_QK8_0) {
    float amax = 0;
    for (int j = 0; j < FB_GGML_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f; /* ggml multiplies by 1/d */
    uint16_t h = fb_f32_to_f16(d);
    memcpy(o, &h, 2);
    for (int j = 0; j < FB_GGML_QK8_0; j++) o[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
  }
}

int fb_gguf_tensor(fb_gguf *g, const char *name, fb_ggml_type type, int ndim, const int64_t *ne,
                   const float *data, fb_err *err) {
  if (ndim < 1 || ndim > FB_GGUF_MAX_DIMS)
    return fb_err_set(err, FB_EINVALID, "gguf: tensor '%s': %d dimensions", name, ndim);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (ne[d] < 1) return fb_err_set(err, FB_EINVALID, "gguf: tensor '%s': empty", name);
    n *= ne[d];
  }
  if (type == FB_GGML_Q8_0 && ne[0] % FB_GGML_QK8_0)
    return fb_err_set(err, FB_EINVALID,
                      "gguf: tensor '%s': rows of %lld values are not whole "
                      "Q8_0 blocks of 32",
                      name, (long long)ne[0]);
  for (int i = 0; i < g->n_t; i++)
    if (strcmp(g->t[i].name, name) == 0)
      return fb_err_set(err, FB_EINVALID, "gguf: tensor '%s' given twice", name);
  if (g->n_t == g->cap_t) {
    int cap = g->cap_t ? 2 * g->cap_t : 64;
    gguf_tensor *t = realloc(g->t, (size_t)cap * sizeof *t);
    if (!t) return fb_err_set(err, FB_ENOMEM, "gguf: out of memory");
    g->t = t;
    g->cap_t = cap;
  }
  gguf_tensor *t = &g->t[g->n_t];
  memset(t, 0, sizeof *t);
  t->nbytes = fb_ggml_row_size(type, n);
  t->name = strdup(name);
  t->data = malloc(t->nbytes ? t->nbytes : 1);
  if (!t->name || !t->data) {
    free(t->name);
    free(t->data);
    return fb_err_set(err, FB_ENOMEM, "gguf: out of memory for tensor '%s'", name);
  }
  t->ndim = ndim;
  memcpy(t->ne, ne, (size_t)ndim * sizeof *ne);
  t->type = type;
  if (type == FB_GGML_F32) {
    memcpy(t->data, data, t->nbytes);
  } else if (type == FB_GGML_F16) {
    uint16_t *h = t->data;
    for (int64_t i = 0; i < n; i++) h[i] = fb_f32_to_f16(data[i]);
  } else {
    fb_ggml_quantize_q8_0(data, t->data, n);
  }
  g->n_t++;
  return 0;
}

static size_t align_up(size_t n) { return (n + FB_GGUF_ALIGN - 1) & ~(size_t)(FB_GGUF_ALIGN - 1); }

/* The file: header, key/values and tensor infos in `head` (padded to the alignment), then each
 * tensor's data followed by the zeros that align the next. */
int fb_gguf_write(const fb_gguf *g, const char *path, fb_err *err) {
  fb_gguf h = {0}; /* a scratch builder for the header's bytes */
  static const unsigned char zeros[FB_GGUF_ALIGN];
  int rc = put(&h, "GGUF", 4) || put_u32(&h, 3) || put_u64(&h, (uint64_t)g->n_t) ||
           put_u64(&h, g->n_kv) || put(&h, g->kv, g->kv_len);
  size_t off = 0;
  for (int i = 0; i < g->n_t && !rc; i++) {
    const gguf_tensor *t = &g->t[i];
    rc = put_string(&h, t->name, strlen(t->name)) || put_u32(&h, (uint32_t)t->ndim);
    for (int d = 0; d < t->ndim && !rc; d++) rc = put_u64(&h, (uint64_t)t->ne[d]);
    rc = rc || put_u32(&h, (uint32_t)t->type) || put_u64(&h, off);
    off = align_up(off + t->nbytes);
  }
  rc = rc || put(&h, zeros, align_up(h.kv_len) - h.kv_len);
  fb_part *parts = rc ? NULL : malloc(((size_t)g->n_t * 2 + 1) * sizeof *parts);
  if (!parts) {
    free(h.kv);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  }
  int n = 0;
  parts[n++] = (fb_part){h.kv, h.kv_len};
  for (int i = 0; i < g->n_t; i++) {
    parts[n++] = (fb_part){g->t[i].data, g->t[i].nbytes};
    size_t pad = align_up(g->t[i].nbytes) - g->t[i].nbytes;
    if (pad) parts[n++] = (fb_part){zeros, pad};
  }
  rc = fb_write_parts_atomic(path, parts, n, err);
  free(parts);
  free(h.kv);
  return rc;
}
