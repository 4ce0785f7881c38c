/* l_json.c: module `fastbrain.json`: encode/decode between JSON text and Lua values.
 * Integers stay integers and floats stay floats across a round trip, `null` is a unique
 * sentinel and arrays carry a marker metatable so [] and {} survive. This is a direct codec on
 * the Lua stack: cJSON (used by the C core for model files) parses every number to a double and
 * so cannot keep int64 values exact. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules.h"

#define ARRAY_MT "fastbrain.json.array"
#define DEFAULT_MAX_DEPTH 128
#define MAX_DEPTH_CAP 10000

static char null_sentinel; /* its address is json.null */

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid (overlong forms,
 * surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp, min;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static size_t utf8_encode(char *out, unsigned cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- encode ----------------------------------------------------------------------------- */

typedef struct path_seg {
  const char *key;
  size_t keylen;
  lua_Integer index;
} path_seg;

/* An object key while its object is written; the string stays owned by the table. vidx is
 * the stack slot of its value, or 0 when the value is looked up again (large objects). */
typedef struct key_ref {
  const char *s;
  size_t n;
  int vidx;
} key_ref;

#define INLINE_OUT 2048 /* output that fits here needs no allocation */
#define INLINE_KEYS 64  /* keys of the objects being written, all levels together */
#define SMALL_OBJECT 32 /* objects up to this many keys keep their values on the stack */

/* The state of one encode call, on the C stack; the heap only for big output, many keys or
 * a max_depth above the default. */
typedef struct encoder {
  lua_State *L;
  char *buf; /* out, or a heap copy once it outgrows out */
  size_t len, cap;
  int max_depth, depth;
  path_seg *path;           /* [max_depth + 1]: the key or index at each level */
  const void **open_tables; /* [max_depth + 1]: the tables being encoded, for cycles */
  key_ref *keys;            /* [nkeys]: a stack of the keys of each open object */
  size_t nkeys, keys_cap;
  char err[512];
  char out[INLINE_OUT];
  path_seg path_inline[DEFAULT_MAX_DEPTH + 1];
  const void *open_inline[DEFAULT_MAX_DEPTH + 1];
  key_ref keys_inline[INLINE_KEYS];
} encoder;

static int out_of_memory(encoder *e) {
  snprintf(e->err, sizeof e->err, "json: out of memory");
  return -1;
}

/* items with room for need of size sz: the same block, or a bigger one on the heap (the
 * inline block it started in is copied, never freed); NULL when out of memory. */
static void *grow(void *items, size_t *cap, size_t need, size_t sz, const void *inline_block) {
  if (need <= *cap) return items;
  size_t cap2 = *cap * 2;
  while (cap2 < need) cap2 *= 2;
  void *p = items == inline_block ? malloc(cap2 * sz) : realloc(items, cap2 * sz);
  if (!p) return NULL;
  if (items == inline_block) memcpy(p, items, *cap * sz);
  *cap = cap2;
  return p;
}

/* Room on the key stack for n more keys. */
static int reserve_keys(encoder *e, size_t n) {
  key_ref *k = grow(e->keys, &e->keys_cap, e->nkeys + n, sizeof *k, e->keys_inline);
  if (!k) return -1;
  e->keys = k;
  return 0;
}

static inline int put(encoder *e, const char *s, size_t n) {
  if (e->len + n > e->cap) {
    char *b = grow(e->buf, &e->cap, e->len + n, 1, e->out);
    if (!b) return out_of_memory(e);
    e->buf = b;
  }
  memcpy(e->buf + e->len, s, n);
  e->len += n;
  return 0;
}

#define PUTS(e, lit) put((e), (lit), sizeof(lit) - 1)

/* Append "$.a[2].b" for the current path to dst. */
static void format_path(const encoder *e, char *dst, size_t n) {
  size_t off = (size_t)snprintf(dst, n, "$");
  for (int i = 1; i <= e->depth && off < n; i++) {
    const path_seg *p = &e->path[i];
    if (p->key)
      off += (size_t)snprintf(dst + off, n - off, ".%.*s", (int)(p->keylen > 64 ? 64 : p->keylen),
                              p->key);
    else
      off += (size_t)snprintf(dst + off, n - off, "[%lld]", (long long)p->index);
  }
}

static int fail(encoder *e, const char *what) {
  char path[256];
  format_path(e, path, sizeof path);
  snprintf(e->err, sizeof e->err, "json: %s at %s", what, path);
  return -1;
}

static int encode_string(encoder *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (PUTS(e, "\"")) return -1;
  size_t run = 0; /* start of the bytes not yet copied */
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t len = utf8_valid_len((const unsigned char *)s + i, n - i);
      if (!len) {
        char what[64];
        snprintf(what, sizeof what, "invalid UTF-8 in string (byte %zu)", i + 1);
        return fail(e, what);
      }
      i += len;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (put(e, s + run, i - run)) return -1;
    char esc[6] = {'\\', 0};
    size_t elen = 2;
    switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        elen = 6;
    }
    if (put(e, esc, elen)) return -1;
    run = ++i;
  }
  if (put(e, s + run, n - run)) return -1;
  return PUTS(e, "\"");
}

