/* dataset.c: JSONL conversation files (three shapes) read and checked line by line, tokenized
 * examples with answer-only labels, seeded order and split, and statistics. It renders no chat
 * template: callers pass the rendered text and the assistant spans. */
#include "dataset.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "utf8.h"

#define MAX_DATASET_BYTES ((size_t)4 << 30) /* read whole: far past any LoRA dataset */

struct fb_dataset {
  fb_ds_shape shape;
  fb_conv *convs;
  size_t n, cap;
  fb_msg *msgs; /* every conversation's messages, in order */
  size_t n_msgs, msgs_cap;
  char *arena; /* message texts, NUL-terminated */
  size_t arena_len, arena_cap;
  char hash[32];
};

static const char *const role_names[] = {"system", "user", "assistant"};
static const char *const shape_names[] = {"messages", "sharegpt", "alpaca"};

const char *fb_role_name(fb_role r) { return role_names[r]; }
const char *fb_dataset_shape_name(fb_ds_shape s) { return shape_names[s]; }
size_t fb_dataset_count(const fb_dataset *ds) { return ds->n; }
const fb_conv *fb_dataset_conv(const fb_dataset *ds, size_t i) {
  return i < ds->n ? &ds->convs[i] : NULL;
}
fb_ds_shape fb_dataset_shape(const fb_dataset *ds) { return ds->shape; }
const char *fb_dataset_hash(const fb_dataset *ds) { return ds->hash; }

void fb_dataset_free(fb_dataset *ds) {
  if (!ds) return;
  free(ds->convs);
  free(ds->msgs);
  free(ds->arena);
  free(ds);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return FB_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

/* ---- reading ---- */

typedef struct reader {
  const char *path;
  int line;
  fb_ds_report *report;
  fb_err *err;
  int problems;
} reader;

static void problem(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(reader *r, const char *fmt, ...) {
  char msg[280];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->problems++ == 0) fb_err_set(r->err, FB_EFORMAT, "%s:%d: %s", r->path, r->line, msg);
  if (r->report) {
    r->report->total++;
    if (r->report->n < FB_DS_MAX_PROBLEMS)
      snprintf(r->report->lines[r->report->n++], sizeof r->report->lines[0], "%s:%d: %s", r->path,
               r->line, msg);
  }
}

/* A value for messages: the JSON text of v, shortened. */
static const char *show(const cJSON *v, char *buf, size_t size) {
  char *s = cJSON_PrintUnformatted(v);
  snprintf(buf, size, "%s", s ? s : "?");
  if (s && strlen(s) >= size && size > 4) memcpy(buf + size - 4, "...", 4);
  free(s);
  return buf;
}

static int add_msg(fb_dataset *ds, fb_role role, const char *a, const char *b) {
  size_t an = strlen(a), bn = b && *b ? strlen(b) + 2 : 0;
  if (grow((void **)&ds->msgs, &ds->msgs_cap, ds->n_msgs + 1, sizeof *ds->msgs) ||
      grow((void **)&ds->arena, &ds->arena_cap, ds->arena_len + an + bn + 1, 1))
    return FB_ENOMEM;
  fb_msg *m = &ds->msgs[ds->n_msgs++];
  m->role = role;
  m->content = (const char *)(uintptr_t)ds->arena_len; /* an offset until the arena settles */
  m->len = an + bn;
  memcpy(ds->arena + ds->arena_len, a, an);
  if (bn) { /* Alpaca: instruction, a blank line, input */
    memcpy(ds->arena + ds->arena_len + an, "\n\n", 2);
    memcpy(ds->arena + ds->arena_len + an + 2, b, bn - 2);
  }
  ds->arena_len += an + bn;
  ds->arena[ds->arena_len++] = 0;
  return 0;
}

/* A string field of obj: NULL with a problem when missing (if required) or not a string. */
static const char *str_field(reader *r, const cJSON *obj, const char *path, const char *key,
                             int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char buf[80];
  if (!v || cJSON_IsNull(v)) {
    if (required) problem(r, "%s%s%s: missing", path, *path ? "." : "", key);
    return NULL;
  }
  if (!cJSON_IsString(v)) {
    problem(r, "%s%s%s: expected a string, got %s", path, *path ? "." : "", key,
            show(v, buf, sizeof buf));
    return NULL;
  }
  return v->valuestring;
}

/* messages / conversations: an array of {role, content} or {from, value}. */
static int read_turns(reader *r, fb_dataset *ds, const cJSON *obj) {
  int sharegpt = ds->shape == FB_SHAPE_SHAREGPT;
  const char *key = sharegpt ? "conversations" : "messages";
  const char *rkey = sharegpt ? "from" : "role", *ckey = sharegpt ? "value" : "content";
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key), *it;
  if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
    problem(r, "%s: expected a non-empty array", key);
    return 0;
  }
  int i = 0, before = r->problems, answers = 0;
  cJSON_ArrayForEach(it, list) {
    char path[64], buf[80];
    snprintf(path, sizeof path, "%s[%d]", key, i++);
    if (!cJSON_IsObject(it)) {
      problem(r, "%s: expected an object with \"%s\" and \"%s\"", path, rkey, ckey);
      continue;
    }
    const char *role = str_field(r, it, path, rkey, 1), *content = str_field(r, it, path, ckey, 1);
    if (!role) continue;
    int k = -1;
    static const char *const gpt_names[] = {"system", "human", "gpt"};
    for (int j = 0; j < 3; j++)
      if (!strcmp(role, role_names[j]) || (sharegpt && !strcmp(role, gpt_names[j]))) k = j;
    if (k < 0) {
      problem(r, "%s.%s: %s is not one of %s", path, rkey,
              show(cJSON_GetObjectItemCaseSensitive(it, rkey), buf, sizeof buf),
              sharegpt ? "system, human, gpt (or user, assistant)" : "system, user, assistant");
      continue;
    }
    answers += k == FB_ROLE_ASSISTANT;
    if (content && r->problems == before && add_msg(ds, (fb_role)k, content, NULL))
      return FB_ENOMEM;
  }
  if (r->problems == before && !answers)
    problem(r, "%s: no %s turn to learn from", key, sharegpt ? "gpt" : "assistant");
  return 0;
}

