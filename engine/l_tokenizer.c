/* l_tokenizer.c: the Lua binding `fastbrain.tokenizer`: load(path) and bytes(specials) make a
 * tokenizer userdata with encode, decode, count, token_id, vocab_size and close. Caller mistakes
 * raise; a file that cannot be loaded returns nil, msg. The tokenizing itself is tokenizer.c. */
#include <lauxlib.h>
#include <stdlib.h>

#include "modules.h"
#include "tokenizer.h"

/* The userdata is one pointer, NULL once closed; l_dataset.c reads it under this name. */
#define TOKENIZER_MT "fastbrain.tokenizer"

static fb_tokenizer *check(lua_State *L, int idx) {
  fb_tokenizer **box = luaL_checkudata(L, idx, TOKENIZER_MT);
  if (!*box) luaL_argerror(L, idx, "tokenizer is closed");
  return *box;
}

static void push(lua_State *L, fb_tokenizer *t) {
  fb_tokenizer **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = t;
  luaL_setmetatable(L, TOKENIZER_MT);
}

static int load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  fb_tokenizer *t;
  fb_err err = {0};
  if (fb_tokenizer_load(&t, path, &err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  push(L, t);
  return 1;
}

/* bytes({"<|bos|>", "<|eos|>"}): the byte tokenizer with those specials after the 256 bytes. */
static int bytes(lua_State *L) {
  int n = 0;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    n = (int)luaL_len(L, 1);
  }
  const char **specials = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *specials, 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "special tokens must be strings");
    specials[i] = lua_tostring(L, -1); /* kept alive by the table at index 1 */
    lua_pop(L, 1);
  }
  fb_tokenizer *t;
  fb_err err = {0};
  if (fb_tokenizer_bytes(&t, specials, n, &err)) luaL_argerror(L, 1, err.msg);
  push(L, t);
  return 1;
}

/* A boolean field of an optional options table at idx. */
static int opt_flag(lua_State *L, int idx, const char *key) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  int v = lua_getfield(L, idx, key) != LUA_TNIL && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int encode_ids(lua_State *L, fb_tok_ids *ids) {
  fb_tokenizer *t = check(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int flags = opt_flag(L, 3, "special") ? FB_TOK_SPECIAL : 0;
  fb_err err = {0};
  if (fb_tokenizer_encode(t, s, n, flags, ids, NULL, &err)) {
    free(ids->v);
    return luaL_error(L, "%s", err.msg);
  }
  return 0;
}

/* tok:encode(text [, {special = true}]) -> {id, ...} */
static int encode(lua_State *L) {
  fb_tok_ids ids = {0};
  encode_ids(L, &ids);
  lua_createtable(L, (int)ids.n, 0);
  for (size_t i = 0; i < ids.n; i++) {
    lua_pushinteger(L, ids.v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(ids.v);
  return 1;
}

/* tok:count(text [, opts]) -> number of tokens */
static int count(lua_State *L) {
  fb_tok_ids ids = {0};
  encode_ids(L, &ids);
  lua_pushinteger(L, (lua_Integer)ids.n);
  free(ids.v);
  return 1;
}

/* tok:decode({id, ...} [, {skip_special = true}]) -> text */
static int decode(lua_State *L) {
  fb_tokenizer *t = check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int flags = opt_flag(L, 3, "skip_special") ? FB_TOK_SKIP_SPECIAL : 0;
  lua_Integer n = luaL_len(L, 2);
  int32_t *ids = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *ids, 0); /* freed by GC */
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, 2, i + 1);
    int ok;
    lua_Integer id = lua_tointegerx(L, -1, &ok);
    if (!ok || id < 0 || id >= fb_tokenizer_vocab_size(t))
      return luaL_error(L,
                        "bad argument #1 to 'decode' (ids[%d] is not a token id of this tokenizer)",
                        (int)(i + 1));
    ids[i] = (int32_t)id;
    lua_pop(L, 1);
  }
  fb_text out = {0};
  fb_err err = {0};
  if (fb_tokenizer_decode(t, ids, (size_t)n, flags, &out, &err))
    return luaL_error(L, "%s", err.msg);
  lua_pushlstring(L, out.s ? out.s : "", out.len);
  fb_text_free(&out);
  return 1;
}

/* tok:token_id(text) -> id | nil */
static int token_id(lua_State *L) {
  int32_t id = fb_tokenizer_token_id(check(L, 1), luaL_checkstring(L, 2));
  if (id < 0)
    luaL_pushfail(L);
  else
    lua_pushinteger(L, id);
  return 1;
}

static int vocab_size(lua_State *L) {
  lua_pushinteger(L, fb_tokenizer_vocab_size(check(L, 1)));
  return 1;
}

static int close_tok(lua_State *L) {
  fb_tokenizer **box = luaL_checkudata(L, 1, TOKENIZER_MT);
  fb_tokenizer_free(*box);
  *box = NULL;
  return 0;
}

static int tostring_tok(lua_State *L) {
  fb_tokenizer **box = luaL_checkudata(L, 1, TOKENIZER_MT);
  if (*box)
    lua_pushfstring(L, "fastbrain.tokenizer (%d tokens)", (int)fb_tokenizer_vocab_size(*box));
  else
    lua_pushliteral(L, "fastbrain.tokenizer (closed)");
  return 1;
}

int luaopen_fastbrain_tokenizer(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"encode", encode},         {"decode", decode},   {"count", count}, {"token_id", token_id},
      {"vocab_size", vocab_size}, {"close", close_tok}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", close_tok}, {"__close", close_tok}, {"__tostring", tostring_tok}, {NULL, NULL}};
  luaL_newmetatable(L, TOKENIZER_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"load", load}, {"bytes", bytes}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
