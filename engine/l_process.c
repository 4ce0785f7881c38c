/* l_process.c: module `fastbrain.process.core`, the C half of fastbrain.process: child processes on
 * uv_spawn with no shell in between. A child's stdin is a string written to a pipe; its stdout
 * and stderr are kept up to a cap; a deadline SIGKILLs it; once it has exited and both pipes
 * are drained a callback gets the result. Waiting in a coroutine is the Lua half's
 * (lua/fastbrain/process.lua). A child is always reaped: its handles outlive the Lua object. */
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "fsutil.h"
#include "modules.h"
#include "signals.h"
#include "vm.h"

#define CHILD_MT "fastbrain.process.child"
#define MAX_OUTPUT_DEFAULT (1 << 20)
#define DRAIN_MS 1000 /* how long an exited child's pipes may stay open (a grandchild holds them) */
#define HANDLES 5     /* process, stdin, stdout, stderr, timer */

typedef struct output {
  uv_pipe_t pipe;
  char *data;
  size_t len, cap;
  size_t dropped; /* bytes read past the cap */
  int eof;
} output;

typedef struct child_box child_box;

typedef struct child {
  uv_process_t process;
  uv_pipe_t in;
  output out, err;
  uv_timer_t timer; /* the deadline; once the child has exited, the drain timeout */
  uv_write_t write;
  char *input; /* stdin's bytes until they are written */
  size_t max_output;
  lua_State *L;   /* the main thread; NULL once the state is closing: no callback then */
  int cb_ref;     /* the callback, fn(result) */
  int self_ref;   /* keeps the userdata (and so the callback's upvalues) alive meanwhile */
  child_box *box; /* NULL once finished or collected */
  int open_handles;
  int exited, timed_out;
  int64_t exit_status;
  int term_signal;
  char readbuf[64 << 10]; /* libuv reads into it and hands it back before its next read */
} child;

struct child_box {
  child *c;
  int pid;
};

static long live_children; /* allocated and not yet freed by their last close callback */

static void on_handle_closed(uv_handle_t *h) {
  child *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->out.data);
  free(c->err.data);
  free(c->input);
  free(c);
  live_children--;
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
}

static void close_child(child *c) {
  close_handle((uv_handle_t *)&c->process);
  close_handle((uv_handle_t *)&c->in);
  close_handle((uv_handle_t *)&c->out.pipe);
  close_handle((uv_handle_t *)&c->err.pipe);
  close_handle((uv_handle_t *)&c->timer);
}

static void push_output(lua_State *L, const output *o, const char *name, const char *dropped) {
  lua_pushlstring(L, o->data ? o->data : "", o->len);
  lua_setfield(L, -2, name);
  lua_pushinteger(L, (lua_Integer)o->dropped);
  lua_setfield(L, -2, dropped);
}

/* The result table: {code | signal, stdout, stderr, stdout_dropped, stderr_dropped, timed_out}. */
static void push_result(lua_State *L, const child *c) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, c->term_signal ? c->term_signal : c->exit_status);
  lua_setfield(L, -2, c->term_signal ? "signal" : "code");
  push_output(L, &c->out, "stdout", "stdout_dropped");
  push_output(L, &c->err, "stderr", "stderr_dropped");
  lua_pushboolean(L, c->timed_out);
  lua_setfield(L, -2, "timed_out");
}

/* Once the child has exited and both pipes reached their end: close everything, then call back
 * (last, so the callback may start another child or drop every reference). */
static void maybe_finish(child *c) {
  if (!c->exited || !c->out.eof || !c->err.eof || uv_is_closing((uv_handle_t *)&c->process)) return;
  lua_State *L = c->L;
  if (L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->cb_ref);
    push_result(L, c);
    luaL_unref(L, LUA_REGISTRYINDEX, c->cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
  }
  if (c->box) c->box->c = NULL;
  c->box = NULL;
  close_child(c);
  if (L) fb_vm_pcall(L, 1, 0, "process callback");
}

