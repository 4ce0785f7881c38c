/* vm.h: the one Lua VM of the process and the libuv loop it runs on. Creates the state with
 * the standard libraries, the bundled module paths and the fastbrain C modules; runs chunks in
 * protected mode with a traceback; and is the single door for every call from C into Lua.
 * Only the loop thread may call anything here. */
#ifndef FB_VM_H
#define FB_VM_H

#include <lua.h>
#include <uv.h>

/* Create the VM on `loop` (not owned). `root` is the folder holding lua/, scripts/, web/ and
 * share/ (see paths.h). Returns NULL when out of memory. */
lua_State *fb_vm_new(uv_loop_t *loop, const char *root);

/* Close the VM: runs every pending __gc/__close (which close their uv handles), then lets the
 * loop run the close callbacks. The loop itself is the caller's to close. */
void fb_vm_close(lua_State *L);

uv_loop_t *fb_vm_loop(lua_State *L);

/* The main thread of L's state: where loop callbacks run Lua (never a coroutine, which may be
 * suspended or dead by the time a callback fires). */
lua_State *fb_vm_main(lua_State *L);

/* The folder of bundled files the VM was created with. */
const char *fb_vm_root(lua_State *L);

/* Ask the process to end with `code` once the current callback returns: stops the loop.
 * fb_vm_exit_code() is that code, or -1 when no exit was asked for. */
void fb_vm_request_exit(lua_State *L, int code);
int fb_vm_exit_code(lua_State *L);

/* Call the function under `nargs` arguments on top of L in protected mode with a traceback.
 * On error the message ("file:line: msg" + traceback) is logged at error level under `what`
 * (e.g. "timer callback"), nothing is left on the stack, and the status is returned. */
int fb_vm_pcall(lua_State *L, int nargs, int nresults, const char *what);

/* Resume coroutine `co` with `nargs` values on its stack. A coroutine that errors is logged with
 * its own traceback under `what`. Returns the lua_resume status (LUA_OK, LUA_YIELD or an error);
 * `*nres` receives the number of values it yielded or returned. */
int fb_vm_resume(lua_State *L, lua_State *co, int nargs, int *nres, const char *what);

/* Load and run a Lua file as the main chunk with the given arguments (as `...`). Errors are
 * printed to stderr as "file:line: message" plus a traceback; returns 0 or 1. */
int fb_vm_run_file(lua_State *L, const char *path, int argc, char **argv);

#endif
