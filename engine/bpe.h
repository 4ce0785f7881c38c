/* bpe.h: the BPE model's tables and merge loop: a string -> id vocabulary, a (left, right) ->
 * (rank, merged) merge table, and the lowest-rank-first, leftmost-first merge of one word.
 * It reads no files and knows nothing of normalizers, pre-tokenizers or added tokens. */
#ifndef FB_BPE_H
#define FB_BPE_H

#include <stddef.h>
#include <stdint.h>

/* Token strings live in one arena; ids index `off`/`len`. Owned by the struct (fb_vocab_free). */
typedef struct fb_vocab {
  char *arena;
  size_t arena_len, arena_cap;
  size_t *off;    /* (n_ids) start of token id in arena, or SIZE_MAX when id is unused */
  uint32_t *len;  /* (n_ids) */
  int32_t n_ids;  /* ids are 0 .. n_ids-1 */
  int32_t *slots; /* open-addressing hash of ids, -1 = empty */
  size_t n_slots, n_used;
} fb_vocab;

int fb_vocab_init(fb_vocab *v, int32_t n_ids);
void fb_vocab_free(fb_vocab *v);
/* Add token s[0..n) as id (< n_ids). Returns 0, FB_ENOMEM, or FB_EINVALID when the id is taken
 * or the string already has another id (*other receives that id or -1). */
int fb_vocab_put(fb_vocab *v, const char *s, size_t n, int32_t id, int32_t *other);
int32_t fb_vocab_get(const fb_vocab *v, const char *s, size_t n);   /* -1 when absent */
const char *fb_vocab_str(const fb_vocab *v, int32_t id, size_t *n); /* NULL when unused */

typedef struct fb_merges {
  uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
  uint32_t *rank;
  int32_t *merged;
  size_t n_slots, n_used;
} fb_merges;

int fb_merges_init(fb_merges *m, size_t n);
void fb_merges_free(fb_merges *m);
/* Returns 1 when the pair already had a rank (the later one wins, as in Hugging Face), 0, or
 * FB_ENOMEM (more pairs than fb_merges_init was sized for). */
int fb_merges_put(fb_merges *m, int32_t left, int32_t right, uint32_t rank, int32_t merged);

/* One symbol of a word being merged: its token id (-1 when the piece is not in the vocab and
 * so never merges) and its byte range in the word. */
typedef struct fb_bpe_sym {
  int32_t id;
  uint32_t start, len;
  int32_t prev, next; /* neighbours in the word, -1 at the ends; len 0 = merged away */
} fb_bpe_sym;

/* Scratch space for fb_bpe_merge, reused across words; owned by the caller (fb_bpe_work_free). */
typedef struct fb_bpe_work {
  fb_bpe_sym *sym;
  size_t sym_cap;
  void *heap;
  size_t heap_len, heap_cap;
} fb_bpe_work;

void fb_bpe_work_free(fb_bpe_work *w);
/* Ensure w->sym holds n symbols. */
int fb_bpe_reserve(fb_bpe_work *w, size_t n);
/* Merge w->sym[0..n) (ids and ranges filled in, prev/next set here) until no pair has a rank.
 * Afterwards the live symbols are reached from index 0 by `next`. Returns 0 or FB_ENOMEM. */
int fb_bpe_merge(const fb_merges *m, fb_bpe_work *w, size_t n);

#endif
