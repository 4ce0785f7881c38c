/* bpe.c: vocabulary and merge hash tables and the BPE merge loop (a binary heap of candidate
 * pairs with lazy invalidation, as in Hugging Face tokenizers). No I/O, no Unicode handling. */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c *= 2;
  return c;
}

int fb_vocab_init(fb_vocab *v, int32_t n_ids) {
  memset(v, 0, sizeof *v);
  v->n_ids = n_ids;
  v->n_slots = pow2_at_least((size_t)n_ids * 2 + 2);
  v->off = malloc(((size_t)n_ids + 1) * sizeof *v->off);
  v->len = calloc((size_t)n_ids + 1, sizeof *v->len);
  v->slots = malloc(v->n_slots * sizeof *v->slots);
  v->arena_cap = 4096;
  v->arena = malloc(v->arena_cap);
  if (!v->off || !v->len || !v->slots || !v->arena) {
    fb_vocab_free(v);
    return FB_ENOMEM;
  }
  for (int32_t i = 0; i < n_ids; i++) v->off[i] = SIZE_MAX;
  memset(v->slots, 0xff, v->n_slots * sizeof *v->slots);
  return 0;
}

void fb_vocab_free(fb_vocab *v) {
  free(v->arena);
  free(v->off);
  free(v->len);
  free(v->slots);
  memset(v, 0, sizeof *v);
}

/* The slot holding s, or the empty slot where it would go. */
static size_t vocab_slot(const fb_vocab *v, const char *s, size_t n) {
  size_t mask = v->n_slots - 1, i = hash_bytes(s, n) & mask;
  for (;;) {
    int32_t id = v->slots[i];
    if (id < 0 || (v->len[id] == n && memcmp(v->arena + v->off[id], s, n) == 0)) return i;
    i = (i + 1) & mask;
  }
}

int fb_vocab_put(fb_vocab *v, const char *s, size_t n, int32_t id, int32_t *other) {
  if (other) *other = -1;
  if (id < 0 || id >= v->n_ids) return FB_EINVALID;
  if (v->off[id] != SIZE_MAX) {
    if (other) *other = id;
    return FB_EINVALID;
  }
  size_t slot = vocab_slot(v, s, n);
  if (v->slots[slot] >= 0) {
    if (other) *other = v->slots[slot];
    return FB_EINVALID;
  }
  if (v->arena_len + n > v->arena_cap) {
    size_t cap = v->arena_cap;
    while (cap < v->arena_len + n) cap *= 2;
    char *a = realloc(v->arena, cap);
    if (!a) return FB_ENOMEM;
    v->arena = a;
    v->arena_cap = cap;
  }
  memcpy(v->arena + v->arena_len, s, n);
  v->off[id] = v->arena_len;
  v->len[id] = (uint32_t)n;
  v->arena_len += n;
  v->slots[slot] = id;
  v->n_used++;
  return 0;
}

int32_t fb_vocab_get(const fb_vocab *v, const char *s, size_t n) {
  if (!v->slots) return -1;
  return v->slots[vocab_slot(v, s, n)];
}

const char *fb_vocab_str(const fb_vocab *v, int32_t id, size_t *n) {
  if (id < 0 || id >= v->n_ids || v->off[id] == SIZE_MAX) return NULL;
  *n = v->len[id];
  return v->arena + v->off[id];
}

static uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

int fb_merges_init(fb_merges *m, size_t n) {
  memset(m, 0, sizeof *m);
  m->n_slots = pow2_at_least(n * 2 + 2);
  m->keys = calloc(m->n_slots, sizeof *m->keys);
  m->rank = malloc(m->n_slots * sizeof *m->rank);
  m->merged = malloc(m->n_slots * sizeof *m->merged);
  if (!m->keys || !m->rank || !m->merged) {
    fb_merges_free(m);
    return FB_ENOMEM;
  }
  return 0;
}

void fb_merges_free(fb_merges *m) {
  free(m->keys);
  free(m->rank);
  free(m->merged);
  memset(m, 0, sizeof *m);
}