/* Decimal text of v into the end of num[24]; returns where it starts. */
static char *integer_text(char num[24], lua_Integer v) {
  char *p = num + 24;
  lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;
  do *--p = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0) *--p = '-';
  return p;
}

/* The text %.15g prints for d when d is m / 10^k exactly as a double, for the smallest such k,
 * with m < 10^15 and 1e-4 <= |d| (so %g prints it plainly, and strtod reads it back as d:
 * both are the correctly rounded m / 10^k). Returns its length, or 0 to leave d to printf. */
static size_t short_float_text(char num[64], double d) {
  static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  double a = fabs(d);
  if (!(a >= 1e-4 && a < 1e15)) return 0;
  for (int k = 0; k < 16 && a * p10[k] < 1e15; k++) {
    double m = nearbyint(a * p10[k]);
    if (m / p10[k] != a) continue;
    char digits[24];
    char *p = integer_text(digits, (lua_Integer)m);
    size_t nd = (size_t)(digits + 24 - p), n = 0;
    if (d < 0) num[n++] = '-';
    if (nd <= (size_t)k) { /* 0.00ddd */
      num[n++] = '0', num[n++] = '.';
      for (size_t z = nd; z < (size_t)k; z++) num[n++] = '0';
      memcpy(num + n, p, nd), n += nd;
    } else {
      memcpy(num + n, p, nd - (size_t)k), n += nd - (size_t)k;
      num[n++] = '.';
      if (k)
        memcpy(num + n, p + nd - k, (size_t)k), n += (size_t)k;
      else
        num[n++] = '0'; /* stay a float */
    }
    return n;
  }
  return 0;
}

static int encode_number(encoder *e, int idx) {
  if (lua_isinteger(e->L, idx)) {
    char num[24];
    char *p = integer_text(num, lua_tointeger(e->L, idx));
    return put(e, p, (size_t)(num + 24 - p));
  }
  static const char *const formats[] = {"%.15g", "%.16g", "%.17g"};
  char num[64];
  int n;
  double d = lua_tonumber(e->L, idx);
  if (!isfinite(d)) return fail(e, isnan(d) ? "cannot encode NaN" : "cannot encode infinity");
  size_t short_len = short_float_text(num, d);
  if (short_len) return put(e, num, short_len);
  for (int i = 0;; i++) { /* the shortest text that reads back as the same double */
    n = snprintf(num, sizeof num, formats[i], d);
    if (i == 2 || strtod(num, NULL) == d) break;
  }
  if (!strpbrk(num, ".eEn"))
    n += snprintf(num + n, sizeof num - (size_t)n, ".0"); /* stay a float */
  return put(e, num, (size_t)n);
}

static int encode_value(encoder *e, int idx);

