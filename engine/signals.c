/* signals.c: SIGINT/SIGTERM watchers on the loop and their Lua handlers. The handlers live in
 * a registry table keyed by signal name; without one the loop is stopped with 128 + signum. */
#include "signals.h"

#include <lauxlib.h>
#include <signal.h>
#include <string.h>
#include <uv.h>

#include "vm.h"

#define HANDLERS_KEY "fastbrain.signal_handlers"

static const struct { const char *name; int signum; } watched[] = {{"int", SIGINT}, {"term", SIGTERM}};
#define NWATCHED (sizeof watched / sizeof watched[0])

static uv_signal_t watchers[NWATCHED];
static int started;

static void on_signal(uv_signal_t *w, int signum) {
  lua_State *L = w->data;
  const char *name = watched[w - watchers].name;
  lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) {
    lua_pushstring(L, name);
    fb_vm_pcall(L, 1, 0, "signal handler");
  } else {
    lua_pop(L, 1);
    fb_vm_request_exit(L, 128 + signum);
  }
}

/* The handlers table, made on first use: a command may set handlers before it starts waiting on
 * the loop (cmd_lua.c starts the watchers only then). */
static void push_handlers(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY); /* registry[HANDLERS_KEY] = {} */
}

int fb_signals_start(lua_State *L) {
  push_handlers(L);
  lua_pop(L, 1);
  for (size_t i = 0; i < NWATCHED; i++) {
    int rc = uv_signal_init(fb_vm_loop(L), &watchers[i]);
    if (rc == 0) rc = uv_signal_start(&watchers[i], on_signal, watched[i].signum);
    if (rc != 0) return rc;
    watchers[i].data = L;
    uv_unref((uv_handle_t *)&watchers[i]);  /* watching alone must not keep the process up */
  }
  started = 1;
  return 0;
}

void fb_signals_stop(void) {
  if (!started) return;
  for (size_t i = 0; i < NWATCHED; i++) uv_close((uv_handle_t *)&watchers[i], NULL);
  started = 0;
}

int fb_signals_lua_on_signal(lua_State *L) {
  const char *names[NWATCHED + 1];
  for (size_t i = 0; i < NWATCHED; i++) names[i] = watched[i].name;
  names[NWATCHED] = NULL;
  int which = luaL_checkoption(L, 1, NULL, names);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  push_handlers(L);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, watched[which].name);  /* handlers[name] = fn (nil restores the default) */
  return 0;
}
