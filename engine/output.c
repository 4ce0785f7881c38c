/* output.c: how a run's output appears whole (output.h): built in a hidden sibling, renamed into
 * place, what a crash cut short settled; and its checkpoints' directory settled the same way. */
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

int fb_output_is_step_entry(const struct dirent *d) { return strncmp(d->d_name, "step-", 5) == 0; }

/* out's sibling ".<name>.<what>", or (what NULL) out's parent directory. */
static int sibling(char *dst, size_t n, const char *out, const char *what, fb_err *err) {
  size_t len = strlen(out), base;
  while (len > 1 && out[len - 1] == '/') len--;
  for (base = len; base > 0 && out[base - 1] != '/'; base--)
    ;
  int name = (int)(len - base);
  int w = what ? snprintf(dst, n, "%.*s.%.*s.%s", (int)base, out, name, out + base, what)
               : snprintf(dst, n, "%.*s", base ? (int)base : 1, base ? out : ".");
  if (w < 0 || (size_t)w >= n) return fb_err_set(err, FB_EINVALID, "%s: path too long", out);
  return 0;
}

static int io_fail(fb_err *err, const char *what, const char *a, const char *b) {
  return fb_err_set(err, FB_EIO, "%s: cannot %s %s: %s", a, what, b, strerror(errno));
}

/* Move what `aside` holds and out lacks into out, then remove aside. */
static int take_back(const char *aside, const char *out, fb_err *err) {
  DIR *d = opendir(aside);
  if (!d) return fb_err_set(err, FB_EIO, "%s: %s", aside, strerror(errno));
  char from[PATH_MAX], to[PATH_MAX];
  struct dirent *e;
  int rc = 0;
  struct stat st;
  while (!rc && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(from, sizeof from, "%s/%s", aside, e->d_name);
    snprintf(to, sizeof to, "%s/%s", out, e->d_name);
    if (lstat(to, &st) != 0 && rename(from, to) != 0) rc = io_fail(err, "move it to", from, to);
  }
  closedir(d);
  if (!rc && !(rc = fb_sync_dir(out, err))) rc = fb_remove_tree(aside, err);
  return rc;
}

int fb_output_settle_checkpoints(const char *ckdir) {
  struct dirent **list;
  int n = scandir(ckdir, &list, fb_output_is_step_entry, alphasort), removed = 0;
  for (int i = 0; i < n; i++) {
    const char *dot = strrchr(list[i]->d_name, '.');
    if (dot && strcmp(dot, ".tmp") == 0) {
      char path[PATH_MAX];
      snprintf(path, sizeof path, "%s/%s", ckdir, list[i]->d_name);
      removed += fb_remove_tree(path, NULL) == 0;
    }
    free(list[i]);
  }
  if (n >= 0) free(list);
  return removed;
}

int fb_output_settle(const char *out, fb_err *err) {
  char partial[PATH_MAX], replaced[PATH_MAX], parent[PATH_MAX];
  int rc;
  if ((rc = sibling(partial, sizeof partial, out, "partial", err)) ||
      (rc = sibling(replaced, sizeof replaced, out, "replaced", err)) ||
      (rc = sibling(parent, sizeof parent, out, NULL, err)))
    return rc;
  if ((rc = fb_remove_tree(partial, err)) && rc != FB_ENOTFOUND) return rc;
  if (access(replaced, F_OK) != 0) return 0;
  if (access(out, F_OK) == 0) /* the new output was in place: finish */
    return take_back(replaced, out, err);
  if (rename(replaced, out) != 0) /* it was not: undo */
    return io_fail(err, "rename it to", replaced, out);
  return fb_sync_dir(parent, err);
}

int fb_output_partial_path(char *dst, size_t n, const char *out, fb_err *err) {
  return sibling(dst, n, out, "partial", err);
}

int fb_output_publish(const char *partial, const char *out, fb_err *err) {
  char replaced[PATH_MAX], parent[PATH_MAX];
  int rc;
  if ((rc = sibling(replaced, sizeof replaced, out, "replaced", err)) ||
      (rc = sibling(parent, sizeof parent, out, NULL, err)))
    return rc;
  int existed = access(out, F_OK) == 0;
  if (existed && rename(out, replaced) != 0) return io_fail(err, "rename it to", out, replaced);
  if (rename(partial, out) != 0) return io_fail(err, "rename it to", partial, out);
  if ((rc = fb_sync_dir(parent, err))) return rc;
  return existed ? take_back(replaced, out, err) : 0;
}
