/* http_static.c: static file mounts: percent-decoding and refusal of traversal shapes, a real
 * path that must stay under the root (symlinks too), Content-Type by extension, ETag and
 * If-None-Match, index.html, and files streamed in chunks as the client reads them (also for
 * a route's fb_http_respond_file). */
#include "http_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_CHUNK 65536

int fb_http_hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Real path of `path` that must lie under the root; 1 if it is a regular file or a dir. */
static int real_under(const static_mount *m, const char *path, char *out, struct stat *st) {
  if (!realpath(path, out)) return FB_ENOTFOUND;
  if (strncmp(out, m->root, m->root_len) != 0 ||
      (out[m->root_len] != '/' && out[m->root_len] != '\0'))
    return FB_EINVALID;
  if (stat(out, st) != 0) return FB_ENOTFOUND;
  return 0;
}

int fb_http_static_resolve(const static_mount *m, const char *path, char *out, size_t outsz) {
  if (outsz < PATH_MAX) return FB_EINVALID;
  char rel[PATH_MAX];
  size_t n = 0;
  const char *s = path + m->prefix_len;
  for (; *s; s++) {
    char ch = *s;
    int encoded = 0;
    if (ch == '%') {
      int hi = fb_http_hexval(s[1]), lo = hi < 0 ? -1 : fb_http_hexval(s[2]);
      if (lo < 0) return FB_EINVALID;
      ch = (char)(hi * 16 + lo);
      s += 2;
      encoded = 1;
    }
    if (ch == '\0' || ch == '\\' || (encoded && ch == '/')) return FB_EINVALID;
    if (n + 2 >= sizeof rel) return FB_EINVALID;
    rel[n++] = ch;
  }
  rel[n] = '\0';
  /* refuse "." and ".." segments */
  for (char *seg = rel; *seg;) {
    size_t len = strcspn(seg, "/");
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
      return FB_EINVALID;
    seg += len;
    while (*seg == '/') seg++;
  }
  char full[PATH_MAX];
  const char *r = rel;
  while (*r == '/') r++;
  if ((size_t)snprintf(full, sizeof full, "%s/%s", m->root, r) >= sizeof full) return FB_EINVALID;
  struct stat st;
  int rc = real_under(m, full, out, &st);
  if (rc) return rc;
  if (S_ISDIR(st.st_mode)) {
    if ((size_t)snprintf(full, sizeof full, "%s/index.html", out) >= sizeof full)
      return FB_ENOTFOUND;
    if ((rc = real_under(m, full, out, &st))) return rc;
  }
  return S_ISREG(st.st_mode) ? 0 : FB_ENOTFOUND;
}

static const char *content_type(const char *file) {
  static const char *const types[][2] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".wasm", "application/wasm"},
      {".jsonl", "application/x-ndjson"},
      {".md", "text/markdown; charset=utf-8"},
  };
  const char *dot = strrchr(file, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
      if (strcasecmp(dot, types[i][0]) == 0) return types[i][1];
  return "application/octet-stream";
}

/* If-None-Match holds `etag` (or "*"), weak or strong, in a comma list. */
static int etag_matches(const char *inm, const char *etag) {
  size_t el = strlen(etag);
  for (const char *p = inm; *p;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == '*') return 1;
    if (strncmp(p, "W/", 2) == 0) p += 2;
    if (strncmp(p, etag, el) == 0 && (p[el] == '\0' || p[el] == ',' || p[el] == ' ')) return 1;
    p += strcspn(p, ",");
  }
  return 0;
}

static const static_mount *mount_for(const fb_http_server *srv, const char *path) {
  for (int i = 0; i < srv->nmounts; i++) {
    const static_mount *m = &srv->mounts[i];
    if (strncmp(path, m->prefix, m->prefix_len) == 0 &&
        (m->prefix_len == 1 || path[m->prefix_len] == '/' || path[m->prefix_len] == '\0'))
      return m;
  }
  return NULL;
}

