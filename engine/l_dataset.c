/* l_dataset.c: the Lua binding `fastbrain.dataset`: load(path, {tokenizer, template, max_len,
 * train_on_all, eos}) reads the JSONL file (dataset.c), renders each conversation with
 * fastbrain.templates (the one implementation of every template) and tokenizes it; the result
 * has stats(), split{eval, seed}, #ds, ds:example(i) and ds:examples() iteration. A file that is
 * refused returns nil, msg (every bad line, one per line); caller mistakes raise. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "modules.h"

#define DATASET_MT "fastbrain.dataset"
#define TOKENIZER_MT "fastbrain.tokenizer" /* l_tokenizer.c: a userdata holding one pointer */

/* The loaded file and its examples, shared by a dataset and the views split() makes. */
typedef struct ds_core {
  int refs;
  fb_dataset *ds;
  fb_examples ex;
} ds_core;

typedef struct l_ds {
  ds_core *core; /* NULL once closed */
  size_t *idx;   /* the examples of this view, in order */
  size_t n;
} l_ds;

static void core_release(ds_core *c) {
  if (c && --c->refs == 0) {
    fb_dataset_free(c->ds);
    fb_examples_free(&c->ex);
    free(c);
  }
}

static l_ds *check(lua_State *L, int idx) {
  l_ds *d = luaL_checkudata(L, idx, DATASET_MT);
  if (!d->core) luaL_argerror(L, idx, "dataset is closed");
  return d;
}

/* A new view on top of the stack over core (its reference taken) with n indices. */
static l_ds *push_view(lua_State *L, ds_core *core, size_t n) {
  l_ds *d = lua_newuserdatauv(L, sizeof *d, 0);
  d->core = NULL;
  d->idx = NULL;
  d->n = 0;
  luaL_setmetatable(L, DATASET_MT);
  d->idx = malloc((n ? n : 1) * sizeof *d->idx);
  if (!d->idx) luaL_error(L, "dataset: out of memory");
  d->core = core;
  d->n = n;
  core->refs++;
  return d;
}

static int opt_int(lua_State *L, int t, const char *key, lua_Integer dflt, lua_Integer lo,
                   lua_Integer hi) {
  lua_getfield(L, t, key);
  lua_Integer v = dflt;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < lo || v > hi)
      luaL_error(L, "bad argument #2 (%s must be an integer in %d..%d)", key, (int)lo, (int)hi);
  }
  lua_pop(L, 1);
  return (int)v;
}

/* Push templates.render(template, messages, {eos = eos}) for conversation c; leaves text and
 * spans (or nil, err) on the stack. */
static void render(lua_State *L, int render_fn, int tmpl, int eos, const fb_conv *c) {
  lua_pushvalue(L, render_fn);
  lua_pushvalue(L, tmpl);
  lua_createtable(L, c->n, 0);
  for (int m = 0; m < c->n; m++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, fb_role_name(c->msgs[m].role));
    lua_setfield(L, -2, "role");
    lua_pushlstring(L, c->msgs[m].content, c->msgs[m].len);
    lua_setfield(L, -2, "content");
    lua_rawseti(L, -2, m + 1); /* messages[m+1] = {role, content} */
  }
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, eos);
  lua_setfield(L, -2, "eos");
  lua_call(L, 3, 2); /* a template error is the caller's: it propagates */
}

/* spans table at idx -> fb_span array (a userdata left on the stack) */
static fb_span *read_spans(lua_State *L, int idx, int *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *n = (int)luaL_len(L, idx);
  fb_span *s = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof *s, 0);
  for (int i = 0; i < *n; i++) {
    lua_geti(L, idx, i + 1);
    lua_geti(L, -1, 1);
    lua_geti(L, -2, 2);
    s[i].start = (size_t)lua_tointeger(L, -2);
    s[i].end = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 3);
  }
  return s;
}

/* nil, and the report's lines (or msg) joined by newlines. */
static int refuse(lua_State *L, const fb_ds_report *rep, const char *msg) {
  luaL_pushfail(L);
  if (rep->n == 0) {
    lua_pushstring(L, msg);
    return 2;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < rep->n; i++) {
    if (i) luaL_addchar(&b, '\n');
    luaL_addstring(&b, rep->lines[i]);
  }
  if (rep->total > rep->n) {
    char more[64];
    snprintf(more, sizeof more, "\n(and %d more)", rep->total - rep->n);
    luaL_addstring(&b, more);
  }
  luaL_pushresult(&b);
  return 2;
}