static size_t merge_slot(const fb_merges *m, uint64_t key) {
  size_t mask = m->n_slots - 1, i = mix64(key) & mask;
  while (m->keys[i] && m->keys[i] != key) i = (i + 1) & mask;
  return i;
}

int fb_merges_put(fb_merges *m, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
  if (m->n_used * 2 >= m->n_slots) return FB_ENOMEM; /* sized by fb_merges_init */
  size_t i = merge_slot(m, key);
  int had = m->keys[i] != 0;
  if (!had) m->n_used++;
  m->keys[i] = key;
  m->rank[i] = rank;
  m->merged[i] = merged;
  return had;
}

/* The merge of (left, right): 1 and its rank and id, or 0 when the pair does not merge. */
static int merge_find(const fb_merges *m, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *merged) {
  if (left < 0 || right < 0) return 0;
  uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
  size_t i = merge_slot(m, key);
  if (!m->keys[i]) return 0;
  *rank = m->rank[i];
  *merged = m->merged[i];
  return 1;
}

typedef struct cand {
  uint32_t rank, start; /* priority: rank, then leftmost */
  int32_t left, right;
  uint32_t llen, rlen; /* sizes when queued: a changed symbol makes the entry stale */
  int32_t merged;
} cand;

static int cand_less(const cand *a, const cand *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->start < b->start);
}

static int heap_push(fb_bpe_work *w, cand c) {
  if (w->heap_len == w->heap_cap) {
    size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
    cand *h = realloc(w->heap, cap * sizeof *h);
    if (!h) return FB_ENOMEM;
    w->heap = h;
    w->heap_cap = cap;
  }
  cand *h = w->heap;
  size_t i = w->heap_len++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!cand_less(&c, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = c;
  return 0;
}

static cand heap_pop(fb_bpe_work *w) {
  cand *h = w->heap, top = h[0], last = h[--w->heap_len];
  size_t i = 0, n = w->heap_len;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && cand_less(&h[c + 1], &h[c])) c++;
    if (!cand_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (n) h[i] = last;
  return top;
}

static int push_pair(const fb_merges *m, fb_bpe_work *w, int32_t left) {
  fb_bpe_sym *s = w->sym;
  int32_t right = s[left].next;
  if (right < 0) return 0;
  cand c;
  if (!merge_find(m, s[left].id, s[right].id, &c.rank, &c.merged)) return 0;
  c.start = s[left].start;
  c.left = left;
  c.right = right;
  c.llen = s[left].len;
  c.rlen = s[right].len;
  return heap_push(w, c);
}

void fb_bpe_work_free(fb_bpe_work *w) {
  free(w->sym);
  free(w->heap);
  memset(w, 0, sizeof *w);
}

int fb_bpe_reserve(fb_bpe_work *w, size_t n) {
  if (n <= w->sym_cap) return 0;
  size_t cap = w->sym_cap ? w->sym_cap : 64;
  while (cap < n) cap *= 2;
  fb_bpe_sym *s = realloc(w->sym, cap * sizeof *s);
  if (!s) return FB_ENOMEM;
  w->sym = s;
  w->sym_cap = cap;
  return 0;
}

int fb_bpe_merge(const fb_merges *m, fb_bpe_work *w, size_t n) {
  fb_bpe_sym *s = w->sym;
  for (size_t i = 0; i < n; i++) {
    s[i].prev = (int32_t)i - 1;
    s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  w->heap_len = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if (push_pair(m, w, (int32_t)i)) return FB_ENOMEM;
  while (w->heap_len) {
    cand c = heap_pop(w);
    fb_bpe_sym *l = &s[c.left], *r = &s[c.right];
    if (l->len != c.llen || r->len != c.rlen || l->next != c.right) continue; /* stale */
    l->id = c.merged;
    l->len += r->len;
    l->next = r->next;
    if (r->next >= 0) s[r->next].prev = c.left;
    r->len = 0;
    if (l->prev >= 0 && push_pair(m, w, l->prev)) return FB_ENOMEM;
    if (push_pair(m, w, c.left)) return FB_ENOMEM;
  }
  return 0;
}
