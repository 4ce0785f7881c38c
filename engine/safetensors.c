/* safetensors.c: the safetensors reader (mmap, whole header validated before any tensor table is
 * allocated), sharded model directories, f16/bf16 conversion, and the atomic writer.
 * Assumes a little-endian host, as the format does; never copies tensor data on open. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader maps it as is"
#endif

#define MAX_JSON_INT                                                                               \
  9007199254740992.0 /* 2^53: the largest integer a JSON double holds exactly   \
                                         */
#define MAX_INDEX_BYTES (100u * 1024u * 1024u)

struct fb_st_file {
  char *path;
  int n;
  fb_st_tensor *tensors;       /* n, by data offset */
  const fb_st_tensor **sorted; /* n, by name, for fb_st_find */
  int nmeta;
  const char **meta; /* 2*nmeta: key, value, ... sorted by key */
  char *pool;        /* every name and metadata string of this file */
  void *map;         /* the mapping (NULL when opened from memory or a directory) */
  size_t map_len;
  fb_st_file **shards; /* a directory's files; their tensors back ours */
  int nshards;
};

static const char *const dtype_names[] = {"F32", "F16", "BF16", "I32"};
static const size_t dtype_sizes[] = {4, 2, 2, 4};
#define NDTYPES 4

const char *fb_dtype_name(fb_dtype dt) { return (unsigned)dt < NDTYPES ? dtype_names[dt] : "?"; }

size_t fb_dtype_size(fb_dtype dt) { return (unsigned)dt < NDTYPES ? dtype_sizes[dt] : 0; }

int fb_dtype_parse(const char *name, fb_dtype *out) {
  for (int i = 0; i < NDTYPES; i++)
    if (strcmp(name, dtype_names[i]) == 0) {
      *out = (fb_dtype)i;
      return 0;
    }
  return FB_EUNSUPPORTED;
}

/* ---- element conversion ---- */

static float bits_to_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint32_t f32_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

float fb_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t fb_f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);                                          /* nearest even */
  return (uint16_t)(u >> 16);
}

float fb_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN */
  if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return bits_to_f32(sign);
  /* subnormal: man * 2^-24 */
  float v = (float)man * (1.0f / 16777216.0f);
  return sign ? -v : v;
}

uint16_t fb_f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
  if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds to or past inf */
  if (a < 0x38800000u) {                       /* below the smallest normal: 2^-14 */
    if (a < 0x33000000u) return sign;          /* below half the smallest subnormal */
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24: to units of 2^-24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return sign | (uint16_t)q;
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* nearest even at bit 13 */
  return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

int fb_st_read_f32(const fb_st_tensor *t, float *dst, fb_err *err) {
  const unsigned char *src = t->data;
  switch (t->dtype) {
    case FB_DT_F32:
      if (t->nbytes) memcpy(dst, src, t->nbytes);
      return 0;
    case FB_DT_F16:
    case FB_DT_BF16:
      for (int64_t i = 0; i < t->numel; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2); /* the data area need not be aligned */
        dst[i] = t->dtype == FB_DT_F16 ? fb_f16_to_f32(h) : fb_bf16_to_f32(h);
      }
      return 0;
    default:
      return fb_err_set(err, FB_EINVALID, "tensor '%s': dtype %s is not a float type", t->name,
                        fb_dtype_name(t->dtype));
  }
}

/* ---- accessors ---- */

int fb_st_count(const fb_st_file *f) { return f->n; }

