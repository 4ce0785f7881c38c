/* l_jobs.c: module `fastbrain.jobs`: the job registry of jobs.h for Lua. One registry per VM
 * (jobs.open); jobs are plain tables in the shape of job.json (via fastbrain.json, so arrays
 * and null survive a re-encode); subscriptions are userdata that keep their callback until
 * closed. Failures return nil, code, detail with code one of "conflict" (detail: the live
 * job), "invalid", "notfound", "error" (detail: a message); misuse raises. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "modules.h"
#include "vm.h"

#define REGISTRY_MT "fastbrain.jobs.registry"
#define SUB_MT "fastbrain.jobs.subscription"
#define CURRENT_KEY "fastbrain.jobs.current" /* LUA_REGISTRYINDEX field: the open registry */
#define DECODE_KEY "fastbrain.jobs.decode"   /* fastbrain.json.decode */
#define ENCODE_KEY "fastbrain.jobs.encode"   /* fastbrain.json.encode */

typedef struct lsub lsub;

typedef struct reg_box {
  fb_jobs *r; /* NULL once closed */
  lua_State *main;
  lua_State *in_call; /* the thread inside a jobs.* call: listeners run there meanwhile */
  lsub *subs;
} reg_box;

struct lsub {
  fb_jobs_sub *sub;
  reg_box *reg;
  int cb_ref, self_ref;
  lsub *next;
};

typedef struct {
  lsub *s;
} sub_box; /* s is NULL once closed */

/* ---- JSON to Lua ---------------------------------------------------------------------- */

/* Push the decoding of text (owned: freed here, before anything can raise). */
static void push_text(lua_State *L, char *text) {
  if (!text) luaL_error(L, "jobs: out of memory");
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pushstring(L, text);
  free(text);
  lua_call(L, 1, 1);
}

static void push_job(lua_State *L, const fb_jobs *r, const fb_job *job) {
  cJSON *o = fb_job_to_json(r, job);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  push_text(L, text);
  push_text(L, strdup(job->spec));
  lua_setfield(L, -2, "spec"); /* job.spec = the spec it runs */
}

/* ---- the registry --------------------------------------------------------------------- */

static reg_box *current(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  reg_box *reg = luaL_testudata(L, -1, REGISTRY_MT);
  lua_pop(L, 1);
  if (!reg || !reg->r) luaL_error(L, "jobs: no registry is open (call jobs.open first)");
  return reg;
}

static void release_sub(lsub *s) {
  reg_box *reg = s->reg;
  for (lsub **p = &reg->subs; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  if (reg->r) fb_jobs_unsubscribe(reg->r, s->sub);
  luaL_unref(reg->main, LUA_REGISTRYINDEX, s->cb_ref);
  luaL_unref(reg->main, LUA_REGISTRYINDEX, s->self_ref);
}

static void close_registry(lua_State *L, reg_box *reg) {
  if (!reg->r) return;
  while (reg->subs) {
    lsub *s = reg->subs;
    release_sub(s);
    s->sub = NULL; /* the box sees a closed subscription */
  }
  fb_jobs_close(reg->r);
  reg->r = NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  if (lua_touserdata(L, -1) == reg) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  }
  lua_pop(L, 1);
}

static double opt_positive(lua_State *L, const char *field, double dflt) {
  lua_getfield(L, 1, field);
  int is_num = lua_isnumber(L, -1), is_nil = lua_isnil(L, -1);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (is_nil) return dflt;
  if (!is_num || !(v > 0)) luaL_error(L, "jobs.open: %s must be a number > 0", field);
  return v;
}

static const char *opt_string(lua_State *L, int t, const char *field) {
  lua_getfield(L, t, field); /* left on the stack, which keeps it alive during open */
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "jobs.open: %s must be a string", field);
  return lua_tostring(L, -1);
}

/* jobs.open{data_dir=, stale_after= (s), max_running=, kill_grace= (s), worker={argv...},
 *           executor="local"|"slurm", slurm={partition=, account=, time=, mem_mb=, poll= (s)}}
 *   -> registry | nil, msg */
