/* http_server.c: the listening server: the limits table, binding (IPv4/IPv6, the refusal to
 * listen off loopback without a token), accepting, and graceful shutdown with its grace
 * timer. Each connection's life is http_conn.c's. */
#include "http_impl.h"

#include <stdlib.h>
#include <string.h>

void fb_http_limits_default(fb_http_limits *l) {
#define FB_HTTP_LIMIT_DEF(name, def) l->name = (def);
  FB_HTTP_LIMITS(FB_HTTP_LIMIT_DEF)
#undef FB_HTTP_LIMIT_DEF
}

int fb_http_limits_set(fb_http_limits *l, const char *name, double value, fb_err *err) {
  if (!(value >= 1 && value <= 1e15))
    return fb_err_set(err, FB_EINVALID, "http limit '%s': %g is not a positive number", name,
                      value);
#define FB_HTTP_LIMIT_SET(n, def)                                                                  \
  if (strcmp(name, #n) == 0) {                                                                     \
    l->n = (uint64_t)value;                                                                        \
    return 0;                                                                                      \
  }
  FB_HTTP_LIMITS(FB_HTTP_LIMIT_SET)
#undef FB_HTTP_LIMIT_SET
  return fb_err_set(err, FB_EINVALID, "unknown http limit '%s'", name);
}

static void on_connection(uv_stream_t *ls, int status) {
  fb_http_server *srv = ls->data;
  if (status < 0 || srv->closing) return;
  fb_http_conn_accept(srv);
}

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void free_server(fb_http_server *srv) {
  for (int i = 0; i < srv->nmounts; i++) {
    free(srv->mounts[i].prefix);
    free(srv->mounts[i].root);
  }
  free(srv->mounts);
  for (char **h = srv->allowed_hosts; h && *h; h++) free(*h);
  free(srv->allowed_hosts);
  free(srv->host);
  free(srv->token);
  free(srv);
}

static void on_server_handle_closed(uv_handle_t *h) {
  fb_http_server *srv = h->data;
  if (--srv->handles_open > 0) return;
  void (*done)(void *) = srv->done;
  void *ud = srv->done_ud;
  free_server(srv);
  if (done) done(ud);
}

/* Free it once closing and empty (after each connection is gone, and at close). */
static void maybe_done(fb_http_server *srv) {
  if (!srv->closing || srv->nconns > 0 || uv_is_closing((uv_handle_t *)&srv->grace)) return;
  uv_close((uv_handle_t *)&srv->grace, on_server_handle_closed);
}

fb_http_server *fb_http_server_new(uv_loop_t *loop, const fb_http_config *cfg, fb_err *err) {
  if (!cfg->on_request) {
    fb_err_set(err, FB_EINVALID, "http: no request handler");
    return NULL;
  }
  fb_http_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    fb_err_set(err, FB_ENOMEM, "http: out of memory");
    return NULL;
  }
  srv->loop = loop;
  srv->answer_static = fb_http_static_try;
  srv->conn_freed = maybe_done;
  srv->cfg = *cfg;
  srv->host = dup_str(cfg->host && *cfg->host ? cfg->host : "127.0.0.1");
  srv->token = cfg->token && *cfg->token ? dup_str(cfg->token) : NULL;
  int nallowed = 0;
  while (cfg->allowed_hosts && cfg->allowed_hosts[nallowed]) nallowed++;
  srv->allowed_hosts = calloc((size_t)nallowed + 1, sizeof *srv->allowed_hosts);
  int oom = !srv->host || (cfg->token && *cfg->token && !srv->token) || !srv->allowed_hosts;
  for (int i = 0; i < nallowed && !oom; i++)
    oom = !(srv->allowed_hosts[i] = dup_str(cfg->allowed_hosts[i]));
  if (oom) {
    free_server(srv);
    fb_err_set(err, FB_ENOMEM, "http: out of memory");
    return NULL;
  }
  srv->cfg.host = srv->host;
  srv->cfg.token = srv->token;
  srv->cfg.allowed_hosts = (const char *const *)srv->allowed_hosts;
  if (srv->token && !fb_http_token_valid(srv->token)) {
    fb_err_set(err, FB_EINVALID,
               "http: the token may hold only letters, digits and -._~+/ "
               "(then '='), under 256 bytes (RFC 6750)");
    free_server(srv);
    return NULL;
  }
  if (!fb_http_is_loopback_host(srv->host) && !srv->token) {
    fb_err_set(err, FB_EINVALID,
               "http: refusing to listen on %s without a token (FASTBRAIN_TOKEN or --token-file)",
               srv->host);
    free_server(srv);
    return NULL;
  }
  struct sockaddr_storage sa;
  const char *bind_host = strcmp(srv->host, "localhost") == 0 ? "127.0.0.1" : srv->host;
  int rc = strchr(bind_host, ':') ? uv_ip6_addr(bind_host, cfg->port, (struct sockaddr_in6 *)&sa)
                                  : uv_ip4_addr(bind_host, cfg->port, (struct sockaddr_in *)&sa);
  if (rc < 0 || cfg->port < 0 || cfg->port > 65535) {
    fb_err_set(err, FB_EINVALID, "http: bad address %s port %d", srv->host, cfg->port);
    free_server(srv);
    return NULL;
  }
  uv_tcp_init(loop, &srv->listener);
  uv_timer_init(loop, &srv->grace);
  srv->listener.data = srv->grace.data = srv;
  srv->handles_open = 2;
  if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) < 0) {
    fb_err_set(err, FB_EIO, "http: cannot listen on %s port %d: %s", srv->host, cfg->port,
               uv_strerror(rc));
    srv->closing = 1;
    uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->grace, on_server_handle_closed);
    return NULL;
  }
  int salen = sizeof sa;
  uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&sa, &salen);
  srv->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
  return srv;
}

int fb_http_server_port(const fb_http_server *srv) { return srv->port; }
int fb_http_server_connections(const fb_http_server *srv) { return srv->nconns; }

static void on_grace(uv_timer_t *t) {
  fb_http_server *srv = t->data;
  while (srv->conns) fb_http_conn_close(srv->conns);
}

void fb_http_server_close(fb_http_server *srv, uint64_t grace_ms, void (*done)(void *ud),
                          void *ud) {
  if (srv->closing) { /* again, with no grace: end the grace period now */
    if (grace_ms == 0) on_grace(&srv->grace);
    return;
  }
  srv->closing = 1;
  srv->done = done;
  srv->done_ud = ud;
  uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
  fb_http_conn *next;
  for (fb_http_conn *c = srv->conns; c; c = next) {
    next = c->next;
    if (grace_ms == 0 || c->state == CONN_IDLE) {
      fb_http_conn_close(c);
    } else if (c->state == CONN_STREAM && fb_http_sse_active(c)) {
      fb_http_close_fn fn = c->on_close;
      c->on_close = NULL;
      if (fn) fn(c->on_close_ud, &c->req);
      if (fb_http_sse_send(&c->req, "close", "shutdown", 8, NULL) == 0) fb_http_stream_end(&c->req);
    }
  }
  if (srv->nconns > 0) uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
  maybe_done(srv);
}
