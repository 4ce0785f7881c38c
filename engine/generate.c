/* generate.c: the sampling loop of generate.h over fb_model_decode (the model owns the KV cache
 * arithmetic; this file owns choosing the next token). No batching of several prompts. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fb_gen_config fb_gen_defaults(void) {
  return (fb_gen_config){.max_new_tokens = 128,
                         .temperature = 0,
                         .top_k = 0,
                         .top_p = 1,
                         .repetition_penalty = 1,
                         .n_stop = 0,
                         .seed = 0};
}

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct cand {
  float logit;
  int32_t id;
} cand;

static int by_logit_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
  return x->id - y->id;
}

/* Pick the next id from logits[V] (modified in place) under c; cands is V slots of work. */
static int32_t pick(float *logits, int V, const fb_gen_config *c, const unsigned char *seen,
                    cand *cands, uint64_t *rng) {
  if (c->repetition_penalty != 1)
    for (int i = 0; i < V; i++)
      if (seen[i])
        logits[i] = logits[i] < 0 ? logits[i] * (float)c->repetition_penalty
                                  : logits[i] / (float)c->repetition_penalty;
  if (c->temperature <= 0) {
    int best = 0;
    for (int i = 1; i < V; i++)
      if (logits[i] > logits[best]) best = i;
    return best;
  }
  for (int i = 0; i < V; i++) cands[i] = (cand){logits[i] / (float)c->temperature, i};
  qsort(cands, V, sizeof *cands, by_logit_desc);
  int n = c->top_k > 0 && c->top_k < V ? c->top_k : V;
  double sum = 0, mx = cands[0].logit;
  for (int i = 0; i < n; i++) sum += exp(cands[i].logit - mx);
  if (c->top_p < 1) { /* the smallest prefix whose probability reaches top_p */
    double acc = 0;
    int keep = n;
    for (int i = 0; i < n; i++) {
      acc += exp(cands[i].logit - mx) / sum;
      if (acc >= c->top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    sum = 0;
    for (int i = 0; i < n; i++) sum += exp(cands[i].logit - mx);
  }
  double u = (double)(next_u64(rng) >> 11) * 0x1.0p-53 * sum, acc = 0;
  for (int i = 0; i < n; i++) {
    acc += exp(cands[i].logit - mx);
    if (u < acc) return cands[i].id;
  }
  return cands[n - 1].id;
}

static int check_config(const fb_gen_config *c, int n_prompt, fb_err *err) {
  if (n_prompt < 1) return fb_err_set(err, FB_EINVALID, "generate: the prompt is empty");
  if (c->max_new_tokens < 1)
    return fb_err_set(err, FB_EINVALID, "generate: max_new_tokens %d must be >= 1",
                      c->max_new_tokens);
  if (!(c->temperature >= 0 && isfinite(c->temperature)))
    return fb_err_set(err, FB_EINVALID, "generate: temperature %g must be >= 0", c->temperature);
  if (c->top_k < 0)
    return fb_err_set(err, FB_EINVALID, "generate: top_k %d must be >= 0", c->top_k);
  if (!(c->top_p > 0 && c->top_p <= 1))
    return fb_err_set(err, FB_EINVALID, "generate: top_p %g is not in (0, 1]", c->top_p);
  if (!(c->repetition_penalty > 0 && isfinite(c->repetition_penalty)))
    return fb_err_set(err, FB_EINVALID, "generate: repetition_penalty %g must be > 0",
                      c->repetition_penalty);
  if (c->n_stop < 0 || c->n_stop > FB_GEN_MAX_STOP)
    return fb_err_set(err, FB_EINVALID, "generate: %d stop tokens (at most %d)", c->n_stop,
                      FB_GEN_MAX_STOP);
  return 0;
}

struct fb_gen_stream {
  fb_model *m;
  fb_lora *lora;
  fb_gen_config c;
  fb_kv_cache *kv;
  float *logits; /* the next token's, once `pending` is decoded */
  cand *cands;
  unsigned char *seen;
  uint64_t rng;
  int32_t pending; /* the last id handed out, not yet decoded; -1 for none */
  int n_out, done, stopped;
};

void fb_gen_free(fb_gen_stream *s) {
  if (!s) return;
  fb_kv_cache_free(s->kv);
  free(s->logits);
  free(s->cands);
  free(s->seen);
  free(s);
}

int fb_gen_start(fb_gen_stream **out, fb_model *m, fb_lora *lora, const int32_t *prompt,
                 int n_prompt, const fb_gen_config *c, fb_err *err) {
  *out = NULL;
  int rc = check_config(c, n_prompt, err);
  if (rc) return rc;
  fb_gen_stream *s = calloc(1, sizeof *s);
  if (!s) return fb_err_set(err, FB_ENOMEM, "generate: out of memory");
  *s = (fb_gen_stream){.m = m, .lora = lora, .c = *c, .rng = c->seed, .pending = -1};
  s->logits = malloc(sizeof(float) * m->V);
  s->cands = malloc(sizeof(cand) * m->V);
  s->seen = calloc(m->V, 1);
  if (!s->logits || !s->cands || !s->seen)
    rc = fb_err_set(err, FB_ENOMEM, "generate: out of memory");
  if (!rc) rc = fb_kv_cache_create(&s->kv, m, n_prompt + c->max_new_tokens, err);
  if (!rc) rc = fb_model_decode(m, lora, s->kv, prompt, n_prompt, s->logits, err);
  if (rc) {
    fb_gen_free(s);
    return rc;
  }
  for (int i = 0; i < n_prompt; i++) s->seen[prompt[i]] = 1;
  *out = s;
  return 0;
}

/* The id handed out last is decoded here, on the way to the next one, so a caller streaming
 * tokens gets each as soon as it is picked. */
int fb_gen_next(fb_gen_stream *s, int32_t *id, fb_err *err) {
  *id = -1;
  if (s->done) return 0;
  if (s->pending >= 0) {
    int rc = fb_model_decode(s->m, s->lora, s->kv, &s->pending, 1, s->logits, err);
    s->pending = -1;
    if (rc) {
      s->done = 1;
      return rc;
    }
  }
  int32_t next = pick(s->logits, s->m->V, &s->c, s->seen, s->cands, &s->rng);
  for (int i = 0; i < s->c.n_stop; i++)
    if (next == s->c.stop[i]) {
      s->done = s->stopped = 1;
      return 0;
    }
  s->seen[next] = 1;
  s->done = ++s->n_out == s->c.max_new_tokens;
  if (!s->done) s->pending = next;
  *id = next;
  return 0;
}

int fb_gen_stopped(const fb_gen_stream *s) { return s->stopped; }

int fb_generate(fb_model *m, fb_lora *lora, const int32_t *prompt, int n_prompt,
                const fb_gen_config *c, int32_t *out, int *n_out, int *stopped, fb_err *err) {
  *n_out = 0;
  if (stopped) *stopped = 0;
  fb_gen_stream *s;
  int rc = fb_gen_start(&s, m, lora, prompt, n_prompt, c, err);
  if (rc) return rc;
  int32_t id;
  while (!(rc = fb_gen_next(s, &id, err)) && id >= 0) out[(*n_out)++] = id;
  if (stopped) *stopped = s->stopped;
  fb_gen_free(s);
  return rc;
}
