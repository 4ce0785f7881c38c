/* l_log.c: module `fastbrain.log`: debug/info/warn/error(fmt, ...) formatted by
 * string.format and written by the engine's logger; level()/set_level(name). */
#include <lauxlib.h>

#include "log.h"
#include "modules.h"

static int log_at(lua_State *L, fb_log_level level) {
  if (level < fb_log_get_level()) return 0;
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  if (n > 1 || lua_type(L, 1) != LUA_TSTRING) { /* string.format(fmt, ...) */
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, 1);
  }
  fb_log_write(level, luaL_tolstring(L, -1, NULL));
  return 0;
}

static int log_debug(lua_State *L) { return log_at(L, FB_LOG_DEBUG); }
static int log_info(lua_State *L) { return log_at(L, FB_LOG_INFO); }
static int log_warn(lua_State *L) { return log_at(L, FB_LOG_WARN); }
static int log_error(lua_State *L) { return log_at(L, FB_LOG_ERROR); }

static int log_level(lua_State *L) {
  lua_pushstring(L, fb_log_level_name(fb_log_get_level()));
  return 1;
}

static int log_set_level(lua_State *L) {
  int level = fb_log_parse_level(luaL_checkstring(L, 1));
  luaL_argcheck(L, level >= 0, 1, "expected one of debug, info, warn, error, off");
  fb_log_set_level(level);
  return 0;
}

int luaopen_fastbrain_log(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"debug", log_debug}, {"info", log_info},           {"warn", log_warn}, {"error", log_error},
      {"level", log_level}, {"set_level", log_set_level}, {NULL, NULL},
  };
  luaL_newlib(L, funcs);
  return 1;
}