static int jobs_open(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  if (!lua_isnil(L, -1)) luaL_error(L, "jobs.open: a registry is already open");
  lua_pop(L, 1);
  lua_getfield(L, 1, "data_dir");
  const char *dir = lua_tostring(L, -1);
  if (!dir) luaL_error(L, "jobs.open: data_dir (a string) is required");
  fb_jobs_options opt = {
      .data_dir = dir,
      .stale_after_ms = (uint64_t)(opt_positive(L, "stale_after", 1800) * 1000),
      .max_running = (int)opt_positive(L, "max_running", 1),
      .kill_grace_ms = (uint64_t)(opt_positive(L, "kill_grace", 10) * 1000),
  };
  lua_getfield(L, 1, "worker");
  const char **argv = NULL;
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) luaL_error(L, "jobs.open: worker must be a list of strings");
    lua_Integer n = luaL_len(L, -1);
    if (n < 1) luaL_error(L, "jobs.open: worker must name a program");
    int list = lua_gettop(L);
    luaL_checkstack(L, (int)n + 4, "jobs.open: worker list too long");
    argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0); /* collected after open */
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i); /* left on the stack, which keeps it alive during open */
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "jobs.open: worker[%d] is not a string", (int)i);
      argv[i - 1] = lua_tostring(L, -1);
    }
    argv[n] = NULL;
  }
  opt.worker = argv;
  opt.executor = opt_string(L, 1, "executor");
  lua_getfield(L, 1, "slurm");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    opt.slurm.partition = opt_string(L, t, "partition");
    opt.slurm.account = opt_string(L, t, "account");
    opt.slurm.time_limit = opt_string(L, t, "time");
    lua_getfield(L, t, "mem_mb");
    opt.slurm.mem_mb = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, t, "poll");
    opt.slurm.poll_ms = (uint64_t)(luaL_optnumber(L, -1, 2) * 1000);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "jobs.open: slurm must be a table");
  }

  reg_box *reg = lua_newuserdatauv(L, sizeof *reg, 0);
  memset(reg, 0, sizeof *reg);
  luaL_setmetatable(L, REGISTRY_MT);
  reg->main = fb_vm_main(L);
  fb_err err = {0};
  if (fb_jobs_open(fb_vm_loop(L), &opt, &reg->r, &err) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  return 1;
}

static reg_box *check_registry(lua_State *L, int idx) {
  reg_box *reg = luaL_checkudata(L, idx, REGISTRY_MT);
  luaL_argcheck(L, reg->r != NULL, idx, "registry is closed");
  return reg;
}

/* registry:close() and jobs.close(): running workers get SIGTERM and their jobs become
 * interrupted (resumable after the next open); subscriptions end. Idempotent. */
static int registry_close(lua_State *L) {
  reg_box *reg = luaL_checkudata(L, 1, REGISTRY_MT);
  close_registry(L, reg);
  return 0;
}

static int jobs_close(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
  reg_box *reg = luaL_testudata(L, -1, REGISTRY_MT);
  if (reg) close_registry(L, reg);
  return 0;
}

/* registry:reports() -> {msg...}: what open found wrong (corrupt files set aside). */
static int registry_reports(lua_State *L) {
  reg_box *reg = check_registry(L, 1);
  const char *const *reps = fb_jobs_reports(reg->r);
  lua_newtable(L);
  for (int i = 0; reps[i]; i++) {
    lua_pushstring(L, reps[i]);
    lua_rawseti(L, -2, i + 1); /* list[i+1] = message */
  }
  return 1;
}

static int registry_tostring(lua_State *L) {
  reg_box *reg = luaL_checkudata(L, 1, REGISTRY_MT);
  lua_pushfstring(L, "fastbrain.jobs.registry (%s): %p", reg->r ? "open" : "closed", (void *)reg);
  return 1;
}

/* ---- jobs ----------------------------------------------------------------------------- */

/* nil, code, detail for a negative return of the registry. */
static int fail(lua_State *L, const fb_err *err) {
  luaL_pushfail(L);
  lua_pushstring(L, err->code == FB_EINVALID ? "invalid" : "error");
  lua_pushstring(L, err->msg);
  return 3;
}

static int conflict(lua_State *L, const fb_jobs *r, const fb_job *live) {
  luaL_pushfail(L);
  lua_pushliteral(L, "conflict");
  push_job(L, r, live);
  return 3;
}

static fb_job *find_job(lua_State *L, reg_box *reg, int idx) {
  fb_job *job = fb_jobs_get(reg->r, luaL_checkstring(L, idx));
  if (!job) {
    luaL_pushfail(L);
    lua_pushliteral(L, "notfound");
    lua_pushfstring(L, "no job '%s'", lua_tostring(L, idx));
  }
  return job;
}

/* jobs.start({skill=, ...spec} [, {memory_bytes=}]) -> job | nil, "conflict", live job | nil,
 * code, msg. memory_bytes: what the job's estimate says its worker needs (docs/slurm.md). */
