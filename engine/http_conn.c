/* http_conn.c: one connection: llhttp parsing under the limits table, timeouts, keep-alive
 * and pipelining (one request in flight per connection, answered in order), the output queue
 * with its cap, lingering close. Listening and shutdown are http_server.c's; the response
 * writer, static files, SSE framing and the Host/Origin/token checks live in their own files. */
#include "http_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define MAX_BUFFERED 65536 /* pipelined input held while a request is in flight */
#define LINGER_MS 2000     /* after a final response, wait this long for the peer's FIN */

/* ---- writing ---- */

typedef struct wreq {
  uv_write_t w;
  fb_http_conn *c;
  size_t len;
  char data[];
} wreq;

static void process_input(fb_http_conn *c);
static void read_start(fb_http_conn *c);

/* The client has more unsent output than the cap: take no new request until it reads. */
static int output_full(const fb_http_conn *c) {
  return c->queued > c->srv->cfg.limits.max_write_queue;
}

static void on_write(uv_write_t *w, int status) {
  wreq *r = (wreq *)w;
  fb_http_conn *c = r->c;
  c->queued -= r->len;
  free(r);
  if (c->closing) return;
  if (status < 0) {
    fb_http_conn_close(c);
    return;
  }
  if (c->hooks && c->hooks->drained)
    c->hooks->drained(c);
  else if (c->state == CONN_IDLE && c->in_off < c->in.len && !output_full(c)) {
    read_start(c); /* pipelined requests held back while the client was not reading */
    process_input(c);
  }
}

int fb_http_conn_write(fb_http_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
  if (c->closing) return FB_EIO;
  size_t total = 0, skip = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total == 0) return 0;
  if (c->queued == 0) {
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (n == (int)total) return 0;
    if (n < 0 && n != UV_EAGAIN) {
      fb_http_conn_close(c);
      return FB_EIO;
    }
    if (n > 0) skip = (size_t)n;
  }
  wreq *r = malloc(sizeof *r + total - skip);
  if (!r) {
    fb_http_conn_close(c);
    return FB_ENOMEM;
  }
  size_t off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t len = bufs[i].len;
    const char *p = bufs[i].base;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    p += skip;
    len -= skip;
    skip = 0;
    memcpy(r->data + off, p, len);
    off += len;
  }
  r->c = c;
  r->len = off;
  uv_buf_t b = uv_buf_init(r->data, (unsigned)off);
  int rc = uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(r);
    fb_http_conn_close(c);
    return FB_EIO;
  }
  c->queued += off;
  return 0;
}

/* ---- connection lifetime ---- */

static void timer_fired(uv_timer_t *t);

/* The connection's one deadline, ms from now (loop time). The timer is restarted only when
 * it would fire too late: across keep-alive requests it stays armed, and timer_fired sets it
 * again for whatever time is left, so answering a request costs no timer work. */
void fb_http_conn_set_hooks(fb_http_conn *c, const fb_http_body_hooks *hooks) {
  const fb_http_body_hooks *old = c->hooks;
  c->hooks = hooks;
  if (old && old->end) old->end(c);
}

void fb_http_conn_timer(fb_http_conn *c, uint64_t ms) {
  if (c->closing) return;
  c->deadline = uv_now(c->srv->loop) + ms;
  if (!c->timer_due || c->timer_due > c->deadline) {
    c->timer_due = c->deadline;
    uv_timer_start(&c->timer, timer_fired, ms, 0);
  }
}

/* No deadline while a handler works; a timer already armed fires and finds none. */
static void conn_timer_clear(fb_http_conn *c) { c->deadline = 0; }

static void free_conn(fb_http_conn *c) {
  free(c->in.data);
  free(c->head.data);
  free(c->body.data);
  free(c->out.data);
  free(c->hoff);
  free(c->headers);
  free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  fb_http_conn *c = h->data;
  if (--c->handles_open == 0) free_conn(c);
}

void fb_http_conn_close(fb_http_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  fb_http_conn_set_hooks(c, NULL);
  fb_http_close_fn fn = c->on_close;
  c->on_close = NULL;
  if (fn) fn(c->on_close_ud, &c->req);
  c->req.conn = NULL;
  fb_http_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->nconns--;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  srv->conn_freed(srv);
}

