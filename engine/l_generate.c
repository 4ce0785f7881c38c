/* l_generate.c: generation for module `fastbrain.model.core` (l_model.h): m:generate(ids, opts),
 * the whole continuation in one call, and m:stream(ids, opts), the same one token per call, so a
 * caller can send each token on and stop when its client leaves. PEFT adapters are loaded once per
 * model and kept, the most recently used MAX_ADAPTERS of them; an adapter a stream uses stays
 * loaded until the stream ends. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "l_model.h"

#define STREAM_MT "fastbrain.model.stream"
#define MAX_ADAPTERS 8

struct lm_stream {
  fb_gen_stream *g;        /* NULL once it ended */
  cached_adapter *adapter; /* pinned while the stream runs; may be NULL */
  lm_stream *next, **prevp;
};

static int push_fail(lua_State *L, const fb_err *err) {
  luaL_pushfail(L);
  lua_pushstring(L, err->msg);
  return 2;
}

static void free_adapter(cached_adapter *a) {
  fb_lora_free(a->lora);
  free(a->dir);
  free(a);
}

/* Past MAX_ADAPTERS, the least recently used adapters no stream holds are freed. */
static void evict(lm *s) {
  int kept = 0;
  for (cached_adapter **p = &s->adapters; *p;) {
    cached_adapter *a = *p;
    if (++kept > MAX_ADAPTERS && a->users == 0) {
      *p = a->next;
      free_adapter(a);
    } else {
      p = &a->next;
    }
  }
}

/* The adapter loaded from dir, from the cache (moved to its front) or loaded now; NULL with
 * err set. */
static cached_adapter *adapter(lm *s, const char *dir, fb_err *err) {
  for (cached_adapter **p = &s->adapters; *p; p = &(*p)->next)
    if (strcmp((*p)->dir, dir) == 0) {
      cached_adapter *a = *p;
      *p = a->next;
      a->next = s->adapters;
      s->adapters = a;
      return a;
    }
  cached_adapter *a = calloc(1, sizeof *a);
  if (a) a->dir = strdup(dir);
  if (!a || !a->dir) {
    free(a);
    fb_err_set(err, FB_ENOMEM, "out of memory for an adapter");
    return NULL;
  }
  if (fb_lora_load(&a->lora, s->m, dir, err)) {
    free(a->dir);
    free(a);
    return NULL;
  }
  a->next = s->adapters;
  s->adapters = a;
  evict(s);
  return a;
}

static lua_Integer opt_int(lua_State *L, int t, const char *key, lua_Integer def) {
  lua_getfield(L, t, key);
  lua_Integer v = luaL_optinteger(L, -1, def);
  lua_pop(L, 1);
  return v;
}

static double opt_num(lua_State *L, int t, const char *key, double def) {
  lua_getfield(L, t, key);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  return v;
}

/* Ids from the list at index t; the array lives in a userdata left on the stack. */
static int32_t *read_ids(lua_State *L, int t, const char *what, int vocab, int *n) {
  lua_Integer len = luaL_len(L, t);
  int32_t *ids = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *ids, 0);
  for (lua_Integer i = 0; i < len; i++) {
    int ok;
    lua_geti(L, t, i + 1);
    lua_Integer id = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || id < 0 || id >= vocab)
      luaL_error(L, "%s[%d] is not a token id of this model (0..%d)", what, (int)(i + 1),
                 vocab - 1);
    ids[i] = (int32_t)id;
  }
  *n = (int)len;
  return ids;
}

/* A request's arguments (ids at 2, opts at 3): the prompt, the settings with max_tokens capped
 * by the room left in the model's context, and the adapter (NULL for none; raised or returned
 * as err when it does not load). */
typedef struct request {
  int32_t *prompt;
  int n_prompt;
  fb_gen_config g;
  cached_adapter *adapter;
} request;

static int read_request(lua_State *L, lm *s, request *r, fb_err *err) {
  luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_isnoneornil(L, 3))
    lua_newtable(L);
  else
    luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  r->prompt = read_ids(L, 2, "ids", s->m->V, &r->n_prompt);
  luaL_argcheck(L, r->n_prompt >= 1, 2, "at least one prompt id expected");
  fb_gen_config *g = &r->g;
  *g = fb_gen_defaults();
  g->max_new_tokens = (int)opt_int(L, 3, "max_tokens", g->max_new_tokens);
  g->temperature = opt_num(L, 3, "temperature", g->temperature);
  g->top_k = (int)opt_int(L, 3, "top_k", g->top_k);
  g->top_p = opt_num(L, 3, "top_p", g->top_p);
  g->repetition_penalty = opt_num(L, 3, "repetition_penalty", g->repetition_penalty);
  g->seed = (uint64_t)opt_int(L, 3, "seed", (lua_Integer)g->seed);
  if (lua_getfield(L, 3, "stop") != LUA_TNIL) {
    luaL_argcheck(L, lua_istable(L, -1), 3, "opts.stop must be a list of token ids");
    int n_stop;
    int32_t *stop = read_ids(L, lua_absindex(L, -1), "opts.stop", s->m->V, &n_stop);
    luaL_argcheck(L, n_stop <= FB_GEN_MAX_STOP, 3, "opts.stop has too many ids");
    memcpy(g->stop, stop, (size_t)n_stop * sizeof *stop);
    g->n_stop = n_stop;
  }
  int room = s->m->cfg.max_position_embeddings - r->n_prompt;
  if (room < 1)
    return luaL_error(L, "the prompt (%d tokens) fills the model's context (%d)", r->n_prompt,
                      s->m->cfg.max_position_embeddings);
  if (g->max_new_tokens > room) g->max_new_tokens = room;
  r->adapter = NULL;
  if (lua_getfield(L, 3, "adapter") != LUA_TNIL) {
    r->adapter = adapter(s, luaL_checkstring(L, -1), err);
    if (!r->adapter) return err->code;
  }
  return 0;
}