static int cmp_keys(const void *a, const void *b) {
  const key_ref *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Small objects by insertion sort (no allocation, few compares), the rest by qsort. */
static void sort_keys(key_ref *k, size_t n) {
  if (n > SMALL_OBJECT) {
    qsort(k, n, sizeof *k, cmp_keys);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    key_ref x = k[i];
    size_t j = i;
    for (; j > 0 && cmp_keys(&k[j - 1], &x) > 0; j--) k[j] = k[j - 1];
    k[j] = x;
  }
}

/* An object's keys, sorted so output is stable. Its first `kept` keys are already on the key
 * stack with their values on the Lua stack; a larger object's keys are gathered here and its
 * values looked up again. */
static int encode_object(encoder *e, int idx, lua_Integer nkeys, int kept) {
  lua_State *L = e->L;
  size_t first = e->nkeys - (size_t)kept;
  if (kept < nkeys) {
    e->nkeys = first;
    if (reserve_keys(e, (size_t)nkeys)) return out_of_memory(e);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* keys are strings: checked by the caller */
      key_ref *k = &e->keys[e->nkeys++];
      k->s = lua_tolstring(L, -2, &k->n);
      k->vidx = 0;
      lua_pop(L, 1);
    }
  }
  sort_keys(e->keys + first, (size_t)nkeys);
  int rc = PUTS(e, "{");
  for (size_t i = first; rc == 0 && i < first + (size_t)nkeys; i++) {
    key_ref k = e->keys[i]; /* a copy: nested objects may move the key stack */
    if (i > first) rc = PUTS(e, ",");
    e->path[e->depth].key = k.s;
    e->path[e->depth].keylen = k.n;
    if (!rc) rc = encode_string(e, k.s, k.n);
    if (!rc) rc = PUTS(e, ":");
    if (!rc && k.vidx) {
      rc = encode_value(e, k.vidx);
    } else if (!rc) {
      lua_pushlstring(L, k.s, k.n);
      lua_rawget(L, idx);
      rc = encode_value(e, lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  e->nkeys = first;
  return rc ? rc : PUTS(e, "}");
}

static int encode_array(encoder *e, int idx, lua_Integer n) {
  if (PUTS(e, "[")) return -1;
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1 && PUTS(e, ",")) return -1;
    e->path[e->depth].key = NULL;
    e->path[e->depth].index = i - 1;
    lua_rawgeti(e->L, idx, i);
    int rc = encode_value(e, lua_gettop(e->L));
    lua_pop(e->L, 1);
    if (rc) return rc;
  }
  return PUTS(e, "]");
}

static int is_marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, ARRAY_MT);
  int marked = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return marked;
}

static int encode_table(encoder *e, int idx) {
  lua_State *L = e->L;
  const void *self = lua_topointer(L, idx);
  for (int i = 0; i < e->depth; i++)
    if (e->open_tables[i] == self) return fail(e, "cycle: table contains itself");
  if (e->depth >= e->max_depth) return fail(e, "nesting deeper than the limit");
  if (!lua_checkstack(L, 8)) return fail(e, "Lua stack exhausted");
  int room = lua_checkstack(L, SMALL_OBJECT + 8); /* to keep a small object's values */

  /* Classify: a marked array, a sequence 1..n (array), or string keys only (object). While
   * only string keys come, the first SMALL_OBJECT stay on the key stack, their values on
   * the Lua stack below the iteration key. */
  int marked = is_marked_array(L, idx);
  int top = lua_gettop(L);
  size_t nkeys0 = e->nkeys;
  lua_Integer count = 0, max_int = 0;
  int strings = 0, others = 0, kept = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) == LUA_TSTRING) {
      strings++;
      if (room && strings == count && kept < SMALL_OBJECT && reserve_keys(e, 1) == 0) {
        key_ref *k = &e->keys[e->nkeys++];
        k->s = lua_tolstring(L, -2, &k->n);
        k->vidx = lua_absindex(L, -2); /* where the value lands after the swap */
        lua_insert(L, -2);             /* value below, key on top for lua_next */
        kept++;
        continue;
      }
    } else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) > 0) {
      if (lua_tointeger(L, -2) > max_int) max_int = lua_tointeger(L, -2);
    } else
      others++;
    lua_pop(L, 1);
  }
  int rc;
  if (marked && (strings || others)) {
    rc = fail(e, "array (json.array) has non-integer keys");
  } else if (marked || (count > 0 && strings == 0 && others == 0 && max_int == count)) {
    e->open_tables[e->depth++] = self;
    rc = encode_array(e, idx, max_int);
    e->depth--;
  } else if (strings == count) {
    e->open_tables[e->depth++] = self;
    rc = encode_object(e, idx, count, kept);
    e->depth--;
  } else {
    rc = fail(e, "table mixes keys: an object needs string keys, an array keys 1..n");
  }
  e->nkeys = nkeys0;
  lua_settop(L, top);
  return rc;
}

