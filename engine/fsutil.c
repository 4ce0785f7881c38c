/* fsutil.c: whole-file reads with a cap, atomic file replacement, mkdir -p, removal of a tree,
 * close-on-exec for inherited descriptors, over POSIX calls.
 * Every failure names the path and the system error; nothing here retries or locks. */
#define _GNU_SOURCE /* nftw's FTW_DEPTH, FTW_PHYS; close_range */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A full disk (or quota, or file-size limit) is FB_ENOSPACE, so callers can say "disk full"
 * without reading the message; anything else is FB_EIO. */
static int io_fail(fb_err *err, const char *what, const char *path) {
  int full = errno == ENOSPC || errno == EDQUOT || errno == EFBIG;
  return fb_err_set(err, full ? FB_ENOSPACE : FB_EIO, "%s: %s: %s", path, what, strerror(errno));
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int fb_sync_dir(const char *dir, fb_err *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return io_fail(err, "open directory", dir);
  int rc = fsync(fd);
  close(fd);
  if (rc != 0) return io_fail(err, "fsync directory", dir);
  return 0;
}

/* fsync the directory that holds path, so a rename into it is durable. */
static int sync_parent(const char *path, fb_err *err) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return fb_err_set(err, FB_EINVALID, "%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  return fb_sync_dir(dir, err);
}

int fb_write_parts_atomic(const char *path, const fb_part *parts, int n, fb_err *err) {
  char tmp[PATH_MAX];
  if (!path || !*path || (n > 0 && !parts) || n < 0)
    return fb_err_set(err, FB_EINVALID, "write_file_atomic: bad arguments");
  if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
    return fb_err_set(err, FB_EINVALID, "%s: path too long", path);
  int fd = mkstemp(tmp);
  if (fd < 0) return io_fail(err, "create temp file", tmp);
  int rc = 0;
  if (fchmod(fd, 0644) != 0) rc = io_fail(err, "chmod", tmp);
  for (int i = 0; rc == 0 && i < n; i++)
    if (parts[i].len > 0 && write_all(fd, parts[i].data, parts[i].len) != 0)
      rc = io_fail(err, "write", tmp);
  if (rc == 0 && fsync(fd) != 0) rc = io_fail(err, "fsync", tmp);
  if (close(fd) != 0 && rc == 0) rc = io_fail(err, "close", tmp);
  if (rc == 0 && rename(tmp, path) != 0) rc = io_fail(err, "rename temp file over", path);
  if (rc != 0) {
    unlink(tmp);
    return rc;
  }
  return sync_parent(path, err);
}

int fb_write_file_atomic(const char *path, const void *data, size_t len, fb_err *err) {
  fb_part part = {data, len};
  return fb_write_parts_atomic(path, &part, 1, err);
}

int fb_open_regular(const char *path, int *fd, struct stat *st, fb_err *err) {
  *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (*fd < 0) {
    int code = errno == ENOENT ? FB_ENOTFOUND : FB_EIO;
    return fb_err_set(err, code, "%s: open: %s", path, strerror(errno));
  }
  int rc = 0;
  if (fstat(*fd, st) != 0)
    rc = io_fail(err, "stat", path);
  else if (!S_ISREG(st->st_mode))
    rc = fb_err_set(err, FB_EIO, "%s: not a regular file (%s)", path,
                    S_ISDIR(st->st_mode)    ? "a directory"
                    : S_ISFIFO(st->st_mode) ? "a FIFO"
                                            : "a device or a socket");
  else if (fcntl(*fd, F_SETFL, 0) != 0) /* blocking reads again */
    rc = io_fail(err, "fcntl", path);
  if (rc) {
    close(*fd);
    *fd = -1;
  }
  return rc;
}

int fb_read_file(const char *path, char **buf, size_t *len, size_t max, fb_err *err) {
  *buf = NULL;
  if (len) *len = 0;
  int fd;
  struct stat st;
  int rc = fb_open_regular(path, &fd, &st, err);
  if (rc) return rc;
  if ((unsigned long long)st.st_size > max) {
    close(fd);
    return fb_err_set(err, FB_ELIMIT, "%s: %lld bytes is over the limit of %zu", path,
                      (long long)st.st_size, max);
  }
  size_t size = (size_t)st.st_size, got = 0;
  char *data = malloc(size + 1);
  if (!data) {
    close(fd);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory for %zu bytes", path, size);
  }
  while (got < size) {
    ssize_t r = read(fd, data + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = io_fail(err, "read", path);
      break;
    }
    if (r == 0) {
      rc = fb_err_set(err, FB_EIO, "%s: file shrank while reading", path);
      break;
    }
    got += (size_t)r;
  }
  close(fd);
  if (rc != 0) {
    free(data);
    return rc;
  }
  data[size] = '\0';
  *buf = data;
  if (len) *len = size;
  return 0;
}

int fb_parse_file(const char *path, size_t max, fb_parse_fn parse, void *out, fb_err *err) {
  char *text;
  size_t len;
  int rc = fb_read_file(path, &text, &len, max, err);
  if (rc != 0) return rc;
  rc = parse(out, text, len, path, err);
  free(text);
  return rc;
}

int fb_mkdir_p(const char *path, fb_err *err) {
  char buf[PATH_MAX];
  size_t n = path ? strlen(path) : 0;
  if (n == 0) return fb_err_set(err, FB_EINVALID, "mkdir: empty path");
  if (n >= sizeof buf) return fb_err_set(err, FB_EINVALID, "%s: path too long", path);
  memcpy(buf, path, n + 1);
  /* Make each prefix that ends before a '/', then the whole path. */
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return io_fail(err, "mkdir", buf);
    struct stat st;
    if (stat(buf, &st) != 0) return io_fail(err, "stat", buf);
    if (!S_ISDIR(st.st_mode))
      return fb_err_set(err, FB_EIO, "%s: exists and is not a directory", buf);
    buf[i] = saved;
  }
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st, (void)type, (void)ftw;
  return remove(path) == 0 ? 0 : errno;
}

int fb_remove_tree(const char *path, fb_err *err) {
  if (!path || !*path || strcmp(path, "/") == 0)
    return fb_err_set(err, FB_EINVALID, "remove_tree: refusing to remove '%s'", path ? path : "");
  int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) rc = rc > 0 ? rc : errno;
  if (rc != 0)
    return fb_err_set(err, rc == ENOENT ? FB_ENOTFOUND : FB_EIO, "%s: %s", path, strerror(rc));
  return 0;
}

void fb_cloexec_from(int from) {
  (void)close_range((unsigned)from, ~0u, CLOSE_RANGE_CLOEXEC); /* best effort: Linux 5.11+ */
}
