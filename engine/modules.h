/* modules.h: the C halves of the `fastbrain` Lua modules, one luaopen per binding file.
 * vm.c lists them in package.preload; lua/fastbrain/init.lua loads them on first use. A C half
 * of a Lua module X (lua/fastbrain/X.lua) is `fastbrain.X.core`, from l_X.c, as LuaSocket's
 * socket.core is socket's; `fastbrain.core` is the half of `fastbrain` itself. */
#ifndef FB_MODULES_H
#define FB_MODULES_H

#include <lua.h>

int luaopen_fastbrain_core(lua_State *L);  /* l_core.c: now, on_signal, guard, version, root */
int luaopen_fastbrain_json(lua_State *L);  /* l_json.c */
int luaopen_fastbrain_timer(lua_State *L); /* l_timer.c */
int luaopen_fastbrain_log(lua_State *L);   /* l_log.c */
int luaopen_fastbrain_http(lua_State *L);  /* l_http.c: HTTP server (see http.h) */
int luaopen_fastbrain_poll(lua_State *L);  /* l_poll.c: fd readiness, name resolution */
int luaopen_fastbrain_process_core(lua_State *L); /* l_process.c: the C half of fastbrain.process */
int luaopen_fastbrain_tokenizer(lua_State *L);  /* l_tokenizer.c: tokenizer.json, byte tokenizer */
int luaopen_fastbrain_dataset(lua_State *L);    /* l_dataset.c: JSONL datasets, examples, stats */
int luaopen_fastbrain_fs(lua_State *L);         /* l_fs.c: atomic writes, reads, mkdir -p */
int luaopen_fastbrain_jobs(lua_State *L);       /* l_jobs.c: the job registry (see jobs.h) */
int luaopen_fastbrain_train_core(lua_State *L); /* l_train.c: the C half of fastbrain.train */
int luaopen_fastbrain_model_core(lua_State *L); /* l_model.c: the C half of fastbrain.model */
int luaopen_fastbrain_digest(lua_State *L);     /* l_digest.c: sha256 and other digests (OpenSSL) */
int luaopen_fastbrain_regex(lua_State *L);      /* l_regex.c: POSIX extended regular expressions */

#endif