/* The deadline (SIGKILL), or once the child has exited, the drain timeout. */
static void on_timer(uv_timer_t *t) {
  child *c = t->data;
  if (c->exited) { /* the drain timeout: stop waiting for an end the pipes will not reach */
    uv_read_stop((uv_stream_t *)&c->out.pipe);
    uv_read_stop((uv_stream_t *)&c->err.pipe);
    c->out.eof = c->err.eof = 1;
    maybe_finish(c);
    return;
  }
  c->timed_out = 1;
  uv_process_kill(&c->process, SIGKILL);
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig) {
  child *c = p->data;
  c->exited = 1;
  c->exit_status = status;
  c->term_signal = sig;
  uv_timer_stop(&c->timer);
  if (!c->out.eof || !c->err.eof) uv_timer_start(&c->timer, on_timer, DRAIN_MS, 0);
  maybe_finish(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  child *c = h->data;
  *buf = uv_buf_init(c->readbuf, sizeof c->readbuf);
}

/* Keep what fits under the cap; count the rest. A failed allocation drops bytes the same way. */
static void keep(output *o, const char *data, size_t n, size_t max) {
  size_t take = max - o->len < n ? max - o->len : n;
  if (o->len + take > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + take) cap *= 2;
    if (cap > max) cap = max;
    char *grown = realloc(o->data, cap);
    if (grown) {
      o->data = grown;
      o->cap = cap;
    } else {
      take = 0;
    }
  }
  if (take) memcpy(o->data + o->len, data, take);
  o->len += take;
  o->dropped += n - take;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child *c = s->data;
  output *o = s == (uv_stream_t *)&c->out.pipe ? &c->out : &c->err;
  if (nread > 0) keep(o, buf->base, (size_t)nread, c->max_output);
  if (nread >= 0) return;
  uv_read_stop(s);
  o->eof = 1;
  maybe_finish(c);
}

/* The input is written (or the write failed: the child quit reading): close stdin, its EOF. */
static void on_written(uv_write_t *w, int status) {
  (void)status;
  child *c = w->data;
  free(c->input);
  c->input = NULL;
  close_handle((uv_handle_t *)&c->in);
}

static child_box *check_box(lua_State *L, int idx) { return luaL_checkudata(L, idx, CHILD_MT); }

/* ---- reading the options ---------------------------------------------------------------- */

/* The strings the spawn needs stay referenced from a table on the stack until it is done. */
typedef struct spawn_args {
  char **argv, **env; /* NULL-terminated; env NULL: the parent's environment */
  const char *cwd;
  const char *input;
  size_t input_len;
  int has_input;
  lua_Integer timeout_ms; /* 0: none */
  lua_Integer max_output;
} spawn_args;

static const char *const option_names[] = {"argv",       "env",        "cwd", "stdin",
                                           "timeout_ms", "max_output", NULL};

static void check_known_options(lua_State *L, int opts) {
  for (lua_pushnil(L); lua_next(L, opts); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int known = 0;
    for (const char *const *n = option_names; *n && !known; n++) known = strcmp(*n, k) == 0;
    if (!known) luaL_error(L, "process: unknown option '%s'", luaL_tolstring(L, -2, NULL));
  }
}

/* A string exec can take (no NUL byte), or NULL with the reason pushed. */
static const char *exec_string(lua_State *L, int idx, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) == len) return s;
  lua_pushfstring(L, "%s contains a NUL byte", what);
  return NULL;
}

/* A NULL-terminated pointer array in a userdata left on the stack (freed with it). */
static char **new_list(lua_State *L, size_t n) {
  char **list = lua_newuserdatauv(L, (n + 1) * sizeof *list, 0);
  list[n] = NULL;
  return list;
}

/* read_argv and read_env return NULL, or the reason (pushed) for data exec cannot take; misuse
 * raises. Every string they point to is pinned in the table at `pins`. */
static const char *read_argv(lua_State *L, int opts, int pins, spawn_args *a) {
  if (lua_getfield(L, opts, "argv") != LUA_TTABLE)
    luaL_error(L, "process: argv must be a list of strings");
  int t = lua_gettop(L);
  lua_Integer n = luaL_len(L, t);
  if (n < 1) luaL_error(L, "process: argv is empty (argv[1] is the program)");
  a->argv = new_list(L, (size_t)n);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, t, i) != LUA_TSTRING)
      luaL_error(L, "process: argv[%d] must be a string", (int)i);
    char what[32];
    snprintf(what, sizeof what, "argv[%d]", (int)i);
    if (!(a->argv[i - 1] = (char *)exec_string(L, -1, what))) return lua_tostring(L, -1);
    lua_rawseti(L, pins, luaL_len(L, pins) + 1);
  }
  return NULL;
}

