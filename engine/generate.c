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

int fb_generate(fb_model *m, fb_lora *lora, const int32_t *prompt, int n_prompt,
                const fb_gen_config *c, int32_t *out, int *n_out, int *stopped, fb_err *err) {
  *n_out = 0;
  if (stopped) *stopped = 0;
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
  int V = m->V, rc;
  fb_kv_cache *kv = NULL;
  float *logits = malloc(sizeof(float) * V);
  cand *cands = malloc(sizeof(cand) * V);
  unsigned char *seen = calloc(V, 1);
  if (!logits || !cands || !seen) {
    rc = fb_err_set(err, FB_ENOMEM, "generate: out of memory");
    goto done;
  }
  if ((rc = fb_kv_cache_create(&kv, m, n_prompt + c->max_new_tokens, err))) goto done;
  if ((rc = fb_model_decode(m, lora, kv, prompt, n_prompt, logits, err))) goto done;
  for (int i = 0; i < n_prompt; i++) seen[prompt[i]] = 1;
  uint64_t rng = c->seed;
  for (;;) {
    int32_t id = pick(logits, V, c, seen, cands, &rng);
    for (int s = 0; s < c->n_stop; s++)
      if (id == c->stop[s]) {
        if (stopped) *stopped = 1;
        goto done;
      }
    out[(*n_out)++] = id;
    seen[id] = 1;
    if (*n_out == c->max_new_tokens) break;
    if ((rc = fb_model_decode(m, lora, kv, &id, 1, logits, err))) break;
  }
done:
  fb_kv_cache_free(kv);
  free(logits);
  free(cands);
  free(seen);
  return rc;
}