static int encode_value(encoder *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return PUTS(e, "null");
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? PUTS(e, "true") : PUTS(e, "false");
    case LUA_TNUMBER: return encode_number(e, idx);
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return encode_string(e, s, n);
    }
    case LUA_TTABLE: return encode_table(e, idx);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == &null_sentinel) return PUTS(e, "null");
      /* fall through */
    default: {
      char what[64];
      snprintf(what, sizeof what, "cannot encode a %s value", luaL_typename(L, idx));
      return fail(e, what);
    }
  }
}

static int opt_max_depth(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return DEFAULT_MAX_DEPTH;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "max_depth");
  lua_Integer d = lua_isnil(L, -1) ? DEFAULT_MAX_DEPTH : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  luaL_argcheck(L, d >= 1 && d <= MAX_DEPTH_CAP, idx, "max_depth must be 1..10000");
  return (int)d;
}

/* json.encode(value [, {max_depth = n}]) -> string; raises on values JSON cannot hold. */
static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int max_depth = opt_max_depth(L, 2);
  encoder e;
  e.L = L, e.buf = e.out, e.len = 0, e.cap = INLINE_OUT, e.max_depth = max_depth, e.depth = 0;
  e.path = e.path_inline, e.open_tables = e.open_inline;
  if (max_depth > DEFAULT_MAX_DEPTH) {
    size_t levels = (size_t)max_depth + 1;
    e.path = malloc(levels * (sizeof(path_seg) + sizeof(void *)));
    if (!e.path) return luaL_error(L, "json: out of memory");
    e.open_tables = (const void **)(e.path + levels);
  }
  e.keys = e.keys_inline, e.nkeys = 0, e.keys_cap = INLINE_KEYS;
  e.err[0] = '\0';
  int rc = encode_value(&e, 1);
  if (rc == 0)
    lua_pushlstring(L, e.buf, e.len);
  else
    lua_pushstring(L, e.err);
  if (e.buf != e.out) free(e.buf);
  if (e.path != e.path_inline) free(e.path);
  if (e.keys != e.keys_inline) free(e.keys);
  if (rc) return lua_error(L);
  return 1;
}

/* ---- decode ----------------------------------------------------------------------------- */

typedef struct decoder {
  lua_State *L;
  const char *s;
  size_t n, pos;
  int max_depth, depth;
  char err[160];
} decoder;

static int derr(decoder *d, const char *what) {
  snprintf(d->err, sizeof d->err, "json: %s at byte %zu", what, d->pos + 1);
  return -1;
}

