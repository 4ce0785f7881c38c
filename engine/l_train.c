/* l_train.c: `fastbrain.train.core`, the C half of `fastbrain.train` (lua/fastbrain/train.lua,
 * which renders and tokenizes the data): spec(spec_json) parses and checks a run's spec once;
 * run(spec, data, on_event [, opts]) loads the model and runs train.c in this process,
 * blocking; it does not read datasets itself. defaults, fields and check_request give
 * train_spec.c's table (the one authority on the spec's fields) to Lua; plan says how a run
 * goes; checkpoint_adapter turns a run's checkpoint into an adapter directory. */
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "modules.h"
#include "signals.h"
#include "train.h"
#include "vm.h"

#define STATE_MT "fastbrain.train.state"

/* What a run borrows from Lua, copied into C memory; freed by __gc even when a conversion
 * raises halfway. */
typedef struct tr_state {
  fb_examples train, eval;
  fb_train_prompt *prompts, *scenarios;
  int n_prompts, n_scenarios;
} tr_state;

static void free_prompts(fb_train_prompt **v, int *n) {
  for (int i = 0; i < *n; i++) free((void *)(*v)[i].ids);
  free(*v);
  *v = NULL;
  *n = 0;
}

static int state_gc(lua_State *L) {
  tr_state *s = luaL_checkudata(L, 1, STATE_MT);
  fb_examples_free(&s->train);
  fb_examples_free(&s->eval);
  free_prompts(&s->prompts, &s->n_prompts);
  free_prompts(&s->scenarios, &s->n_scenarios);
  return 0;
}

/* The integers of the array at idx into a fresh buffer (*n of them). */
static int32_t *int_array(lua_State *L, int idx, const char *what, int *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer len = luaL_len(L, idx);
  int32_t *v = malloc((size_t)(len ? len : 1) * sizeof *v);
  if (!v) luaL_error(L, "trainer: out of memory");
  for (lua_Integer i = 1; i <= len; i++) {
    int ok;
    lua_Integer x = (lua_rawgeti(L, idx, i), lua_tointegerx(L, -1, &ok));
    lua_pop(L, 1);
    if (!ok || x < -100 || x > INT32_MAX) {
      free(v);
      luaL_error(L, "trainer: %s[%d] is not a token id", what, (int)i);
    }
    v[i - 1] = (int32_t)x;
  }
  *n = (int)len;
  return v;
}

