/* cmd_lua.c: a command run by a Lua module's main(args) on a fresh VM (cmd_lua.h), through
 * fastbrain.command: on the loop, with SIGINT/SIGTERM watched, when main waits on it. */
#include "cmd_lua.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <uv.h>

#include "paths.h"
#include "signals.h"
#include "vm.h"

int fb_cmd_lua_main(const char *module, int argc, char **argv) {
  char root[PATH_MAX], label[128];
  if (fb_paths_find_root(root, sizeof root) != 0) {
    fprintf(stderr, "fastbrain: cannot find the bundled Lua modules (tried %s)\n", root);
    return 1;
  }
  uv_loop_t loop;
  int status = 1;
  lua_State *L = uv_loop_init(&loop) == 0 ? fb_vm_new(&loop, root) : NULL;
  if (!L) {
    fprintf(stderr, "fastbrain: cannot create the Lua state\n");
    return 1;
  }
  snprintf(label, sizeof label, "fastbrain %s", argv[0]);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fastbrain");
  if (fb_vm_pcall(L, 1, 1, "fastbrain") == LUA_OK) {
    lua_getfield(L, -1, "command"); /* fastbrain.command(main, args) */
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    if (fb_vm_pcall(L, 1, 1, module) == LUA_OK) {
      lua_getfield(L, -1, "main");
      lua_remove(L, -2); /* the module */
      lua_createtable(L, argc - 1, 0);
      for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i); /* args[i] = argv[i] */
      }
      if (fb_vm_pcall(L, 2, 1, label) == LUA_OK) {
        if (lua_isinteger(L, -1)) {
          status = (int)lua_tointeger(L, -1);
        } else if (fb_signals_start(L) == 0) {
          /* main waits on the loop: run it until main's status comes through exit(), or a
           * signal's (130, 143: the default, or main's own handler) */
          uv_run(&loop, UV_RUN_DEFAULT);
          status = fb_vm_exit_code(L) >= 0 ? fb_vm_exit_code(L) : 1;
          fb_signals_stop();
        }
      }
    }
  }
  fb_vm_close(L);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return status;
}
