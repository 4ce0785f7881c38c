/* error.c: error codes to text and the fb_err helpers. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fb_strerror(int code) {
  switch (code) {
#define FB_ERR_TEXT(name, value, text)                                                             \
  case (value): return (text);
    FB_ERRNO_MAP(FB_ERR_TEXT)
#undef FB_ERR_TEXT
  }
  return "unknown error";
}

int fb_err_set(fb_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int fb_err_prefix(fb_err *err, const char *fmt, ...) {
  if (!err) return FB_EINVALID;
  char head[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  size_t cap = sizeof err->msg - 1, hl = strlen(head), keep = strlen(err->msg);
  if (hl + 2 + keep > cap) keep = cap - hl - 2; /* head < 256, so this stays positive */
  memmove(err->msg + hl + 2, err->msg, keep);
  memcpy(err->msg, head, hl);
  memcpy(err->msg + hl, ": ", 2);
  err->msg[hl + 2 + keep] = '\0';
  return err->code;
}