static int read_alpaca(reader *r, fb_dataset *ds, const cJSON *obj) {
  int before = r->problems;
  const char *sys = str_field(r, obj, "", "system", 0);
  const char *ins = str_field(r, obj, "", "instruction", 1);
  const char *in = str_field(r, obj, "", "input", 0);
  const char *out = str_field(r, obj, "", "output", 1);
  if (r->problems != before) return 0;
  if ((sys && *sys && add_msg(ds, FB_ROLE_SYSTEM, sys, NULL)) ||
      add_msg(ds, FB_ROLE_USER, ins, in) || add_msg(ds, FB_ROLE_ASSISTANT, out, NULL))
    return FB_ENOMEM;
  return 0;
}

/* The first key of obj (or of an object inside it) that appears twice, or NULL: JSON parsers
 * disagree on which value wins (cJSON keeps the first, the API's the last), so none does. */
static const char *duplicate_key(const cJSON *obj) {
  for (const cJSON *a = obj ? obj->child : NULL; a; a = a->next) {
    if (cJSON_IsObject(obj))
      for (const cJSON *b = a->next; b; b = b->next)
        if (strcmp(a->string, b->string) == 0) return a->string;
    const char *inner = duplicate_key(a);
    if (inner) return inner;
  }
  return NULL;
}

/* A line that is not UTF-8, or holds a NUL byte, would be stored and break every reader of
 * the data after it: refused with its column. */
