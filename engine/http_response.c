/* http_response.c: the response writer: the status line and headers (the standard ones, the
 * CSP for HTML, framing by Content-Length or chunked), whole responses, JSON errors, files and
 * streamed bodies. It writes through the connection's queue (fb_http_conn_write) and hands the
 * connection back when a response is complete (fb_http_finish). */
#include "http_impl.h"

#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Room for len more bytes and a NUL. */
int fb_http_buf_reserve(buf *b, size_t len) {
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return FB_ENOMEM;
    b->data = p;
    b->cap = cap;
  }
  return 0;
}

int fb_http_buf_add(buf *b, const void *data, size_t len) {
  if (fb_http_buf_reserve(b, len)) return FB_ENOMEM;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int buf_printf(buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) return FB_EINVALID;
  return fb_http_buf_add(b, tmp, (size_t)n);
}

/* ---- status line and headers ---- */

static const char *status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
  }
  return "Unknown";
}

/* Decimal text of v into out (no NUL); returns its length. */
static size_t u64_text(char *out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

/* The Date header value, formatted once per second. */
static const char *http_date(fb_http_server *srv) {
  time_t now = time(NULL);
  if (now != srv->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    srv->date_sec = now;
  }
  return srv->date;
}

static int has_crlf(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)
#define HEAD_FIXED 256 /* room for everything but the caller's headers and the CSP */

/* content_length >= 0: fixed; -1: streamed (chunked on 1.1, close-delimited on 1.0);
 * -2: no body headers at all (304, 204). Sized once, then copied: no append calls. */
int fb_http_head(fb_http_conn *c, buf *out, int status, const fb_http_header *headers, int nheaders,
                 int64_t content_length) {
  static const char csp[] =
      "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
      "object-src 'none'; frame-ancestors 'none'; base-uri 'self'\r\n";
  if (status < 100 || status > 999) return FB_EINVALID;
  size_t need = HEAD_FIXED + sizeof csp;
  int html = 0;
  for (int i = 0; i < nheaders; i++) {
    const fb_http_header *h = &headers[i];
    if (!h->name || !h->value || !*h->name || has_crlf(h->name) || has_crlf(h->value) ||
        strchr(h->name, ':'))
      return FB_EINVALID;
    if (strcasecmp(h->name, "content-type") == 0 && strncasecmp(h->value, "text/html", 9) == 0)
      html = 1;
    need += strlen(h->name) + strlen(h->value) + 4;
  }
  if (c->srv->closing) c->keep_alive = 0;
  c->chunked_out = 0;
  if (content_length == -1) {
    if (c->req.http_minor >= 1)
      c->chunked_out = 1;
    else
      c->keep_alive = 0;
  }
  out->len = 0;
  if (fb_http_buf_reserve(out, need)) return FB_ENOMEM;
  char *p = out->data, num[24];
  const char *text = status_text(status), *date = http_date(c->srv);
  p = PUT_LIT(p, "HTTP/1.1 ");
  p = put(p, num, u64_text(num, (uint64_t)status));
  *p++ = ' ';
  p = put(p, text, strlen(text));
  p = PUT_LIT(p, "\r\nDate: ");
  p = put(p, date, strlen(date));
  p = PUT_LIT(p, "\r\nX-Content-Type-Options: nosniff\r\n");
  for (int i = 0; i < nheaders; i++) {
    p = put(p, headers[i].name, strlen(headers[i].name));
    p = PUT_LIT(p, ": ");
    p = put(p, headers[i].value, strlen(headers[i].value));
    p = PUT_LIT(p, "\r\n");
  }
  if (html) p = put(p, csp, sizeof csp - 1);
  if (content_length >= 0) {
    p = PUT_LIT(p, "Content-Length: ");
    p = put(p, num, u64_text(num, (uint64_t)content_length));
    p = PUT_LIT(p, "\r\n");
  }
  if (c->chunked_out) p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
  if (!c->keep_alive)
    p = PUT_LIT(p, "Connection: close\r\n");
  else if (c->req.http_minor == 0)
    p = PUT_LIT(p, "Connection: keep-alive\r\n");
  p = PUT_LIT(p, "\r\n");
  out->len = (size_t)(p - out->data);
  return 0;
}

/* ---- responses ---- */

static int json_escape(buf *b, const char *s) {
  int rc = 0;
  for (; *s && rc == 0; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      rc = buf_printf(b, "\\%c", ch);
    else if (ch < 0x20)
      rc = buf_printf(b, "\\u%04x", ch);
    else
      rc = fb_http_buf_add(b, s, 1);
  }
  return rc;
}

static fb_http_conn *live(fb_http_req *r, conn_state want) {
  fb_http_conn *c = r ? r->conn : NULL;
  if (!c || c->closing || c->state != want || &c->req != r) return NULL;
  return c;
}

const char *fb_http_req_header(const fb_http_req *r, const char *lname) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, lname) == 0) return r->headers[i].value;
  return NULL;
}

