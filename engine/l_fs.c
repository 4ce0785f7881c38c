/* l_fs.c: module `fastbrain.fs`: the engine's file helpers for Lua: atomic replacement,
 * capped whole-file reads, directory listings, mkdir -p, removing a tree, permission bits,
 * stat/lstat, realpath, symbolic links and advisory locks (flock, as Python's filelock takes
 * them). World failures return nil, msg (and the errno name for stat; "ENOSPC" for a full
 * disk). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "modules.h"

/* nil, msg; and "ENOSPC" when the disk is full, so a caller can say so without the path. */
static int fail(lua_State *L, const fb_err *err) {
  luaL_pushfail(L);
  lua_pushstring(L, err->msg);
  if (err->code != FB_ENOSPACE) return 2;
  lua_pushliteral(L, "ENOSPC");
  return 3;
}

/* write_atomic(path, data) -> true | nil, msg [, "ENOSPC"] */
static int fs_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  fb_err err = {0};
  if (fb_write_file_atomic(path, data, len, &err) != 0) return fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* read(path [, max_bytes = 64 MiB]) -> string | nil, msg */
static int fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 64 << 20);
  luaL_argcheck(L, max >= 0, 2, "max_bytes must be >= 0");
  char *buf;
  size_t len;
  fb_err err = {0};
  if (fb_read_file(path, &buf, &len, (size_t)max, &err) != 0) return fail(L, &err);
  lua_pushlstring(L, buf, len);
  free(buf);
  return 1;
}

/* mkdir_p(path) -> true | nil, msg */
static int fs_mkdir_p(lua_State *L) {
  fb_err err = {0};
  if (fb_mkdir_p(luaL_checkstring(L, 1), &err) != 0) return fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* mode(path) -> permission bits (e.g. 384 for 0600) | nil, msg */
static int fs_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* realpath(path) -> the absolute path, links resolved | nil, msg */
static int fs_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char out[PATH_MAX];
  if (!realpath(path, out)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, out);
  return 1;
}

/* list(dir) -> sorted array of entry names (no "." or "..") | nil, msg */
static int fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  lua_Integer n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_remove(L, -2);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0); /* table.sort(names) */
  return 1;
}

/* remove_tree(path) -> true | nil, msg: path and everything below it, never following links. */
static int fs_remove_tree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_argcheck(L, *path && strcmp(path, "/") != 0, 1, "refusing to remove the root");
  fb_err err = {0};
  if (fb_remove_tree(path, &err) != 0) return fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* stat(path) / lstat(path) -> {type = "file"|"dir"|"link"|"other", size =, mtime = (s)}
 * | nil, msg, "ENOENT"|"EACCES"|...: lstat describes a link itself, stat what it points to. */
static int push_stat(lua_State *L, int follow) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
    int e = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    lua_pushstring(L, e == ENOENT    ? "ENOENT"
                      : e == ENOTDIR ? "ENOTDIR"
                      : e == EACCES  ? "EACCES"
                                     : "EIO");
    return 3;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, S_ISREG(st.st_mode)   ? "file"
                    : S_ISDIR(st.st_mode) ? "dir"
                    : S_ISLNK(st.st_mode) ? "link"
                                          : "other");
  lua_setfield(L, -2, "type"); /* t.type */
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size"); /* t.size */
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  lua_setfield(L, -2, "mtime"); /* t.mtime */
  return 1;
}
static int fs_stat(lua_State *L) { return push_stat(L, 1); }
static int fs_lstat(lua_State *L) { return push_stat(L, 0); }

/* symlink(target, path) -> true | nil, msg: path becomes a link holding target as written. */
static int fs_symlink(lua_State *L) {
  const char *target = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
  if (symlink(target, path) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* readlink(path) -> the link's target as written | nil, msg */
static int fs_readlink(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[4096];
  ssize_t n = readlink(path, buf, sizeof buf);
  if (n < 0 || (size_t)n >= sizeof buf) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, n < 0 ? strerror(errno) : "link target too long");
    return 2;
  }
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* A held lock: the descriptor whose flock(2) it is; -1 once released. */
#define LOCK_MT "fastbrain.fs.lock"
typedef struct flock_ud {
  int fd;
} flock_ud;

/* lock(path) -> lock | nil, msg, "busy"|"ENOENT"|"EACCES"|"EIO": an exclusive flock(2) on path (created if missing),
 * never waiting: "busy" while another descriptor, in this process or another, holds it.
 * lock:unlock() releases it (also __close and __gc). */
static int fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  flock_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->fd = -1;
  luaL_setmetatable(L, LOCK_MT);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    lua_pushstring(L, e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : "EIO");
    return 3;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, e == EWOULDBLOCK ? "held by another download" : strerror(e));
    lua_pushstring(L, e == EWOULDBLOCK ? "busy" : "EIO");
    return 3;
  }
  u->fd = fd;
  return 1;
}

static int lock_unlock(lua_State *L) {
  flock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
  if (u->fd >= 0) close(u->fd); /* closing the last descriptor releases the flock */
  u->fd = -1;
  return 0;
}

int luaopen_fastbrain_fs(lua_State *L) {
  static const luaL_Reg lock_meta[] = {
      {"__gc", lock_unlock}, {"__close", lock_unlock}, {NULL, NULL}};
  static const luaL_Reg lock_methods[] = {{"unlock", lock_unlock}, {NULL, NULL}};
  luaL_newmetatable(L, LOCK_MT);
  luaL_setfuncs(L, lock_meta, 0);
  luaL_newlib(L, lock_methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = method table */
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"write_atomic", fs_write_atomic},
                                   {"read", fs_read},
                                   {"mkdir_p", fs_mkdir_p},
                                   {"mode", fs_mode},
                                   {"list", fs_list},
                                   {"remove_tree", fs_remove_tree},
                                   {"stat", fs_stat},
                                   {"lstat", fs_lstat},
                                   {"symlink", fs_symlink},
                                   {"readlink", fs_readlink},
                                   {"lock", fs_lock},
                                   {"realpath", fs_realpath},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
