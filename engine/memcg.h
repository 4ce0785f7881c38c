/* memcg.h: a memory cgroup of its own for each worker, so that a SIGKILL from the kernel's OOM
 * killer can be told from any other. The kernel counts OOM kills in the cgroup of the task it
 * killed (cgroup v1: memory.oom_control "oom_kill N"; v2: memory.events "oom_kill N"), so a
 * cgroup that holds only the worker and its children counts exactly theirs. This needs write
 * access to the process's own memory cgroup (root, or a delegated subtree) and, on v2, the
 * memory controller enabled for its children; without them nothing is created, and a kill
 * stays a plain signal. */
#ifndef FB_MEMCG_H
#define FB_MEMCG_H

#include <stddef.h>

/* The directory of this process's memory cgroup when children can be made in it: 0, or -1. */
int fb_memcg_self(char *dir, size_t n);

/* Make the cgroup root/name and move pid into it: 0 with its directory in path, or -1 (path
 * ""; nothing left behind). */
int fb_memcg_enter(const char *root, const char *name, long pid, char *path, size_t n);

/* OOM kills the kernel counted in the cgroup at path, or -1 when it does not say. The cgroup
 * goes with rmdir(path) once no process is left in it. */
long fb_memcg_oom_kills(const char *path);

/* Remove every cgroup under root named prefix + "<pid>-..." whose pid (the registry that made
 * it) is gone and that holds no process: a worker that outlived its registry leaves its cgroup
 * behind. A live registry's cgroups are left to it: between its worker's death and its reading
 * of the OOM count, the cgroup must still be there. */
void fb_memcg_sweep(const char *root, const char *prefix);

#endif
