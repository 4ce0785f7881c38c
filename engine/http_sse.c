/* http_sse.c: Server-Sent Events over a streamed response: id:/event:/data: framing with
 * multi-line data split on CR, LF or CRLF, the comment heartbeat, and the per-stream queue
 * cap (inherited from stream_write). Subscriptions and event sources are the caller's. */
#include "http_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad_field(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

size_t fb_http_sse_frame_size(const char *event, size_t len, const char *id) {
  size_t n = 1; /* the blank line that ends the event */
  if (id) n += 4 + strlen(id) + 1;
  if (event) n += 7 + strlen(event) + 1;
  return n + len + 7 * (len + 1); /* at most len+1 lines of "data: " + LF */
}

size_t fb_http_sse_frame(char *out, const char *event, const char *data, size_t len,
                         const char *id) {
  char *p = out;
#define PUT(s, n) (memcpy(p, (s), (n)), p += (n))
  if (id) {
    PUT("id: ", 4);
    PUT(id, strlen(id));
    *p++ = '\n';
  }
  if (event) {
    PUT("event: ", 7);
    PUT(event, strlen(event));
    *p++ = '\n';
  }
  size_t i = 0;
  do {
    size_t start = i;
    while (i < len && data[i] != '\n' && data[i] != '\r') i++;
    PUT("data: ", 6);
    PUT(data + start, i - start);
    *p++ = '\n';
    if (i < len && data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') i++;
    if (i < len)
      i++;
    else
      break;
  } while (1);
  *p++ = '\n';
#undef PUT
  return (size_t)(p - out);
}

/* Streams hold their connections for as long as they like and are never shed: past the cap,
 * the room left is kept for everything else. */
static int sse_refused(fb_http_req *req) {
  fb_http_server *srv = req->conn ? req->conn->srv : NULL;
  if (!srv || (uint64_t)srv->nsse < srv->cfg.limits.max_sse_streams) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "too many event streams open (max %llu); close one and retry",
           (unsigned long long)srv->cfg.limits.max_sse_streams);
  return fb_http_respond_error(req, 503, msg) ? FB_EINVALID : FB_ELIMIT;
}

/* The stream no longer counts against the cap. */
static void sse_end(fb_http_conn *c) { c->srv->nsse--; }

/* A comment line keeps proxies and browsers from timing the stream out. */
static void sse_heartbeat(fb_http_conn *c) {
  if (fb_http_stream_write(&c->req, ": ping\n\n", 8) == 0)
    fb_http_conn_timer(c, c->srv->cfg.limits.sse_heartbeat_ms);
}

static const fb_http_body_hooks sse_hooks = {.tick = sse_heartbeat, .end = sse_end};

int fb_http_sse_active(const fb_http_conn *c) { return c->hooks == &sse_hooks; }

int fb_http_sse_begin(fb_http_req *req, const fb_http_header *headers, int nheaders) {
  fb_http_header h[16];
  if (nheaders < 0 || nheaders > 13) return FB_EINVALID;
  int rc = sse_refused(req);
  if (rc) return rc;
  h[0] = (fb_http_header){"Content-Type", "text/event-stream; charset=utf-8"};
  h[1] = (fb_http_header){"Cache-Control", "no-cache"};
  h[2] = (fb_http_header){"X-Accel-Buffering", "no"};
  for (int i = 0; i < nheaders; i++) h[3 + i] = headers[i];
  if ((rc = fb_http_stream_begin(req, 200, h, 3 + nheaders))) return rc;
  fb_http_conn *c = req->conn;
  c->srv->nsse++;
  fb_http_conn_set_hooks(c, &sse_hooks);
  fb_http_conn_timer(c, c->srv->cfg.limits.sse_heartbeat_ms);
  return 0;
}

int fb_http_sse_send(fb_http_req *req, const char *event, const char *data, size_t len,
                     const char *id) {
  if (bad_field(event) || bad_field(id) || (!data && len)) return FB_EINVALID;
  if (!req || !req->conn || req->conn->hooks != &sse_hooks) return FB_EINVALID;
  char small[1024];
  size_t need = fb_http_sse_frame_size(event, len, id);
  char *out = need <= sizeof small ? small : malloc(need);
  if (!out) return FB_ENOMEM;
  size_t n = fb_http_sse_frame(out, event, data ? data : "", len, id);
  int rc = fb_http_stream_write(req, out, n);
  if (out != small) free(out);
  return rc;
}