/* data[key]: an array of {ids = {...}, labels = {...}, line = n} into ex. */
static void read_examples(lua_State *L, int data, const char *key, fb_examples *ex) {
  if (lua_getfield(L, data, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  int t = lua_gettop(L);
  lua_Integer n = luaL_len(L, t);
  ex->v = calloc((size_t)(n ? n : 1), sizeof *ex->v);
  if (!ex->v) luaL_error(L, "trainer: out of memory");
  ex->cap = (size_t)n;
  for (lua_Integer i = 1; i <= n; i++) {
    fb_example *e = &ex->v[i - 1];
    int n_ids, n_labels;
    luaL_checktype(L, (lua_rawgeti(L, t, i), -1), LUA_TTABLE);
    lua_getfield(L, -1, "ids");
    e->ids = int_array(L, lua_gettop(L), "ids", &n_ids);
    ex->n++; /* owned from here on */
    lua_getfield(L, -2, "labels");
    e->labels = int_array(L, lua_gettop(L), "labels", &n_labels);
    if (n_ids != n_labels)
      luaL_error(L, "trainer: data.%s[%d]: %d ids but %d labels", key, (int)i, n_ids, n_labels);
    lua_getfield(L, -3, "line");
    e->line = (int)luaL_optinteger(L, -1, 0);
    e->n = e->full_len = n_ids;
    for (int k = 0; k < n_ids; k++) e->n_trained += e->labels[k] != FB_IGNORE_INDEX;
    lua_pop(L, 4);
  }
  lua_pop(L, 1);
}

/* data[key]: an array of {text = s, ids = {...}} into *v (*n of them). */
static void read_prompts(lua_State *L, int data, const char *key, fb_train_prompt **v, int *count) {
  if (lua_getfield(L, data, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  int t = lua_gettop(L);
  lua_Integer n = luaL_len(L, t);
  *v = calloc((size_t)(n ? n : 1), sizeof **v);
  if (!*v) luaL_error(L, "trainer: out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    fb_train_prompt *p = &(*v)[i - 1];
    luaL_checktype(L, (lua_rawgeti(L, t, i), -1), LUA_TTABLE);
    lua_getfield(L, -1, "ids");
    p->ids = int_array(L, lua_gettop(L), "prompt ids", &p->n);
    (*count)++;
    lua_getfield(L, -2, "text");
    p->text = luaL_checkstring(L, -1); /* kept alive: the data table stays on the stack */
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
}

typedef struct hook {
  lua_State *L;
  int fn;     /* stack index of on_event */
  int failed; /* the hook raised (logged by fb_vm_pcall) */
} hook;

/* on_event(line) -> "stop" ends the run early (with its output); a number sets the base
 * learning rate; a table may say all three: {stop = true, lr = n, score = n} (score: how many
 * answers of a `scenarios` event passed). */
static void call_hook(void *ud, const cJSON *event, fb_train_control *ctl) {
  hook *h = ud;
  char *line = cJSON_PrintUnformatted(event);
  if (!line) return;
  lua_pushvalue(h->L, h->fn);
  lua_pushstring(h->L, line);
  free(line);
  if (fb_vm_pcall(h->L, 1, 1, "fastbrain.train hook") != LUA_OK) {
    h->failed = 1;
    fb_signals_cancel = 1; /* a failing hook stops the run too */
    return;
  }
  if (lua_type(h->L, -1) == LUA_TNUMBER)
    ctl->lr = lua_tonumber(h->L, -1);
  else if (lua_type(h->L, -1) == LUA_TSTRING && strcmp(lua_tostring(h->L, -1), "stop") == 0)
    ctl->stop = 1;
  else if (lua_type(h->L, -1) == LUA_TTABLE) {
    if (lua_getfield(h->L, -1, "stop") == LUA_TBOOLEAN && lua_toboolean(h->L, -1)) ctl->stop = 1;
    if (lua_getfield(h->L, -2, "lr") == LUA_TNUMBER) ctl->lr = lua_tonumber(h->L, -1);
    if (lua_getfield(h->L, -3, "score") == LUA_TNUMBER) ctl->score = lua_tonumber(h->L, -1);
    lua_pop(h->L, 3);
  }
  lua_pop(h->L, 1);
}

#define SPEC_MT "fastbrain.train.spec"

/* trainer.spec(spec_json) -> spec: the spec parsed and checked once, for run, plan and
 * checkpoint_adapter; a mistake raises naming the field ("spec.lora.r: must be ..."). */
static int spec_parse(lua_State *L) {
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  fb_train_spec *s = lua_newuserdatauv(L, sizeof *s, 0);
  fb_err err = {0};
  if (fb_train_spec_parse(s, json, len, "spec", &err)) return luaL_error(L, "%s", err.msg);
  luaL_setmetatable(L, SPEC_MT);
  return 1;
}

static const fb_train_spec *check_spec(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SPEC_MT);
}

/* run(spec, data, on_event [, {resume = b, catch_term = b}]) -> true | nil, msg, code
 * where code is "cancelled", "nomem" (out of memory) or "error". data = {train = {examples},
 * eval = {examples}, hash = s, tokenizer = tok, prompts = {{text = s, ids = {...}}, ...},
 * scenarios = {{text = id, ids = {...}}, ...}}.
 * catch_term: SIGTERM and SIGINT stop the run between steps with a checkpoint ("cancelled"). */
static int run(lua_State *L) {
  const fb_train_spec *spec = check_spec(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  int resume = 0, catch = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    resume = lua_getfield(L, 4, "resume") != LUA_TNIL && lua_toboolean(L, -1);
    catch = lua_getfield(L, 4, "catch_term") != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  fb_err err = {0};
  tr_state *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, STATE_MT);
  read_examples(L, 2, "train", &s->train);
  read_examples(L, 2, "eval", &s->eval);
  read_prompts(L, 2, "prompts", &s->prompts, &s->n_prompts);
  read_prompts(L, 2, "scenarios", &s->scenarios, &s->n_scenarios);
  fb_train_data data = {.train = &s->train,
                        .eval = &s->eval,
                        .prompts = s->prompts,
                        .n_prompts = s->n_prompts,
                        .scenarios = s->scenarios,
                        .n_scenarios = s->n_scenarios};
  if (lua_getfield(L, 2, "tokenizer") != LUA_TNIL) {
    fb_tokenizer **box = luaL_checkudata(L, -1, "fastbrain.tokenizer"); /* l_tokenizer.c */
    data.tok = *box;
  }
  data.dataset_hash = (lua_getfield(L, 2, "hash"), lua_tostring(L, -1));

  fb_model *m = NULL;
  if (fb_model_load(&m, spec->model, &err)) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    lua_pushstring(L, err.code == FB_ENOMEM ? "nomem" : "error");
    return 3;
  }
  hook h = {.L = L, .fn = 3};
  /* A signal the process caught while it loaded cancels this run before its first step. */
  int scoped = catch && !fb_signals_catching_for_process();
  struct sigaction old[2];
  if (!fb_signals_catching_for_process()) fb_signals_cancel = 0;
  if (scoped) fb_signals_catch_term(old);
  fb_train_opts o = {
      .on_event = call_hook, .ud = &h, .cancel = &fb_signals_cancel, .resume = resume};
  int rc = fb_train(m, spec, &data, &o, &err);
  if (scoped) fb_signals_restore_term(old);
  fb_model_free(m);
  if (h.failed)
    return luaL_error(
        L,
        "fastbrain.train: a hook raised an error (see the log); the run stopped with a checkpoint");
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, err.msg);
  lua_pushstring(L, rc == FB_ECANCELLED ? "cancelled" : rc == FB_ENOMEM ? "nomem" : "error");
  return 3;
}

/* A JSON object as text, pushed; o deleted. */
static int push_json(lua_State *L, cJSON *o, const char *fn) {
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!text) return luaL_error(L, "fastbrain.train.core.%s: out of memory", fn);
  lua_pushstring(L, text);
  free(text);
  return 1;
}

/* trainer.defaults() -> the spec every field of which is the trainer's default, as JSON. */
static int defaults(lua_State *L) {
  fb_train_spec spec;
  fb_train_spec_defaults(&spec);
  return push_json(L, fb_train_spec_to_json(&spec), "defaults");
}

/* trainer.fields() -> every field of the spec described, as JSON (fb_train_spec_fields). */
static int fields(lua_State *L) { return push_json(L, fb_train_spec_fields(), "fields"); }

static void set_problem(void *ctx, const char *path, const char *problem) {
  lua_State *L = ctx;
  lua_pushstring(L, problem);
  lua_setfield(L, -2, path);
}

/* trainer.check_request(overrides_json) -> nil | {path = problem}: what a request may not set
 * or sets wrong (fb_train_spec_request_problems); a request that is not JSON is one problem. */
static int check_request(lua_State *L) {
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  cJSON *o = cJSON_ParseWithLength(json, len);
  lua_newtable(L);
  int n = o ? fb_train_spec_request_problems(o, set_problem, L)
            : (set_problem(L, "body", "not JSON"), 1);
  cJSON_Delete(o);
  if (n == 0) lua_pushnil(L);
  return 1;
}

/* trainer.plan(spec, n_train) -> {micro_batch, grad_accum, steps, examples, epochs,
 *   eval_interval, sample_interval}: how a run of the spec over n_train examples goes (the
 *   trainer's own plan, small-data mode included). */
static int plan(lua_State *L) {
  const fb_train_spec *spec = check_spec(L, 1);
  lua_Integer n_train = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n_train > 0, 2, "at least one training example");
  fb_train_plan p = fb_train_plan_for(spec, (long)n_train);
  const struct {
    const char *key;
    double v;
  } fields[] = {{"micro_batch", p.B},
                {"grad_accum", p.A},
                {"steps", p.total},
                {"examples", (double)p.total_examples},
                {"eval_interval", p.eval_interval},
                {"sample_interval", p.sample_interval}};
  lua_createtable(L, 0, 7);
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    lua_pushinteger(L, (lua_Integer)fields[i].v);
    lua_setfield(L, -2, fields[i].key);
  }
  lua_pushnumber(L, p.total_epochs);
  lua_setfield(L, -2, "epochs");
  return 1;
}

/* checkpoint_adapter(spec, step_dir, out) -> true | nil, msg: a checkpoint of a run of spec
 * as an adapter directory (fb_checkpoint_adapter), the model loaded on the CPU. */
static int checkpoint_adapter(lua_State *L) {
  const fb_train_spec *spec = check_spec(L, 1);
  const char *step_dir = luaL_checkstring(L, 2), *out = luaL_checkstring(L, 3);
  fb_model *m = NULL;
  fb_err err = {0};
  int rc =
      fb_model_load(&m, spec->model, &err) || fb_checkpoint_adapter(m, spec, step_dir, out, &err);
  fb_model_free(m);
  if (!rc) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, err.msg);
  return 2;
}

int luaopen_fastbrain_train_core(lua_State *L) {
  luaL_newmetatable(L, SPEC_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, STATE_MT);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc"); /* metatable.__gc = state_gc */
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"spec", spec_parse},
                                   {"run", run},
                                   {"defaults", defaults},
                                   {"fields", fields},
                                   {"check_request", check_request},
                                   {"plan", plan},
                                   {"checkpoint_adapter", checkpoint_adapter},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
