/* backend.h: the one interface the training core runs on, as a table of ops plus the memory
 * they work on. model.c, lora.c, optim.c and generate.c call only this table, so the layer
 * sequence (forward, backward, KV-cache decoding) is written once; cpu_backend.c implements it
 * in fp32 on the CPU, the CUDA plugin (cuda/, libfastbrain_cuda.so, opened by device.c) on an
 * NVIDIA GPU. Choosing a backend is device.h's.
 *
 * Memory: every pointer an op takes is the backend's (alloc). On the CPU that is the process's
 * own memory (host_memory = 1): host arrays are valid there and upload/download are copies.
 * Ops run in call order on one stream; download, sum and sumsq wait for what came before.
 *
 * Op conventions (llm.c's shape): outputs first, then inputs, then sizes; tensors contiguous
 * row-major; N = number of token positions (B*T); "+=" accumulates into the output, "=" over-
 * writes it; an optional gradient output may be NULL to skip it. Base model matrices (the
 * projections, the embedding, lm_head) are stored in weight_dtype; everything else (norm
 * weights, biases, activations, LoRA matrices, gradients, optimizer moments) is fp32. */
#ifndef FB_BACKEND_H
#define FB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h" /* fb_dtype */

/* A run's device: asked for (auto, cpu, cuda) and, once chosen, the one a backend runs on. */
typedef enum { FB_DEVICE_AUTO, FB_DEVICE_CPU, FB_DEVICE_CUDA } fb_device;

/* The version of this table's layout; a plugin built against another is refused. */
#define FB_BACKEND_ABI 4

/* Where a training step's time goes (gpu_bench --profile): the phase its work counts in. */
typedef enum {
  FB_PHASE_BASE_GEMM,   /* the frozen model's products (projections, their input gradients) */
  FB_PHASE_LORA,        /* the adapters' products, dropout and gradients */
  FB_PHASE_ATTN_FWD,    /* attention forward */
  FB_PHASE_ATTN_BWD,    /* attention backward (on a GPU: the query gradients) */
  FB_PHASE_ATTN_DKDV,   /* a GPU's key and value gradients (the CPU counts them in ATTN_BWD) */
  FB_PHASE_LOSS,        /* lm_head fused with cross-entropy, forward and backward */
  FB_PHASE_ELEMENTWISE, /* norms, rotary, SwiGLU, residuals, embedding, zeroing, copies */
  FB_PHASE_OPTIMIZER,   /* gradient norm, clipping, AdamW */
  FB_PHASE_COUNT
} fb_phase;

