/* cmd_lua.h: commands whose body is a Lua module's main(args) (`fastbrain generate` is
 * fastbrain.model's): the arguments after the command's name go to it on a fresh VM, and its
 * return value is the exit status. */
#ifndef FB_CMD_LUA_H
#define FB_CMD_LUA_H

/* argv[0] is the command's name; module is required and its main(args) called, args holding
 * argv[1..]. Exit status: main's (0, 1 on a failure, 2 on bad arguments), or 1 when the module
 * cannot be loaded. */
int fb_cmd_lua_main(const char *module, int argc, char **argv);

#endif
