/* runaway.c: the runaway guard of the Lua VM (runaway.h). A guarded coroutine (guard(co, ms))
 * resumed from outside any guarded run starts a run with a deadline. Costs nothing while
 * handlers behave: no hook runs. A watchdog thread looks at the deadline every few ms; once it
 * has passed it signals the loop thread, whose signal handler sets a count hook on every
 * coroutine in the run's resume chain (the handler and whatever it resumed, by
 * coroutine.resume or coroutine.wrap, which this module replaces to keep that chain). The hook
 * raises "runaway handler" in each of them at its next instruction. Setting a hook from a
 * signal handler is what Lua allows (lua.c stops scripts on SIGINT the same way). One loop
 * thread runs Lua: the chain and the run are per process. */
#include "runaway.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "signals.h"
#include "vm.h"

#define MAX_CHAIN 256 /* nested resumes tracked; Lua's C stack ends long before */
#define WATCHDOG_TICK_MS 10

static struct {
  lua_State *chain[MAX_CHAIN]; /* the coroutines resumed in the current run, outermost first */
  volatile sig_atomic_t depth; /* entries in chain (may exceed MAX_CHAIN: not tracked) */
  _Atomic uint64_t deadline;   /* uv_hrtime() the run must yield by; 0 = no run */
  _Atomic unsigned gen;        /* which run the deadline belongs to */
  _Atomic unsigned fired;      /* the run the watchdog signalled */
  uint64_t started, budget_ms; /* of the current run, for the message */
  pthread_t loop_thread;
  int signum;   /* the signal the watchdog sends it (signals.c) */
  int watching; /* the watchdog thread is started */
} run;

static void stop_hook(lua_State *co, lua_Debug *ar) {
  (void)ar;
  luaL_error(co, "runaway handler: ran %d ms without yielding (budget %d ms)",
             (int)((uv_hrtime() - run.started) / 1000000), (int)run.budget_ms);
}

static void on_runaway_signal(int sig) {
  (void)sig;
  uint64_t deadline = atomic_load(&run.deadline);
  if (!deadline || atomic_load(&run.fired) != atomic_load(&run.gen) || uv_hrtime() < deadline)
    return; /* that run ended before the signal came */
  int n = run.depth < MAX_CHAIN ? run.depth : MAX_CHAIN;
  for (int i = 0; i < n; i++) lua_sethook(run.chain[i], stop_hook, LUA_MASKCOUNT, 1);
}

static void *watchdog(void *arg) {
  (void)arg;
  unsigned last = 0;
  const struct timespec tick = {0, WATCHDOG_TICK_MS * 1000000L};
  for (;;) {
    nanosleep(&tick, NULL);
    unsigned gen = atomic_load(&run.gen);
    uint64_t deadline = atomic_load(&run.deadline);
    if (deadline && gen != last && uv_hrtime() > deadline) {
      last = gen;
      atomic_store(&run.fired, gen);
      pthread_kill(run.loop_thread, run.signum);
    }
  }
  return NULL;
}

static void start_watchdog(lua_State *L) {
  if (run.watching) return;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the watchdog takes no signals */
  run.signum = fb_signals_runaway(on_runaway_signal);
  int rc = run.signum < 0 ? -1 : pthread_create(&t, &attr, watchdog, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc) luaL_error(L, "guard: cannot start the watchdog");
  run.loop_thread = pthread_self();
  run.watching = 1;
}

/* registry: weak tables coroutine -> budget ms, coroutine -> function called when it is stopped */
static const char budget_key = 'b', on_stop_key = 's';

/* t[co] for the weak table at key, left on the stack (nil when there is none). */
static int guard_field(lua_State *L, const char *key, int co_idx) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) return LUA_TNIL;
  lua_pushvalue(L, co_idx);
  int t = lua_rawget(L, -2);
  lua_remove(L, -2);
  return t;
}

/* The budget of co in ms, or 0 when it is not guarded. */
static lua_Integer budget_of(lua_State *L, int co_idx) {
  guard_field(L, &budget_key, co_idx);
  lua_Integer ms = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return ms;
}

/* co was stopped: call its on_stop(err) (the error is on top and stays there). */
static void call_on_stop(lua_State *L, int co_idx) {
  if (guard_field(L, &on_stop_key, co_idx) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, -2);
  fb_vm_pcall(L, 1, 0, "runaway on_stop");
}

/* Resume co (at co_idx) with the top narg values of L, as lcorolib's auxresume: the count of
 * results moved to L, or -1 with the error on top. Keeps the chain; starts a run when co is
 * guarded and none is running. */
static int resume_tracked(lua_State *L, lua_State *co, int co_idx, int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_Integer budget = atomic_load(&run.deadline) ? 0 : budget_of(L, co_idx);
  if (budget > 0) {
    run.started = uv_hrtime();
    run.budget_ms = (uint64_t)budget;
    atomic_fetch_add(&run.gen, 1);
    atomic_store(&run.deadline, run.started + (uint64_t)budget * 1000000);
  }
  lua_xmove(L, co, narg);
  if (run.depth < MAX_CHAIN) run.chain[run.depth] = co;
  run.depth++;
  int nres;
  int status = lua_resume(co, L, narg, &nres);
  run.depth--;
  int stopped = 0;
  if (budget > 0) {
    stopped = atomic_load(&run.fired) == atomic_load(&run.gen);
    atomic_store(&run.deadline, 0);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  if (stopped) call_on_stop(L, co_idx);
  return -1;
}

/* coroutine.resume, tracked. */
static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");
  int r = resume_tracked(L, co, 1, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* The function coroutine.wrap returns, tracked (lcorolib's auxwrap). */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = resume_tracked(L, co, lua_upvalueindex(1), lua_gettop(L));
  if (r >= 0) return r;
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) { /* an error inside: close its tbc variables */
    stat = lua_resetthread(co);
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

/* registry[key][co] = the value at idx, in a table with weak keys made on first use. */
static void set_weak(lua_State *L, const char *key, int co_idx, int idx) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2); /* a finished coroutine is collected */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  }
  lua_pushvalue(L, co_idx);
  lua_pushvalue(L, idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* guard(co, ms [, on_stop]): from now on, whenever co is resumed from outside a guarded run,
 * it (and every coroutine it resumes) is stopped with a "runaway handler" error once it keeps
 * the loop busy for more than ms without yielding; on_stop(err) runs then, whoever resumed. */
int fb_runaway_lua_guard(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms > 0, 2, "budget must be > 0");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  start_watchdog(L);
  set_weak(L, &budget_key, 1, 2);
  set_weak(L, &on_stop_key, 1, 3);
  return 0;
}

/* Replace coroutine.resume and coroutine.wrap with the tracked ones, so the guard sees every
 * coroutine a handler resumes. Same behaviour otherwise. */
void fb_runaway_track_coroutines(lua_State *L) {
  luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
  lua_pushcfunction(L, co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}