const fb_st_tensor *fb_st_at(const fb_st_file *f, int i) {
  return i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const char *fb_st_path(const fb_st_file *f) { return f->path; }

const fb_st_tensor *fb_st_find(const fb_st_file *f, const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(name, f->sorted[mid]->name);
    if (c == 0) return f->sorted[mid];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *fb_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t at = 0;
  if (cap == 0) return buf;
  buf[0] = '\0';
  for (int i = 0; i <= ndim && at < cap; i++) {
    int n = i == ndim ? snprintf(buf + at, cap - at, "]")
                      : snprintf(buf + at, cap - at, "%s%lld", i ? ", " : "[", (long long)shape[i]);
    if (n < 0) break;
    at += (size_t)n;
  }
  if (ndim == 0) snprintf(buf, cap, "[]");
  return buf;
}

int fb_st_expect(const fb_st_file *f, const char *name, int ndim, const int64_t *shape,
                 const fb_st_tensor **out, fb_err *err) {
  const fb_st_tensor *t = fb_st_find(f, name);
  if (out) *out = t;
  if (!t) return fb_err_set(err, FB_ENOTFOUND, "%s: tensor '%s' is missing", f->path, name);
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  if (same) return 0;
  char have[160], want[160];
  if (out) *out = NULL;
  return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': shape %s, expected %s", f->path, name,
                    fb_st_shape_str(t->ndim, t->shape, have, sizeof have),
                    fb_st_shape_str(ndim, shape, want, sizeof want));
}

const char *fb_st_meta(const fb_st_file *f, const char *key) {
  int lo = 0, hi = f->nmeta - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(key, f->meta[2 * mid]);
    if (c == 0) return f->meta[2 * mid + 1];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

void fb_st_close(fb_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->nshards; i++) fb_st_close(f->shards[i]);
  free(f->shards);
  if (f->map) munmap(f->map, f->map_len);
  free(f->tensors);
  free(f->sorted);
  free(f->meta);
  free(f->pool);
  free(f->path);
  free(f);
}

/* ---- building a file record ---- */

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp((*(const fb_st_tensor *const *)a)->name, (*(const fb_st_tensor *const *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Allocate the record with room for n tensors, nmeta metadata pairs and pool_len bytes of
 * strings. */
static int file_new(fb_st_file **out, const char *label, int n, int nmeta, size_t pool_len,
                    fb_err *err) {
  fb_st_file *f = calloc(1, sizeof *f);
  if (f) {
    f->path = strdup(label);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    f->sorted = calloc((size_t)n + 1, sizeof *f->sorted);
    f->meta = calloc(2 * (size_t)nmeta + 1, sizeof *f->meta);
    f->pool = malloc(pool_len + 1);
  }
  if (!f || !f->path || !f->tensors || !f->sorted || !f->meta || !f->pool) {
    fb_st_close(f);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory for %d tensors", label, n);
  }
  *out = f;
  return 0;
}

/* Sort the name index and the metadata, refusing duplicate tensor names or metadata keys. */
static int file_index(fb_st_file *f, fb_err *err) {
  for (int i = 0; i < f->n; i++) f->sorted[i] = &f->tensors[i];
  qsort(f->sorted, (size_t)f->n, sizeof *f->sorted, cmp_tensor_name);
  for (int i = 1; i < f->n; i++)
    if (strcmp(f->sorted[i - 1]->name, f->sorted[i]->name) == 0)
      return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': duplicate name", f->path,
                        f->sorted[i]->name);
  qsort(f->meta, (size_t)f->nmeta, 2 * sizeof *f->meta, cmp_meta_key);
  for (int i = 1; i < f->nmeta; i++)
    if (strcmp(f->meta[2 * i - 2], f->meta[2 * i]) == 0)
      return fb_err_set(err, FB_EFORMAT, "%s: __metadata__: duplicate key '%s'", f->path,
                        f->meta[2 * i]);
  return 0;
}

static char *pool_put(char **cursor, const char *s) {
  size_t n = strlen(s) + 1;
  char *at = *cursor;
  memcpy(at, s, n);
  *cursor += n;
  return at;
}

/* ---- header parsing ---- */

/* Could c continue a JSON number token? */
static int number_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* The next number token in [*at, end) of JSON text cJSON has accepted, strings skipped; its
 * length goes to *n and *at moves past it. NULL when there is none. */
static const char *next_number(const char **at, const char *end, size_t *n) {
  for (const char *p = *at; p < end; p++) {
    if (*p == '"') {
      for (p++; *p != '"'; p++) p += *p == '\\';
      continue;
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
      const char *s = p;
      while (p < end && number_char(*p)) p++;
      *n = (size_t)(p - s);
      *at = p;
      return s;
    }
  }
  return NULL;
}

/* cJSON reads 256.0, 2.56e2 and -0 as plain integers, so a shape of [256.0] would pass. Pair each
 * number item with its token (cJSON keeps items in text order) and make those not written as
 * bare digits NaN, which json_uint refuses. */
static void mark_non_digit_numbers(cJSON *v, const char **at, const char *end) {
  for (; v; v = v->next) {
    if (cJSON_IsNumber(v)) {
      size_t n = 0, digits = 0;
      const char *s = next_number(at, end, &n);
      while (s && digits < n && s[digits] >= '0' && s[digits] <= '9') digits++;
      if (!s || digits < n) v->valuedouble = NAN;
    }
    mark_non_digit_numbers(v->child, at, end);
  }
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= MAX_JSON_INT) || d != (double)(int64_t)d) return -1;
  *out = (int64_t)d;
  return 0;
}