/* load(path, {tokenizer = tok, template = name, max_len = n, train_on_all = b, eos = s}) */
static int load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "tokenizer");
  fb_tokenizer **tok = luaL_testudata(L, -1, TOKENIZER_MT);
  if (!tok || !*tok) luaL_argerror(L, 2, "tokenizer must be an open fastbrain.tokenizer");
  int tmpl = lua_getfield(L, 2, "template") == LUA_TSTRING ? lua_gettop(L) : 0;
  if (!tmpl)
    luaL_argerror(L, 2, "template must be a template name (see fastbrain.templates.names)");
  lua_getfield(L, 2, "eos");
  int eos = lua_gettop(L);
  fb_ex_opts opts = {.max_len = opt_int(L, 2, "max_len", 0, 0, 1 << 24)};
  lua_getfield(L, 2, "train_on_all");
  opts.train_on_all = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fastbrain.templates");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "render");
  int render_fn = lua_gettop(L);

  fb_ds_report rep;
  fb_err err = {0};
  ds_core *core = calloc(1, sizeof *core);
  if (!core) return luaL_error(L, "dataset: out of memory");
  if (fb_dataset_read(&core->ds, path, &rep, &err)) {
    free(core);
    return refuse(L, &rep, err.msg);
  }
  size_t n = fb_dataset_count(core->ds);
  l_ds *d = push_view(L, core, n); /* owns core from here: an error below frees it via __gc */
  int view = lua_gettop(L);
  rep.n = rep.total = 0;
  for (size_t i = 0; i < n; i++) {
    const fb_conv *c = fb_dataset_conv(core->ds, i);
    d->idx[i] = i;
    render(L, render_fn, tmpl, eos, c);
    if (lua_isnil(L, -2)) { /* the template refuses this conversation */
      if (rep.n < FB_DS_MAX_PROBLEMS)
        snprintf(rep.lines[rep.n++], sizeof rep.lines[0], "%s:%d: %s", path, c->line,
                 lua_tostring(L, -1));
      rep.total++;
    } else if (rep.total == 0) {
      size_t len;
      const char *text = luaL_checklstring(L, -2, &len);
      int n_spans;
      fb_span *spans = read_spans(L, lua_gettop(L), &n_spans);
      if (fb_examples_add(&core->ex, *tok, text, len, spans, n_spans, c->line, &opts, &err)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s:%d: %s", path, c->line, err.msg);
        return 2;
      }
    }
    lua_settop(L, view);
  }
  if (rep.total) return refuse(L, &rep, NULL);
  return 1;
}

/* ds:stats() -> table (see fb_ds_stats; the statistics of the whole loaded file) */
static int stats(lua_State *L) {
  l_ds *d = check(L, 1);
  fb_ds_stats st;
  if (fb_dataset_stats(d->core->ds, &d->core->ex, &st))
    return luaL_error(L, "dataset: out of memory");
  lua_createtable(L, 0, 20);
#define SET_INT(name) (lua_pushinteger(L, (lua_Integer)st.name), lua_setfield(L, -2, #name))
  SET_INT(examples);
  SET_INT(tokens);
  SET_INT(trained_tokens);
  SET_INT(truncated);
  SET_INT(min_len);
  SET_INT(max_len);
  SET_INT(duplicate_prompts);
  SET_INT(near_duplicate_prompts);
  SET_INT(empty_answers);
  SET_INT(short_answers);
  SET_INT(no_trained_tokens);
#undef SET_INT
  lua_pushnumber(L, st.mean_len);
  lua_setfield(L, -2, "mean_len");
  lua_createtable(L, FB_DS_HIST, 0);
  for (int b = 0; b < FB_DS_HIST; b++) {
    lua_createtable(L, 0, 2);
    if (b + 1 < FB_DS_HIST) {
      lua_pushinteger(L, st.hist_upper[b]);
      lua_setfield(L, -2, "upto"); /* absent on the last bucket: everything longer */
    }
    lua_pushinteger(L, (lua_Integer)st.hist[b]);
    lua_setfield(L, -2, "count");
    lua_rawseti(L, -2, b + 1);
  }
  lua_setfield(L, -2, "histogram");
  lua_createtable(L, st.n_longest, 0);
  for (int k = 0; k < st.n_longest; k++) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, st.longest_line[k]);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, st.longest_len[k]);
    lua_setfield(L, -2, "tokens");
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "longest");
  lua_pushstring(L, fb_dataset_shape_name(fb_dataset_shape(d->core->ds)));
  lua_setfield(L, -2, "shape");
  lua_pushstring(L, fb_dataset_hash(d->core->ds));
  lua_setfield(L, -2, "hash");
  return 1;
}

