/* l_digest.c: module `fastbrain.digest`: message digests on OpenSSL's EVP (libcrypto, which
 * LuaSec already loads): sha256 and the other names OpenSSL knows, fed piece by piece, so a file
 * of many GB is hashed as it streams. It does not read files itself.
 *   digest.new(name = "sha256") -> d;  d:update(s) -> d;  d:hex() / d:final() -> the digest
 *   digest.sha256(s) -> hex string */
#include <lauxlib.h>
#include <openssl/evp.h>
#include <string.h>

#include "modules.h"

#define DIGEST_MT "fastbrain.digest"

typedef struct ldigest {
  EVP_MD_CTX *ctx; /* NULL once finished or collected */
} ldigest;

static ldigest *check_live(lua_State *L, int idx) {
  ldigest *d = luaL_checkudata(L, idx, DIGEST_MT);
  if (!d->ctx) luaL_error(L, "digest: already finished");
  return d;
}

/* new([name = "sha256"]) -> digest; a name OpenSSL does not know raises. */
static int digest_new(lua_State *L) {
  const char *name = luaL_optstring(L, 1, "sha256");
  const EVP_MD *md = EVP_get_digestbyname(name);
  luaL_argcheck(L, md != NULL, 1, "unknown digest");
  ldigest *d = lua_newuserdatauv(L, sizeof *d, 0);
  d->ctx = NULL;
  luaL_setmetatable(L, DIGEST_MT);
  d->ctx = EVP_MD_CTX_new();
  if (!d->ctx) return luaL_error(L, "digest: out of memory");
  if (EVP_DigestInit_ex(d->ctx, md, NULL) != 1)
    return luaL_error(L, "digest: cannot start %s", name);
  return 1;
}

/* d:update(s) -> d */
static int digest_update(lua_State *L) {
  ldigest *d = check_live(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (EVP_DigestUpdate(d->ctx, s, len) != 1) return luaL_error(L, "digest: update failed");
  lua_settop(L, 1);
  return 1;
}

static int push_hex(lua_State *L, const unsigned char *md, unsigned int n) {
  static const char digits[] = "0123456789abcdef";
  char out[2 * EVP_MAX_MD_SIZE];
  for (unsigned int i = 0; i < n; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 15];
  }
  lua_pushlstring(L, out, 2 * (size_t)n);
  return 1;
}

/* Finish d and push its digest, as lower-case hex or raw bytes. */
static int finish(lua_State *L, int hex) {
  ldigest *d = check_live(L, 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  int ok = EVP_DigestFinal_ex(d->ctx, md, &n);
  EVP_MD_CTX_free(d->ctx);
  d->ctx = NULL;
  if (ok != 1) return luaL_error(L, "digest: final failed");
  if (!hex) {
    lua_pushlstring(L, (const char *)md, n);
    return 1;
  }
  return push_hex(L, md, n);
}

static int digest_hex(lua_State *L) { return finish(L, 1); }
static int digest_final(lua_State *L) { return finish(L, 0); }

static int digest_gc(lua_State *L) {
  ldigest *d = luaL_checkudata(L, 1, DIGEST_MT);
  if (d->ctx) EVP_MD_CTX_free(d->ctx);
  d->ctx = NULL;
  return 0;
}

static int digest_tostring(lua_State *L) {
  ldigest *d = luaL_checkudata(L, 1, DIGEST_MT);
  lua_pushfstring(L, "digest (%s)",
                  d->ctx ? EVP_MD_get0_name(EVP_MD_CTX_get0_md(d->ctx)) : "finished");
  return 1;
}

/* sha256(s) -> hex */
static int digest_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(s, len, md, &n, EVP_sha256(), NULL) != 1)
    return luaL_error(L, "digest: sha256 failed");
  return push_hex(L, md, n);
}

int luaopen_fastbrain_digest(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"update", digest_update}, {"hex", digest_hex}, {"final", digest_final}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", digest_gc}, {"__close", digest_gc}, {"__tostring", digest_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", digest_new}, {"sha256", digest_sha256}, {NULL, NULL}};
  luaL_newmetatable(L, DIGEST_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = method table */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