static void on_shutdown(uv_shutdown_t *s, int status) {
  fb_http_conn *c = s->data;
  free(s);
  if (c->closing) return;
  if (status < 0) fb_http_conn_close(c);
}

/* The last response is queued: send FIN after it and drain input until the peer closes, so
 * unread request bytes do not turn our close into a reset that eats the response. */
static void start_linger(fb_http_conn *c) {
  c->state = CONN_LINGER;
  uv_shutdown_t *s = malloc(sizeof *s);
  if (!s) {
    fb_http_conn_close(c);
    return;
  }
  s->data = c;
  if (uv_shutdown(s, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
    free(s);
    fb_http_conn_close(c);
    return;
  }
  read_start(c); /* reading may have been paused for back-pressure: see the peer's close */
  fb_http_conn_timer(c, LINGER_MS);
}

static void reset_request(fb_http_conn *c) {
  c->head.len = 0;
  c->body.len = 0;
  c->nfields = 0;
  c->in_value = 0;
  c->url_len = c->header_bytes = c->line_bytes = c->ext_bytes = 0;
  c->err_status = 0;
  c->err_msg = NULL;
  c->is_head = 0;
  fb_http_conn_set_hooks(c, NULL);
  c->on_close = NULL;
  memset(&c->req, 0, sizeof c->req);
  c->req.http_minor = 1;
  c->req.remote_addr = c->remote;
  c->req.method = c->req.target = c->req.path = c->req.query = c->req.body = "";
}

static int respond_error_reason(fb_http_conn *c, int status, const char *msg) {
  c->req.conn = c;
  c->state = CONN_HANDLER;
  return fb_http_respond_error(&c->req, status, msg);
}

/* A framing or limit error: answer it and close (the rest of the input cannot be trusted). */
static void fail_request(fb_http_conn *c, int status, const char *msg) {
  c->keep_alive = 0;
  c->on_close = NULL;
  respond_error_reason(c, status, msg);
}

static void timer_fired(uv_timer_t *t) {
  fb_http_conn *c = t->data;
  uint64_t now = uv_now(c->srv->loop);
  c->timer_due = 0;
  if (!c->deadline) return;
  if (now < c->deadline) { /* moved on since the timer was armed */
    c->timer_due = c->deadline;
    uv_timer_start(t, timer_fired, c->deadline - now, 0);
    return;
  }
  c->deadline = 0;
  switch (c->state) {
    case CONN_HEADERS:
    case CONN_BODY: fail_request(c, 408, "request timeout"); break;
    case CONN_STREAM:
      if (c->hooks && c->hooks->tick)
        c->hooks->tick(c);
      else
        fb_http_conn_close(c); /* a file stream that stopped moving */
      break;
    case CONN_HANDLER: break;
    case CONN_IDLE:
      if (c->in_off < c->in.len) { /* pipelined requests deferred by fb_http_finish */
        process_input(c);
        if (!c->closing && c->state == CONN_IDLE)
          fb_http_conn_timer(c, c->srv->cfg.limits.idle_timeout_ms);
        break;
      }
      fb_http_conn_close(c);
      break;
    case CONN_LINGER: fb_http_conn_close(c); break;
  }
}

/* ---- reading and parsing ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  fb_http_conn *c = h->data;
  if (c->state == CONN_LINGER) { /* drained input is thrown away */
    static char sink[READ_CHUNK];
    *out = uv_buf_init(sink, sizeof sink);
    return;
  }
  if (c->in_off) {
    memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
    c->in.len -= c->in_off;
    c->in_off = 0;
  }
  if (c->in.cap - c->in.len < READ_CHUNK + 1) {
    size_t need = c->in.len + READ_CHUNK + 1;
    char *p = realloc(c->in.data, need);
    if (!p) {
      *out = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->in.data = p;
    c->in.cap = need;
  }
  *out = uv_buf_init(c->in.data + c->in.len, READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  (void)b;
  fb_http_conn *c = s->data;
  if (c->closing) return;
  if (nread < 0) {
    fb_http_conn_close(c);
    return;
  }
  if (c->state == CONN_LINGER || nread == 0) return;
  c->in.len += (size_t)nread;
  process_input(c);
}

static void read_start(fb_http_conn *c) {
  if (c->reading || c->closing) return;
  c->reading = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int user_error(fb_http_conn *c, int status, const char *msg) {
  c->err_status = status;
  c->err_msg = msg;
  return HPE_USER;
}

static fb_http_conn *conn_of(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  c->state = CONN_HEADERS;
  c->since = uv_now(c->srv->loop);
  fb_http_conn_timer(c, c->srv->cfg.limits.header_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  fb_http_conn *c = conn_of(p);
  c->url_len += len;
  if (c->url_len + strlen(llhttp_method_name(p->method)) + 10 > c->srv->cfg.limits.max_request_line)
    return user_error(c, 414, "request line too long");
  return fb_http_buf_add(&c->head, at, len) ? user_error(c, 500, "out of memory") : 0;
}

static int on_url_complete(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  return fb_http_buf_add(&c->head, "", 1) ? user_error(c, 500, "out of memory") : 0;
}

static int header_bytes(fb_http_conn *c, size_t len) {
  c->header_bytes += len;
  c->line_bytes += len;
  if (c->line_bytes > c->srv->cfg.limits.max_header_line)
    return user_error(c, 431, "request header line too long");
  if (c->header_bytes > c->srv->cfg.limits.max_header_bytes)
    return user_error(c, 431, "request headers too large");
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  fb_http_conn *c = conn_of(p);
  if (c->in_value || c->nfields == 0 || c->head.data[c->head.len - 1] == '\0') {
    if (c->in_value && fb_http_buf_add(&c->head, "", 1)) return user_error(c, 500, "out of memory");
    c->in_value = 0;
    if ((uint64_t)c->nfields >= c->srv->cfg.limits.max_header_fields)
      return user_error(c, 431, "too many request headers");
    if (c->nfields == c->hcap) {
      int cap = c->hcap ? c->hcap * 2 : 16;
      size_t *h = realloc(c->hoff, (size_t)cap * sizeof *h);
      if (!h) return user_error(c, 500, "out of memory");
      c->hoff = h;
      c->hcap = cap;
    }
    c->hoff[c->nfields++] = c->head.len;
    c->line_bytes = 0;
    if (header_bytes(c, 4)) return HPE_USER; /* ": " and CRLF */
  }
  if (header_bytes(c, len)) return HPE_USER;
  size_t start = c->head.len;
  if (fb_http_buf_add(&c->head, at, len)) return user_error(c, 500, "out of memory");
  for (size_t i = start; i < c->head.len; i++)
    if (c->head.data[i] >= 'A' && c->head.data[i] <= 'Z') c->head.data[i] += 32;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  /* RFC 9112 5.1: no whitespace inside a field name or before its colon; a proxy might
   * read "X-A : b" as another field than we do */
  const char *name = c->head.data + c->hoff[c->nfields - 1];
  if (memchr(name, ' ', c->head.len - c->hoff[c->nfields - 1]) ||
      memchr(name, '\t', c->head.len - c->hoff[c->nfields - 1]))
    return user_error(c, 400, "bad header name");
  c->in_value = 1;
  c->value_parts = 0;
  return fb_http_buf_add(&c->head, "", 1) ? user_error(c, 500, "out of memory") : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  fb_http_conn *c = conn_of(p);
  if (header_bytes(c, len)) return HPE_USER;
  /* llhttp passes obs-fold through as a second value span; a value may legitimately come
   * in several spans only where one read ends and the next begins */
  if (c->value_parts++ && !(c->value_at_end && at == c->exec_start))
    return user_error(c, 400, "obsolete line folding");
  c->value_at_end = at + len == c->exec_end;
  return fb_http_buf_add(&c->head, at, len) ? user_error(c, 500, "out of memory") : 0;
}

static int count_header(const fb_http_req *r, const char *lname) {
  int n = 0;
  for (int i = 0; i < r->nheaders; i++) n += strcmp(r->headers[i].name, lname) == 0;
  return n;
}

static int method_supported(const char *m) {
  static const char *const ok[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcmp(m, ok[i]) == 0) return 1;
  return 0;
}

/* Turn the header arena into the request view: pointers are stable from here on. */
static int build_request(fb_http_conn *c, llhttp_t *p) {
  if (c->in_value && fb_http_buf_add(&c->head, "", 1)) return FB_ENOMEM;
  c->in_value = 0;
  /* path copy after the headers, so target keeps its query */
  size_t target_len = strlen(c->head.data);
  const char *q = memchr(c->head.data, '?', target_len);
  size_t path_len = q ? (size_t)(q - c->head.data) : target_len;
  size_t query_off = q ? path_len + 1 : target_len;
  size_t path_off = c->head.len;
  if (fb_http_buf_reserve(&c->head, path_len + 1)) return FB_ENOMEM;
  memcpy(c->head.data + path_off, c->head.data, path_len);
  c->head.data[path_off + path_len] = '\0';
  c->head.len += path_len + 1;
  if (c->nfields > 0) {
    fb_http_header *h = realloc(c->headers, (size_t)c->nfields * sizeof *h);
    if (!h) return FB_ENOMEM;
    c->headers = h;
  }
  for (int i = 0; i < c->nfields; i++) {
    char *name = c->head.data + c->hoff[i];
    char *value = name + strlen(name) + 1;
    size_t vl = strlen(value);
    while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t')) value[--vl] = '\0';
    c->headers[i].name = name;
    c->headers[i].value = value;
  }
  fb_http_req *r = &c->req;
  r->conn = c;
  r->method = llhttp_method_name(p->method);
  r->target = c->head.data;
  r->path = c->head.data + path_off;
  r->query = c->head.data + query_off;
  r->headers = c->headers;
  r->nheaders = c->nfields;
  r->http_minor = p->http_minor;
  c->is_head = p->method == HTTP_HEAD;
  return 0;
}

/* A body has body_timeout_ms in all, plus 1 s for every body_min_rate bytes it has sent: a
 * client that sends a byte now and then cannot hold the connection for long. */
static void body_deadline(fb_http_conn *c) {
  const fb_http_limits *l = &c->srv->cfg.limits;
  uint64_t due = c->since + l->body_timeout_ms + c->body.len * 1000 / l->body_min_rate;
  uint64_t now = uv_now(c->srv->loop);
  fb_http_conn_timer(c, due > now ? due - now : 0);
}

static int on_headers_complete(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  fb_http_server *srv = c->srv;
  if (c->head.len == 0) return user_error(c, 400, "bad request line");
  if (build_request(c, p)) return user_error(c, 500, "out of memory");
  fb_http_req *r = &c->req;
  if (p->http_major != 1) return user_error(c, 505, "http version not supported");
  if (!method_supported(r->method)) return user_error(c, 501, "method not implemented");
  if (r->target[0] != '/' && !(p->method == HTTP_OPTIONS && strcmp(r->target, "*") == 0))
    return user_error(c, 400, "bad request target");
  if (count_header(r, "authorization") > 1) /* which one counts would be ours to guess */
    return user_error(c, 400, "more than one authorization header");
  int hosts = count_header(r, "host");
  if (hosts > 1 || (hosts == 0 && p->http_minor == 1)) return user_error(c, 400, "bad host header");
  int te = count_header(r, "transfer-encoding");
  if (te) {
    if (p->flags & F_CONTENT_LENGTH)
      return user_error(c, 400, "content-length with transfer-encoding");
    if (te > 1 || strcasecmp(fb_http_req_header(r, "transfer-encoding"), "chunked") != 0)
      return user_error(c, 501, "transfer-encoding not implemented");
  }
  c->max_body = srv->cfg.limits.max_body;
  if (srv->cfg.on_headers && srv->cfg.on_headers(srv->cfg.ud, r, &c->max_body))
    return user_error(c, 400, "bad request");
  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->max_body)
    return user_error(c, 413, "request body too large");
  const char *msg = NULL;
  int st = fb_http_guard_request(srv, r, &msg);
  if (st) return user_error(c, st, msg);
  const char *expect = fb_http_req_header(r, "expect");
  if (expect) {
    if (strcasecmp(expect, "100-continue") != 0) return user_error(c, 417, "expectation failed");
    if (has_body && p->http_minor == 1) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
      if (fb_http_conn_write(c, &b, 1)) return user_error(c, 500, "write failed");
    }
  }
  if (has_body) {
    c->state = CONN_BODY;
    c->since = uv_now(srv->loop);
    body_deadline(c);
  }
  return 0;
}

/* A chunk's size is known before its data: refuse one past the cap now, not after reading it. */
static int on_chunk_header(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  c->ext_bytes = 0;
  if (p->content_length > c->max_body - c->body.len)
    return user_error(c, 413, "request body too large");
  return 0;
}

static int on_chunk_extension(llhttp_t *p, const char *at, size_t len) {
  (void)at;
  fb_http_conn *c = conn_of(p);
  c->ext_bytes += len;
  if (c->ext_bytes > c->srv->cfg.limits.max_chunk_extension)
    return user_error(c, 400, "chunk extension too long");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  fb_http_conn *c = conn_of(p);
  if (c->body.len + len > c->max_body) return user_error(c, 413, "request body too large");
  if (fb_http_buf_add(&c->body, at, len)) return user_error(c, 500, "out of memory");
  body_deadline(c);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  fb_http_conn *c = conn_of(p);
  if (fb_http_buf_add(&c->body, "", 0)) return user_error(c, 500, "out of memory");
  if (c->body.data) c->body.data[c->body.len] = '\0';
  c->req.body = c->body.data ? c->body.data : "";
  c->req.body_len = c->body.len;
  c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && !c->srv->closing;
  c->state = CONN_HANDLER;
  conn_timer_clear(c);
  return HPE_PAUSED;
}

/* GET /?token=T: the token goes into an HttpOnly cookie and out of the address bar (and of
 * the history and any Referer). 1 when the request was such a link and is answered. */
static int answer_token_link(fb_http_conn *c) {
  const char *msg = NULL;
  int st = fb_http_guard_link(c->srv, &c->req, &msg);
  if (st == 0) return 0;
  if (st != 302) {
    fb_http_respond_json_error(&c->req, st, msg, NULL);
    return 1;
  }
  char name[32], cookie[320];
  fb_http_token_cookie_name(c->srv, name, sizeof name);
  snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict", name, c->srv->token);
  fb_http_header h[] = {{"Location", "/"},
                        {"Set-Cookie", cookie},
                        {"Cache-Control", "no-store"},
                        {"Referrer-Policy", "no-referrer"}};
  fb_http_respond(&c->req, 302, h, 4, NULL, 0);
  return 1;
}

static void dispatch(fb_http_conn *c) {
  fb_http_req *r = &c->req;
  if (answer_token_link(c) || c->srv->answer_static(c)) return;
  const char *msg = NULL, *challenge = NULL;
  int st = fb_http_guard_token(c->srv, r, &msg, &challenge);
  if (st) {
    fb_http_header h = {"WWW-Authenticate", challenge};
    fb_http_respond_json_error(r, st, msg, &h);
    return;
  }
  c->srv->cfg.on_request(c->srv->cfg.ud, r);
}

static void parse_failed(fb_http_conn *c, llhttp_errno_t e) {
  int status = 400;
  const char *msg = "bad request";
  if (c->err_status) { /* one of our callbacks refused (llhttp may report it as HPE_CB_*) */
    status = c->err_status;
    msg = c->err_msg;
  } else if (e == HPE_INVALID_TRANSFER_ENCODING) {
    status = 501;
    msg = "transfer-encoding not implemented";
  } else if (e == HPE_UNEXPECTED_CONTENT_LENGTH) {
    msg = "conflicting content-length";
  } else if (e == HPE_INVALID_CONTENT_LENGTH) {
    msg = "invalid content-length";
  } else if (e == HPE_INVALID_CHUNK_SIZE) {
    msg = "invalid chunk size";
  }
  fail_request(c, status, msg);
}

static void process_input(fb_http_conn *c) {
  if (c->processing) return;
  c->processing = 1;
  while (!c->closing && c->state <= CONN_BODY && c->in_off < c->in.len &&
         !(c->state == CONN_IDLE && output_full(c))) {
    const char *p = c->in.data + c->in_off;
    size_t n = c->in.len - c->in_off;
    c->exec_start = p;
    c->exec_end = p + n;
    llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
    if (e == HPE_OK) {
      c->in_off = c->in.len;
    } else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - p);
      if (e == HPE_PAUSED_UPGRADE) c->keep_alive = 0;
      dispatch(c);
    } else {
      parse_failed(c, e);
    }
  }
  if (!c->closing) {
    if (c->in_off == c->in.len) c->in_off = c->in.len = 0;
    int held = (c->state > CONN_BODY && c->state != CONN_LINGER) ||
               (c->state == CONN_IDLE && output_full(c));
    if (held && c->in.len - c->in_off >= MAX_BUFFERED && c->reading) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = 0;
    }
  }
  c->processing = 0;
}

