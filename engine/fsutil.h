/* fsutil.h: small file-system helpers the engine shares: whole-file reads with a size cap (and
 * handed to a parser), atomic replacement of a file (temp file, fsync, rename, fsync of the
 * directory), mkdir -p, removing a tree.
 * No buffering layer, no locking between processes. */
#ifndef FB_FSUTIL_H
#define FB_FSUTIL_H

#include <stddef.h>
#include <sys/stat.h>

#include "error.h"

/* One piece of a file written by fb_write_parts_atomic; data is borrowed. */
typedef struct fb_part {
  const void *data;
  size_t len;
} fb_part;

/* Replace path with the concatenation of parts, atomically: a temp file "path.tmp.XXXXXX" in
 * the same directory, written in full, fsync'd, renamed over path, then the directory fsync'd.
 * The new file has mode 0644. On failure the temp file is removed and path is untouched; a full
 * disk is FB_ENOSPACE (as for every helper here), other system errors FB_EIO. */
int fb_write_parts_atomic(const char *path, const fb_part *parts, int n, fb_err *err);
/* The same for one buffer. */
int fb_write_file_atomic(const char *path, const void *data, size_t len, fb_err *err);

/* Read the whole of path into a fresh buffer (*buf, NUL-terminated, len bytes without the
 * NUL; the caller frees it with free()). A file larger than max bytes is refused with
 * FB_ELIMIT before anything is allocated. On failure *buf is NULL. */
int fb_read_file(const char *path, char **buf, size_t *len, size_t max, fb_err *err);

/* A parser of a whole file's text (len bytes, NUL-terminated) into out; label names the source
 * in its errors. */
typedef int (*fb_parse_fn)(void *out, const char *text, size_t len, const char *label, fb_err *err);
/* Read path (at most max bytes, as fb_read_file) and parse it into out, with path as the label;
 * the text is freed before returning. Returns fb_read_file's error or parse's result. */
int fb_parse_file(const char *path, size_t max, fb_parse_fn parse, void *out, fb_err *err);

/* Open path for reading only when it is a regular file: a FIFO, a device or a socket is
 * refused without waiting on it (open() of a FIFO blocks until a writer comes). On success *fd
 * and *st are set; the caller closes *fd. */
int fb_open_regular(const char *path, int *fd, struct stat *st, fb_err *err);

/* Create path and every missing parent (mode 0755). An existing directory is success; an
 * existing non-directory is FB_EIO naming it. */
int fb_mkdir_p(const char *path, fb_err *err);

/* fsync the directory dir, so renames into it are durable. */
int fb_sync_dir(const char *dir, fb_err *err);

/* Remove path and everything below it, never following links; FB_ENOTFOUND when it is missing. */
int fb_remove_tree(const char *path, fb_err *err);

/* Mark every open descriptor from `from` up close-on-exec, so that a child started next
 * inherits only what it is given: some libraries (LuaSocket) open sockets without the flag,
 * and a child holding a copy keeps the connection open after this process closes it. */
void fb_cloexec_from(int from);

#endif
