/* formats_tmp.h: a scratch directory for the file-format tests (made under $TMPDIR or /tmp,
 * removed with everything in it), and a helper to write raw bytes into it. Test-only. */
#ifndef FB_FORMATS_TMP_H
#define FB_FORMATS_TMP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw; must come before any system header: include this file first */
#endif

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_root[256];

static int tmp_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* The scratch directory, created on first use. */
static const char *tmp_dir(void) {
  if (!tmp_root[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/fb_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_root)) {
      perror("mkdtemp");
      abort();
    }
  }
  return tmp_root;
}

/* tmp_dir()/name in a static buffer (one of four, so a few can be live at once). */
static const char *tmp_path(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", tmp_dir(), name);
  return b;
}

/* Write len raw bytes to tmp_dir()/name; returns the path. */
static const char *tmp_write(const char *name, const void *data, size_t len) {
  const char *p = tmp_path(name);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(p);
    abort();
  }
  return p;
}

__attribute__((destructor)) static void tmp_cleanup(void) {
  if (tmp_root[0]) nftw(tmp_root, tmp_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
