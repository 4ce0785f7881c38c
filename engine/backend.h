/* backend.h: the compute interface of the training core ("how"), in llm.c's shape: each op a
 * _forward/_backward pair, outputs first, then inputs, then sizes. cpu_backend.c implements it
 * in fp32 on the CPU; a CUDA backend implements the same calls on device pointers. Nothing here
 * allocates or knows about models, files or LoRA (that is model.c/lora.c, the "what").
 *
 * Conventions: all tensors are contiguous row-major fp32 unless a stride is given; N = number
 * of token positions (B*T); "+=" means the op accumulates into its output, "=" that it
 * overwrites it. Pointers to optional outputs may be NULL to skip that gradient. */
#ifndef FB_BACKEND_H
#define FB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* out[N,OC] = alpha * inp[N,C] @ weight[OC,C]^T + beta * out (+ bias[OC] if bias) */
void fb_op_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                          int N, int C, int OC, float alpha, float beta);
/* dinp[N,C] += alpha * dout[N,OC] @ weight[OC,C];   dweight[OC,C] += alpha * dout^T @ inp;
 * dbias[OC] += alpha * sum_n dout[n,:]. Any of dinp/dweight/dbias may be NULL. */
void fb_op_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int N, int C, int OC,
                           float alpha);

/* out[M,N] += alpha * a[M,K] @ b[K,N]  (e.g. merging W += s * B @ A) */
void fb_op_addmm(float *out, const float *a, const float *b, int M, int N, int K, float alpha);

/* out[N,C] = table[ids[n],:]   (ids in [0,V), checked by the caller) */
void fb_op_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
/* dtable[V,C] += scatter of dout[N,C] by ids */
void fb_op_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);

/* out[N,C] = inp * rstd * weight[C], rstd[N] = 1/sqrt(mean(inp^2) + eps) (saved for backward) */
void fb_op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                           int C, float eps);
/* dinp[N,C] += d/dinp;  dweight[C] += d/dweight (may be NULL) */
void fb_op_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, int N, int C);

/* Rotary embedding in place on x[N,NH,HD], Hugging Face rotate_half convention: the two halves
 * (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin), with cos/sin[P, HD/2] rows picked by
 * pos[N] (each < P). rope_backward applies the inverse rotation to the gradient in place. */
void fb_op_rope_forward(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                        int NH, int HD);
void fb_op_rope_backward(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                         int NH, int HD);

/* Causal grouped-query attention. q/out [B,T,NH,HD], k/v [B,T,NKV,HD], NH % NKV == 0; query head
 * h reads kv head h / (NH/NKV); scale 1/sqrt(HD). window > 0 is a sliding window (Hugging Face's
 * rule: position i attends j only when i - j < window), computed over that band of keys only
 * (O(T window) work per head); 0 = none. seg[B*T] (NULL = one sequence per row) keeps attention
 * inside a sequence: position i attends j <= i with seg[j] == seg[i]; seg < 0 marks padding,
 * which attends only itself and is attended by nobody else.
 * scratch holds fb_op_attention_scratch(T) floats. Nothing of the softmax is saved: backward
 * recomputes it. */
size_t fb_op_attention_scratch(int T);
void fb_op_attention_forward(float *out, const float *q, const float *k, const float *v,
                             const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                             int HD, int window);
/* dq = ..., dk = ..., dv = ... (overwritten; dk/dv summed over the heads that share them) */
void fb_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const int32_t *seg, float *scratch,
                              int B, int T, int NH, int NKV, int HD, int window);

/* Attention of n new positions against a KV cache (generation): q/out [n,NH,HD]; kc/vc
 * [p0+n,NKV,HD] hold every position so far, the new ones included; new position i attends
 * cache rows 0..p0+i (only the last `window` of them are read when window > 0). scratch holds
 * fb_op_attention_cached_scratch(p0+n) floats (new positions go at most FB_ATTN_BLOCK at a
 * time, as do the query rows of the calls above). */
#define FB_ATTN_BLOCK 64
size_t fb_op_attention_cached_scratch(int max_len);
void fb_op_attention_cached(float *out, const float *q, const float *kc, const float *vc,
                            float *scratch, int n, int p0, int NH, int NKV, int HD, int window);

/* out[n] = silu(gate[n]) * up[n] over n elements;  dgate, dup = ... (overwritten) */
void fb_op_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void fb_op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n);

/* out[n] = a[n] + b[n] (out may alias a or b) */
void fb_op_add(float *out, const float *a, const float *b, size_t n);

/* Inverted dropout with a counter-based mask: out[i] = inp[i] / (1-p) if keep(seed, i) else 0.
 * The mask depends only on (seed, i), so the same call maps dout to dinp in backward. */
void fb_op_dropout(float *out, const float *inp, size_t n, float p, uint64_t seed);

/* losses[N] = -log softmax(logits[n,:])[targets[n]], 0 where targets[n] < 0 (ignored) */
void fb_op_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N,
                                int V);
/* dlogits[N,V] = dloss * (softmax(logits) - onehot(target)), 0 on ignored rows. dlogits may be
 * the same buffer as logits (the logits are consumed row by row). */
void fb_op_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N,
                                 int V, float dloss);

/* One AdamW step (PyTorch's formula): p *= 1 - lr*wd; m,v updated; p -= lr/(1-b1^t) * m /
 * (sqrt(v)/sqrt(1-b2^t) + eps). t counts from 1. Scalars are double and rounded the way
 * PyTorch rounds them, so results agree with torch.optim.AdamW to float rounding. */
void fb_op_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int t);

/* sum of x[i]^2 in double;  x[i] *= s */
double fb_op_sumsq(const float *x, size_t n);
void fb_op_scale(float *x, size_t n, float s);

#endif
