/* signals.c: the process's signal dispositions (signals.h). On the loop: SIGINT/SIGTERM
 * watchers and their Lua handlers, which live in a registry table keyed by signal name (without
 * one the loop is stopped with 128 + signum). Off it: training's cancel flag, SIGPIPE, and the
 * runaway guard's signal. */
#include "signals.h"

#include <lauxlib.h>
#include <pthread.h>
#include <string.h>
#include <uv.h>

#include "vm.h"

#define HANDLERS_KEY "fastbrain.signal_handlers"

static const struct {
  const char *name;
  int signum;
} watched[] = {{"int", SIGINT}, {"term", SIGTERM}};
#define NWATCHED (sizeof watched / sizeof watched[0])

static uv_signal_t watchers[NWATCHED];
static int started;

static void on_signal(uv_signal_t *w, int signum) {
  lua_State *L = w->data;
  const char *name = watched[w - watchers].name;
  lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) {
    lua_pushstring(L, name);
    fb_vm_pcall(L, 1, 0, "signal handler");
  } else {
    lua_pop(L, 1);
    fb_vm_request_exit(L, 128 + signum);
  }
}

/* The handlers table, made on first use: a command may set handlers before it starts waiting on
 * the loop (cmd_lua.c starts the watchers only then). */
static void push_handlers(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY); /* registry[HANDLERS_KEY] = {} */
}

int fb_signals_start(lua_State *L) {
  push_handlers(L);
  lua_pop(L, 1);
  for (size_t i = 0; i < NWATCHED; i++) {
    int rc = uv_signal_init(fb_vm_loop(L), &watchers[i]);
    if (rc == 0) rc = uv_signal_start(&watchers[i], on_signal, watched[i].signum);
    if (rc != 0) return rc;
    watchers[i].data = L;
    uv_unref((uv_handle_t *)&watchers[i]); /* watching alone must not keep the process up */
  }
  started = 1;
  return 0;
}

void fb_signals_stop(void) {
  if (!started) return;
  for (size_t i = 0; i < NWATCHED; i++) uv_close((uv_handle_t *)&watchers[i], NULL);
  started = 0;
}

int fb_signals_lua_on_signal(lua_State *L) {
  const char *names[NWATCHED + 1];
  for (size_t i = 0; i < NWATCHED; i++) names[i] = watched[i].name;
  names[NWATCHED] = NULL;
  int which = luaL_checkoption(L, 1, NULL, names);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  push_handlers(L);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, watched[which].name); /* handlers[name] = fn (nil restores the default) */
  return 0;
}

/* ---- training: SIGTERM and SIGINT cancel the run between steps ---- */

volatile sig_atomic_t fb_signals_cancel;
static int catching_for_process;

static void on_term(int sig) {
  (void)sig;
  fb_signals_cancel = 1;
}

void fb_signals_catch_term(struct sigaction old[2]) {
  struct sigaction sa = {.sa_handler = on_term, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, old ? &old[0] : NULL);
  sigaction(SIGINT, &sa, old ? &old[1] : NULL);
}

void fb_signals_restore_term(const struct sigaction old[2]) {
  sigaction(SIGTERM, &old[0], NULL);
  sigaction(SIGINT, &old[1], NULL);
}

static void *wait_for_term(void *set) {
  int sig;
  for (;;)
    if (sigwait(set, &sig) == 0) fb_signals_cancel = 1;
  return NULL;
}

/* The handler stays for threads libraries started before main (OpenBLAS's). */
void fb_signals_catch_term_for_process(void) {
  static sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  fb_signals_catch_term(NULL);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  pthread_t waiter;
  if (pthread_create(&waiter, NULL, wait_for_term, &set) == 0)
    pthread_detach(waiter);
  else
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  catching_for_process = 1;
}

int fb_signals_catching_for_process(void) { return catching_for_process; }

/* ---- the rest ---- */

void fb_signals_ignore_sigpipe(void) {
  struct sigaction sa = {.sa_handler = SIG_IGN};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

int fb_signals_runaway(void (*handler)(int)) {
  int signum = SIGRTMIN + 3;
  struct sigaction sa = {.sa_handler = handler, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  return sigaction(signum, &sa, NULL) == 0 ? signum : -1;
}