/* ds:split{eval = 0.1 | eval_count = n, seed = 1} -> train, eval (views, shuffled by seed) */
static int split(lua_State *L) {
  l_ds *d = check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "eval");
  double frac = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  if (!(frac >= 0 && frac < 1)) luaL_argerror(L, 2, "eval must be a fraction in [0, 1)");
  size_t count = (size_t)opt_int(L, 2, "eval_count", 0, 0, 1 << 30);
  lua_Integer seed = opt_int(L, 2, "seed", 1, 0, 0x7fffffff);
  size_t *order;
  if (fb_dataset_order(d->n, (uint64_t)seed, &order))
    return luaL_error(L, "dataset: out of memory");
  size_t k = fb_dataset_eval_count(d->n, frac, count);
  l_ds *train = push_view(L, d->core, d->n - k);
  for (size_t i = k; i < d->n; i++) train->idx[i - k] = d->idx[order[i]];
  l_ds *eval = push_view(L, d->core, k);
  for (size_t i = 0; i < k; i++) eval->idx[i] = d->idx[order[i]];
  free(order);
  return 2;
}

/* ds:example(i) -> {ids = {...}, labels = {...}, line = n, truncated = bool} */
static int example(lua_State *L) {
  l_ds *d = check(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || (size_t)i > d->n) luaL_argerror(L, 2, "no example with that index");
  const fb_example *e = &d->core->ex.v[d->idx[i - 1]];
  lua_createtable(L, 0, 4);
  lua_createtable(L, e->n, 0);
  lua_createtable(L, e->n, 0);
  for (int32_t k = 0; k < e->n; k++) {
    lua_pushinteger(L, e->ids[k]);
    lua_rawseti(L, -3, k + 1);
    lua_pushinteger(L, e->labels[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -3, "labels");
  lua_setfield(L, -2, "ids");
  lua_pushinteger(L, e->line);
  lua_setfield(L, -2, "line");
  lua_pushboolean(L, e->n < e->full_len);
  lua_setfield(L, -2, "truncated");
  return 1;
}

static int examples_next(lua_State *L) {
  l_ds *d = check(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2) + 1;
  if ((size_t)i > d->n) return 0;
  lua_pushinteger(L, i);
  lua_replace(L, 2);
  lua_pushinteger(L, i);
  example(L);
  return 2;
}

/* for i, ex in ds:examples() do ... end */
static int examples(lua_State *L) {
  check(L, 1);
  lua_pushcfunction(L, examples_next);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 0);
  return 3;
}

static int len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check(L, 1)->n);
  return 1;
}

static int close_ds(lua_State *L) {
  l_ds *d = luaL_checkudata(L, 1, DATASET_MT);
  core_release(d->core);
  free(d->idx);
  d->core = NULL;
  d->idx = NULL;
  d->n = 0;
  return 0;
}

static int tostring_ds(lua_State *L) {
  l_ds *d = luaL_checkudata(L, 1, DATASET_MT);
  if (d->core)
    lua_pushfstring(L, "fastbrain.dataset (%d examples)", (int)d->n);
  else
    lua_pushliteral(L, "fastbrain.dataset (closed)");
  return 1;
}

int luaopen_fastbrain_dataset(lua_State *L) {
  static const luaL_Reg methods[] = {{"stats", stats},     {"split", split},
                                     {"example", example}, {"examples", examples},
                                     {"close", close_ds},  {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", close_ds},
                                  {"__close", close_ds},
                                  {"__len", len},
                                  {"__tostring", tostring_ds},
                                  {NULL, NULL}};
  luaL_newmetatable(L, DATASET_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"load", load}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