/* A failure of the engine: a bad option is the caller's mistake, raised; the rest returned. */
static int fail(lua_State *L, const fb_err *err) {
  if (err->code == FB_EINVALID) return luaL_error(L, "%s", err->msg);
  return push_fail(L, err);
}

/* m:generate(ids, {adapter =, max_tokens =, temperature =, top_k =, top_p =,
 *   repetition_penalty =, seed =, stop = {id, ...}}) -> {id, ...}, stopped | nil, err
 * max_tokens is capped by the room left in the model's context. */
int fb_lm_generate(lua_State *L) {
  lm *s = fb_lm_check_live(L);
  request r;
  fb_err err = {0};
  if (read_request(L, s, &r, &err)) return push_fail(L, &err);
  int n_out = 0, stopped = 0;
  size_t slots = r.g.max_new_tokens > 0 ? (size_t)r.g.max_new_tokens : 1;
  int32_t *out = lua_newuserdatauv(L, slots * sizeof *out, 0);
  if (fb_generate(s->m, r.adapter ? r.adapter->lora : NULL, r.prompt, r.n_prompt, &r.g, out, &n_out,
                  &stopped, &err))
    return fail(L, &err);
  lua_createtable(L, n_out, 0);
  for (int i = 0; i < n_out; i++) {
    lua_pushinteger(L, out[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushboolean(L, stopped);
  return 2;
}

static void end_stream(lm_stream *st) {
  if (!st->g) return;
  fb_gen_free(st->g);
  st->g = NULL;
  if (st->adapter) st->adapter->users--;
  *st->prevp = st->next;
  if (st->next) st->next->prevp = st->prevp;
}

/* m:stream(ids, opts) -> stream | nil, err: m:generate's arguments; the prompt is read before it
 * returns (the long step), then st:next() gives the tokens one by one. */
int fb_lm_stream(lua_State *L) {
  lm *s = fb_lm_check_live(L);
  request r;
  fb_err err = {0};
  if (read_request(L, s, &r, &err)) return push_fail(L, &err);
  lm_stream *st = lua_newuserdatauv(L, sizeof *st, 1);
  memset(st, 0, sizeof *st);
  luaL_setmetatable(L, STREAM_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the model stays alive while its stream is */
  if (fb_gen_start(&st->g, s->m, r.adapter ? r.adapter->lora : NULL, r.prompt, r.n_prompt, &r.g,
                   &err))
    return fail(L, &err);
  st->adapter = r.adapter;
  if (st->adapter) st->adapter->users++;
  st->next = s->streams;
  st->prevp = &s->streams;
  if (s->streams) s->streams->prevp = &st->next;
  s->streams = st;
  return 1;
}

/* st:next() -> id | nil, "stop" (an end token), "length" (max_tokens), or "error" and why.
 * A stream whose model was closed ends with an error. */
static int stream_next(lua_State *L) {
  lm_stream *st = luaL_checkudata(L, 1, STREAM_MT);
  if (!st->g) {
    luaL_pushfail(L);
    lua_pushliteral(L, "error");
    lua_pushliteral(L, "the stream has ended");
    return 3;
  }
  int32_t id;
  fb_err err = {0};
  if (fb_gen_next(st->g, &id, &err)) {
    end_stream(st);
    luaL_pushfail(L);
    lua_pushliteral(L, "error");
    lua_pushstring(L, err.msg);
    return 3;
  }
  if (id >= 0) {
    lua_pushinteger(L, id);
    return 1;
  }
  int stopped = fb_gen_stopped(st->g);
  end_stream(st);
  luaL_pushfail(L);
  lua_pushstring(L, stopped ? "stop" : "length");
  return 2;
}

static int stream_close(lua_State *L) {
  end_stream(luaL_checkudata(L, 1, STREAM_MT));
  return 0;
}

void fb_lm_release_generation(lm *s) {
  while (s->streams) end_stream(s->streams);
  while (s->adapters) {
    cached_adapter *a = s->adapters;
    s->adapters = a->next;
    free_adapter(a);
  }
}

void fb_lm_register_stream(lua_State *L) {
  static const luaL_Reg methods[] = {{"next", stream_next}, {"close", stream_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", stream_close}, {"__close", stream_close}, {NULL, NULL}};
  luaL_newmetatable(L, STREAM_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
