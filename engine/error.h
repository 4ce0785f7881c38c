/* error.h: the engine's error codes, defined once, and the error record that carries
 * a message naming the file, line or field at fault. No allocation, no I/O. */
#ifndef FB_ERROR_H
#define FB_ERROR_H

#include <stddef.h>

/* X(name, value, text): every engine error code; functions return 0 or one of these. */
#define FB_ERRNO_MAP(X)                                                                            \
  X(NOMEM, -1, "out of memory")                                                                    \
  X(IO, -2, "input/output error")                                                                  \
  X(FORMAT, -3, "malformed input")                                                                 \
  X(UNSUPPORTED, -4, "unsupported")                                                                \
  X(INVALID, -5, "invalid argument")                                                               \
  X(LIMIT, -6, "limit exceeded")                                                                   \
  X(NOTFOUND, -7, "not found")                                                                     \
  X(NUMERIC, -8, "numerical failure")                                                              \
  X(CANCELLED, -9, "cancelled")                                                                    \
  X(BACKEND, -10, "backend failure")                                                               \
  X(NOSPACE, -11, "disk full")

typedef enum {
#define FB_ERR_ENUM(name, value, text) FB_E##name = (value),
  FB_ERRNO_MAP(FB_ERR_ENUM)
#undef FB_ERR_ENUM
} fb_errno;

/* A caller-provided error record. `msg` holds one line of human text that names what is at
 * fault ("model.safetensors: tensor 'x': dtype I8 is not one of F32, F16, BF16"). */
typedef struct fb_err {
  int code; /* 0 or an fb_errno */
  char msg[512];
} fb_err;

/* The fixed text for a code ("out of memory"); "unknown error" for anything else. */
const char *fb_strerror(int code);

/* Set err (may be NULL) to code and a printf-style message; returns code, so a failing
 * function can `return fb_err_set(err, FB_EFORMAT, "%s: ...", path);`. */
int fb_err_set(fb_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix err->msg with "context: " (e.g. a file name), keeping the code; returns the code. */
int fb_err_prefix(fb_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
