/* l_poll.c: module `fastbrain.poll`: readiness of file descriptors and name resolution on the
 * loop, for Lua code that drives non-blocking sockets (lua/fastbrain/cosocket.lua). A watcher
 * calls back; it does not read or write. libuv allows one watcher per descriptor, and the
 * watcher must be closed before its descriptor is. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "modules.h"
#include "vm.h"

#define WATCHER_MT "fastbrain.poll.watcher"

typedef struct watcher {
  uv_poll_t handle;
  lua_State *L; /* the main thread */
  int cb_ref;   /* LUA_NOREF when not started */
  int self_ref; /* keeps the userdata alive while started */
} watcher;

typedef struct {
  watcher *w;
} watcher_box;

static watcher *check_watcher(lua_State *L, int idx) {
  watcher_box *box = luaL_checkudata(L, idx, WATCHER_MT);
  luaL_argcheck(L, box->w != NULL, idx, "watcher is closed");
  return box->w;
}

static void release(watcher *w) {
  if (w->cb_ref == LUA_NOREF) return;
  uv_poll_stop(&w->handle);
  luaL_unref(w->L, LUA_REGISTRYINDEX, w->cb_ref);
  luaL_unref(w->L, LUA_REGISTRYINDEX, w->self_ref);
  w->cb_ref = w->self_ref = LUA_NOREF;
}

static void on_ready(uv_poll_t *h, int status, int events) {
  watcher *w = h->data;
  lua_State *L = w->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->cb_ref);
  if (status < 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
  } else {
    lua_pushstring(L, (events & UV_READABLE) && (events & UV_WRITABLE) ? "rw"
                      : (events & UV_READABLE)                         ? "r"
                                                                       : "w");
    lua_pushnil(L);
  }
  fb_vm_pcall(L, 2, 0, "poll callback");
}

/* poll.watch(fd) -> watcher */
static int poll_watch(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "not a file descriptor");
  watcher_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->w = NULL;
  luaL_setmetatable(L, WATCHER_MT);
  watcher *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "poll: out of memory");
  int rc = uv_poll_init(fb_vm_loop(L), &w->handle, (int)fd);
  if (rc != 0) {
    free(w);
    luaL_pushfail(L);
    lua_pushfstring(L, "poll: fd %d: %s", (int)fd, uv_strerror(rc));
    return 2;
  }
  w->handle.data = w;
  w->L = fb_vm_main(L);
  w->cb_ref = w->self_ref = LUA_NOREF;
  box->w = w;
  return 1;
}

/* w:start("r"|"w"|"rw", fn(events, err)): (re)arm; fn runs on each readiness until stop. */
static int watcher_start(lua_State *L) {
  watcher *w = check_watcher(L, 1);
  const char *mode = luaL_checkstring(L, 2);
  int events = (strchr(mode, 'r') ? UV_READABLE : 0) | (strchr(mode, 'w') ? UV_WRITABLE : 0);
  luaL_argcheck(L, events != 0, 2, "expected \"r\", \"w\" or \"rw\"");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  release(w);
  int rc = uv_poll_start(&w->handle, events, on_ready);
  if (rc != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, uv_strerror(rc));
    return 2;
  }
  lua_pushvalue(L, 3);
  w->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  w->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 1);
  return 1;
}

static int watcher_stop(lua_State *L) {
  release(check_watcher(L, 1));
  return 0;
}

static void free_watcher(uv_handle_t *h) { free(h->data); }

/* w:close(): stop and free; call it before closing the descriptor. Idempotent. */
static int watcher_close(lua_State *L) {
  watcher_box *box = luaL_checkudata(L, 1, WATCHER_MT);
  if (box->w) {
    release(box->w);
    uv_close((uv_handle_t *)&box->w->handle, free_watcher);
    box->w = NULL;
  }
  return 0;
}

static int watcher_gc(lua_State *L) {
  watcher_box *box = luaL_checkudata(L, 1, WATCHER_MT);
  if (box->w) { /* unstarted, or the state is closing: the registry goes with it */
    uv_close((uv_handle_t *)&box->w->handle, free_watcher);
    box->w = NULL;
  }
  return 0;
}

typedef struct resolve_req {
  uv_getaddrinfo_t req;
  lua_State *L;
  int cb_ref;
} resolve_req;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_req *r = req->data;
  lua_State *L = r->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->cb_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->cb_ref);
  free(r);
  if (status < 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
  } else {
    lua_newtable(L);
    int n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      char ip[64];
      if (ai->ai_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
      else if (ai->ai_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
      else
        continue;
      lua_createtable(L, 0, 2);
      lua_pushstring(L, ip);
      lua_setfield(L, -2, "ip");
      lua_pushstring(L, ai->ai_family == AF_INET ? "inet" : "inet6");
      lua_setfield(L, -2, "family");
      lua_rawseti(L, -2, ++n); /* list[n] = {ip=, family=} */
    }
    lua_pushnil(L);
  }
  uv_freeaddrinfo(res);
  fb_vm_pcall(L, 2, 0, "resolve callback");
}

/* poll.resolve(host, fn(addresses|nil, err)): getaddrinfo on libuv's thread pool. */
static int poll_resolve(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  resolve_req *r = malloc(sizeof *r);
  if (!r) return luaL_error(L, "resolve: out of memory");
  r->req.data = r;
  r->L = fb_vm_main(L);
  lua_pushvalue(L, 2);
  r->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int rc = uv_getaddrinfo(fb_vm_loop(L), &r->req, on_resolved, host, NULL, &hints);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, r->cb_ref);
    free(r);
    luaL_pushfail(L);
    lua_pushfstring(L, "resolve %s: %s", host, uv_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int luaopen_fastbrain_poll(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"start", watcher_start}, {"stop", watcher_stop}, {"close", watcher_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"watch", poll_watch}, {"resolve", poll_resolve}, {NULL, NULL}};
  luaL_newmetatable(L, WATCHER_MT);
  lua_pushcfunction(L, watcher_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, watcher_close);
  lua_setfield(L, -2, "__close");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
