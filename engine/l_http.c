/* l_http.c: module `fastbrain.http`, the thin Lua face of http.h: listen{...} returns a
 * server; each request reaches Lua as an integer handle for respond/stream/sse/... ; routes()
 * matches patterns. Routing, coroutines and timeouts are lua/fastbrain/router.lua's (a runaway
 * handler is stopped by runaway.c's guard). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_route.h"
#include "modules.h"
#include "vm.h"

#define SERVER_MT "fastbrain.http.server"
#define ROUTES_MT "fastbrain.http.routes"
#define MAX_PARAMS 16
#define MAX_HEADERS 32

typedef struct server_box server_box;

/* A server seen by Lua; freed by server_done once the engine has closed it. */
typedef struct lserver {
  fb_http_server *srv;
  int closing;                               /* close was asked: Lua may not use it any more */
  lua_State *L;                              /* main thread; NULL when the state is going away */
  server_box *box;                           /* the userdata, NULL once collected */
  int on_request, on_headers, on_done, self; /* registry refs */
} lserver;

struct server_box {
  lserver *s;
}; /* s is NULL once the server is freed */

/* A request seen by Lua is an integer handle: its slot here plus its generation times 2^32.
 * Integers cost Lua no allocation and no reference; a handle whose request was answered or
 * closed matches no live slot (the slot's generation moved on). One loop thread: one table. */
typedef struct lreq {
  fb_http_req *req; /* NULL when the slot is free */
  lserver *s;
  int on_close; /* registry ref while live */
  int closed;   /* the last request here: the client went away (vs answered) */
  uint32_t gen;
  int next_free;
} lreq;

static struct {
  lreq *slots;
  int n, free; /* free: first free slot, -1 for none */
} reqs = {NULL, 0, -1};

static void unref(lua_State *L, int *ref) {
  if (L && *ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

static lua_Integer handle_of(int slot) {
  return (lua_Integer)slot + (lua_Integer)reqs.slots[slot].gen * ((lua_Integer)1 << 32);
}

/* A free slot for req, or -1 when out of memory. */
static int lreq_new(lserver *s, fb_http_req *req) {
  if (reqs.free < 0) {
    int n = reqs.n ? reqs.n * 2 : 64;
    lreq *slots = realloc(reqs.slots, (size_t)n * sizeof *slots);
    if (!slots) return -1;
    for (int i = reqs.n; i < n; i++)
      slots[i] = (lreq){.on_close = LUA_NOREF, .next_free = i + 1 < n ? i + 1 : -1};
    reqs.slots = slots;
    reqs.free = reqs.n;
    reqs.n = n;
  }
  int slot = reqs.free;
  lreq *r = &reqs.slots[slot];
  reqs.free = r->next_free;
  r->req = req;
  r->s = s;
  r->closed = 0;
  return slot;
}

/* The engine is done with the request: its handle goes stale, its slot is free again. */
static void lreq_done(int slot) {
  lreq *r = &reqs.slots[slot];
  r->req = NULL;
  unref(r->s->L, &r->on_close);
  r->gen++;
  r->next_free = reqs.free;
  reqs.free = slot;
}

static void on_req_close(void *ud, fb_http_req *req) {
  (void)req;
  int slot = (int)(intptr_t)ud;
  lreq *r = &reqs.slots[slot];
  lua_State *L = r->s->L;
  r->closed = 1;
  if (L && r->on_close != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->on_close);
    r->req = NULL; /* the callback sees a request that is gone */
    fb_vm_pcall(L, 0, 0, "http on_close");
  }
  lreq_done(slot);
}

/* The slot of the handle at idx while its request is live, else -1 (*gone: it was answered or
 * closed, or the handle was never one). */
static int slot_of(lua_State *L, int idx) {
  lua_Integer h = luaL_checkinteger(L, idx);
  lua_Integer slot = h & 0xffffffff;
  if (h < 0 || slot >= reqs.n || (uint32_t)(h >> 32) != reqs.slots[slot].gen ||
      !reqs.slots[slot].req)
    return -1;
  return (int)slot;
}

/* The live request's slot, or a Lua error (a caller's mistake: answering twice, after close). */
static int live_slot(lua_State *L, int idx) {
  int slot = slot_of(L, idx);
  if (slot < 0) {
    lua_Integer h = lua_tointeger(L, idx), s = h & 0xffffffff;
    int closed = h >= 0 && s < reqs.n && reqs.slots[s].closed;
    luaL_error(L, "request is already %s", closed ? "closed" : "answered");
  }
  return slot;
}

/* The userdata at idx of the class `name` whose methods hold its metatable as upvalue 1:
 * comparing with it is cheaper than luaL_checkudata's lookup by name, and as safe. */
static void *check_self(lua_State *L, int idx, const char *name) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) luaL_typeerror(L, idx, name);
  int same = lua_rawequal(L, -1, lua_upvalueindex(1));
  lua_pop(L, 1);
  if (!same) luaL_typeerror(L, idx, name);
  return p;
}

