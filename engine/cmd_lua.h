/* cmd_lua.h: commands whose body is a Lua module's main(args) (`fastbrain generate` is
 * fastbrain.model's): the arguments after the command's name go to it on a fresh VM, and its
 * return value is the exit status. */
#ifndef FB_CMD_LUA_H
#define FB_CMD_LUA_H

/* argv[0] is the command's name; module is required and its main(args) called in a coroutine
 * (fastbrain.command), args holding argv[1..]. A main that waits on the loop (`pull`'s sockets)
 * yields: the loop then runs, with SIGINT/SIGTERM watched (default: exit 130/143; main may set
 * its own handlers), until main returns. Exit status: main's (0, 1 on a failure, 2 on bad
 * arguments), or 1 when the module cannot be loaded or main raises. */
int fb_cmd_lua_main(const char *module, int argc, char **argv);

#endif