/* The response to the current request is fully queued. */
void fb_http_finish(fb_http_conn *c) {
  c->on_close = NULL;
  fb_http_conn_set_hooks(c, NULL);
  if (c->closing) return;
  if (!c->keep_alive || c->srv->closing) {
    start_linger(c);
    return;
  }
  reset_request(c);
  llhttp_resume(&c->parser);
  c->state = CONN_IDLE;
  c->since = uv_now(c->srv->loop);
  read_start(c);
  /* Pipelined input waits for the next loop turn (unless process_input is on the stack and
   * carries on): answering never re-enters the request callback. */
  int pending = !c->processing && c->in_off < c->in.len;
  fb_http_conn_timer(c, pending ? 0 : c->srv->cfg.limits.idle_timeout_ms);
}

/* ---- accepting ---- */

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_chunk_header = on_chunk_header,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Which connection to give up when the server is full, lower first: one lingering whose answer
 * is all sent, one idle (longest idle first: a keep-alive, a client that never spoke, or one
 * lingering while its answer is still queued: it is not reading), one
 * whose header or body is still arriving (slowest bytes/s first, counted as parsed, so however
 * reads happen to split them). Handlers and streams are never shed. -1: keep. */
static int shed_rank(const fb_http_conn *c, uint64_t now, double *order) {
  double age = (double)(now - c->since) + 1;
  switch (c->state) {
    case CONN_LINGER: *order = -age; return c->queued ? 1 : 0;
    case CONN_IDLE: *order = -age; return 1;
    case CONN_HEADERS: *order = (double)(c->url_len + c->header_bytes) / age; return 2;
    case CONN_BODY: *order = (double)c->body.len / age; return 2;
    default: return -1;
  }
}

