/* fuzz_http.c: libFuzzer target for the HTTP connection path. Each input is sent over a real
 * loopback socket to a server on this thread's loop, split at points the first byte picks,
 * through parse -> limits -> checks -> static mount or handler (fixed, streamed, SSE,
 * deferred, never answered). Also feeds the bytes to the static resolver and SSE framer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_impl.h"

static uv_loop_t *loop;
static fb_http_server *srv;
static int port;

typedef struct later {
  uv_timer_t t;
  fb_http_req *req;
} later;

static void later_closed(uv_handle_t *h) { free(h->data); }
static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  if (l->req) fb_http_respond_error(l->req, 418, "late");
  uv_close((uv_handle_t *)t, later_closed);
}
static void later_gone(void *ud, fb_http_req *req) {
  (void)req;
  ((later *)ud)->req = NULL;
}

static void handle(void *ud, fb_http_req *req) {
  (void)ud;
  switch (req->path[1]) {
    case 's':
      fb_http_stream_begin(req, 200, NULL, 0);
      fb_http_stream_write(req, req->body, req->body_len);
      fb_http_stream_end(req);
      break;
    case 'e':
      fb_http_sse_begin(req, NULL, 0);
      fb_http_sse_send(req, fb_http_req_header(req, "x-event"), req->body, req->body_len,
                       fb_http_req_header(req, "last-event-id"));
      fb_http_stream_end(req);
      break;
    case 'd': {
      later *l = calloc(1, sizeof *l);
      l->req = req;
      uv_timer_init(loop, &l->t);
      l->t.data = l;
      uv_timer_start(&l->t, later_fire, 0, 0);
      fb_http_req_on_close(req, later_gone, l);
      break;
    }
    case 'n':
      break;  /* never answered: the client's close ends it */
    default: {
      fb_http_header h[] = {{"Content-Type", "text/plain"}};
      fb_http_respond(req, 200, h, 1, req->query, strlen(req->query));
    }
  }
}

static void setup(void) {
  static uv_loop_t l;
  loop = &l;
  uv_loop_init(loop);
  char dir[] = "/tmp/fuzz_http_XXXXXX";
  if (!mkdtemp(dir)) abort();
  char p[256];
  snprintf(p, sizeof p, "%s/index.html", dir);
  FILE *f = fopen(p, "w");
  fputs("<p>hi</p>", f);
  fclose(f);
  fb_http_config cfg = {.on_request = handle};
  fb_http_limits_default(&cfg.limits);
  cfg.limits.max_body = 4096;
  cfg.limits.max_request_line = 512;
  cfg.limits.max_header_bytes = 1024;
  cfg.limits.max_header_line = 256;
  cfg.limits.max_chunk_extension = 64;
  cfg.limits.max_header_fields = 8;
  cfg.limits.max_write_queue = 8192;
  fb_err err;
  srv = fb_http_server_new(loop, &cfg, &err);
  if (!srv || fb_http_server_static(srv, "/f", dir, &err)) abort();
  port = fb_http_server_port(srv);
}

static void pure_paths(const uint8_t *data, size_t size) {
  char path[1024], out[PATH_MAX];
  size_t n = size < sizeof path - 3 ? size : sizeof path - 3;
  path[0] = '/';
  path[1] = 'f';
  memcpy(path + 2, data, n);
  path[n + 2] = '\0';
  fb_http_static_resolve(&srv->mounts[0], path, out, sizeof out);
  char *frame = malloc(fb_http_sse_frame_size("e", size, NULL));
  fb_http_sse_frame(frame, "e", (const char *)data, size, NULL);
  free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!loop) setup();
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 64;  /* bytes per write: exercises every split point */
  data++;
  size--;
  pure_paths(data, size);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort();
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t off = 0;
  int eof = 0, shut = 0;
  char sink[65536];
  for (int spins = 0; spins < 20000 && !eof; spins++) {
    if (off < size) {
      size_t n = size - off < step ? size - off : step;
      ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL);
      if (w > 0) off += (size_t)w;
      else if (w < 0 && errno != EAGAIN) off = size;
    } else if (!shut) {
      shutdown(fd, SHUT_WR);
      shut = 1;
    }
    uv_run(loop, UV_RUN_NOWAIT);
    for (;;) {
      ssize_t r = recv(fd, sink, sizeof sink, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) eof = 1;
      if (r <= 0) break;
    }
  }
  close(fd);
  for (int i = 0; i < 50 && fb_http_server_connections(srv) > 0; i++) uv_run(loop, UV_RUN_NOWAIT);
  return 0;
}
