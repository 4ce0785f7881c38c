/* http.h: an HTTP/1.1 server on a libuv loop. Parses with llhttp, enforces the limits table,
 * timeouts and security checks, serves static mounts, hands each complete request to one
 * callback and offers the response API (fixed body, chunked stream, Server-Sent Events).
 * It knows nothing about Lua or routing; only the loop thread may call anything here. */
#ifndef FB_HTTP_H
#define FB_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

/* X(name, default): every limit, in one table. Sizes in bytes, times in milliseconds.
 * max_request_line -> 414; max_header_line (one field, name and value) / max_header_bytes /
 * max_header_fields -> 431; max_chunk_extension (the ";ext" of one chunk) -> 400; max_body ->
 * 413 (per request overridable by on_headers); a whole header must arrive within
 * header_timeout_ms, a whole body within body_timeout_ms plus 1 s per body_min_rate bytes
 * received, an idle keep-alive connection and a stalled write last idle_timeout_ms; at
 * max_connections a new connection takes the place of one that lingers, idles or sends
 * slowest, else gets 503; past max_sse_streams (keep it below max_connections) a new event
 * stream gets 503; a client whose unsent output passes max_write_queue is dropped. */
#define FB_HTTP_LIMITS(X)                                                                          \
  X(max_request_line, 8192)                                                                        \
  X(max_header_line, 8192)                                                                         \
  X(max_header_bytes, 16384)                                                                       \
  X(max_header_fields, 100)                                                                        \
  X(max_chunk_extension, 4096)                                                                     \
  X(max_body, 1048576)                                                                             \
  X(header_timeout_ms, 10000)                                                                      \
  X(body_timeout_ms, 30000)                                                                        \
  X(body_min_rate, 65536)                                                                          \
  X(idle_timeout_ms, 60000)                                                                        \
  X(max_connections, 256)                                                                          \
  X(max_sse_streams, 128)                                                                          \
  X(max_write_queue, 1048576)                                                                      \
  X(sse_heartbeat_ms, 15000)                                                                       \
  X(shutdown_grace_ms, 5000)

typedef struct fb_http_limits {
#define FB_HTTP_LIMIT_FIELD(name, def) uint64_t name;
  FB_HTTP_LIMITS(FB_HTTP_LIMIT_FIELD)
#undef FB_HTTP_LIMIT_FIELD
} fb_http_limits;

void fb_http_limits_default(fb_http_limits *limits);
/* Set one limit by name; FB_EINVALID (with text) for an unknown name or a value < 1. */
int fb_http_limits_set(fb_http_limits *limits, const char *name, double value, fb_err *err);

typedef struct fb_http_header {
  const char *name; /* lower case in requests */
  const char *value;
} fb_http_header;

typedef struct fb_http_conn fb_http_conn;
typedef struct fb_http_server fb_http_server;

/* A request. Owned by the server; valid from on_headers/on_request until the response is
 * complete (fb_http_respond, fb_http_stream_end) or until its on_close callback returns.
 * All strings are NUL-terminated. */
typedef struct fb_http_req {
  const char *method;            /* "GET" */
  const char *target;            /* raw request target: "/a%20b?x=1" */
  const char *path;              /* raw path part of target (not percent-decoded) */
  const char *query;             /* raw query after '?', "" when none */
  const fb_http_header *headers; /* names lower case, values trimmed */
  int nheaders;
  const char *body; /* NUL-terminated too; body_len excludes the NUL */
  size_t body_len;
  const char *remote_addr; /* "127.0.0.1" */
  int http_minor;          /* 0 or 1 */
  fb_http_conn *conn;      /* private */
} fb_http_req;

/* Called with each complete request that no static mount answered. The handler must
 * eventually answer it (now or later), unless on_close fires first. */
typedef void (*fb_http_request_fn)(void *ud, fb_http_req *req);
/* Optional: called once headers are complete (body not read yet) to override *max_body.
 * Return 0; anything else answers 400. Runs inside the parser: must not answer. */
typedef int (*fb_http_headers_fn)(void *ud, const fb_http_req *req, uint64_t *max_body);
/* Called once when a request's connection goes away before its response completed (client
 * disconnect, SSE stream dropped for its queue cap, shutdown). The request dies after it. */
typedef void (*fb_http_close_fn)(void *ud, fb_http_req *req);

