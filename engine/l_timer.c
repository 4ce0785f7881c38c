/* l_timer.c: module `fastbrain.timer`: after(ms, fn) and every(ms, fn) on libuv timers.
 * A running timer holds references to its callback and to its own handle, so a script may drop
 * the handle; stopping releases both, and the uv handle is freed in its close callback after
 * the Lua object is collected. Callbacks run on the main thread via fb_vm_pcall. */
#include <lauxlib.h>
#include <stdlib.h>
#include <uv.h>

#include "modules.h"
#include "vm.h"

#define TIMER_MT "fastbrain.timer"

typedef struct ltimer {
  uv_timer_t handle;
  lua_State *L; /* the main thread */
  int cb_ref;   /* LUA_NOREF when stopped */
  int self_ref; /* keeps the userdata alive while running */
  int repeat;
} ltimer;

typedef struct {
  ltimer *t;
} timer_box; /* the userdata: t is NULL once closed */

static long live_timers; /* allocated and not yet freed by their close callback */

static void free_timer(uv_handle_t *h) {
  free(h->data);
  live_timers--;
}

static ltimer *check_timer(lua_State *L, int idx) {
  timer_box *box = luaL_checkudata(L, idx, TIMER_MT);
  luaL_argcheck(L, box->t != NULL, idx, "timer is closed");
  return box->t;
}

/* Release the references of a running timer; a no-op when it is stopped. */
static void stop_timer(ltimer *t) {
  if (t->cb_ref == LUA_NOREF) return;
  uv_timer_stop(&t->handle);
  luaL_unref(t->L, LUA_REGISTRYINDEX, t->cb_ref);
  luaL_unref(t->L, LUA_REGISTRYINDEX, t->self_ref);
  t->cb_ref = t->self_ref = LUA_NOREF;
}

static void on_timer(uv_timer_t *h) {
  ltimer *t = h->data;
  lua_State *L = t->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->cb_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  if (!t->repeat) stop_timer(t); /* a one-shot is done before its callback runs */
  fb_vm_pcall(L, 1, 0, "timer callback");
}

static int start(lua_State *L, int repeat) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ms >= 0, 1, "delay must be >= 0");
  luaL_argcheck(L, !repeat || ms > 0, 1, "period must be > 0");
  luaL_checktype(L, 2, LUA_TFUNCTION);

  timer_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->t = NULL;
  luaL_setmetatable(L, TIMER_MT);
  ltimer *t = malloc(sizeof *t);
  if (!t) return luaL_error(L, "timer: out of memory");
  live_timers++;
  uv_timer_init(fb_vm_loop(L), &t->handle);
  t->handle.data = t;
  box->t = t;
  t->L = fb_vm_main(L);
  t->repeat = repeat;
  lua_pushvalue(L, 2);
  t->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_start(&t->handle, on_timer, (uint64_t)ms, repeat ? (uint64_t)ms : 0);
  return 1;
}

static int timer_after(lua_State *L) { return start(L, 0); }
static int timer_every(lua_State *L) { return start(L, 1); }

static int timer_stop(lua_State *L) {
  stop_timer(check_timer(L, 1));
  return 0;
}

static int timer_active(lua_State *L) {
  lua_pushboolean(L, check_timer(L, 1)->cb_ref != LUA_NOREF);
  return 1;
}

static int timer_gc(lua_State *L) {
  timer_box *box = luaL_checkudata(L, 1, TIMER_MT);
  if (box->t) {
    /* Collected only when stopped, or when the state closes: then the registry is going away
     * too, so the refs are left to it. uv_close stops the timer. */
    uv_close((uv_handle_t *)&box->t->handle, free_timer);
    box->t = NULL;
  }
  return 0;
}

static int timer_tostring(lua_State *L) {
  timer_box *box = luaL_checkudata(L, 1, TIMER_MT);
  const char *state = !box->t ? "closed" : box->t->cb_ref != LUA_NOREF ? "running" : "stopped";
  lua_pushfstring(L, "fastbrain.timer (%s): %p", state, (void *)box);
  return 1;
}

/* live() -> the number of timers whose memory is not yet freed (for leak tests). */
static int timer_live(lua_State *L) {
  lua_pushinteger(L, live_timers);
  return 1;
}

int luaopen_fastbrain_timer(lua_State *L) {
  static const luaL_Reg methods[] = {{"stop", timer_stop}, {"active", timer_active}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", timer_gc}, {"__close", timer_stop}, {"__tostring", timer_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"after", timer_after}, {"every", timer_every}, {"live", timer_live}, {NULL, NULL}};
  luaL_newmetatable(L, TIMER_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
