/* hf_cache.c: ORG/NAME[@REVISION] to a snapshot directory of the Hugging Face cache
 * (hf_cache.h), the way huggingface_hub's try_to_load_from_cache finds it. */
#include "hf_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

/* An environment variable's value with a leading ~ for $HOME, as huggingface_hub expands it;
 * NULL when unset or empty. */
static const char *env_path(const char *name, char *buf, size_t n) {
  const char *v = getenv(name), *home = getenv("HOME");
  if (!v || !*v) return NULL;
  if (v[0] == '~' && (v[1] == '/' || v[1] == '\0'))
    snprintf(buf, n, "%s%s", home ? home : "", v + 1);
  else
    snprintf(buf, n, "%s", v);
  return buf;
}

void fb_hf_cache_root(char *buf, size_t n) {
  char path[2048];
  if (env_path("HF_HUB_CACHE", path, sizeof path))
    snprintf(buf, n, "%s", path);
  else if (env_path("HF_HOME", path, sizeof path))
    snprintf(buf, n, "%s/hub", path);
  else if (env_path("XDG_CACHE_HOME", path, sizeof path))
    snprintf(buf, n, "%s/huggingface/hub", path);
  else
    snprintf(buf, n, "%s/.cache/huggingface/hub", getenv("HOME") ? getenv("HOME") : "");
}

/* An organisation's or a repository's name as the Hub allows it (huggingface_hub's
 * validate_repo_id): letters, digits, - _ . ; no "--" or ".."; not starting or ending with - or
 * .; at most 96 characters. */
static int valid_part(const char *s, size_t len) {
  if (len == 0 || len > 96 || strchr("-.", s[0]) || strchr("-.", s[len - 1])) return 0;
  for (size_t i = 0; i < len; i++) {
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
      return 0;
    if (i > 0 && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i]) return 0;
  }
  return 1;
}

/* A branch, tag or commit (refs/pr/N too): refs/<revision> is a path below the repository, so
 * no "..", no empty segment, nothing absolute. */
static int valid_revision(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 255 || s[0] == '/' || s[len - 1] == '/' || strstr(s, "..") ||
      strstr(s, "//"))
    return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") == len;
}

int fb_hf_parse(const char *name, char repo[FB_HF_REPO], char revision[FB_HF_REVISION]) {
  const char *slash = strchr(name, '/'), *at = strchr(name, '@');
  const char *end = at ? at : name + strlen(name), *rev = at ? at + 1 : "main";
  if (!slash || slash > end || !valid_part(name, (size_t)(slash - name)) ||
      !valid_part(slash + 1, (size_t)(end - slash - 1)) || !valid_revision(rev))
    return -1;
  snprintf(repo, FB_HF_REPO, "%.*s", (int)(end - name), name);
  snprintf(revision, FB_HF_REVISION, "%s", rev);
  return 0;
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
  char id[FB_HF_REPO], rev[FB_HF_REVISION];
  if (fb_hf_parse(name, id, rev))
    return fb_err_set(err, FB_EINVALID,
                      "model \"%s\": no such directory, nor a Hugging Face repository id "
                      "ORG/NAME[@REVISION]",
                      name);
  char root[2048], repo[2400], path[2800];
  fb_hf_cache_root(root, sizeof root);
  const char *slash = strchr(id, '/');
  snprintf(repo, sizeof repo, "%s/models--%.*s--%s", root, (int)(slash - id), id, slash + 1);
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
