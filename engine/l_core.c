/* l_core.c: module `fastbrain.core`, the small C functions behind the `fastbrain` table:
 * a monotonic clock, signal handlers, the runaway guard (runaway.c), try, exit, isatty, the
 * version and the bundle root. */
#include <lauxlib.h>
#include <uv.h>

#include "modules.h"
#include "runaway.h"
#include "signals.h"
#include "vm.h"

static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6); /* ms, monotonic, sub-ms precision */
  return 1;
}

/* exit([code]): end the process with code (default 0) once the running callback returns,
 * after closing every handle and running pending __close/__gc, as a signal would. */
static int core_exit(lua_State *L) {
  lua_Integer code = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit code must be 0..255");
  fb_vm_request_exit(L, (int)code);
  return 0;
}

/* try(fn, ...) -> true, fn's results | false, err, kind: pcall that says what failed, by
 * Lua's status rather than its message: kind "memory" when Lua ran out of memory, else
 * "error". fn may not yield. */
static int core_try(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  lua_pushstring(L, status == LUA_ERRMEM ? "memory" : "error");
  return 3;
}

/* isatty(fd) -> whether the descriptor is a terminal (1: is stdout one? for progress bars) */
static int core_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= 1 << 20 && uv_guess_handle((int)fd) == UV_TTY);
  return 1;
}

int luaopen_fastbrain_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"now", core_now},
      {"on_signal", fb_signals_lua_on_signal},
      {"guard", fb_runaway_lua_guard},
      {"try", core_try},
      {"exit", core_exit},
      {"isatty", core_isatty},
      {NULL, NULL},
  };
  fb_runaway_track_coroutines(L);
  luaL_newlib(L, funcs);
  lua_pushstring(L, FB_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, fb_vm_root(L));
  lua_setfield(L, -2, "root");
#if defined(__SANITIZE_ADDRESS__)
  lua_pushboolean(L, 1); /* memory figures (RSS) mean little under ASan's quarantine */
#else
  lua_pushboolean(L, 0);
#endif
  lua_setfield(L, -2, "sanitized");
  return 1;
}