void fb_http_req_on_close(fb_http_req *r, fb_http_close_fn fn, void *ud) {
  fb_http_conn *c = r ? r->conn : NULL;
  if (!c || c->closing) return;
  c->on_close = fn;
  c->on_close_ud = ud;
}

int fb_http_respond(fb_http_req *r, int status, const fb_http_header *headers, int nheaders,
                    const void *body, size_t len) {
  fb_http_conn *c = live(r, CONN_HANDLER);
  if (!c) return FB_EINVALID;
  int bodyless = status == 204 || status == 304 || status < 200;
  int rc = fb_http_head(c, &c->out, status, headers, nheaders, bodyless ? -2 : (int64_t)len);
  if (rc) return rc;
  uv_buf_t b[2] = {uv_buf_init(c->out.data, (unsigned)c->out.len),
                   uv_buf_init((char *)body, (unsigned)len)};
  rc = fb_http_conn_write(c, b, (c->is_head || bodyless || !len) ? 1 : 2);
  if (rc == 0) fb_http_finish(c);
  return rc;
}

int fb_http_respond_file(fb_http_req *r, int status, const fb_http_header *headers, int nheaders,
                         const char *path) {
  fb_http_conn *c = live(r, CONN_HANDLER);
  if (!c) return FB_EINVALID;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FB_ENOTFOUND;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return FB_ENOTFOUND;
  }
  return fb_http_send_fd(c, status, fd, (uint64_t)st.st_size, headers, nheaders);
}

/* {"error": msg} as JSON, with one more header when extra is not NULL. */
int fb_http_respond_json_error(fb_http_req *r, int status, const char *msg,
                               const fb_http_header *extra) {
  fb_http_conn *c = live(r, CONN_HANDLER);
  if (!c) return FB_EINVALID;
  buf body = {0};
  int rc = fb_http_buf_add(&body, "{\"error\":\"", 10);
  if (rc == 0) rc = json_escape(&body, msg ? msg : "error");
  if (rc == 0) rc = fb_http_buf_add(&body, "\"}", 2);
  fb_http_header h[2] = {{"Content-Type", "application/json"}};
  if (extra) h[1] = *extra;
  if (rc == 0) rc = fb_http_respond(r, status, h, extra ? 2 : 1, body.data, body.len);
  free(body.data);
  return rc;
}

int fb_http_respond_error(fb_http_req *r, int status, const char *msg) {
  return fb_http_respond_json_error(r, status, msg, NULL);
}

int fb_http_stream_begin(fb_http_req *r, int status, const fb_http_header *headers, int nheaders) {
  fb_http_conn *c = live(r, CONN_HANDLER);
  if (!c) return FB_EINVALID;
  int rc = fb_http_head(c, &c->out, status, headers, nheaders, -1);
  if (rc) return rc;
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  if ((rc = fb_http_conn_write(c, &b, 1))) return rc;
  c->state = CONN_STREAM;
  return 0;
}

int fb_http_stream_write(fb_http_req *r, const void *data, size_t len) {
  fb_http_conn *c = live(r, CONN_STREAM);
  if (!c) return FB_EINVALID;
  if (c->is_head || len == 0) return 0;
  if (c->queued + len > c->srv->cfg.limits.max_write_queue) {
    fb_warn("http: %s: client is not reading, dropped (%zu bytes queued)", c->remote, c->queued);
    fb_http_conn_close(c);
    return FB_ELIMIT;
  }
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  uv_buf_t b[3] = {uv_buf_init(size, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                   uv_buf_init("\r\n", 2)};
  return c->chunked_out ? fb_http_conn_write(c, b, 3) : fb_http_conn_write(c, b + 1, 1);
}

int fb_http_stream_end(fb_http_req *r) {
  fb_http_conn *c = live(r, CONN_STREAM);
  if (!c) return FB_EINVALID;
  if (c->chunked_out && !c->is_head) {
    uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
    int rc = fb_http_conn_write(c, &b, 1);
    if (rc) return rc;
  }
  fb_http_finish(c);
  return 0;
}
