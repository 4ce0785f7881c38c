/* hf_cache.c: ORG/NAME[@REVISION] to a snapshot directory of the Hugging Face cache
 * (hf_cache.h), the way huggingface_hub's try_to_load_from_cache finds it. */
#include "hf_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

void fb_hf_cache_root(char *buf, size_t n) {
  const char *hub = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME");
  if (hub && *hub)
    snprintf(buf, n, "%s", hub);
  else if (home && *home)
    snprintf(buf, n, "%s/hub", home);
  else
    snprintf(buf, n, "%s/.cache/huggingface/hub", getenv("HOME") ? getenv("HOME") : "");
}

/* An organisation's or a repository's name as the Hub allows it (and never "." or ".."). */
static int valid_part(const char *s, size_t len) {
  if (len == 0 || len > 96 || (s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.')))) return 0;
  for (size_t i = 0; i < len; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
      return 0;
  return 1;
}

/* A branch, tag or commit: refs/<revision> is a path below the repository, so no ".." in it. */
static int valid_revision(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 255 || s[0] == '/' || strstr(s, "..")) return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") == len;
}

static int is_commit(const char *s) {
  return strlen(s) == 40 && strspn(s, "0123456789abcdef") == 40;
}

int fb_hf_locate(const char *name, char *dir, size_t n, char commit[FB_HF_COMMIT], fb_err *err) {
  struct stat st;
  commit[0] = '\0';
  if (stat(name, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(dir, n, "%s", name);
    return 0;
  }
  const char *slash = strchr(name, '/'), *at = strchr(name, '@');
  const char *end = at ? at : name + strlen(name), *rev = at ? at + 1 : "main";
  if (!slash || slash > end || !valid_part(name, (size_t)(slash - name)) ||
      !valid_part(slash + 1, (size_t)(end - slash - 1)) || !valid_revision(rev))
    return fb_err_set(err, FB_EINVALID,
                      "model \"%s\": no such directory, nor a Hugging Face repository id "
                      "ORG/NAME[@REVISION]",
                      name);
  char root[2048], repo[2400], path[2800];
  fb_hf_cache_root(root, sizeof root);
  snprintf(repo, sizeof repo, "%s/models--%.*s--%.*s", root, (int)(slash - name), name,
           (int)(end - slash - 1), slash + 1);
  if (is_commit(rev)) {
    memcpy(commit, rev, FB_HF_COMMIT);
  } else {
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/refs/%s", repo, rev);
    if (fb_read_file(path, &text, &len, 256, NULL) != 0)
      return fb_err_set(err, FB_ENOTFOUND,
                        "model \"%s\" is not in the Hugging Face cache (%s): fastbrain pull %s",
                        name, root, name);
    text[strcspn(text, " \r\n")] = '\0';
    int ok = is_commit(text);
    if (ok) memcpy(commit, text, FB_HF_COMMIT);
    free(text);
    if (!ok) return fb_err_set(err, FB_EFORMAT, "%s: not a commit hash", path);
  }
  snprintf(path, sizeof path, "%s/snapshots/%s/config.json", repo, commit);
  if (stat(path, &st) != 0)
    return fb_err_set(
        err, FB_ENOTFOUND,
        "model \"%s\": its snapshot %.12s in %s has no config.json: fastbrain pull %s", name,
        commit, root, name);
  int w = snprintf(dir, n, "%s/snapshots/%s", repo, commit);
  if (w < 0 || (size_t)w >= n)
    return fb_err_set(err, FB_ELIMIT, "model \"%s\": path too long", name);
  return 0;
}