typedef struct {
  int64_t begin, end;
  int idx;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->idx - y->idx;
}

/* Check one tensor entry; fill t (name left NULL) and its data span. */
static int parse_entry(const char *label, const cJSON *e, fb_st_tensor *t, span *sp, fb_err *err) {
  const char *name = e->string;
  if (!cJSON_IsObject(e))
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': entry is not an object", label, name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt))
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': \"dtype\" missing or not a string", label,
                      name);
  if (fb_dtype_parse(dt->valuestring, &t->dtype) != 0)
    return fb_err_set(err, FB_EUNSUPPORTED,
                      "%s: tensor '%s': dtype %.32s is not one of F32, F16, BF16, I32", label, name,
                      dt->valuestring);
  if (!cJSON_IsArray(shape))
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': \"shape\" missing or not an array", label,
                      name);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > FB_ST_MAX_DIMS)
    return fb_err_set(err, FB_ELIMIT, "%s: tensor '%s': %d dimensions, at most %d", label, name,
                      ndim, FB_ST_MAX_DIMS);
  t->ndim = ndim;
  uint64_t numel = 1;
  int overflow = 0, i = 0;
  const cJSON *d;
  cJSON_ArrayForEach(d, shape) {
    int64_t v;
    if (json_uint(d, &v) != 0)
      return fb_err_set(err, FB_EFORMAT,
                        "%s: tensor '%s': shape[%d] is not a non-negative integer in digits", label,
                        name, i);
    t->shape[i++] = v;
    overflow |= __builtin_mul_overflow(numel, (uint64_t)v, &numel);
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, (uint64_t)fb_dtype_size(t->dtype), &nbytes);
  if (overflow || nbytes > (uint64_t)INT64_MAX || nbytes > SIZE_MAX)
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': shape product overflows", label, name);
  t->numel = (int64_t)numel;
  t->nbytes = (size_t)nbytes;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      json_uint(cJSON_GetArrayItem(offs, 0), &sp->begin) != 0 ||
      json_uint(cJSON_GetArrayItem(offs, 1), &sp->end) != 0)
    return fb_err_set(err, FB_EFORMAT,
                      "%s: tensor '%s': \"data_offsets\" is not [begin, end] of integers in digits",
                      label, name);
  if (sp->end < sp->begin)
    return fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': data_offsets end %lld < begin %lld", label,
                      name, (long long)sp->end, (long long)sp->begin);
  if ((uint64_t)(sp->end - sp->begin) != nbytes)
    return fb_err_set(err, FB_EFORMAT,
                      "%s: tensor '%s': data_offsets span %lld bytes, shape and dtype need %llu",
                      label, name, (long long)(sp->end - sp->begin), (unsigned long long)nbytes);
  return 0;
}

/* Refuse metadata (field names it: "__metadata__", "metadata") of more than
 * FB_ST_MAX_METADATA bytes of keys and values. */
static int metadata_fits(const char *label, const char *field, size_t bytes, fb_err *err) {
  if (bytes <= FB_ST_MAX_METADATA) return 0;
  return fb_err_set(err, FB_ELIMIT, "%s: %s: %zu bytes of keys and values, over the cap of %u",
                    label, field, bytes, FB_ST_MAX_METADATA);
}