typedef struct fb_backend {
  int abi;               /* FB_BACKEND_ABI */
  const char *name;      /* "cpu" or "cuda" */
  fb_device device;      /* FB_DEVICE_CPU or FB_DEVICE_CUDA */
  int host_memory;       /* 1: its memory is the process's own */
  fb_dtype weight_dtype; /* how base model matrices are stored: F32, or BF16 */
  int trains_base;       /* 1: it computes gradients of base weights (full-parameter mode) */

  /* ---- the device ---- */
  /* One line: "NVIDIA H200 (sm_90, 139.8 GiB)", "Intel(R) Xeon(R) ... (2 cores)". */
  const char *(*device_name)(void);
  /* The most memory the run held: the backend's allocations at their peak on a GPU; the
   * process's peak resident set on the CPU. */
  size_t (*peak_bytes)(void);
  int (*supports_head_dim)(int HD);

  /* ---- memory ---- */
  /* *p = bytes of the backend's memory for `what` (named in an out-of-memory error). */
  int (*alloc)(void **p, size_t bytes, const char *what, fb_err *err);
  void (*free)(void *p);                                      /* NULL is a no-op */
  void (*upload)(void *dst, const void *src, size_t bytes);   /* host -> backend */
  void (*download)(void *dst, const void *src, size_t bytes); /* backend -> host; waits */
  void (*copy)(void *dst, const void *src, size_t bytes);     /* within the backend */
  void (*zero)(void *p, size_t bytes);

  /* ---- products ---- */
  /* out[N,OC] = alpha * inp[N,C] @ weight[OC,C]^T + beta * out (+ bias[OC] if bias); weight
   * is F32 or weight_dtype (wdt). A BF16 weight rounds inp to bf16 and accumulates in fp32. */
  void (*matmul_forward)(float *out, const float *inp, const void *weight, fb_dtype wdt,
                         const float *bias, int N, int C, int OC, float alpha, float beta);
  /* dinp[N,C] += alpha * dout[N,OC] @ weight;  dweight[OC,C] += alpha * dout^T @ inp;
   * dbias[OC] += alpha * sum_n dout[n,:]. dweight and dbias need trains_base or an F32 weight. */
  void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const void *weight, fb_dtype wdt, int N, int C, int OC,
                          float alpha);
  /* out[M,N] += alpha * a[M,K] @ b[K,N], all fp32 (merging W += s * B @ A) */
  void (*addmm)(float *out, const float *a, const float *b, int M, int N, int K, float alpha);
  /* c[M,N] = alpha * op(a)[M,K] @ op(b)[K,N] + beta * c, all fp32, op(x) = x^T when tx; lda,
   * ldb, ldc are the row strides as stored, so an operand may be a column slice of a wider
   * matrix (LoRA's products on slices of the shared A product of q/k/v); c is not read when
   * beta is 0. */
  void (*gemm)(int ta, int tb, int M, int N, int K, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);

  /* ---- rows and elements ---- */
  /* out[N,C] = table[ids[n],:] (table in weight_dtype; ids in [0,V), checked by the caller);
   * dtable[V,C] += scatter of dout[N,C] by ids (fp32 table) */
  void (*embedding_forward)(float *out, const int32_t *ids, const void *table, int N, int C);
  void (*embedding_backward)(float *dtable, const float *dout, const int32_t *ids, int N, int C);
  /* out[N,C] = weight * (inp * rstd), rstd[N] = 1/sqrt(mean(inp^2) + eps) (saved for backward);
   * dinp[N,C] += d/dinp;  dweight[C] += d/dweight */
  void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight, int N,
                          int C, float eps);
  void (*rmsnorm_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C);
  /* sum[N,C] = a + b (the residual; sum may alias a or b), then out = rmsnorm_forward(sum): one
   * pass over the rows where the two ops would take two */
  void (*residual_rmsnorm_forward)(float *sum, float *out, float *rstd, const float *a,
                                   const float *b, const float *weight, int N, int C, float eps);
  /* Rotary embedding in place on x[N,NH,HD], Hugging Face's rotate_half convention, with
   * cos/sin[P, HD/2] rows picked by pos[N] (each < P); backward rotates the gradient back. */
  void (*rope_forward)(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                       int NH, int HD);
  void (*rope_backward)(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                        int NH, int HD);
  /* out[n] = silu(gate[n]) * up[n];  dgate, dup = ... (overwritten) */
  void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
  void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n);
  /* out[n] = a[n] + b[n] (out may alias a or b): the residual */
  void (*add)(float *out, const float *a, const float *b, size_t n);
  /* Inverted dropout with a counter-based mask: out[i] = inp[i] / (1-p) if keep(seed, i) else 0.
   * The mask depends only on (seed, i) (splitmix64; the same bits on every backend), so the
   * same call maps dout to dinp in backward. out may alias inp. seed is one value in the
   * backend's memory, read when the op runs (a replayed graph sees each step's). */
  void (*dropout)(float *out, const float *inp, size_t n, float p, const uint64_t *seed);

  /* ---- attention ---- */
  /* Causal grouped-query attention. q/out [B,T,NH,HD], k/v [B,T,NKV,HD], NH % NKV == 0; query
   * head h reads kv head h / (NH/NKV); scale 1/sqrt(HD). window > 0 is a sliding window
   * (position i attends j only when i - j < window); 0 = none. seg[B*T] (NULL = one sequence
   * per row) keeps attention inside a sequence: i attends j <= i with seg[j] == seg[i]; seg < 0
   * marks padding, which attends only itself. lse[B,NH,T] gets each query's log-sum-exp of its
   * scaled scores, which backward may use instead of recomputing it. scratch holds
   * attention_scratch(N, T, NH) floats: enough for any batch of at most N positions in rows of
   * at most T. */
  size_t (*attention_scratch)(int N, int T, int NH);
  void (*attention_forward)(float *out, float *lse, const float *q, const float *k, const float *v,
                            const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                            int HD, int window);
  /* dq, dk, dv overwritten (dk/dv summed over the query heads that share them); out and lse
   * are the forward's. */
  void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *out,
                             const float *lse, const float *q, const float *k, const float *v,
                             const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                             int HD, int window);
  /* n new positions against a KV cache (generation): q/out [n,NH,HD]; kc/vc [p0+n,NKV,HD] hold
   * every position so far, the new ones included; new position i attends cache rows 0..p0+i
   * (the last `window` of them when window > 0). scratch holds attention_cached_scratch(p0+n). */
  size_t (*attention_cached_scratch)(int max_len);
  void (*attention_cached)(float *out, const float *q, const float *kc, const float *vc,
                           float *scratch, int n, int p0, int NH, int NKV, int HD, int window);

  /* ---- the loss: lm_head fused with cross-entropy ---- */
  /* Work for up to N rows of lnf[N,C] against W[V,C] (weight_dtype): what backward needs of
   * the forward (the CPU keeps every logit; a GPU goes over the vocabulary in chunks and keeps
   * each row's log-sum-exp). */
  int (*ce_create)(void **work, int N, int C, int V, fb_err *err);
  void (*ce_free)(void *work); /* NULL is a no-op */
  /* losses[N] = -log softmax(lnf @ W^T)[targets] (0 where targets < 0: ignored) */
  void (*lmhead_ce_forward)(float *losses, const float *lnf, const void *W, const int32_t *targets,
                            int N, void *work);
  /* dlnf[N,C] += dloss * (softmax - onehot) @ W and, when dW (trains_base), dW[V,C] += the
   * matching product with lnf; from the last forward on the same lnf and targets. dloss is one
   * float in the backend's memory, read when the op runs (a replayed graph sees each step's). */
  void (*lmhead_ce_backward)(float *dlnf, float *dW, const float *lnf, const void *W,
                             const int32_t *targets, int N, const float *dloss, void *work);
  /* The last forward's [N,V] logits when the backend keeps them whole (valid until its
   * backward), else NULL. */
  const float *(*ce_logits)(const void *work);

  /* ---- the optimizer ---- */
  /* One AdamW step (PyTorch's formula and rounding): p *= 1 - lr*wd; m, v updated;
   * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). t counts from 1. */
  void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                double beta1, double beta2, double eps, double weight_decay, int t);
  /* sum of x[i]^2, and of x[i], accumulated in double (wait for the result) */
  double (*sumsq)(const float *x, size_t n);
  double (*sum)(const float *x, size_t n);
  void (*scale)(float *x, size_t n, float s); /* x[i] *= s */

  /* ---- profiling ---- */
  /* Work queued from now on counts in phase p: nothing unless profiling is on. profile(1, NULL)
   * turns it on with every count zero (in FB_PHASE_ELEMENTWISE); profile(0, ms) waits for the
   * queued work, turns it off and gives each phase's milliseconds in ms[FB_PHASE_COUNT]. A GPU
   * times its stream with events (no waiting between phases), the CPU with its clock. */
  void (*phase)(fb_phase p);
  void (*profile)(int on, double *ms);

  /* ---- replaying work ---- */
  /* Run work(ctx): a piece of ops only, with no host read (download, sum, sumsq), upload or
   * allocation, whose arguments are the same on every call with this key (what changes per
   * call goes through backend memory, written before). A GPU runs a key's first call as usual,
   * captures its second as a CUDA graph and launches that graph on later calls WITHOUT calling
   * work: key must name everything the ops depend on but memory contents (shapes, pointers,
   * options). Returns 1 when a graph ran it, else 0 (the CPU just calls work). */
  int (*replay)(uint64_t key, void (*work)(void *ctx), void *ctx);
} fb_backend;

/* The CPU backend (cpu_backend.c): always there. */
const fb_backend *fb_backend_cpu(void);

#endif