/* Make room for one more connection by dropping the one shed_rank puts first; 0 if none. */
static int shed_one(fb_http_server *srv) {
  uint64_t now = uv_now(srv->loop);
  fb_http_conn *victim = NULL;
  int best = 3;
  double best_order = 0;
  for (fb_http_conn *c = srv->conns; c; c = c->next) {
    double order;
    int rank = c->closing ? -1 : shed_rank(c, now, &order);
    if (rank >= 0 && (rank < best || (rank == best && order < best_order))) {
      victim = c;
      best = rank;
      best_order = order;
    }
  }
  if (!victim) return 0;
  if (best == 2) fail_request(victim, 503, "server busy: slowest request dropped");
  fb_http_conn_close(victim);
  return 1;
}

void fb_http_conn_accept(fb_http_server *srv) {
  fb_http_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = srv;
  c->file_fd = -1;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  int over = (uint64_t)srv->nconns >= srv->cfg.limits.max_connections && !shed_one(srv);
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp) < 0) {
    fb_http_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  strcpy(c->remote, "?");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0)
    uv_ip_name((struct sockaddr *)&sa, c->remote, sizeof c->remote);
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  reset_request(c);
  read_start(c);
  if (over) {
    fail_request(c, 503, "too many connections");
    return;
  }
  c->state = CONN_IDLE;
  c->since = uv_now(srv->loop);
  fb_http_conn_timer(c, srv->cfg.limits.header_timeout_ms);
}
