/* http_impl.h: the private structures shared by the files of the HTTP server (http_server.c,
 * http_conn.c, http_response.c, http_static.c, http_sse.c, http_guard.c). Not part of the public surface: include http.h. */
#ifndef FB_HTTP_IMPL_H
#define FB_HTTP_IMPL_H

#include <llhttp.h>
#include <time.h>

#include "http.h"

typedef enum {
  CONN_IDLE,    /* waiting for the first byte of a request */
  CONN_HEADERS, /* inside a request line / headers */
  CONN_BODY,    /* reading a body */
  CONN_HANDLER, /* request handed out, no response yet */
  CONN_STREAM,  /* streamed response in progress (chunked or SSE or a file) */
  CONN_LINGER,  /* final response sent, draining input until the peer closes */
} conn_state;

typedef struct static_mount {
  char *prefix; /* "/" or "/x" (no trailing slash except the root) */
  char *root;   /* realpath of the directory */
  size_t prefix_len, root_len;
} static_mount;

struct fb_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t grace;
  fb_http_config cfg; /* strings below are owned copies */
  char *host, *token;
  char **allowed_hosts; /* NULL-terminated */
  int port;
  static_mount *mounts;
  int nmounts;
  fb_http_conn *conns; /* every open connection, doubly linked */
  int nconns;
  int nsse;         /* connections with an event stream open */
  int closing;      /* 1 after fb_http_server_close */
  int handles_open; /* listener + grace timer still open */
  void (*done)(void *ud);
  void *done_ud;
  /* Set by http_server.c for its connections, which call no server or static code by name:
   * answer_static answers a request from a static mount (1) or lets it through (0);
   * conn_freed runs after each connection is gone. */
  int (*answer_static)(fb_http_conn *c);
  void (*conn_freed)(fb_http_server *srv);
  char date[40]; /* Date header, cached for date_sec */
  time_t date_sec;
};

typedef struct buf {
  char *data;
  size_t len, cap;
} buf;

/* What the kind of response in progress asks of its connection (http_sse.c, http_static.c):
 * the connection calls these and knows no kind by name. NULL members are not wanted. */
typedef struct fb_http_body_hooks {
  void (*drained)(fb_http_conn *c); /* the output queue moved: room for more */
  void (*tick)(fb_http_conn *c);    /* the stream's timer fired (else the connection closes) */
  void (*end)(fb_http_conn *c);     /* the response ended or the connection closes: release */
} fb_http_body_hooks;

struct fb_http_conn {
  fb_http_server *srv;
  fb_http_conn *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;             /* armed for timer_due (0: not armed); see fb_http_conn_timer */
  uint64_t deadline, timer_due; /* loop ms; deadline 0 = none */
  int handles_open;             /* tcp + timer: freed when it drops to 0 */
  conn_state state;
  uint64_t since; /* loop ms the current header, body or idle wait began */
  llhttp_t parser;
  buf in; /* bytes read but not parsed yet, from in_off */
  size_t in_off;
  buf head; /* url, then "name\0value\0" pairs */
  buf body;
  buf out;      /* scratch for response heads and file chunks */
  size_t *hoff; /* per header: offset of name in head; value follows name */
  int nfields, hcap;
  int in_value;                      /* the last header callback was a value */
  int value_parts;                   /* value spans seen for the current header */
  int value_at_end;                  /* the last value span ended where the input did */
  const char *exec_start, *exec_end; /* the input given to llhttp_execute now */
  size_t url_len, header_bytes;
  size_t line_bytes; /* the current header field, name and value */
  size_t ext_bytes;  /* the current chunk's extensions */
  uint64_t max_body;
  int err_status; /* set by a callback that returned HPE_USER */
  const char *err_msg;
  fb_http_header *headers;
  fb_http_req req;
  char remote[64];
  int keep_alive; /* the current request allows another on this connection */
  int is_head;
  int chunked_out;                 /* the response in progress is chunked */
  const fb_http_body_hooks *hooks; /* of the response in progress, or NULL */
  int processing;                  /* process_input is on the stack */
  int reading;                     /* uv_read_start is in effect */
  int closing;
  size_t queued; /* bytes handed to uv_write and not completed */
  fb_http_close_fn on_close;
  void *on_close_ud;
  int file_fd; /* static file being streamed, or -1 */
  uint64_t file_left;
  int64_t file_off;
};

/* http_conn.c */
void fb_http_conn_accept(fb_http_server *srv); /* one pending connection on the listener */
int fb_http_conn_write(fb_http_conn *c, const uv_buf_t *bufs, unsigned nbufs);
void fb_http_finish(fb_http_conn *c); /* the response to the current request is fully queued */
void fb_http_conn_close(fb_http_conn *c);
void fb_http_conn_timer(fb_http_conn *c, uint64_t ms); /* the deadline, ms from now */
/* The response in progress takes its hooks (NULL: none); the previous ones end first. */
void fb_http_conn_set_hooks(fb_http_conn *c, const fb_http_body_hooks *hooks);

/* http_response.c */
int fb_http_buf_reserve(buf *b, size_t len); /* room for len more bytes and a NUL */
int fb_http_buf_add(buf *b, const void *data, size_t len);
/* The response header block for `status` into out; adds the standard headers. */
int fb_http_head(fb_http_conn *c, buf *out, int status, const fb_http_header *headers, int nheaders,
                 int64_t content_length);
/* {"error": msg} as JSON, with one more header when extra is not NULL. */
int fb_http_respond_json_error(fb_http_req *r, int status, const char *msg,
                               const fb_http_header *extra);

/* http_guard.c: pure checks, no I/O. Each returns 0 or the status to answer, with *msg. */
int fb_http_is_loopback_host(const char *host);
int fb_http_guard_request(const fb_http_server *srv, const fb_http_req *req, const char **msg);
/* 401 with *challenge, the WWW-Authenticate value (RFC 6750), when a token is configured and
 * the request lacks it or has another. */
int fb_http_guard_token(const fb_http_server *srv, const fb_http_req *req, const char **msg,
                        const char **challenge);
/* The cookie a browser carries the token in: "fastbrain-<port>". A token checked by
 * fb_http_guard_token in an Authorization: Bearer header or in this cookie. */
void fb_http_token_cookie_name(const fb_http_server *srv, char *out, size_t outsz);
/* The dashboard's link, GET / ?token=T: 302 when T is the token (answer with the cookie and
 * Location: /), 401 when it is not, 0 when the request is no such link (or none is set). */
int fb_http_guard_link(const fb_http_server *srv, const fb_http_req *req, const char **msg);
/* 1 when a token may be configured: RFC 6750 b64token characters, under 256 bytes. */
int fb_http_token_valid(const char *token);

/* http_static.c */
int fb_http_hexval(char ch); /* a hex digit's value, or -1 (for percent-decoding) */
/* Resolve raw `path` under `m`: 0 with the real file in out, FB_ENOTFOUND when nothing is
 * there, FB_EINVALID for a path that is refused (traversal shapes, out of the root). */
int fb_http_static_resolve(const static_mount *m, const char *path, char *out, size_t outsz);
/* 1 when a static mount answered the request with a file (or 304), 0 to fall through. */
int fb_http_static_try(fb_http_conn *c);
/* Answer with the open file fd of `size` bytes, streamed as the client reads it; fd is closed
 * here (now on failure, else at the end). 0, or the error of the head or the first write. */
int fb_http_send_fd(fb_http_conn *c, int status, int fd, uint64_t size,
                    const fb_http_header *headers, int nheaders);

/* http_sse.c */
int fb_http_sse_active(const fb_http_conn *c); /* an event stream is the response in progress */

#endif