/* Count tensors and string bytes, and check __metadata__; nothing is allocated. */
static int header_survey(const char *label, const cJSON *root, int *ntensors, int *nmeta,
                         size_t *pool_len, fb_err *err) {
  const cJSON *e;
  size_t meta_len = 0;
  *ntensors = *nmeta = 0;
  *pool_len = 0;
  cJSON_ArrayForEach(e, root) {
    *pool_len += strlen(e->string) + 1;
    if (strcmp(e->string, "__metadata__") != 0) {
      (*ntensors)++;
      continue;
    }
    if (!cJSON_IsObject(e))
      return fb_err_set(err, FB_EFORMAT, "%s: __metadata__ is not an object", label);
    const cJSON *m;
    cJSON_ArrayForEach(m, e) {
      if (!cJSON_IsString(m))
        return fb_err_set(err, FB_EFORMAT, "%s: __metadata__ '%s': value is not a string", label,
                          m->string);
      (*nmeta)++;
      meta_len += strlen(m->string) + strlen(m->valuestring);
    }
  }
  *pool_len += meta_len + 2 * (size_t)*nmeta;
  return metadata_fits(label, "__metadata__", meta_len, err);
}

int fb_st_open_memory(fb_st_file **out, const void *buf, size_t len, const char *name,
                      fb_err *err) {
  const unsigned char *base = buf;
  *out = NULL;
  if (len < 8)
    return fb_err_set(err, FB_EFORMAT, "%s: %zu bytes, too short for the 8-byte header length",
                      name, len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
  if (hlen > FB_ST_MAX_HEADER)
    return fb_err_set(err, FB_ELIMIT, "%s: header length %llu is over the cap of %u bytes", name,
                      (unsigned long long)hlen, FB_ST_MAX_HEADER);
  if (hlen > len - 8)
    return fb_err_set(err, FB_EFORMAT,
                      "%s: header length %llu runs past the end of the file (%zu bytes)", name,
                      (unsigned long long)hlen, len);
  if (hlen < 2 || base[8] != '{')
    return fb_err_set(err, FB_EFORMAT, "%s: header is not a JSON object", name);
  const char *json = (const char *)base + 8, *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= json && at <= json + hlen ? (long)(at - json) : -1;
    return fb_err_set(err, FB_EFORMAT, "%s: header is not valid JSON (near byte %ld)", name, off);
  }
  for (const char *p = end; p < json + hlen; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      cJSON_Delete(root);
      return fb_err_set(err, FB_EFORMAT, "%s: header has bytes after the JSON object", name);
    }
  const char *at = json;
  mark_non_digit_numbers(root, &at, end);

  int n = 0, nmeta = 0, rc;
  size_t pool_len = 0;
  fb_st_file *f = NULL;
  span *spans = NULL;
  rc = header_survey(name, root, &n, &nmeta, &pool_len, err);
  if (rc == 0) rc = file_new(&f, name, n, nmeta, pool_len, err);
  if (rc == 0 && !(spans = calloc((size_t)n + 1, sizeof *spans)))
    rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", name);
  char *cursor = f ? f->pool : NULL;
  const cJSON *e;
  if (rc == 0) cJSON_ArrayForEach(e, root) {
      if (strcmp(e->string, "__metadata__") == 0) {
        const cJSON *m;
        cJSON_ArrayForEach(m, e) {
          f->meta[2 * f->nmeta] = pool_put(&cursor, m->string);
          f->meta[2 * f->nmeta + 1] = pool_put(&cursor, m->valuestring);
          f->nmeta++;
        }
        continue;
      }
      fb_st_tensor *t = &f->tensors[f->n];
      rc = parse_entry(name, e, t, &spans[f->n], err);
      if (rc != 0) break;
      t->name = pool_put(&cursor, e->string);
      spans[f->n].idx = f->n;
      f->n++;
    }
  cJSON_Delete(root);

  /* The data area must be tiled exactly: sorted by offset, no gap, no overlap, no tail. */
  uint64_t data_len = len - 8 - hlen;
  if (rc == 0) {
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    int64_t at = 0;
    for (int i = 0; i < n && rc == 0; i++) {
      const char *tn = f->tensors[spans[i].idx].name;
      if ((uint64_t)spans[i].end > data_len)
        rc = fb_err_set(err, FB_EFORMAT,
                        "%s: tensor '%s': data_offsets end %lld is past the data area (%llu bytes)",
                        name, tn, (long long)spans[i].end, (unsigned long long)data_len);
      else if (spans[i].begin > at)
        rc = fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': gap of %lld bytes before it", name, tn,
                        (long long)(spans[i].begin - at));
      else if (spans[i].begin < at)
        rc =
            fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': overlaps the tensor before it", name, tn);
      at = spans[i].end;
    }
    if (rc == 0 && (uint64_t)at != data_len)
      rc = fb_err_set(err, FB_EFORMAT,
                      "%s: file has %llu bytes after the last tensor (file length must be exact)",
                      name, (unsigned long long)(data_len - (uint64_t)at));
  }
  if (rc == 0) {
    /* Keep tensors in file order. */
    fb_st_tensor *ordered = malloc(((size_t)n + 1) * sizeof *ordered);
    if (!ordered) {
      rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", name);
    } else {
      for (int i = 0; i < n; i++) {
        ordered[i] = f->tensors[spans[i].idx];
        ordered[i].data = base + 8 + hlen + spans[i].begin;
      }
      free(f->tensors);
      f->tensors = ordered;
      rc = file_index(f, err);
    }
  }
  free(spans);
  if (rc != 0) {
    fb_st_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

int fb_st_open(fb_st_file **out, const char *path, fb_err *err) {
  *out = NULL;
  int fd;
  struct stat st;
  int rc = fb_open_regular(path, &fd, &st, err);
  if (rc) return rc;
  size_t len = (size_t)st.st_size;
  if (len < 8) {
    close(fd);
    return fb_err_set(err, FB_EFORMAT, "%s: %zu bytes, too short for the 8-byte header length",
                      path, len);
  }
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) return fb_err_set(err, FB_EIO, "%s: mmap: %s", path, strerror(e));
  rc = fb_st_open_memory(out, map, len, path, err);
  if (rc != 0) {
    munmap(map, len);
    return rc;
  }
  (*out)->map = map;
  (*out)->map_len = len;
  return 0;
}