static int bad_bytes(reader *r, const char *s, size_t n) {
  const char *nul = memchr(s, '\0', n);
  size_t valid = fb_utf8_valid_prefix(s, nul ? (size_t)(nul - s) : n);
  if (nul && (size_t)(nul - s) == valid)
    problem(r, "a NUL byte (column %zu)", valid + 1);
  else if (valid < n)
    problem(r, "invalid UTF-8 (column %zu)", valid + 1);
  else
    return 0;
  return 1;
}

static int read_line(reader *r, fb_dataset *ds, int *shape_line, const char *s, size_t n) {
  if (bad_bytes(r, s, n)) return 0;
  const char *end = NULL;
  cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (!obj) {
    const char *at = cJSON_GetErrorPtr();
    size_t col = at && at >= s && at <= s + n ? (size_t)(at - s) + 1 : 1;
    problem(r, "not valid JSON (column %zu)", col);
    return 0;
  }
  int rc = 0;
  while (end && end < s + n && isspace((unsigned char)*end)) end++;
  const char *dup;
  if (end && end < s + n)
    problem(r, "text after the JSON value (column %zu)", (size_t)(end - s) + 1);
  else if (!cJSON_IsObject(obj))
    problem(r, "expected a JSON object");
  else if ((dup = duplicate_key(obj)))
    problem(r, "duplicate key \"%.80s\"", dup);
  else {
    static const char *const keys[] = {"messages", "conversations", "instruction"};
    int found = -1;
    for (int k = 0; k < 3 && found < 0; k++)
      if (cJSON_GetObjectItemCaseSensitive(obj, keys[k])) found = k;
    if (!*shape_line && found >= 0) {
      ds->shape = (fb_ds_shape)found;
      *shape_line = r->line;
    }
    if (found < 0)
      problem(r, "expected a \"messages\", \"conversations\" or \"instruction\" field");
    else if (found != (int)ds->shape)
      problem(r, "has \"%s\" but line %d made this a \"%s\" file", keys[found], *shape_line,
              keys[ds->shape]);
    else {
      size_t first = ds->n_msgs, before = (size_t)r->problems;
      rc = ds->shape == FB_SHAPE_ALPACA ? read_alpaca(r, ds, obj) : read_turns(r, ds, obj);
      if (!rc && (size_t)r->problems == before) {
        if (grow((void **)&ds->convs, &ds->cap, ds->n + 1, sizeof *ds->convs))
          rc = FB_ENOMEM;
        else {
          fb_conv *c = &ds->convs[ds->n++];
          c->msgs = (fb_msg *)(uintptr_t)first; /* an index until the array settles */
          c->n = (int)(ds->n_msgs - first);
          c->line = r->line;
        }
      } else
        ds->n_msgs = first;
    }
  }
  cJSON_Delete(obj);
  return rc;
}

static int parse(fb_dataset *ds, const char *path, const char *buf, size_t size,
                 fb_ds_report *report, fb_err *err) {
  reader r = {.path = path, .report = report, .err = err};
  size_t pos = size >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
  int shape_line = 0, rc = 0;
  while (pos < size && !rc) {
    const char *s = buf + pos, *nl = memchr(s, '\n', size - pos);
    size_t n = nl ? (size_t)(nl - s) : size - pos;
    pos += n + (nl != NULL);
    r.line++;
    if (n && s[n - 1] == '\r') n--;
    size_t k = 0;
    while (k < n && isspace((unsigned char)s[k])) k++;
    if (k == n) continue; /* blank line */
    if (n > FB_DS_MAX_LINE) {
      problem(&r, "line of %zu bytes is longer than the %u-byte limit", n, FB_DS_MAX_LINE);
      continue;
    }
    rc = read_line(&r, ds, &shape_line, s, n);
  }
  if (rc) return fb_err_set(err, rc, "%s: out of memory", path);
  if (r.problems) {
    if (r.problems > 1) fb_err_prefix(err, "%d bad lines, the first", r.problems);
    return FB_EFORMAT;
  }
  if (ds->n == 0) return fb_err_set(err, FB_EFORMAT, "%s: no examples (the file is empty)", path);
  for (size_t i = 0; i < ds->n_msgs; i++)
    ds->msgs[i].content = ds->arena + (uintptr_t)ds->msgs[i].content;
  for (size_t i = 0; i < ds->n; i++) ds->convs[i].msgs = ds->msgs + (uintptr_t)ds->convs[i].msgs;
  return 0;
}

