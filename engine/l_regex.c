/* l_regex.c: module `fastbrain.regex`, POSIX extended regular expressions (glibc's regcomp:
 * also \w \s \b \< \>) for the checks people write, such as a test scenario's `regex`. \d and
 * \D, which everyone writes and POSIX lacks, mean [0-9] and [^0-9]. Matching is on bytes. */
#include <lauxlib.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "modules.h"

#define REGEX_MT "fastbrain.regex"

/* pattern with \d and \D spelled out; a userdata buffer left on the stack. */
static const char *spell_digits(lua_State *L, const char *pattern, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    if (pattern[i] == '\\' && i + 1 < len) {
      char next = pattern[i + 1];
      if (next == 'd' || next == 'D') {
        luaL_addstring(&b, next == 'd' ? "[0-9]" : "[^0-9]");
        i++;
        continue;
      }
      luaL_addchar(&b, pattern[i]);
      luaL_addchar(&b, next);
      i++;
      continue;
    }
    luaL_addchar(&b, pattern[i]);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* regex.compile(pattern [, {icase = bool}]) -> re | nil, err */
static int compile(lua_State *L) {
  size_t len;
  const char *pattern = luaL_checklstring(L, 1, &len);
  int icase = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "icase");
    icase = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (memchr(pattern, '\0', len)) {
    luaL_pushfail(L);
    lua_pushliteral(L, "the pattern holds a NUL byte");
    return 2;
  }
  const char *spelled = spell_digits(L, pattern, len);
  regex_t *re = lua_newuserdatauv(L, sizeof *re, 0);
  int rc = regcomp(re, spelled, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
  if (rc) {
    char msg[256];
    regerror(rc, re, msg, sizeof msg);
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
  }
  luaL_setmetatable(L, REGEX_MT); /* only a compiled one is freed by __gc */
  return 1;
}

/* re:test(text) -> whether it matches somewhere in text (which may not hold NUL bytes: the
 * part before the first one is tested) */
static int test(lua_State *L) {
  regex_t *re = luaL_checkudata(L, 1, REGEX_MT);
  lua_pushboolean(L, regexec(re, luaL_checkstring(L, 2), 0, NULL, 0) == 0);
  return 1;
}

static int gc(lua_State *L) {
  regfree(luaL_checkudata(L, 1, REGEX_MT));
  return 0;
}

int luaopen_fastbrain_regex(lua_State *L) {
  static const luaL_Reg methods[] = {{"test", test}, {NULL, NULL}};
  luaL_newmetatable(L, REGEX_MT);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"compile", compile}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
