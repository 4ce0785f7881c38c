/* http_guard.c: the request checks that need no I/O: Host against loopback names and the
 * configured ones (DNS rebinding), Content-Type and Origin for mutating methods (CSRF), and
 * the token in constant time: a bearer header, the dashboard's cookie, or the one link that sets
 * that cookie. It decides statuses; it does not write responses. */
#include "http_impl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int fb_http_is_loopback_host(const char *host) {
  if (strcmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0) return 1;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1) return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
  return 0;
}

/* The host name of a Host header value without its port: "[::1]:80" -> "::1". */
static int host_name(const char *value, char *out, size_t outsz) {
  const char *start = value, *end;
  if (*value == '[') {
    start = value + 1;
    end = strchr(start, ']');
    if (!end || (end[1] && end[1] != ':')) return -1;
  } else {
    end = strchr(value, ':');
    if (!end)
      end = value + strlen(value);
    else if (strchr(end + 1, ':'))
      return -1;
  }
  size_t n = (size_t)(end - start);
  if (n == 0 || n >= outsz) return -1;
  memcpy(out, start, n);
  out[n] = '\0';
  return 0;
}

static int host_allowed(const fb_http_server *srv, const char *value) {
  char name[256];
  if (host_name(value, name, sizeof name)) return 0;
  if (fb_http_is_loopback_host(name)) return 1;
  if (strcmp(srv->host, "0.0.0.0") != 0 && strcmp(srv->host, "::") != 0 &&
      strcasecmp(name, srv->host) == 0)
    return 1;
  for (char **h = srv->allowed_hosts; h && *h; h++)
    if (strcasecmp(name, *h) == 0) return 1;
  return 0;
}

/* "application/json; charset=utf-8" -> matches "application/json". */
static int media_type_is(const char *value, const char *want) {
  size_t n = strlen(want);
  if (strncasecmp(value, want, n) != 0) return 0;
  return value[n] == '\0' || value[n] == ';' || value[n] == ' ';
}

int fb_http_guard_request(const fb_http_server *srv, const fb_http_req *req, const char **msg) {
  const char *host = fb_http_req_header(req, "host");
  if (host && !host_allowed(srv, host)) {
    *msg = "host not allowed";
    return 403;
  }
  const char *m = req->method;
  if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0) return 0;
  const char *ct = fb_http_req_header(req, "content-type");
  if (!ct ||
      !(media_type_is(ct, "application/json") || media_type_is(ct, "application/x-ndjson"))) {
    *msg = "content-type must be application/json";
    return 403;
  }
  const char *origin = fb_http_req_header(req, "origin");
  if (origin) {
    size_t hl = host ? strlen(host) : 0;
    if (!host || strncasecmp(origin, "http://", 7) != 0 || strlen(origin) != 7 + hl ||
        strcasecmp(origin + 7, host) != 0) {
      *msg = "origin not allowed";
      return 403;
    }
  }
  return 0;
}

/* 1 when got[0..gl) is the token; the time depends on the token's length only. */
static int token_equal(const char *token, const char *got, size_t gl) {
  size_t tl = strlen(token);
  unsigned diff = gl != tl;
  for (size_t i = 0; i < tl; i++)
    diff |= (unsigned char)token[i] ^ (unsigned char)(i < gl ? got[i] : 0);
  return diff == 0;
}

void fb_http_token_cookie_name(const fb_http_server *srv, char *out, size_t outsz) {
  snprintf(out, outsz, "fastbrain-%d", srv->port); /* cookies ignore ports: one per server */
}

/* The value of cookie `name` in any Cookie header, as a span; NULL when there is none. */
static const char *cookie_value(const fb_http_req *req, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (int i = 0; i < req->nheaders; i++) {
    if (strcmp(req->headers[i].name, "cookie") != 0) continue;
    for (const char *p = req->headers[i].value; *p;) {
      p += strspn(p, " ;");
      size_t pair = strcspn(p, ";");
      if (pair > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
        *len = pair - nl - 1;
        return p + nl + 1;
      }
      p += pair;
    }
  }
  return NULL;
}

int fb_http_guard_token(const fb_http_server *srv, const fb_http_req *req, const char **msg,
                        const char **challenge) {
  if (!srv->token) return 0;
  const char *auth = fb_http_req_header(req, "authorization"), *got = NULL;
  size_t gl = 0;
  char name[32];
  fb_http_token_cookie_name(srv, name, sizeof name);
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
    got = auth + 7;
    gl = strlen(got);
  } else {
    got = cookie_value(req, name, &gl); /* the dashboard's, set by the token link */
  }
  if (!got) {
    /* RFC 6750 3.1: no error code when no bearer token was sent at all */
    *msg = "missing token";
    *challenge = "Bearer realm=\"fastbrain\"";
    return 401;
  }
  if (!token_equal(srv->token, got, gl)) {
    *msg = "bad token";
    *challenge = "Bearer realm=\"fastbrain\", error=\"invalid_token\"";
    return 401;
  }
  return 0;
}

/* The percent-decoded value of `token=` in a query into out; its length, -1 when malformed or
 * too long, -2 when absent. '+' stays '+': tokens are RFC 6750 b64token, where it is a letter. */
static long query_token(const char *query, char *out, size_t outsz) {
  for (const char *p = query; *p;) {
    size_t pair = strcspn(p, "&");
    if (strncmp(p, "token=", 6) == 0) {
      size_t n = 0;
      for (const char *s = p + 6; s < p + pair; s++) {
        int ch = (unsigned char)*s;
        if (ch == '%') {
          int hi = fb_http_hexval(s[1]), lo = hi < 0 ? -1 : fb_http_hexval(s[2]);
          if (lo < 0) return -1;
          ch = hi * 16 + lo;
          s += 2;
        }
        if (n + 1 >= outsz) return -1;
        out[n++] = (char)ch;
      }
      return (long)n;
    }
    p += pair + (p[pair] == '&');
  }
  return -2;
}

int fb_http_guard_link(const fb_http_server *srv, const fb_http_req *req, const char **msg) {
  if (!srv->token || strcmp(req->path, "/") != 0 ||
      (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0))
    return 0;
  char got[256];
  long gl = query_token(req->query, got, sizeof got);
  if (gl == -2) return 0;
  if (gl < 0 || !token_equal(srv->token, got, (size_t)gl)) {
    *msg = "bad token";
    return 401;
  }
  return 302;
}

int fb_http_token_valid(const char *token) {
  /* RFC 6750 b64token, which is also safe in a cookie and a query */
  size_t n = strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
  n += strspn(token + n, "=");
  return n > 0 && token[n] == '\0' && n < 256;
}
