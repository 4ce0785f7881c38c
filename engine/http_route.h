/* http_route.h: route patterns matched against request paths without building a regex:
 * "/api/status/:skill" (a :param takes one non-empty segment) and a trailing "*" (the rest,
 * possibly empty). Slashes in a pattern separate segments; empty segments are ignored, so
 * "/a//b/" is "/a/b". Captures are spans of the raw path (not percent-decoded). */
#ifndef FB_HTTP_ROUTE_H
#define FB_HTTP_ROUTE_H

#include <stddef.h>

typedef struct fb_http_route fb_http_route;
typedef struct fb_http_span {
  size_t off, len;
} fb_http_span;

/* NULL when out of memory. The pattern is not checked here (the router does). */
fb_http_route *fb_http_route_new(const char *pattern);
void fb_http_route_free(fb_http_route *r);
int fb_http_route_nparams(const fb_http_route *r);
const char *fb_http_route_param(const fb_http_route *r, int i); /* "skill", or "*" */
/* 1 when path matches, with caps[i] for each param (caps holds nparams entries). */
int fb_http_route_match(const fb_http_route *r, const char *path, size_t len, fb_http_span *caps);

#endif
