/* http_route.c: compiled route patterns (see http_route.h). A pattern becomes a list of
 * parts, each a literal segment, a :param or the trailing *, matched left to right. */
#include "http_route.h"

#include <stdlib.h>
#include <string.h>

typedef enum { PART_LITERAL, PART_PARAM, PART_REST } part_kind;

typedef struct part {
  part_kind kind;
  const char *text; /* the literal, or the param's name; NUL-terminated, in the route's text */
  size_t len;
  int param; /* index among the params */
} part;

struct fb_http_route {
  int nparts, nparams;
  part *parts;
  const char **names; /* [nparams] */
  char text[];        /* the pattern's segments, each NUL-terminated */
};

fb_http_route *fb_http_route_new(const char *pattern) {
  size_t n = strlen(pattern), nseg = 0;
  for (size_t i = 0; i < n; i++)
    if (pattern[i] != '/' && (i == 0 || pattern[i - 1] == '/')) nseg++;
  fb_http_route *r = calloc(1, sizeof *r + n + 1);
  if (!r) return NULL;
  r->parts = calloc(nseg ? nseg : 1, sizeof *r->parts);
  r->names = calloc(nseg ? nseg : 1, sizeof *r->names);
  if (!r->parts || !r->names) {
    fb_http_route_free(r);
    return NULL;
  }
  memcpy(r->text, pattern, n + 1);
  char *save = NULL;
  for (char *seg = strtok_r(r->text, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
    part *p = &r->parts[r->nparts++];
    p->text = seg;
    p->len = strlen(seg);
    p->kind = PART_LITERAL;
    if (strcmp(seg, "*") == 0 || seg[0] == ':') {
      p->kind = seg[0] == '*' ? PART_REST : PART_PARAM;
      if (p->kind == PART_PARAM) p->text = seg + 1, p->len--;
      p->param = r->nparams;
      r->names[r->nparams++] = p->text;
    }
  }
  return r;
}

void fb_http_route_free(fb_http_route *r) {
  if (!r) return;
  free(r->parts);
  free(r->names);
  free(r);
}

int fb_http_route_nparams(const fb_http_route *r) { return r->nparams; }

const char *fb_http_route_param(const fb_http_route *r, int i) { return r->names[i]; }

int fb_http_route_match(const fb_http_route *r, const char *path, size_t len, fb_http_span *caps) {
  if (len == 0 || path[0] != '/') return 0;
  size_t pos = 1;
  for (int i = 0; i < r->nparts; i++) {
    const part *p = &r->parts[i];
    if (i > 0) {
      if (pos >= len || path[pos] != '/') return 0;
      pos++;
    }
    size_t start = pos;
    switch (p->kind) {
      case PART_LITERAL:
        if (len - pos < p->len || memcmp(path + pos, p->text, p->len) != 0) return 0;
        pos += p->len;
        continue;
      case PART_PARAM:
        while (pos < len && path[pos] != '/') pos++;
        if (pos == start) return 0;
        break;
      case PART_REST: pos = len; break;
    }
    caps[p->param] = (fb_http_span){start, pos - start};
  }
  return pos == len;
}