int fb_http_static_try(fb_http_conn *c) {
  fb_http_req *r = &c->req;
  if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) return 0;
  const static_mount *m = mount_for(c->srv, r->path);
  if (!m) return 0;
  char file[PATH_MAX];
  if (fb_http_static_resolve(m, r->path, file, sizeof file)) return 0; /* missing or refused */
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return 0;
  }
  char etag[64];
  snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
           (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
               (unsigned long long)st.st_mtim.tv_nsec);
  fb_http_header h[3] = {
      {"ETag", etag}, {"Cache-Control", "no-cache"}, {"Content-Type", content_type(file)}};
  const char *inm = fb_http_req_header(r, "if-none-match");
  if (inm && etag_matches(inm, etag)) {
    close(fd);
    fb_http_respond(r, 304, h, 2, NULL, 0);
    return 1;
  }
  if (fb_http_send_fd(c, 200, fd, (uint64_t)st.st_size, h, 3))
    fb_http_respond_error(r, 500, "internal error"); /* a no-op once the connection is closing */
  return 1;
}

static void file_pump(fb_http_conn *c);

/* The file is closed when the response ends, whole or cut short. */
static void file_end(fb_http_conn *c) {
  if (c->file_fd < 0) return;
  close(c->file_fd);
  c->file_fd = -1;
}

static const fb_http_body_hooks file_hooks = {.drained = file_pump, .end = file_end};

int fb_http_send_fd(fb_http_conn *c, int status, int fd, uint64_t size,
                    const fb_http_header *headers, int nheaders) {
  int rc = fb_http_head(c, &c->out, status, headers, nheaders, (int64_t)size);
  if (rc) {
    close(fd);
    return rc;
  }
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  if ((rc = fb_http_conn_write(c, &b, 1))) {
    close(fd);
    return rc;
  }
  if (c->is_head || size == 0) {
    close(fd);
    fb_http_finish(c);
    return 0;
  }
  c->state = CONN_STREAM;
  c->file_fd = fd;
  c->file_off = 0;
  c->file_left = size;
  fb_http_conn_set_hooks(c, &file_hooks);
  file_pump(c);
  return 0;
}

/* Queue more of the file being streamed; called again as writes complete. */
static void file_pump(fb_http_conn *c) {
  while (c->file_fd >= 0 && !c->closing && c->queued < 2 * FILE_CHUNK) {
    size_t want = c->file_left < FILE_CHUNK ? (size_t)c->file_left : FILE_CHUNK;
    if (c->out.cap < FILE_CHUNK + 1) {
      char *p = realloc(c->out.data, FILE_CHUNK + 1);
      if (!p) {
        fb_http_conn_close(c);
        return;
      }
      c->out.data = p;
      c->out.cap = FILE_CHUNK + 1;
    }
    ssize_t n = pread(c->file_fd, c->out.data, want, c->file_off);
    if (n <= 0) { /* the file shrank under us: the length we promised cannot be kept */
      fb_http_conn_close(c);
      return;
    }
    c->file_off += n;
    c->file_left -= (uint64_t)n;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)n);
    if (fb_http_conn_write(c, &b, 1)) return;
    if (c->file_left == 0) {
      fb_http_finish(c); /* which closes the file (file_end) */
      return;
    }
  }
  if (c->file_fd >= 0 && !c->closing) fb_http_conn_timer(c, c->srv->cfg.limits.idle_timeout_ms);
}

int fb_http_server_static(fb_http_server *srv, const char *prefix, const char *dir, fb_err *err) {
  if (!prefix || prefix[0] != '/')
    return fb_err_set(err, FB_EINVALID, "static prefix '%s' must start with /",
                      prefix ? prefix : "");
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
    return fb_err_set(err, FB_ENOTFOUND, "static dir '%s': not a directory", dir);
  static_mount *ms = realloc(srv->mounts, (size_t)(srv->nmounts + 1) * sizeof *ms);
  if (!ms) return fb_err_set(err, FB_ENOMEM, "out of memory");
  srv->mounts = ms;
  static_mount *m = &ms[srv->nmounts];
  size_t pl = strlen(prefix);
  while (pl > 1 && prefix[pl - 1] == '/') pl--;
  m->prefix = strndup(prefix, pl);
  m->root = strdup(real);
  if (!m->prefix || !m->root) {
    free(m->prefix);
    free(m->root);
    return fb_err_set(err, FB_ENOMEM, "out of memory");
  }
  m->prefix_len = pl;
  m->root_len = strlen(real);
  srv->nmounts++;
  return 0;
}