static const char *read_env(lua_State *L, int opts, int pins, spawn_args *a) {
  a->env = NULL;
  if (lua_getfield(L, opts, "env") == LUA_TNIL) return NULL;
  if (!lua_istable(L, -1)) luaL_error(L, "process: env must be a table of NAME = value");
  int t = lua_gettop(L);
  size_t n = 0;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) n++;
  a->env = new_list(L, n);
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "process: env must map names (strings) to values (strings)");
    const char *name = lua_tostring(L, -2);
    if (!*name || strchr(name, '='))
      luaL_error(L, "process: env name '%s' is empty or has '='", name);
    lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -1));
    char what[64];
    snprintf(what, sizeof what, "env %.40s", name);
    if (!(a->env[i++] = (char *)exec_string(L, -1, what))) return lua_tostring(L, -1);
    lua_rawseti(L, pins, luaL_len(L, pins) + 1);
  }
  return NULL;
}

static lua_Integer opt_integer(lua_State *L, int opts, const char *field, lua_Integer dflt,
                               lua_Integer min) {
  int type = lua_getfield(L, opts, field);
  int is_int;
  lua_Integer v = lua_tointegerx(L, -1, &is_int);
  lua_pop(L, 1);
  if (type == LUA_TNIL) return dflt;
  if (type != LUA_TNUMBER || !is_int || v < min)
    luaL_error(L, "process: %s must be an integer >= %d", field, (int)min);
  return v;
}

static const char *read_options(lua_State *L, int opts, spawn_args *a) {
  luaL_checktype(L, opts, LUA_TTABLE);
  check_known_options(L, opts);
  a->timeout_ms = opt_integer(L, opts, "timeout_ms", 0, 1);
  a->max_output = opt_integer(L, opts, "max_output", MAX_OUTPUT_DEFAULT, 0);
  lua_newtable(L);
  int pins = lua_gettop(L);
  const char *why = read_argv(L, opts, pins, a);
  if (!why) why = read_env(L, opts, pins, a);
  if (why) return why;
  a->cwd = NULL;
  int type = lua_getfield(L, opts, "cwd");
  if (type != LUA_TNIL && type != LUA_TSTRING) luaL_error(L, "process: cwd must be a string");
  if (type == LUA_TSTRING && !(a->cwd = exec_string(L, -1, "cwd"))) return lua_tostring(L, -1);
  struct stat st;
  if (a->cwd && (stat(a->cwd, &st) != 0 || !S_ISDIR(st.st_mode)))
    return lua_pushfstring(L, "cwd %s: not a directory", a->cwd);
  type = lua_getfield(L, opts, "stdin");
  if (type != LUA_TNIL && type != LUA_TSTRING) luaL_error(L, "process: stdin must be a string");
  a->has_input = type == LUA_TSTRING;
  a->input = lua_tolstring(L, -1, &a->input_len);
  return NULL;
}

/* ---- the module ------------------------------------------------------------------------- */

static int start_child(lua_State *L, child *c, const spawn_args *a) {
  uv_loop_t *loop = fb_vm_loop(L);
  c->process.data = c->in.data = c->out.pipe.data = c->err.pipe.data = c->timer.data =
      c->write.data = c;
  c->open_handles = HANDLES;
  uv_pipe_init(loop, &c->in, 0);
  uv_pipe_init(loop, &c->out.pipe, 0);
  uv_pipe_init(loop, &c->err.pipe, 0);
  uv_timer_init(loop, &c->timer);
  uv_stdio_container_t stdio[3] = {
      {.flags = a->has_input ? UV_CREATE_PIPE | UV_READABLE_PIPE : UV_IGNORE,
       .data.stream = (uv_stream_t *)&c->in},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out.pipe},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->err.pipe},
  };
  uv_process_options_t opt = {.exit_cb = on_child_exit,
                              .file = a->argv[0],
                              .args = a->argv,
                              .env = a->env,
                              .cwd = a->cwd,
                              .stdio_count = 3,
                              .stdio = stdio};
  fb_cloexec_from(3);
  int rc = uv_spawn(loop, &c->process, &opt);
  if (rc != 0) return rc;
  uv_read_start((uv_stream_t *)&c->out.pipe, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&c->err.pipe, on_alloc, on_read);
  if (a->timeout_ms > 0) uv_timer_start(&c->timer, on_timer, (uint64_t)a->timeout_ms, 0);
  if (a->has_input && a->input_len > 0) {
    uv_buf_t buf = uv_buf_init(c->input, (unsigned)a->input_len);
    if (uv_write(&c->write, (uv_stream_t *)&c->in, &buf, 1, on_written) == 0) return 0;
  }
  close_handle((uv_handle_t *)&c->in); /* nothing (more) to write: the child reads EOF */
  return 0;
}