/* headers table {name = value} at idx -> h[] (strings or numbers); returns the count. The
 * strings stay alive in the table (numbers are converted in place on a copy below). */
static int collect_headers(lua_State *L, int idx, fb_http_header *h, int max) {
  int n = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  luaL_checkstack(L, max + 3, "response headers");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (n == max) luaL_error(L, "too many response headers (max %d)", max);
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      luaL_error(L, "response headers must map names to strings");
    h[n].name = lua_tostring(L, -2);
    h[n].value = lua_tostring(L, -1);
    lua_insert(L, -2); /* keep the value (a number may have become a new string) below */
    n++;
  }
  return n;
}

/* Map an engine result to Lua: true, or nil and a reason. A bad header is a caller error. */
static int push_result(lua_State *L, int slot, int rc) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == FB_EINVALID && slot >= 0 && reqs.slots[slot].req)
    return luaL_error(L, "invalid response (status or header)");
  lua_pushnil(L);
  lua_pushstring(L, rc == FB_ELIMIT ? "client too slow" : "closed");
  return 2;
}

/* respond(rq, status, body, headers): headers is a table, or a string for the Content-Type
 * alone (no table to walk on the common path). */
static int req_respond(lua_State *L) {
  int slot = live_slot(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *body = luaL_optlstring(L, 3, "", &len);
  fb_http_header h[MAX_HEADERS];
  int n = 1;
  if (lua_type(L, 4) == LUA_TSTRING)
    h[0] = (fb_http_header){"Content-Type", lua_tostring(L, 4)};
  else
    n = collect_headers(L, 4, h, MAX_HEADERS);
  int rc = fb_http_respond(reqs.slots[slot].req, status, h, n, body, len);
  if (rc == 0 && reqs.slots[slot].req) lreq_done(slot);
  return push_result(L, slot, rc);
}

/* respond_file(rq, status, path, headers) -> true | nil, "not found" | "closed": the file's
 * bytes as the body, read as the client takes them (a download of any size). */
static int req_respond_file(lua_State *L) {
  int slot = live_slot(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  const char *path = luaL_checkstring(L, 3);
  fb_http_header h[MAX_HEADERS];
  int n = collect_headers(L, 4, h, MAX_HEADERS);
  int rc = fb_http_respond_file(reqs.slots[slot].req, status, h, n, path);
  if (rc == FB_ENOTFOUND) {
    lua_pushnil(L);
    lua_pushstring(L, "not found");
    return 2;
  }
  if (rc == 0 && reqs.slots[slot].req) lreq_done(slot);
  return push_result(L, slot, rc);
}

/* stream(rq, status, headers) / sse(rq, headers): begin a streamed response. */
static int req_stream(lua_State *L) {
  int slot = live_slot(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  fb_http_header h[MAX_HEADERS];
  int n = collect_headers(L, 3, h, MAX_HEADERS);
  return push_result(L, slot, fb_http_stream_begin(reqs.slots[slot].req, status, h, n));
}

/* sse -> true | nil, "too many event streams" (answered 503: the request is over) | nil, why */
static int req_sse(lua_State *L) {
  int slot = live_slot(L, 1);
  fb_http_header h[MAX_HEADERS];
  int n = collect_headers(L, 2, h, MAX_HEADERS - 4);
  int rc = fb_http_sse_begin(reqs.slots[slot].req, h, n);
  if (rc == FB_ELIMIT) {
    lreq_done(slot);
    lua_pushnil(L);
    lua_pushstring(L, "too many event streams");
    return 2;
  }
  return push_result(L, slot, rc);
}

/* write(rq, data) -> true | nil, "closed" | "client too slow" */
static int req_write(lua_State *L) {
  int slot = slot_of(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (slot < 0) return push_result(L, slot, FB_EIO);
  return push_result(L, slot, fb_http_stream_write(reqs.slots[slot].req, data, len));
}

/* event(rq, event, data, id) */
static int req_event(lua_State *L) {
  int slot = slot_of(L, 1);
  const char *event = luaL_optstring(L, 2, NULL);
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  const char *id = luaL_optstring(L, 4, NULL);
  luaL_argcheck(L, !event || !strpbrk(event, "\r\n"), 2, "event name holds a line break");
  luaL_argcheck(L, !id || !strpbrk(id, "\r\n"), 4, "id holds a line break");
  if (slot < 0) return push_result(L, slot, FB_EIO);
  int rc = fb_http_sse_send(reqs.slots[slot].req, event, data, len, id);
  if (rc == FB_EINVALID && reqs.slots[slot].req)
    return luaL_error(L, "event: the response is not an event stream");
  return push_result(L, slot, rc);
}

/* finish(rq): end a streamed response. */
static int req_finish(lua_State *L) {
  int slot = slot_of(L, 1);
  if (slot < 0) return push_result(L, slot, FB_EIO);
  int rc = fb_http_stream_end(reqs.slots[slot].req);
  if (rc == FB_EINVALID) return luaL_error(L, "finish: no stream was begun");
  if (reqs.slots[slot].req) lreq_done(slot);
  return push_result(L, slot, rc);
}

/* on_close(rq, fn): fn() runs once if the client goes away before the response completed. */
static int req_on_close(lua_State *L) {
  int slot = slot_of(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (slot < 0) return 0;
  unref(L, &reqs.slots[slot].on_close);
  lua_pushvalue(L, 2);
  reqs.slots[slot].on_close = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int req_alive(lua_State *L) {
  lua_pushboolean(L, slot_of(L, 1) >= 0);
  return 1;
}

static int req_header(lua_State *L) {
  int slot = slot_of(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *v = slot >= 0 ? fb_http_req_header(reqs.slots[slot].req, name) : NULL;
  if (v)
    lua_pushstring(L, v);
  else
    lua_pushnil(L);
  return 1;
}

static int req_headers(lua_State *L) {
  fb_http_req *req = reqs.slots[live_slot(L, 1)].req;
  lua_createtable(L, 0, req->nheaders);
  for (int i = 0; i < req->nheaders; i++) {
    lua_getfield(L, -1, req->headers[i].name);
    if (lua_isstring(L, -1)) { /* a repeated header: joined with ", " as RFC 9110 allows */
      lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), req->headers[i].value);
      lua_setfield(L, -3, req->headers[i].name);
    } else {
      lua_pushstring(L, req->headers[i].value);
      lua_setfield(L, -3, req->headers[i].name);
    }
    lua_pop(L, 1);
  }
  return 1;
}

static int req_body(lua_State *L) {
  fb_http_req *req = reqs.slots[live_slot(L, 1)].req;
  lua_pushlstring(L, req->body, req->body_len);
  return 1;
}

static int req_remote_addr(lua_State *L) {
  lua_pushstring(L, reqs.slots[live_slot(L, 1)].req->remote_addr);
  return 1;
}

/* ---- the server ---- */

static void on_request(void *ud, fb_http_req *req) {
  lserver *s = ud;
  lua_State *L = s->L;
  if (!L) {
    fb_http_respond_error(req, 503, "shutting down");
    return;
  }
  int slot = lreq_new(s, req);
  if (slot < 0) {
    fb_http_respond_error(req, 503, "out of memory");
    return;
  }
  lua_Integer handle = handle_of(slot);
  fb_http_req_on_close(req, on_req_close, (void *)(intptr_t)slot);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_request);
  lua_pushinteger(L, handle);
  lua_pushstring(L, req->method);
  lua_pushstring(L, req->path);
  lua_pushstring(L, req->query);
  /* the handle is still this request's only if nothing answered or closed it */
  if (fb_vm_pcall(L, 4, 0, "http request") != LUA_OK && handle_of(slot) == handle &&
      reqs.slots[slot].req) {
    if (fb_http_stream_end(req) != 0) fb_http_respond_error(req, 500, "internal error");
    if (handle_of(slot) == handle && reqs.slots[slot].req) lreq_done(slot);
  }
}

static int on_headers(void *ud, const fb_http_req *req, uint64_t *max_body) {
  lserver *s = ud;
  lua_State *L = s->L;
  if (!L || s->on_headers == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_headers);
  lua_pushstring(L, req->method);
  lua_pushstring(L, req->path);
  if (fb_vm_pcall(L, 2, 1, "http on_headers") != LUA_OK) return -1;
  if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) *max_body = (uint64_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return 0;
}

static lserver *check_server(lua_State *L, int idx) {
  server_box *b = luaL_checkudata(L, idx, SERVER_MT);
  luaL_argcheck(L, b->s && !b->s->closing, idx, "server is closed");
  return b->s;
}

static int opt_ref(lua_State *L, int idx, const char *field) {
  int t = lua_getfield(L, idx, field);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  if (t != LUA_TFUNCTION) luaL_error(L, "listen: '%s' must be a function", field);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* listen{host=, port=, token=, allowed_hosts={...}, limits={name=n}, on_request=fn(rq, method,
 * path, query), on_headers=fn(method, path) -> max_body} -> server | nil, err */
static int http_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  fb_http_config cfg = {0};
  fb_http_limits_default(&cfg.limits);
  lua_getfield(L, 1, "host");
  cfg.host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "port");
  lua_Integer port = luaL_optinteger(L, -1, 8215);
  luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0..65535");
  cfg.port = (int)port;
  lua_getfield(L, 1, "token");
  cfg.token = luaL_optstring(L, -1, NULL);
  const char *allowed[17] = {NULL};
  if (lua_getfield(L, 1, "allowed_hosts") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    luaL_argcheck(L, n <= 16, 1, "at most 16 allowed_hosts");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      allowed[i - 1] = luaL_checkstring(L, -1); /* stays on the stack */
      lua_insert(L, -2);
    }
  }
  cfg.allowed_hosts = allowed;
  if (lua_getfield(L, 1, "limits") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      fb_err err = {0};
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isnumber(L, -1))
        return luaL_error(L, "listen: limits must map names to numbers");
      if (fb_http_limits_set(&cfg.limits, lua_tostring(L, -2), lua_tonumber(L, -1), &err))
        return luaL_error(L, "listen: %s", err.msg);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lserver *s = calloc(1, sizeof *s);
  if (!s) return luaL_error(L, "listen: out of memory");
  s->L = fb_vm_main(L);
  s->on_done = s->self = LUA_NOREF;
  s->on_request = opt_ref(L, 1, "on_request");
  s->on_headers = opt_ref(L, 1, "on_headers");
  if (s->on_request == LUA_NOREF) {
    unref(L, &s->on_headers);
    free(s);
    return luaL_error(L, "listen: on_request function required");
  }
  cfg.on_request = on_request;
  cfg.on_headers = s->on_headers == LUA_NOREF ? NULL : on_headers;
  cfg.ud = s;
  fb_err err = {0};
  s->srv = fb_http_server_new(fb_vm_loop(L), &cfg, &err);
  if (!s->srv) {
    unref(L, &s->on_request);
    unref(L, &s->on_headers);
    free(s);
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  server_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->s = s;
  s->box = b;
  luaL_setmetatable(L, SERVER_MT);
  lua_pushvalue(L, -1);
  s->self = luaL_ref(L, LUA_REGISTRYINDEX); /* a listening server is not collected */
  return 1;
}

static int server_port(lua_State *L) {
  lua_pushinteger(L, fb_http_server_port(check_server(L, 1)->srv));
  return 1;
}

static int server_connections(lua_State *L) {
  lua_pushinteger(L, fb_http_server_connections(check_server(L, 1)->srv));
  return 1;
}

/* srv:static(prefix, dir) -> true | nil, err */
static int server_static(lua_State *L) {
  lserver *s = check_server(L, 1);
  fb_err err = {0};
  if (fb_http_server_static(s->srv, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &err)) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void server_done(void *ud) {
  lserver *s = ud;
  lua_State *L = s->L;
  if (s->box) s->box->s = NULL;
  if (L && s->on_done != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_done);
    unref(L, &s->on_done);
    fb_vm_pcall(L, 0, 0, "http close callback");
  }
  unref(L, &s->on_request);
  unref(L, &s->on_headers);
  unref(L, &s->self);
  free(s);
}

/* srv:close([grace_ms], [fn]): stop accepting; fn runs when every connection is gone. */
static int server_close(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  lserver *s = b->s;
  if (!s || s->closing) return 0;
  lua_Integer grace = luaL_optinteger(L, 2, 5000);
  luaL_argcheck(L, grace >= 0, 2, "grace must be >= 0");
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_pushvalue(L, 3);
    s->on_done = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  s->closing = 1;
  fb_http_server_close(s->srv, (uint64_t)grace, server_done, s);
  return 0;
}

static int server_gc(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  lserver *s = b->s;
  if (s) { /* only when the state closes (a live server is referenced): no more Lua calls */
    s->L = NULL;
    s->box = NULL;
    s->closing = 1;
    b->s = NULL;
    fb_http_server_close(s->srv, 0, server_done, s); /* also cuts a grace period short */
  }
  return 0;
}

/* ---- route patterns ----
 * routes() -> a list of patterns (http_route.h) the router matches a path against in C:
 * list:add(pattern) -> its index; list:match(path [, from]) -> the index of the first pattern
 * at or after from that matches, and a new table of its params (percent-decoded), or nil. */

typedef struct routes {
  fb_http_route **list;
  int n, cap;
} routes;

static int http_routes(lua_State *L) {
  routes *rs = lua_newuserdatauv(L, sizeof *rs, 0);
  *rs = (routes){0};
  luaL_setmetatable(L, ROUTES_MT);
  return 1;
}

static int routes_add(lua_State *L) {
  routes *rs = check_self(L, 1, ROUTES_MT);
  const char *pattern = luaL_checkstring(L, 2);
  if (rs->n == rs->cap) {
    int cap = rs->cap ? rs->cap * 2 : 8;
    fb_http_route **list = realloc(rs->list, (size_t)cap * sizeof *list);
    if (!list) return luaL_error(L, "routes: out of memory");
    rs->list = list;
    rs->cap = cap;
  }
  fb_http_route *r = fb_http_route_new(pattern);
  if (!r) return luaL_error(L, "routes: out of memory");
  if (fb_http_route_nparams(r) > MAX_PARAMS) {
    fb_http_route_free(r);
    return luaL_error(L, "route pattern has more than %d params: %s", MAX_PARAMS, pattern);
  }
  rs->list[rs->n++] = r;
  lua_pushinteger(L, rs->n);
  return 1;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* s with each %XX decoded (a % without two hex digits stays as it is). */
static void push_decoded(lua_State *L, const char *s, size_t n) {
  if (!memchr(s, '%', n)) {
    lua_pushlstring(L, s, n);
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
        (lo = hex_value(s[i + 2])) >= 0) {
      luaL_addchar(&b, (char)(hi * 16 + lo));
      i += 2;
    } else {
      luaL_addchar(&b, s[i]);
    }
  }
  luaL_pushresult(&b);
}

static int routes_match(lua_State *L) {
  routes *rs = check_self(L, 1, ROUTES_MT);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  lua_Integer from = luaL_optinteger(L, 3, 1);
  fb_http_span caps[MAX_PARAMS];
  for (lua_Integer i = from < 1 ? 1 : from; i <= rs->n; i++) {
    const fb_http_route *r = rs->list[i - 1];
    if (!fb_http_route_match(r, path, len, caps)) continue;
    lua_pushinteger(L, i);
    int np = fb_http_route_nparams(r);
    lua_createtable(L, 0, np);
    for (int k = 0; k < np; k++) {
      push_decoded(L, path + caps[k].off, caps[k].len);
      lua_setfield(L, -2, fb_http_route_param(r, k));
    }
    return 2;
  }
  lua_pushnil(L);
  return 1;
}

static int routes_gc(lua_State *L) {
  routes *rs = luaL_checkudata(L, 1, ROUTES_MT);
  for (int i = 0; i < rs->n; i++) fb_http_route_free(rs->list[i]);
  free(rs->list);
  *rs = (routes){0};
  return 0;
}

/* A metatable registered as name, its __index the methods (each with the metatable as upvalue
 * 1, for check_self) and its __gc gc (may be NULL); left on the stack. */
static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__index");
}

int luaopen_fastbrain_http(lua_State *L) {
  static const luaL_Reg srv_methods[] = {{"port", server_port},
                                         {"connections", server_connections},
                                         {"static", server_static},
                                         {"close", server_close},
                                         {NULL, NULL}};
  static const luaL_Reg routes_methods[] = {
      {"add", routes_add}, {"match", routes_match}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"listen", http_listen},
                                   {"routes", http_routes},
                                   /* on a request handle (on_request's first argument) */
                                   {"respond", req_respond},
                                   {"stream", req_stream},
                                   {"sse", req_sse},
                                   {"respond_file", req_respond_file},
                                   {"write", req_write},
                                   {"event", req_event},
                                   {"finish", req_finish},
                                   {"on_close", req_on_close},
                                   {"alive", req_alive},
                                   {"header", req_header},
                                   {"headers", req_headers},
                                   {"body", req_body},
                                   {"remote_addr", req_remote_addr},
                                   {NULL, NULL}};
  new_class(L, SERVER_MT, srv_methods, server_gc);
  lua_pop(L, 1);
  new_class(L, ROUTES_MT, routes_methods, routes_gc);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