typedef struct fb_http_config {
  const char *host;                 /* NULL = "127.0.0.1"; "::1", "0.0.0.0", "::" ... */
  int port;                         /* 0 = pick a free one (see fb_http_server_port) */
  const char *token;                /* NULL or "" = none; required off loopback */
  const char *const *allowed_hosts; /* extra Host names beside loopback; NULL-terminated */
  fb_http_limits limits;
  fb_http_request_fn on_request;
  fb_http_headers_fn on_headers; /* may be NULL */
  void *ud;
} fb_http_config;

/* Create a server on `loop` (not owned) and start listening. Strings in cfg are copied.
 * Refuses a non-loopback host without a token. On failure returns NULL with err set and
 * leaves nothing behind. The server is freed by fb_http_server_close only. */
fb_http_server *fb_http_server_new(uv_loop_t *loop, const fb_http_config *cfg, fb_err *err);
int fb_http_server_port(const fb_http_server *srv);
/* Serve files under `dir` for GET/HEAD paths under `prefix` ("/" or "/static"), tried before
 * on_request. A missing file, or a path refused as a traversal attempt, falls through to
 * on_request (which then answers 404 unless a route takes it); nothing outside `dir` is
 * ever served, symlinks included. */
int fb_http_server_static(fb_http_server *srv, const char *prefix, const char *dir, fb_err *err);
/* Stop accepting; idle connections close at once, in-flight responses get the grace period,
 * SSE streams get a final "close" event and their on_close. When the last connection is gone
 * (or grace_ms passed) every handle is closed, `done` (may be NULL) runs, and srv is freed.
 * Calling it again before then with grace_ms 0 ends the grace period at once. */
void fb_http_server_close(fb_http_server *srv, uint64_t grace_ms, void (*done)(void *ud), void *ud);
int fb_http_server_connections(const fb_http_server *srv);

/* The value of header `lname` (lower case), or NULL. */
const char *fb_http_req_header(const fb_http_req *req, const char *lname);
void fb_http_req_on_close(fb_http_req *req, fb_http_close_fn fn, void *ud);

/* Answer with a fixed body (Content-Length; no body bytes for HEAD). `headers` may be NULL.
 * Adds Date, X-Content-Type-Options and, for text/html, a Content-Security-Policy. The
 * request is complete after this call returns. */
int fb_http_respond(fb_http_req *req, int status, const fb_http_header *headers, int nheaders,
                    const void *body, size_t len);
/* Answer with the regular file at `path` (Content-Length: its size), sent in chunks as the client
 * reads it, so a file of any size costs no memory. FB_ENOTFOUND when it cannot be opened or is
 * not a regular file (nothing is sent then). The request is complete once the file is sent. */
int fb_http_respond_file(fb_http_req *req, int status, const fb_http_header *headers, int nheaders,
                         const char *path);
/* {"error": msg} with Content-Type application/json. */
int fb_http_respond_error(fb_http_req *req, int status, const char *msg);

/* A streamed response: chunked for HTTP/1.1, close-delimited for HTTP/1.0. stream_write
 * returns FB_ELIMIT when the client's unsent output passes max_write_queue: the connection
 * is then dropped and on_close fires. stream_end completes the request. */
int fb_http_stream_begin(fb_http_req *req, int status, const fb_http_header *headers, int nheaders);
int fb_http_stream_write(fb_http_req *req, const void *data, size_t len);
int fb_http_stream_end(fb_http_req *req);

/* Server-Sent Events over a stream, with a comment heartbeat every sse_heartbeat_ms. With
 * max_sse_streams open already, sse_begin answers 503 itself and returns FB_ELIMIT (the request
 * is then complete).
 * sse_send frames `data` as one data: line per line (\n, \r\n or \r); event and id may be
 * NULL and must not hold CR/LF (FB_EINVALID). Errors as stream_write. */
int fb_http_sse_begin(fb_http_req *req, const fb_http_header *headers, int nheaders);
int fb_http_sse_send(fb_http_req *req, const char *event, const char *data, size_t len,
                     const char *id);

/* Frame one event into `out` (at least fb_http_sse_frame_size bytes); returns its length.
 * Exposed for tests and the fuzzer. */
size_t fb_http_sse_frame_size(const char *event, size_t len, const char *id);
size_t fb_http_sse_frame(char *out, const char *event, const char *data, size_t len,
                         const char *id);

#endif
