/* paths.c: find the folder of bundled Lua modules, scripts, web files and data. */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static int holds_bundle(const char *dir) {
  char probe[PATH_MAX];
  if (snprintf(probe, sizeof probe, "%s/lua/fastbrain/init.lua", dir) >= (int)sizeof probe)
    return 0;
  return access(probe, R_OK) == 0;
}

static int take(char *out, size_t n, const char *dir) {
  char real[PATH_MAX];
  if (!holds_bundle(dir) || !realpath(dir, real) || strlen(real) >= n) return 0;
  strcpy(out, real);
  return 1;
}

int fb_paths_find_root(char *out, size_t n) {
  const char *env = getenv("FASTBRAIN_ROOT");
  if (env && *env && take(out, n, env)) return 0;

  char exe[PATH_MAX];
  size_t len = sizeof exe;
  if (uv_exepath(exe, &len) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0'; /* the folder holding the binary */
      char installed[PATH_MAX + 32];
      snprintf(installed, sizeof installed, "%s/../" FB_INSTALL_DATADIR, exe);
      if (take(out, n, installed)) return 0;
    }
  }
  if (take(out, n, FB_SOURCE_DIR)) return 0;
  snprintf(out, n, "$FASTBRAIN_ROOT, <bin>/../%s, %s", FB_INSTALL_DATADIR, FB_SOURCE_DIR);
  return -1;
}
