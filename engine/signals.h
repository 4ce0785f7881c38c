/* signals.h: SIGINT and SIGTERM on the loop. By default each stops the loop so the process
 * ends cleanly with 128 + signal (130, 143); a Lua handler set with fastbrain.on_signal replaces
 * that default. The watchers do not keep the loop alive. */
#ifndef FB_SIGNALS_H
#define FB_SIGNALS_H

#include <lua.h>

/* Start watching (once per process, after fb_vm_new); 0 or a negative libuv code. */
int fb_signals_start(lua_State *L);
/* Close the watchers (before fb_vm_close). */
void fb_signals_stop(void);
/* Lua: fastbrain.on_signal("int"|"term", fn|nil) */
int fb_signals_lua_on_signal(lua_State *L);

#endif