/* ---- sharded model directories ---- */

static int join(char *dst, size_t cap, const char *dir, const char *name, fb_err *err) {
  if ((size_t)snprintf(dst, cap, "%s/%s", dir, name) >= cap)
    return fb_err_set(err, FB_EINVALID, "%s/%s: path too long", dir, name);
  return 0;
}

static int shard_of(const fb_st_file *dir, const char *file) {
  for (int i = 0; i < dir->nshards; i++)
    if (strcmp(strrchr(fb_st_path(dir->shards[i]), '/') + 1, file) == 0) return i;
  return -1;
}

static int open_index(fb_st_file **out, const char *dir, const char *index_path, fb_err *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = fb_read_file(index_path, &text, &len, MAX_INDEX_BYTES, err);
  if (rc != 0) return rc;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return fb_err_set(err, FB_EFORMAT, "%s: not a JSON object", index_path);
  }
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
  const cJSON *e;
  int nmeta = 0, nmap = 0;
  size_t pool_len = 0;
  if (!cJSON_IsObject(map))
    rc = fb_err_set(err, FB_EFORMAT, "%s: \"weight_map\" missing or not an object", index_path);
  if (rc == 0 && meta && !cJSON_IsObject(meta))
    rc = fb_err_set(err, FB_EFORMAT, "%s: \"metadata\" is not an object", index_path);
  if (rc == 0) cJSON_ArrayForEach(e, meta) {
      if (!cJSON_IsString(e)) continue; /* e.g. total_size: a number, not kept */
      nmeta++;
      pool_len += strlen(e->string) + strlen(e->valuestring);
    }
  if (rc == 0) rc = metadata_fits(index_path, "metadata", pool_len, err);
  pool_len += 2 * (size_t)nmeta;
  if (rc == 0 && !map->child)
    rc = fb_err_set(err, FB_EFORMAT, "%s: \"weight_map\" is empty", index_path);
  if (rc == 0) cJSON_ArrayForEach(e, map) {
      nmap++;
      if (!cJSON_IsString(e) || !*e->valuestring || strchr(e->valuestring, '/') ||
          strcmp(e->valuestring, "..") == 0 || strcmp(e->valuestring, ".") == 0) {
        rc = fb_err_set(err, FB_EFORMAT,
                        "%s: weight_map '%s': value must be a file name in the same directory",
                        index_path, e->string);
        break;
      }
    }
  fb_st_file *f = NULL;
  if (rc == 0) rc = file_new(&f, dir, 0, nmeta, pool_len, err);
  if (rc == 0 && !(f->shards = calloc((size_t)nmap + 1, sizeof *f->shards)))
    rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", index_path);
  /* Open each shard once, in order of first mention. */
  char path[PATH_MAX];
  if (rc == 0) cJSON_ArrayForEach(e, map) {
      if (shard_of(f, e->valuestring) >= 0) continue;
      rc = join(path, sizeof path, dir, e->valuestring, err);
      if (rc == 0) rc = fb_st_open(&f->shards[f->nshards], path, err);
      if (rc != 0) break;
      f->nshards++;
    }
  /* Every listed tensor is in its shard; every shard tensor is listed. */
  int total = 0;
  if (rc == 0) cJSON_ArrayForEach(e, map) {
      const fb_st_file *s = f->shards[shard_of(f, e->valuestring)];
      if (!fb_st_find(s, e->string)) {
        rc = fb_err_set(err, FB_EFORMAT, "%s: tensor '%s': listed in the index but missing from %s",
                        index_path, e->string, fb_st_path(s));
        break;
      }
    }
  for (int i = 0; rc == 0 && i < f->nshards; i++) {
    const fb_st_file *s = f->shards[i];
    for (int j = 0; j < s->n; j++) {
      const cJSON *m = cJSON_GetObjectItemCaseSensitive(map, s->tensors[j].name);
      if (!m || strcmp(m->valuestring, strrchr(s->path, '/') + 1) != 0) {
        rc = fb_err_set(err, FB_EFORMAT,
                        "%s: tensor '%s': in %s but the index does not map it there", index_path,
                        s->tensors[j].name, s->path);
        break;
      }
    }
    total += s->n;
  }
  if (rc == 0) {
    free(f->tensors);
    free(f->sorted);
    f->tensors = malloc(((size_t)total + 1) * sizeof *f->tensors);
    f->sorted = malloc(((size_t)total + 1) * sizeof *f->sorted);
    if (!f->tensors || !f->sorted) rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", index_path);
  }
  if (rc == 0) {
    for (int i = 0; i < f->nshards; i++)
      for (int j = 0; j < f->shards[i]->n; j++) f->tensors[f->n++] = f->shards[i]->tensors[j];
    char *cursor = f->pool;
    cJSON_ArrayForEach(e, meta) {
      if (!cJSON_IsString(e)) continue;
      f->meta[2 * f->nmeta] = pool_put(&cursor, e->string);
      f->meta[2 * f->nmeta + 1] = pool_put(&cursor, e->valuestring);
      f->nmeta++;
    }
    rc = file_index(f, err);
  }
  cJSON_Delete(root);
  if (rc != 0) {
    fb_st_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

int fb_st_open_model_dir(fb_st_file **out, const char *dir, fb_err *err) {
  char path[PATH_MAX];
  *out = NULL;
  int rc = join(path, sizeof path, dir, "model.safetensors.index.json", err);
  if (rc != 0) return rc;
  if (access(path, F_OK) == 0) return open_index(out, dir, path, err);
  rc = join(path, sizeof path, dir, "model.safetensors", err);
  if (rc != 0) return rc;
  if (access(path, F_OK) != 0)
    return fb_err_set(err, FB_ENOTFOUND,
                      "%s: neither model.safetensors nor model.safetensors.index.json is there",
                      dir);
  return fb_st_open(out, path, err);
}

/* ---- writer ---- */

static int write_fail(fb_err *err, int code, const char *path, const char *fmt, const char *a) {
  char what[400];
  snprintf(what, sizeof what, fmt, a);
  return fb_err_set(err, code, "%s: %s", path, what);
}

/* Build the JSON header for t[0..n) and meta; checks every argument. */
static int build_header(const char *path, const fb_st_out *t, int n, const char *const *meta,
                        char **json, fb_err *err) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  int rc = 0;
  uint64_t at = 0;
  if (meta && meta[0]) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; rc == 0 && meta[i]; i += 2) {
      if (!meta[i + 1])
        rc = write_fail(err, FB_EINVALID, path, "metadata key '%s' has no value", meta[i]);
      else if (cJSON_GetObjectItemCaseSensitive(m, meta[i]))
        rc = write_fail(err, FB_EINVALID, path, "metadata key '%s' given twice", meta[i]);
      else if (!cJSON_AddStringToObject(m, meta[i], meta[i + 1]))
        rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
    }
  }
  for (int i = 0; rc == 0 && i < n; i++) {
    const char *name = t[i].name;
    uint64_t numel = 1, nbytes = 0;
    int overflow = 0;
    if (!name || !*name || strcmp(name, "__metadata__") == 0) {
      rc = write_fail(err, FB_EINVALID, path, "tensor '%s': bad name", name ? name : "(null)");
      break;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, name)) {
      rc = write_fail(err, FB_EINVALID, path, "tensor '%s': duplicate name", name);
      break;
    }
    if (fb_dtype_size(t[i].dtype) == 0 || t[i].ndim < 0 || t[i].ndim > FB_ST_MAX_DIMS) {
      rc = write_fail(err, FB_EINVALID, path, "tensor '%s': bad dtype or ndim", name);
      break;
    }
    cJSON *e = cJSON_AddObjectToObject(root, name);
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddStringToObject(e, "dtype", fb_dtype_name(t[i].dtype));
    for (int d = 0; d < t[i].ndim; d++) {
      if (t[i].shape[d] < 0 || (double)t[i].shape[d] > MAX_JSON_INT)
        overflow = 1;
      else
        overflow |= __builtin_mul_overflow(numel, (uint64_t)t[i].shape[d], &numel);
      cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
    }
    overflow |= __builtin_mul_overflow(numel, (uint64_t)fb_dtype_size(t[i].dtype), &nbytes);
    if (overflow || nbytes > SIZE_MAX || at + nbytes > (uint64_t)MAX_JSON_INT) {
      rc = write_fail(err, FB_EINVALID, path, "tensor '%s': bad shape or size overflow", name);
      break;
    }
    if (nbytes > 0 && !t[i].data) {
      rc = write_fail(err, FB_EINVALID, path, "tensor '%s': no data", name);
      break;
    }
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)at));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(at + nbytes)));
    at += nbytes;
  }
  if (rc == 0 && !(*json = cJSON_PrintUnformatted(root)))
    rc = fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  cJSON_Delete(root);
  return rc;
}

