/* vm.c: the process's Lua state on the libuv loop: creation with the standard libraries, the
 * bundled module paths and the C modules; protected calls with tracebacks; shutdown. The Lua
 * side of `fastbrain` lives in lua/fastbrain/; this file does not define Lua functions. */
#include "vm.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "modules.h"

/* The C modules, preloaded under these names. */
static const luaL_Reg modules[] = {
    {"fastbrain.core", luaopen_fastbrain_core},
    {"fastbrain.json", luaopen_fastbrain_json},
    {"fastbrain.timer", luaopen_fastbrain_timer},
    {"fastbrain.log", luaopen_fastbrain_log},
    {"fastbrain.http", luaopen_fastbrain_http},
    {"fastbrain.poll", luaopen_fastbrain_poll},
    {"fastbrain.process.core", luaopen_fastbrain_process_core},
    {"fastbrain.tokenizer", luaopen_fastbrain_tokenizer},
    {"fastbrain.dataset", luaopen_fastbrain_dataset},
    {"fastbrain.fs", luaopen_fastbrain_fs},
    {"fastbrain.jobs", luaopen_fastbrain_jobs},
    {"fastbrain.train.core", luaopen_fastbrain_train_core},
    {"fastbrain.model.core", luaopen_fastbrain_model_core},
    {"fastbrain.digest", luaopen_fastbrain_digest},
    {"fastbrain.regex", luaopen_fastbrain_regex},
    {NULL, NULL},
};

typedef struct vm_ctx {
  uv_loop_t *loop;
  int exit_code; /* -1 until an exit is requested */
  char root[];
} vm_ctx;

static vm_ctx *ctx_of(lua_State *L) { return *(vm_ctx **)lua_getextraspace(L); }

uv_loop_t *fb_vm_loop(lua_State *L) { return ctx_of(L)->loop; }
lua_State *fb_vm_main(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main;
}

const char *fb_vm_root(lua_State *L) { return ctx_of(L)->root; }
int fb_vm_exit_code(lua_State *L) { return ctx_of(L)->exit_code; }

void fb_vm_request_exit(lua_State *L, int code) {
  vm_ctx *ctx = ctx_of(L);
  if (ctx->exit_code < 0) ctx->exit_code = code;
  uv_stop(ctx->loop);
}

/* Message handler: turn any error value into "message\nstack traceback:..." (as lua.c). */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void set_path(lua_State *L, const char *field, const char *ours) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s;%s", ours, lua_tostring(L, -1));
  lua_setfield(L, -3, field); /* package[field] = ours .. ";" .. default */
  lua_pop(L, 2);
}

static int open_state(lua_State *L) {
  luaL_openlibs(L);
  lua_gc(L, LUA_GCGEN, 0, 0); /* most objects (requests, events) die young: ~6% per request */
  const char *root = fb_vm_root(L);
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  set_path(L, "path", lua_tostring(L, -1));
  lua_pop(L, 1);
  set_path(L, "cpath", FB_LUA_CMOD_DIR "/?.so");

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = modules; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name); /* package.preload[name] = luaopen */
  }
  lua_pop(L, 1);
  return 0;
}

lua_State *fb_vm_new(uv_loop_t *loop, const char *root) {
  size_t rootlen = strlen(root);
  vm_ctx *ctx = malloc(sizeof *ctx + rootlen + 1);
  if (!ctx) return NULL;
  ctx->loop = loop;
  ctx->exit_code = -1;
  memcpy(ctx->root, root, rootlen + 1);

  lua_State *L = luaL_newstate();
  if (!L) {
    free(ctx);
    return NULL;
  }
  *(vm_ctx **)lua_getextraspace(L) = ctx;
  lua_pushcfunction(L, open_state);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fb_error("lua: %s", lua_tostring(L, -1));
    lua_close(L);
    free(ctx);
    return NULL;
  }
  return L;
}

/* Let the Lua side finish what it started (close its suspended coroutines, so their <close>
 * variables run) before the state goes: package.loaded.fastbrain.shutdown(), if loaded. */
static void lua_shutdown(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "fastbrain");
  lua_remove(L, -2);
  if (lua_istable(L, -1) && lua_getfield(L, -1, "shutdown") == LUA_TFUNCTION) {
    lua_remove(L, -2);
    fb_vm_pcall(L, 0, 0, "shutdown");
    return;
  }
  lua_settop(L, 0);
}

void fb_vm_close(lua_State *L) {
  vm_ctx *ctx = ctx_of(L);
  lua_shutdown(L);
  lua_close(L);                     /* __close and __gc close their uv handles */
  uv_run(ctx->loop, UV_RUN_NOWAIT); /* ... whose close callbacks free them */
  free(ctx);
}

int fb_vm_pcall(lua_State *L, int nargs, int nresults, const char *what) {
  int base = lua_gettop(L) - nargs; /* the function's index */
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK) {
    fb_error("%s: %s", what, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

int fb_vm_resume(lua_State *L, lua_State *co, int nargs, int *nres, const char *what) {
  int status = lua_resume(co, L, nargs, nres);
  if (status != LUA_OK && status != LUA_YIELD) {
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
    fb_error("%s: %s", what, lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pop(co, 1);
    *nres = 0;
  }
  return status;
}

int fb_vm_run_file(lua_State *L, const char *path, int argc, char **argv) {
  lua_pushcfunction(L, traceback);
  int status = luaL_loadfile(L, path);
  if (status == LUA_OK) {
    luaL_checkstack(L, argc, "too many script arguments");
    for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc, 0, -argc - 2);
  }
  if (status != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* the traceback handler */
  return status == LUA_OK ? 0 : 1;
}