static void skip_ws(decoder *d) {
  while (d->pos < d->n) {
    char c = d->s[d->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    d->pos++;
  }
}

static int hex4(decoder *d, unsigned *out) {
  if (d->n - d->pos < 4) return derr(d, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = d->s[d->pos + i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else {
      d->pos += (size_t)i;
      return derr(d, "invalid hex digit in \\u escape");
    }
  }
  d->pos += 4;
  *out = v;
  return 0;
}

static int decode_escape(decoder *d, luaL_Buffer *b) {
  char c = d->s[d->pos++]; /* the byte after the backslash */
  switch (c) {
    case '"':
    case '\\':
    case '/': luaL_addchar(b, c); return 0;
    case 'b': luaL_addchar(b, '\b'); return 0;
    case 'f': luaL_addchar(b, '\f'); return 0;
    case 'n': luaL_addchar(b, '\n'); return 0;
    case 'r': luaL_addchar(b, '\r'); return 0;
    case 't': luaL_addchar(b, '\t'); return 0;
    case 'u': {
      unsigned cp, lo;
      if (hex4(d, &cp)) return -1;
      if (cp >= 0xDC00 && cp <= 0xDFFF) {
        d->pos -= 6;
        return derr(d, "lone low surrogate in \\u escape");
      }
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (d->n - d->pos < 2 || d->s[d->pos] != '\\' || d->s[d->pos + 1] != 'u') {
          d->pos -= 6;
          return derr(d, "high surrogate not followed by a low surrogate");
        }
        d->pos += 2;
        if (hex4(d, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          d->pos -= 6;
          return derr(d, "high surrogate not followed by a low surrogate");
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      char u[4];
      luaL_addlstring(b, u, utf8_encode(u, cp));
      return 0;
    }
    default: d->pos--; return derr(d, "invalid escape");
  }
}

static int decode_string(decoder *d) {
  d->pos++; /* opening quote */
  size_t start = d->pos;
  /* Fast path: no escapes. */
  while (d->pos < d->n) {
    unsigned char c = (unsigned char)d->s[d->pos];
    if (c == '"') {
      lua_pushlstring(d->L, d->s + start, d->pos - start);
      d->pos++;
      return 0;
    }
    if (c == '\\') break;
    if (c < 0x20) return derr(d, "control character in string");
    if (c >= 0x80) {
      size_t len = utf8_valid_len((const unsigned char *)d->s + d->pos, d->n - d->pos);
      if (!len) return derr(d, "invalid UTF-8 in string");
      d->pos += len;
    } else {
      d->pos++;
    }
  }
  if (d->pos >= d->n) return derr(d, "unterminated string");
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, d->s + start, d->pos - start);
  while (d->pos < d->n) {
    unsigned char c = (unsigned char)d->s[d->pos];
    if (c == '"') {
      d->pos++;
      luaL_pushresult(&b);
      return 0;
    }
    if (c == '\\') {
      d->pos++;
      if (d->pos >= d->n) break;
      if (decode_escape(d, &b)) return -1;
    } else if (c < 0x20) {
      return derr(d, "control character in string");
    } else if (c >= 0x80) {
      size_t len = utf8_valid_len((const unsigned char *)d->s + d->pos, d->n - d->pos);
      if (!len) return derr(d, "invalid UTF-8 in string");
      luaL_addlstring(&b, d->s + d->pos, len);
      d->pos += len;
    } else {
      luaL_addchar(&b, (char)c);
      d->pos++;
    }
  }
  return derr(d, "unterminated string");
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int decode_number(decoder *d) {
  size_t start = d->pos, i = d->pos;
  const char *s = d->s;
  if (i < d->n && s[i] == '-') i++;
  if (i >= d->n || !is_digit(s[i])) {
    d->pos = i;
    return derr(d, "invalid number");
  }
  if (s[i] == '0')
    i++;
  else
    while (i < d->n && is_digit(s[i])) i++;
  if (i < d->n && s[i] == '.') {
    i++;
    if (i >= d->n || !is_digit(s[i])) {
      d->pos = i;
      return derr(d, "invalid number: digit expected after '.'");
    }
    while (i < d->n && is_digit(s[i])) i++;
  }
  if (i < d->n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < d->n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= d->n || !is_digit(s[i])) {
      d->pos = i;
      return derr(d, "invalid number: digit expected in exponent");
    }
    while (i < d->n && is_digit(s[i])) i++;
  }
  char num[512];
  if (i - start >= sizeof num) return derr(d, "number too long");
  memcpy(num, s + start, i - start);
  num[i - start] = '\0';
  /* Lua reads integers as integers and anything else (or out of int64 range) as a float. */
  if (lua_stringtonumber(d->L, num) == 0) return derr(d, "invalid number");
  d->pos = i;
  return 0;
}

static int literal(decoder *d, const char *word, size_t len) {
  if (d->n - d->pos < len || memcmp(d->s + d->pos, word, len) != 0)
    return derr(d, "invalid literal");
  d->pos += len;
  return 0;
}

static int decode_value(decoder *d);

static int decode_array(decoder *d) {
  lua_State *L = d->L;
  d->pos++;
  lua_newtable(L);
  luaL_setmetatable(L, ARRAY_MT);
  skip_ws(d);
  if (d->pos < d->n && d->s[d->pos] == ']') {
    d->pos++;
    return 0;
  }
  for (lua_Integer i = 1;; i++) {
    if (decode_value(d)) return -1;
    lua_rawseti(L, -2, i);
    skip_ws(d);
    if (d->pos >= d->n) return derr(d, "unterminated array");
    char c = d->s[d->pos++];
    if (c == ']') return 0;
    if (c != ',') {
      d->pos--;
      return derr(d, "expected ',' or ']' in array");
    }
  }
}

static int decode_object(decoder *d) {
  lua_State *L = d->L;
  d->pos++;
  lua_newtable(L);
  skip_ws(d);
  if (d->pos < d->n && d->s[d->pos] == '}') {
    d->pos++;
    return 0;
  }
  for (;;) {
    skip_ws(d);
    if (d->pos >= d->n || d->s[d->pos] != '"') return derr(d, "expected a string key in object");
    size_t key_at = d->pos;
    if (decode_string(d)) return -1;
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL) { /* a second value would silently replace the first */
      char what[120];
      snprintf(what, sizeof what, "duplicate key \"%.80s\"", lua_tostring(L, -2));
      d->pos = key_at;
      return derr(d, what);
    }
    lua_pop(L, 1);
    skip_ws(d);
    if (d->pos >= d->n || d->s[d->pos] != ':') return derr(d, "expected ':' after object key");
    d->pos++;
    if (decode_value(d)) return -1;
    lua_rawset(L, -3);
    skip_ws(d);
    if (d->pos >= d->n) return derr(d, "unterminated object");
    char c = d->s[d->pos++];
    if (c == '}') return 0;
    if (c != ',') {
      d->pos--;
      return derr(d, "expected ',' or '}' in object");
    }
  }
}

static int decode_value(decoder *d) {
  skip_ws(d);
  if (d->pos >= d->n) return derr(d, "unexpected end of input");
  if (!lua_checkstack(d->L, 4)) return derr(d, "Lua stack exhausted");
  char c = d->s[d->pos];
  switch (c) {
    case '{':
    case '[': {
      if (d->depth >= d->max_depth) return derr(d, "nesting deeper than the limit");
      d->depth++;
      int rc = c == '{' ? decode_object(d) : decode_array(d);
      d->depth--;
      return rc;
    }
    case '"': return decode_string(d);
    case 't':
      if (literal(d, "true", 4)) return -1;
      lua_pushboolean(d->L, 1);
      return 0;
    case 'f':
      if (literal(d, "false", 5)) return -1;
      lua_pushboolean(d->L, 0);
      return 0;
    case 'n':
      if (literal(d, "null", 4)) return -1;
      lua_pushlightuserdata(d->L, &null_sentinel);
      return 0;
    default:
      if (c == '-' || is_digit(c)) return decode_number(d);
      return derr(d, "unexpected character");
  }
}

/* json.decode(text [, {max_depth = n}]) -> value, or nil, "json: <what> at byte N". */
static int json_decode(lua_State *L) {
  decoder d = {.L = L};
  d.s = luaL_checklstring(L, 1, &d.n);
  d.max_depth = opt_max_depth(L, 2);
  lua_settop(L, 2);
  if (decode_value(&d) == 0) {
    skip_ws(&d);
    if (d.pos == d.n) return 1;
    derr(&d, "unexpected trailing characters");
  }
  lua_settop(L, 2);
  lua_pushnil(L);
  lua_pushstring(L, d.err);
  return 2;
}

/* json.array([t]) -> t marked as a JSON array (a new empty one without t). */
static int json_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ARRAY_MT);
    luaL_argcheck(L, lua_rawequal(L, -1, -2), 1, "table already has a metatable");
    lua_pop(L, 2);
  }
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

/* json.is_array(t) -> true when t carries the array mark. */
static int json_is_array(lua_State *L) {
  lua_pushboolean(L, lua_istable(L, 1) && is_marked_array(L, 1));
  return 1;
}

int luaopen_fastbrain_json(lua_State *L) {
  static const luaL_Reg funcs[] = {{"encode", json_encode},
                                   {"decode", json_decode},
                                   {"array", json_array},
                                   {"is_array", json_is_array},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, ARRAY_MT)) {
    lua_pushstring(L, "json.array");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushlightuserdata(L, &null_sentinel);
  lua_setfield(L, -2, "null");
  return 1;
}
