/* safetensors.h: read safetensors files (one file, or a sharded Hugging Face model directory)
 * over mmap, validating the whole header before anything is allocated for it; write them
 * atomically. Does not convert layouts or own any tensor memory outside the mapping. */
#ifndef FB_SAFETENSORS_H
#define FB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define FB_ST_MAX_DIMS 8
#define FB_ST_MAX_HEADER (100u * 1024u * 1024u) /* header length cap: 100 MB, as safetensors' own */
/* __metadata__ (and an index's "metadata"): at most 1 MiB of keys and values. Writers put a few
 * short strings there (transformers and PEFT: {"format": "pt"}); the 100 MB header cap is for
 * the tensor entries of big models, not for a megabyte-scale blob every open would copy. */
#define FB_ST_MAX_METADATA (1u << 20)

typedef enum { FB_DT_F32, FB_DT_F16, FB_DT_BF16, FB_DT_I32 } fb_dtype;

/* "F32", "F16", "BF16", "I32"; "?" for anything else. */
const char *fb_dtype_name(fb_dtype dt);
/* Bytes per element; 0 for an unknown value. */
size_t fb_dtype_size(fb_dtype dt);
/* Parse a dtype name as safetensors spells it; returns 0 or FB_EUNSUPPORTED. */
int fb_dtype_parse(const char *name, fb_dtype *out);

/* One tensor. Every pointer (name, data) points into memory owned by the fb_st_file it came
 * from and lives until fb_st_close. */
typedef struct fb_st_tensor {
  const char *name;
  fb_dtype dtype;
  int ndim; /* 0..8; 0 is a scalar (numel 1) */
  int64_t shape[FB_ST_MAX_DIMS];
  int64_t numel;
  size_t nbytes;    /* numel * fb_dtype_size(dtype) */
  const void *data; /* points into the mapping; read-only */
} fb_st_tensor;

/* One file, or a sharded directory (several mappings behind one tensor list). */
typedef struct fb_st_file fb_st_file;

/* Map and validate one .safetensors file. On success *out is owned by the caller and freed
 * with fb_st_close; on failure *out is NULL and err names the file and the tensor/field.
 * The file is mapped, not copied: it must not be truncated while open (that would fault). */
int fb_st_open(fb_st_file **out, const char *path, fb_err *err);
/* Open a Hugging Face model directory: dir/model.safetensors, or the shards listed by
 * dir/model.safetensors.index.json (every tensor of the weight_map must be found in the shard
 * the map names; names are unique across shards). Metadata comes from the index's "metadata"
 * (string values only) or the single file's __metadata__. Same ownership as fb_st_open. */
int fb_st_open_model_dir(fb_st_file **out, const char *dir, fb_err *err);
/* Unmap and free everything, including every fb_st_tensor and string handed out. NULL is ok. */
void fb_st_close(fb_st_file *f);

int fb_st_count(const fb_st_file *f);
/* Tensors in file order (by data offset; shard by shard for a directory); NULL if out of range. */
const fb_st_tensor *fb_st_at(const fb_st_file *f, int i);
/* NULL if absent. */
const fb_st_tensor *fb_st_find(const fb_st_file *f, const char *name);
/* Find name and check that its shape is shape[0..ndim). A missing tensor is FB_ENOTFOUND, another
 * shape FB_EFORMAT; both name the file, the tensor and the shapes ("dir: tensor
 * 'lm_head.weight': shape [64, 32], expected [64, 48]"). *out (may be NULL) gets the tensor. */
int fb_st_expect(const fb_st_file *f, const char *name, int ndim, const int64_t *shape,
                 const fb_st_tensor **out, fb_err *err);
/* "[2, 3]" ("[]" for a scalar) into buf of cap bytes (truncated to fit); returns buf. */
const char *fb_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);
/* A __metadata__ value; NULL if absent. Owned by f. */
const char *fb_st_meta(const fb_st_file *f, const char *key);
/* The path the file (or directory) was opened from; owned by f. */
const char *fb_st_path(const fb_st_file *f);

/* Convert any float dtype (F32, F16, BF16) to f32 into dst (numel floats, caller-owned).
 * I32 is refused with FB_EINVALID naming the tensor. */
int fb_st_read_f32(const fb_st_tensor *t, float *dst, fb_err *err);

/* f16/bf16 <-> f32 for one value (round to nearest even when narrowing). */
float fb_f16_to_f32(uint16_t h);
float fb_bf16_to_f32(uint16_t h);
uint16_t fb_f32_to_f16(float f);
uint16_t fb_f32_to_bf16(float f);

/* One tensor to write; data is numel * fb_dtype_size(dtype) bytes in that dtype, borrowed. */
typedef struct fb_st_out {
  const char *name;
  fb_dtype dtype;
  int ndim;
  int64_t shape[FB_ST_MAX_DIMS];
  const void *data;
} fb_st_out;

/* Write n tensors (in the given order) to path atomically: a temp file in the same directory,
 * fsync, rename, fsync of the directory. meta: NULL or key,value,key,value,...,NULL (strings,
 * stored as __metadata__). Duplicate or empty names, bad shapes, and "__metadata__" as a name
 * are refused before anything is written. Nothing of path changes on failure. */
int fb_st_write(const char *path, const fb_st_out *t, int n, const char *const *meta, fb_err *err);

/* Validate a safetensors image already in memory (the fuzzer's entry; fb_st_open uses the same
 * code). name labels errors. On success *out borrows buf: buf must outlive *out. */
int fb_st_open_memory(fb_st_file **out, const void *buf, size_t len, const char *name, fb_err *err);

#endif
