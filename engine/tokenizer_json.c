/* tokenizer_json.c: reading tokenizer.json's fields for tokenizer_load.c, every error naming
 * the file and the field's path ("tokenizer.json: pre_tokenizer.pretokenizers[1].pattern:
 * missing"). */
#include "tokenizer_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

int tok_fail(fb_err *err, int code, const fb_tokenizer *t, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fb_err_set(err, code, "%s: %s", t->name, msg);
}

const char *tok_quote(const char *s, size_t n, char *buf, size_t size) {
  size_t o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < n && o + 8 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == 40) {
      o += (size_t)snprintf(buf + o, size - o, "...");
      break;
    }
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20)
      o += (size_t)snprintf(buf + o, size - o, "\\u%04x", c);
    else
      buf[o++] = (char)c;
  }
  buf[o++] = '"';
  buf[o] = 0;
  return buf;
}

const cJSON *tok_field(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return v && !cJSON_IsNull(v) ? v : NULL;
}

int tok_get_bool(const fb_tokenizer *t, const cJSON *obj, const char *path, const char *key,
                 int dflt, int *out, fb_err *err) {
  const cJSON *v = tok_field(obj, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v))
    return tok_fail(err, FB_EFORMAT, t, "%s.%s: expected true or false", path, key);
  *out = cJSON_IsTrue(v);
  return 0;
}

int tok_get_str(const fb_tokenizer *t, const cJSON *obj, const char *path, const char *key,
                int required, const char **out, fb_err *err) {
  const cJSON *v = tok_field(obj, key);
  *out = NULL;
  if (!v) return required ? tok_fail(err, FB_EFORMAT, t, "%s.%s: missing", path, key) : 0;
  if (!cJSON_IsString(v))
    return tok_fail(err, FB_EFORMAT, t, "%s.%s: expected a string", path, key);
  *out = v->valuestring;
  return 0;
}

int tok_get_type(const fb_tokenizer *t, const cJSON *obj, const char *path, const char **out,
                 fb_err *err) {
  if (!cJSON_IsObject(obj)) return tok_fail(err, FB_EFORMAT, t, "%s: expected an object", path);
  return tok_get_str(t, obj, path, "type", 1, out, err);
}

int tok_get_int(const fb_tokenizer *t, const cJSON *v, const char *path, double lo, double hi,
                int32_t *out, fb_err *err) {
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
      v->valuedouble > hi)
    return tok_fail(err, FB_EFORMAT, t, "%s: expected an integer in %.0f..%.0f", path, lo, hi);
  *out = (int32_t)v->valuedouble;
  return 0;
}

int tok_get_pattern(const fb_tokenizer *t, const cJSON *obj, const char *path, int *is_regex,
                    const char **text, fb_err *err) {
  const cJSON *p = tok_field(obj, "pattern");
  if (!cJSON_IsObject(p)) return tok_fail(err, FB_EFORMAT, t, "%s.pattern: missing", path);
  const cJSON *s = tok_field(p, "String"), *r = tok_field(p, "Regex");
  if (cJSON_IsString(s)) {
    *is_regex = 0;
    *text = s->valuestring;
    return 0;
  }
  if (cJSON_IsString(r)) {
    *is_regex = 1;
    *text = r->valuestring;
    return 0;
  }
  return tok_fail(err, FB_EFORMAT, t, "%s.pattern: expected {\"String\": ...} or {\"Regex\": ...}",
                  path);
}
