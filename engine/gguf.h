/* gguf.h: write GGUF v3 files (llama.cpp's format): typed metadata key/values (numbers, bools,
 * strings, arrays of strings or numbers), tensors stored as F32, F16 or Q8_0 with 32-byte
 * alignment, the whole file written atomically. It knows no model layouts (gguf_export.h maps
 * fastbrain's models onto llama.cpp's names) and it does not read GGUF files. */
#ifndef FB_GGUF_H
#define FB_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ggml's tensor types that fastbrain writes (their numbers are ggml's). */
typedef enum { FB_GGML_F32 = 0, FB_GGML_F16 = 1, FB_GGML_Q8_0 = 8 } fb_ggml_type;

/* GGUF's value types (their numbers are the file's). */
enum {
  FB_GGUF_U32 = 4,
  FB_GGUF_I32 = 5,
  FB_GGUF_F32 = 6,
  FB_GGUF_BOOL = 7,
  FB_GGUF_STRING = 8,
  FB_GGUF_ARRAY = 9,
};

#define FB_GGUF_ALIGN 32
#define FB_GGUF_MAX_DIMS 4
#define FB_GGML_QK8_0 32 /* values per Q8_0 block: an f16 scale, then 32 int8 */

/* A file being built: every key, value and tensor is copied in (nothing borrowed), so the
 * caller may free its buffers after each call. Created by fb_gguf_new, freed by fb_gguf_free. */
typedef struct fb_gguf fb_gguf;

int fb_gguf_new(fb_gguf **out, fb_err *err);
void fb_gguf_free(fb_gguf *g);

/* Metadata, in the order added; a key given twice is refused (FB_EINVALID naming it). */
int fb_gguf_u32(fb_gguf *g, const char *key, uint32_t v, fb_err *err);
int fb_gguf_i32(fb_gguf *g, const char *key, int32_t v, fb_err *err);
int fb_gguf_f32(fb_gguf *g, const char *key, float v, fb_err *err);
int fb_gguf_bool(fb_gguf *g, const char *key, int v, fb_err *err);
int fb_gguf_str(fb_gguf *g, const char *key, const char *v, fb_err *err);
/* An array of n strings; lens NULL means each is NUL-terminated. */
int fb_gguf_str_array(fb_gguf *g, const char *key, const char *const *v, const size_t *lens,
                      size_t n, fb_err *err);
/* An array of n int32 values. */
int fb_gguf_i32_array(fb_gguf *g, const char *key, const int32_t *v, size_t n, fb_err *err);

/* A tensor of ggml shape ne[0..ndim) (ne[0] varies fastest: a row-major [out, in] matrix is
 * ne {in, out}) from f32 values, stored as type. Q8_0 needs ne[0] to be a multiple of 32
 * (FB_EINVALID otherwise: the caller picks another type for such rows). */
int fb_gguf_tensor(fb_gguf *g, const char *name, fb_ggml_type type, int ndim, const int64_t *ne,
                   const float *data, fb_err *err);

/* Write the file to path atomically (fsutil.h); nothing of path changes on failure. */
int fb_gguf_write(const fb_gguf *g, const char *path, fb_err *err);

/* Bytes of n values (a multiple of 32 for Q8_0) stored as type. */
size_t fb_ggml_row_size(fb_ggml_type type, int64_t n);
/* Q8_0 as ggml's reference quantizer: per block of 32, d = max|x| / 127 stored as f16, and
 * q = round(x / d) (halves away from zero) as int8. n a multiple of 32; out holds
 * fb_ggml_row_size(Q8_0, n) bytes. */
void fb_ggml_quantize_q8_0(const float *x, void *out, int64_t n);

#endif