int fb_dataset_read(fb_dataset **out, const char *path, fb_ds_report *report, fb_err *err) {
  *out = NULL;
  if (report) report->n = report->total = 0;
  char *buf;
  size_t size;
  int rc = fb_read_file(path, &buf, &size, MAX_DATASET_BYTES, err);
  if (rc) return rc;
  fb_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) {
    free(buf);
    return fb_err_set(err, FB_ENOMEM, "%s: out of memory", path);
  }
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < size; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
  snprintf(ds->hash, sizeof ds->hash, "fnv1a64:%016llx", (unsigned long long)h);
  rc = parse(ds, path, buf, size, report, err);
  free(buf);
  if (rc) {
    fb_dataset_free(ds);
    return rc;
  }
  *out = ds;
  return 0;
}

/* ---- examples ---- */

void fb_examples_free(fb_examples *ex) {
  for (size_t i = 0; i < ex->n; i++) {
    free(ex->v[i].ids);
    free(ex->v[i].labels);
  }
  free(ex->v);
  memset(ex, 0, sizeof *ex);
}

int fb_examples_add(fb_examples *ex, fb_tokenizer *tok, const char *text, size_t len,
                    const fb_span *spans, int n_spans, int line, const fb_ex_opts *opts,
                    fb_err *err) {
  fb_tok_ids ids = {0}, offs = {0};
  int rc = fb_tokenizer_encode(tok, text, len, FB_TOK_SPECIAL, &ids, &offs, err);
  if (!rc && grow((void **)&ex->v, &ex->cap, ex->n + 1, sizeof *ex->v)) rc = FB_ENOMEM;
  int32_t *labels = rc ? NULL : malloc((ids.n ? ids.n : 1) * sizeof *labels);
  if (!rc && !labels) rc = FB_ENOMEM;
  if (rc) {
    free(ids.v);
    free(offs.v);
    free(labels);
    return rc == FB_ENOMEM ? fb_err_set(err, rc, "dataset: out of memory") : rc;
  }
  fb_example *e = &ex->v[ex->n++];
  e->full_len = (int32_t)ids.n;
  e->n = opts->max_len > 0 && e->full_len > opts->max_len ? opts->max_len : e->full_len;
  ex->truncated += e->n < e->full_len;
  e->n_trained = 0;
  e->line = line;
  for (int32_t i = 0, s = 0; i < e->n; i++) {
    size_t at = (size_t)offs.v[i];
    while (s < n_spans && spans[s].end <= at) s++; /* spans are in order */
    int in = opts->train_on_all || (s < n_spans && spans[s].start <= at);
    labels[i] = in ? ids.v[i] : FB_IGNORE_INDEX;
    e->n_trained += in;
  }
  e->ids = ids.v;
  e->labels = labels;
  free(offs.v);
  return 0;
}

/* ---- order and split ---- */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int fb_dataset_order(size_t n, uint64_t seed, size_t **order) {
  size_t *o = malloc((n ? n : 1) * sizeof *o);
  if (!o) return FB_ENOMEM;
  for (size_t i = 0; i < n; i++) o[i] = i;
  for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
    size_t j = (size_t)(splitmix64(&seed) % i), t = o[i - 1];
    o[i - 1] = o[j];
    o[j] = t;
  }
  *order = o;
  return 0;
}

size_t fb_dataset_eval_count(size_t n, double fraction, size_t count) {
  size_t k = count ? count : (size_t)(fraction * (double)n + 0.5);
  return n == 0 ? 0 : k >= n ? n - 1 : k;
}

/* ---- statistics ---- */