static int jobs_start(lua_State *L) {
  reg_box *reg = current(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int64_t memory_bytes = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "memory_bytes");
    memory_bytes = (int64_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "skill");
  const char *skill = lua_tostring(L, -1);
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "skill: a string is required");
  lua_getfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
  lua_newtable(L); /* the spec: the options without skill */
  for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
    if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "skill") == 0) continue;
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_settable(L, -5); /* spec[k] = v */
  }
  lua_call(L, 1, 1);
  const char *spec = lua_tostring(L, -1);
  if (strcmp(spec, "[]") == 0) spec = "{}"; /* an empty table encodes as a list */
  fb_job *job;
  fb_err err = {0};
  lua_State *outer = reg->in_call; /* a listener may call us inside another call */
  reg->in_call = L;
  int rc = fb_jobs_start_needing(reg->r, skill, spec, memory_bytes, &job, &err);
  reg->in_call = outer;
  if (rc < 0) return fail(L, &err);
  if (rc == 1) return conflict(L, reg->r, job);
  push_job(L, reg->r, job);
  return 1;
}

/* jobs.get(id) -> job | nil */
static int jobs_get(lua_State *L) {
  reg_box *reg = current(L);
  fb_job *job = fb_jobs_get(reg->r, luaL_checkstring(L, 1));
  if (!job) return 0;
  push_job(L, reg->r, job);
  return 1;
}

/* jobs.latest(skill) -> the skill's live job, else its newest | nil */
static int jobs_latest(lua_State *L) {
  reg_box *reg = current(L);
  fb_job *job = fb_jobs_latest(reg->r, luaL_checkstring(L, 1));
  if (!job) return 0;
  push_job(L, reg->r, job);
  return 1;
}

static lua_Integer opt_count(lua_State *L, const char *field, lua_Integer dflt) {
  lua_getfield(L, 1, field);
  int is_int;
  lua_Integer v = lua_tointegerx(L, -1, &is_int);
  int is_nil = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (is_nil) return dflt;
  if (!is_int || v < 0) luaL_error(L, "jobs.list: %s must be an integer >= 0", field);
  return v;
}

/* jobs.list{state=, skill=, offset=0, limit=} -> {job...} newest first, total matching */
static int jobs_list(lua_State *L) {
  reg_box *reg = current(L);
  const char *state = NULL, *skill = NULL;
  lua_Integer offset = 0, limit = LUA_MAXINTEGER;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "state");
    state = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "skill");
    skill = luaL_optstring(L, -1, NULL);
    offset = opt_count(L, "offset", 0);
    limit = opt_count(L, "limit", LUA_MAXINTEGER);
  }
  if (state) {
    int known = 0;
    for (int s = FB_JOB_QUEUED; s <= FB_JOB_UNREADABLE; s++)
      known |= strcmp(state, fb_job_state_name((fb_job_state)s)) == 0;
    luaL_argcheck(L, known, 1, "state: not a job state");
  }
  lua_newtable(L);
  lua_Integer n = 0, total = 0;
  for (fb_job *job = fb_jobs_next(reg->r, NULL); job; job = fb_jobs_next(reg->r, job)) {
    if (state && strcmp(state, fb_job_state_name(job->state)) != 0) continue;
    if (skill && strcmp(skill, job->skill) != 0) continue;
    if (total++ < offset || n >= limit) continue; /* only the page is converted */
    push_job(L, reg->r, job);
    lua_rawseti(L, -2, ++n); /* list[n] = job */
  }
  lua_pushinteger(L, total);
  return 2;
}

/* jobs.cancel(id) -> true | nil, code, msg */
static int jobs_cancel(lua_State *L) {
  reg_box *reg = current(L);
  fb_job *job = find_job(L, reg, 1);
  if (!job) return 3;
  fb_err err = {0};
  lua_State *outer = reg->in_call; /* a listener may call us inside another call */
  reg->in_call = L;
  int rc = fb_jobs_cancel(reg->r, job, &err);
  reg->in_call = outer;
  if (rc != 0) return fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* jobs.resume(id) -> job | nil, "conflict", live job | nil, code, msg */
static int jobs_resume(lua_State *L) {
  reg_box *reg = current(L);
  fb_job *job = find_job(L, reg, 1);
  if (!job) return 3;
  fb_job *live;
  fb_err err = {0};
  lua_State *outer = reg->in_call; /* a listener may call us inside another call */
  reg->in_call = L;
  int rc = fb_jobs_resume(reg->r, job, &live, &err);
  reg->in_call = outer;
  if (rc < 0) return fail(L, &err);
  if (rc == 1) return conflict(L, reg->r, live);
  push_job(L, reg->r, job);
  return 1;
}

typedef struct {
  lua_State *L;
  int n;
} event_list;

static void add_event(void *ud, const cJSON *ev) {
  event_list *list = ud;
  lua_State *L = list->L;
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  char *text = cJSON_PrintUnformatted(ev);
  lua_pushstring(L, text ? text : "null");
  free(text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK)
    lua_rawseti(L, -2, ++list->n); /* list[n] = event */
  else
    lua_pop(L, 1);
}

/* jobs.events(id [, after_seq = 0]) -> {event...} with seq > after_seq | nil, code, msg */
static int jobs_events(lua_State *L) {
  reg_box *reg = current(L);
  fb_job *job = find_job(L, reg, 1);
  if (!job) return 3;
  lua_Integer after = luaL_optinteger(L, 2, 0);
  lua_newtable(L);
  event_list list = {L, 0};
  fb_err err = {0};
  if (fb_jobs_events(reg->r, job, after, add_event, &list, &err) < 0) return fail(L, &err);
  return 1;
}

/* ---- subscriptions -------------------------------------------------------------------- */

/* deliver(fn, text): fn(decoded event), inside fb_vm_pcall. */
static int deliver(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_insert(L, 2);
  lua_call(L, 1, 1);
  lua_call(L, 1, 0);
  return 0;
}

static void on_event(void *ud, const fb_job *job, const fb_job_event *ev) {
  (void)job;
  lsub *s = ud;
  lua_State *L = s->reg->in_call ? s->reg->in_call : s->reg->main;
  char *text = cJSON_PrintUnformatted(ev->data);
  if (!text) return;
  lua_pushcfunction(L, deliver);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->cb_ref);
  lua_pushstring(L, text);
  free(text);
  fb_vm_pcall(L, 2, 0, "jobs listener");
}

