/* runaway.h: the Lua VM's runaway guard: a coroutine that keeps the loop busy past its budget
 * without yielding (a handler in a tight loop) is stopped with a "runaway handler" error, so one
 * bad request cannot hang the server. The router guards each request's handler with it. */
#ifndef FB_RUNAWAY_H
#define FB_RUNAWAY_H

#include <lua.h>

/* Lua: guard(co, ms [, on_stop]): from now on, whenever co is resumed from outside a guarded
 * run, it (and every coroutine it resumes) is stopped with a "runaway handler" error once it
 * keeps the loop busy for more than ms without yielding; on_stop(err) runs then. */
int fb_runaway_lua_guard(lua_State *L);
/* Replace coroutine.resume and coroutine.wrap with ones the guard follows (same behaviour
 * otherwise); once per VM, before any guarded coroutine runs. */
void fb_runaway_track_coroutines(lua_State *L);

#endif
