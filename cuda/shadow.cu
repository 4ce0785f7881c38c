/* shadow.cu: the bf16 shadows of fp32 activations (fb_cuda.h states the rule): which work may
 * have written what (a generation counter for work that may write anywhere, ranges for work
 * that names its outputs), and one arena of shadows, placed first-fit, oldest evicted first.
 * No kernels: the ops that write a shadow write it in their own kernel. */
#include "common.cuh"

namespace {
constexpr int SLOTS = 12;    /* more than a layer's backward keeps alive at once */
constexpr size_t ALIGN = 64; /* elements: every shadow starts on 128 bytes, as GEMMs like */

size_t aligned(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

struct shadow {
  const float *x; /* the fp32 source */
  size_t n;       /* its elements; the copy is arena[at, at + n) */
  size_t at;
  uint64_t gen;   /* the generation it was written in */
  uint64_t order; /* when it was claimed: the oldest is evicted first */
  bool live;      /* false once work that names an overlapping range is queued */
};

struct {
  uint64_t gen = 1; /* moves on with every piece of work that may write anywhere */
  uint64_t claims;
  shadow slot[SLOTS];
  __nv_bfloat16 *arena;
  size_t cap;                /* elements: twice the largest shadow asked for */
  size_t refused = SIZE_MAX; /* an arena this large was out of memory: not tried again */
} S;

bool valid(const shadow &s) { return s.live && s.gen == S.gen; }

bool overlaps(const void *a, size_t abytes, const void *b, size_t bbytes) {
  const char *ca = (const char *)a, *cb = (const char *)b;
  return ca < cb + bbytes && cb < ca + abytes;
}

/* Room for n elements: the arena grown to twice n when it is smaller (every shadow lost);
 * false when the memory is not there (the products then round for themselves). */
bool reserve(size_t n) {
  size_t cap = 2 * aligned(n);
  if (cap <= S.cap) return true;
  if (cap >= S.refused) return false; /* each try would wait for the stream */
  fb_cuda_sync();                     /* queued kernels may still read the old arena */
  fb_cuda_free(S.arena);
  S.arena = NULL;
  S.cap = 0;
  for (shadow &s : S.slot) s.live = false;
  void *p;
  fb_err err{};
  if (fb_cuda_alloc(&p, cap * sizeof(fb_bf16), "the bf16 shadows", &err)) {
    S.refused = cap;
    return false;
  }
  S.arena = (__nv_bfloat16 *)p;
  S.cap = cap;
  return true;
}

/* The lowest offset where n elements fit between the valid shadows, or SIZE_MAX. */
size_t first_fit(size_t n) {
  size_t at = 0;
  for (;;) {
    bool moved = false;
    for (const shadow &s : S.slot)
      if (valid(s) && at < s.at + s.n && s.at < at + n) {
        at = aligned(s.at + s.n);
        moved = true;
      }
    if (at + n > S.cap) return SIZE_MAX;
    if (!moved) return at;
  }
}

/* The slot to reuse: a stale one, else the oldest; with evict_only_valid, the oldest valid
 * one, or NULL when none is. */
shadow *oldest(bool evict_only_valid) {
  shadow *pick = NULL;
  for (shadow &s : S.slot) {
    if (!evict_only_valid && !valid(s)) return &s;
    if (valid(s) && (!pick || s.order < pick->order)) pick = &s;
  }
  return pick;
}
}  // namespace

void fb_cuda_wrote_anything(void) { S.gen++; }

void fb_cuda_wrote(const void *p, size_t bytes) {
  for (shadow &s : S.slot)
    if (s.live && overlaps(s.x, s.n * sizeof(float), p, bytes)) s.live = false;
}

__nv_bfloat16 *fb_cuda_shadow_claim(const float *x, size_t n) {
  if (!n || !reserve(n)) return NULL;
  fb_cuda_wrote(x, n * sizeof(float)); /* an older copy of x is stale from now */
  size_t at;
  while ((at = first_fit(n)) == SIZE_MAX) oldest(true)->live = false;
  shadow *s = oldest(false);
  *s = {x, n, at, S.gen, ++S.claims, true};
  return S.arena + at;
}

const fb_bf16 *fb_cuda_shadow_of(const float *x, size_t n) {
  for (const shadow &s : S.slot)
    if (valid(s) && s.x == x && s.n == n) return (const fb_bf16 *)(S.arena + s.at);
  return NULL;
}