typedef struct prompt_key {
  uint64_t exact, folded;
} prompt_key;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static size_t repeats(uint64_t *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_u64);
  size_t r = 0;
  for (size_t i = 1; i < n; i++) r += v[i] == v[i - 1];
  return r;
}

/* Hash of everything before the last assistant turn; `fold` ignores case, spacing and
 * punctuation (ASCII), which finds near-duplicates. */
static uint64_t prompt_hash(const fb_conv *c, int fold) {
  int last = c->n - 1;
  while (last >= 0 && c->msgs[last].role != FB_ROLE_ASSISTANT) last--;
  uint64_t h = 1469598103934665603ULL;
  for (int m = 0; m < last; m++) {
    h = (h ^ (uint64_t)(c->msgs[m].role + 1)) * 1099511628211ULL;
    for (size_t i = 0; i < c->msgs[m].len; i++) {
      unsigned char ch = (unsigned char)c->msgs[m].content[i];
      if (fold && ch < 0x80 && !isalnum(ch)) continue;
      h = (h ^ (fold ? (unsigned char)tolower(ch) : ch)) * 1099511628211ULL;
    }
  }
  return h;
}

int fb_dataset_stats(const fb_dataset *ds, const fb_examples *ex, fb_ds_stats *st) {
  memset(st, 0, sizeof *st);
  st->examples = ds->n;
  uint64_t *exact = malloc((ds->n + 1) * sizeof *exact),
           *folded = malloc((ds->n + 1) * sizeof *folded);
  if (!exact || !folded) {
    free(exact);
    free(folded);
    return FB_ENOMEM;
  }
  for (size_t i = 0; i < ds->n; i++) {
    const fb_conv *c = &ds->convs[i];
    exact[i] = prompt_hash(c, 0);
    folded[i] = prompt_hash(c, 1);
    for (int m = 0; m < c->n; m++) {
      if (c->msgs[m].role != FB_ROLE_ASSISTANT) continue;
      size_t chars = 0;
      for (size_t k = 0; k < c->msgs[m].len; k++) {
        unsigned char ch = (unsigned char)c->msgs[m].content[k];
        chars += (ch & 0xC0) != 0x80 && !isspace(ch);
      }
      if (chars == 0)
        st->empty_answers++;
      else if (chars < 8)
        st->short_answers++;
    }
  }
  st->duplicate_prompts = repeats(exact, ds->n);
  st->near_duplicate_prompts = repeats(folded, ds->n) - st->duplicate_prompts;
  free(exact);
  free(folded);
  for (int b = 0; b < FB_DS_HIST; b++) st->hist_upper[b] = b + 1 < FB_DS_HIST ? 16 << b : INT32_MAX;
  if (!ex || !ex->n) return 0;
  st->truncated = ex->truncated;
  st->min_len = INT32_MAX;
  for (size_t i = 0; i < ex->n; i++) {
    const fb_example *e = &ex->v[i];
    st->tokens += (size_t)e->n;
    st->trained_tokens += (size_t)e->n_trained;
    st->no_trained_tokens += e->n_trained == 0;
    if (e->n < st->min_len) st->min_len = e->n;
    if (e->n > st->max_len) st->max_len = e->n;
    int b = 0;
    while (e->full_len > st->hist_upper[b]) b++;
    st->hist[b]++;
    /* keep the FB_DS_LONGEST longest (by length before truncation), longest first */
    int k = st->n_longest < FB_DS_LONGEST ? st->n_longest++ : FB_DS_LONGEST;
    while (k > 0 && st->longest_len[k - 1] < e->full_len) {
      if (k < FB_DS_LONGEST) {
        st->longest_len[k] = st->longest_len[k - 1];
        st->longest_line[k] = st->longest_line[k - 1];
      }
      k--;
    }
    if (k < FB_DS_LONGEST) {
      st->longest_len[k] = e->full_len;
      st->longest_line[k] = e->line;
    }
  }
  st->mean_len = (double)st->tokens / (double)ex->n;
  return 0;
}
