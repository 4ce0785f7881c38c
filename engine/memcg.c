/* memcg.c: per-worker memory cgroups (memcg.h) over the cgroup file system at /sys/fs/cgroup:
 * v1's memory hierarchy at /sys/fs/cgroup/memory, else v2's unified one. */
#include "memcg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define V1_ROOT "/sys/fs/cgroup/memory"
#define V2_ROOT "/sys/fs/cgroup"

/* Whether the comma-separated list holds word. */
static int has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
  return 0;
}

/* The first line of path that starts with key and a space: its number, or -1. */
static long read_counter(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  while (v < 0 && fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ' ') sscanf(line + n + 1, "%ld", &v);
  fclose(f);
  return v;
}

static int file_has_word(const char *path, const char *word) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[512] = "";
  int found = 0;
  if (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    for (char *tok = strtok(line, " "); tok && !found; tok = strtok(NULL, " "))
      found = strcmp(tok, word) == 0;
  }
  fclose(f);
  return found;
}

int fb_memcg_self(char *dir, size_t n) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return -1;
  char line[4096], v1[4200] = "", v2[4200] = "";
  while (fgets(line, sizeof line, f)) { /* "id:controllers:path" */
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = '\0';
    if (has_word(c1 + 1, "memory"))
      snprintf(v1, sizeof v1, V1_ROOT "%s", c2 + 1);
    else if (c1[1] == '\0')
      snprintf(v2, sizeof v2, V2_ROOT "%s", c2 + 1);
  }
  fclose(f);
  char probe[4300];
  if (v1[0]) {
    snprintf(probe, sizeof probe, "%s/memory.oom_control", v1);
  } else if (v2[0]) {
    snprintf(probe, sizeof probe, "%s/cgroup.subtree_control", v2);
    if (!file_has_word(probe, "memory")) return -1; /* children would have no memory.events */
  } else {
    return -1;
  }
  const char *own = v1[0] ? v1 : v2;
  if (access(probe, R_OK) != 0 || access(own, W_OK) != 0) return -1;
  if ((size_t)snprintf(dir, n, "%s", own) >= n) return -1;
  return 0;
}

int fb_memcg_enter(const char *root, const char *name, long pid, char *path, size_t n) {
  if ((size_t)snprintf(path, n, "%s/%s", root, name) >= n) return path[0] = '\0', -1;
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return path[0] = '\0', -1;
  char procs[4400], text[32];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
  int len = snprintf(text, sizeof text, "%ld\n", pid);
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  int ok = fd >= 0 && write(fd, text, (size_t)len) == len;
  if (fd >= 0) close(fd);
  if (!ok) {
    rmdir(path);
    path[0] = '\0';
    return -1;
  }
  return 0;
}

long fb_memcg_oom_kills(const char *path) {
  char file[4400];
  snprintf(file, sizeof file, "%s/memory.events", path); /* v2 */
  long v = read_counter(file, "oom_kill");
  if (v >= 0) return v;
  snprintf(file, sizeof file, "%s/memory.oom_control", path); /* v1 */
  return read_counter(file, "oom_kill");
}

void fb_memcg_sweep(const char *root, const char *prefix) {
  DIR *d = opendir(root);
  if (!d) return;
  char path[4400];
  size_t n = strlen(prefix);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, prefix, n) != 0) continue;
    long owner = strtol(e->d_name + n, NULL, 10);
    if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno != ESRCH)) continue; /* still its own */
    snprintf(path, sizeof path, "%s/%s", root, e->d_name);
    rmdir(path); /* refused (EBUSY) while a process is in it */
  }
  closedir(d);
}