int fb_st_write(const char *path, const fb_st_out *t, int n, const char *const *meta, fb_err *err) {
  if (n < 0 || (n > 0 && !t)) return fb_err_set(err, FB_EINVALID, "%s: bad tensor list", path);
  char *json = NULL;
  int rc = build_header(path, t, n, meta, &json, err);
  if (rc != 0) return rc;
  size_t jlen = strlen(json), padded = (jlen + 7) & ~(size_t)7; /* keep tensor data 8-aligned */
  fb_part *parts = malloc(((size_t)n + 2) * sizeof *parts);
  char *header = malloc(8 + padded);
  if (!parts || !header) {
    free(parts);
    free(header);
    cJSON_free(json);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  }
  for (int i = 0; i < 8; i++) header[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
  memcpy(header + 8, json, jlen);
  memset(header + 8 + jlen, ' ', padded - jlen);
  cJSON_free(json);
  parts[0] = (fb_part){header, 8 + padded};
  for (int i = 0; i < n; i++) {
    size_t nbytes = fb_dtype_size(t[i].dtype);
    for (int d = 0; d < t[i].ndim; d++) nbytes *= (size_t)t[i].shape[d]; /* checked above */
    parts[i + 1] = (fb_part){t[i].data, nbytes};
  }
  rc = fb_write_parts_atomic(path, parts, n + 1, err);
  free(parts);
  free(header);
  return rc;
}