/* spawn(opts, fn(result)) -> handle | nil, err. Misuse of opts raises; fn is called once, on
 * the loop, unless spawning fails. */
static int child_spawn(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  spawn_args a;
  const char *why = read_options(L, 1, &a);
  if (why) {
    luaL_pushfail(L);
    lua_pushstring(L, why);
    return 2;
  }
  luaL_argcheck(L, a.input_len <= 0x7fffffff, 1, "stdin is over 2 GiB");
  child_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->c = NULL;
  box->pid = 0;
  luaL_setmetatable(L, CHILD_MT);
  child *c = calloc(1, sizeof *c);
  char *input = a.input_len ? malloc(a.input_len) : NULL;
  if (!c || (a.input_len && !input)) {
    free(c);
    free(input);
    return luaL_error(L, "process: out of memory");
  }
  live_children++;
  if (input) memcpy(input, a.input, a.input_len);
  c->input = input;
  c->max_output = (size_t)a.max_output;
  int rc = start_child(L, c, &a);
  if (rc != 0) {
    close_child(c); /* the handles are initialized even when the spawn fails */
    luaL_pushfail(L);
    lua_pushfstring(L, "cannot run %s: %s", a.argv[0], uv_strerror(rc));
    return 2;
  }
  c->L = fb_vm_main(L);
  lua_pushvalue(L, 2);
  c->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->box = box;
  box->c = c;
  box->pid = c->process.pid;
  return 1;
}

static const char *const signal_names[] = {"kill", "term", "int",  "hup",  "quit",
                                           "stop", "cont", "usr1", "usr2", NULL};
static const int signal_numbers[] = {SIGKILL, SIGTERM, SIGINT,  SIGHUP, SIGQUIT,
                                     SIGSTOP, SIGCONT, SIGUSR1, SIGUSR2};

/* h:kill([name = "kill"]) -> true | nil, err. A child that has exited is not signalled: its pid
 * may belong to another process by now. */
static int child_kill(lua_State *L) {
  child_box *box = check_box(L, 1);
  int sig = signal_numbers[luaL_checkoption(L, 2, "kill", signal_names)];
  int rc = !box->c || box->c->exited ? UV_ESRCH : uv_process_kill(&box->c->process, sig);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_pushfail(L);
  lua_pushstring(L, rc == UV_ESRCH ? "the child has exited" : uv_strerror(rc));
  return 2;
}

static int child_pid(lua_State *L) {
  lua_pushinteger(L, check_box(L, 1)->pid);
  return 1;
}

/* Collected only once finished, or when the state closes while the child runs: then the child
 * is killed and its handles finish on their own, without a callback (the registry is gone). */
static int child_gc(lua_State *L) {
  child_box *box = check_box(L, 1);
  child *c = box->c;
  if (!c) return 0;
  c->L = NULL;
  c->box = NULL;
  box->c = NULL;
  if (!c->exited) uv_process_kill(&c->process, SIGKILL);
  return 0;
}

/* exepath() -> the path of the running fastbrain binary */
static int child_exepath(lua_State *L) {
  char path[4096];
  size_t len = sizeof path;
  int rc = uv_exepath(path, &len);
  if (rc != 0) return luaL_error(L, "process: exepath: %s", uv_strerror(rc));
  lua_pushlstring(L, path, len);
  return 1;
}

/* live() -> children whose memory is not yet freed (for leak tests) */
static int child_live(lua_State *L) {
  lua_pushinteger(L, live_children);
  return 1;
}

int luaopen_fastbrain_process_core(lua_State *L) {
  static const luaL_Reg methods[] = {{"kill", child_kill}, {"pid", child_pid}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"spawn", child_spawn}, {"exepath", child_exepath}, {"live", child_live}, {NULL, NULL}};
  fb_signals_ignore_sigpipe(); /* stdin written to a child that exited: EPIPE, not death */
  luaL_newmetatable(L, CHILD_MT);
  lua_pushcfunction(L, child_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