/* jobs.subscribe(skill | "*", fn(event)) -> subscription (kept alive until :close()) */
static int jobs_subscribe(lua_State *L) {
  reg_box *reg = current(L);
  const char *skill = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int all = strcmp(skill, "*") == 0;
  fb_err err = {0};
  if (!all && fb_jobs_check_skill(skill, &err) != 0) luaL_argerror(L, 1, err.msg);
  sub_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->s = NULL;
  luaL_setmetatable(L, SUB_MT);
  lsub *s = calloc(1, sizeof *s);
  if (!s) return luaL_error(L, "jobs.subscribe: out of memory");
  s->sub = fb_jobs_subscribe(reg->r, all ? NULL : skill, on_event, s);
  if (!s->sub) {
    free(s);
    return luaL_error(L, "jobs.subscribe: out of memory");
  }
  s->reg = reg;
  lua_pushvalue(L, 2);
  s->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->next = reg->subs;
  reg->subs = s;
  box->s = s;
  return 1;
}

/* sub:close(): no more events; idempotent, also after the registry closed. */
static int sub_close(lua_State *L) {
  sub_box *box = luaL_checkudata(L, 1, SUB_MT);
  lsub *s = box->s;
  if (!s) return 0;
  if (s->sub) release_sub(s);
  free(s);
  box->s = NULL;
  return 0;
}

static int sub_active(lua_State *L) {
  sub_box *box = luaL_checkudata(L, 1, SUB_MT);
  lua_pushboolean(L, box->s && box->s->sub);
  return 1;
}

static int sub_tostring(lua_State *L) {
  sub_box *box = luaL_checkudata(L, 1, SUB_MT);
  lua_pushfstring(L, "fastbrain.jobs.subscription (%s): %p",
                  box->s && box->s->sub ? "active" : "closed", (void *)box);
  return 1;
}

int luaopen_fastbrain_jobs(lua_State *L) {
  static const luaL_Reg reg_methods[] = {
      {"close", registry_close}, {"reports", registry_reports}, {NULL, NULL}};
  static const luaL_Reg reg_meta[] = {{"__gc", registry_close},
                                      {"__close", registry_close},
                                      {"__tostring", registry_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg sub_methods[] = {
      {"close", sub_close}, {"active", sub_active}, {NULL, NULL}};
  static const luaL_Reg sub_meta[] = {
      {"__gc", sub_close}, {"__close", sub_close}, {"__tostring", sub_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"open", jobs_open},
                                   {"close", jobs_close},
                                   {"start", jobs_start},
                                   {"get", jobs_get},
                                   {"latest", jobs_latest},
                                   {"list", jobs_list},
                                   {"cancel", jobs_cancel},
                                   {"resume", jobs_resume},
                                   {"events", jobs_events},
                                   {"subscribe", jobs_subscribe},
                                   {NULL, NULL}};
  luaL_requiref(L, "fastbrain.json", luaopen_fastbrain_json, 0);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_getfield(L, -1, "encode");
  lua_setfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
  lua_pop(L, 1);
  luaL_newmetatable(L, REGISTRY_MT);
  luaL_setfuncs(L, reg_meta, 0);
  luaL_newlib(L, reg_methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  luaL_newmetatable(L, SUB_MT);
  luaL_setfuncs(L, sub_meta, 0);
  luaL_newlib(L, sub_methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
