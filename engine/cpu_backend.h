/* cpu_backend.h: the CPU backend's ops as plain functions (backend.h's table points at them or
 * at thin adapters of them), fp32 throughout, for the table and for tests that check an op
 * alone. Shapes and conventions are backend.h's. */
#ifndef FB_CPU_BACKEND_H
#define FB_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define FB_ATTN_BLOCK 64

void fb_op_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                          int N, int C, int OC, float alpha, float beta);
void fb_op_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int N, int C, int OC,
                           float alpha);
void fb_op_addmm(float *out, const float *a, const float *b, int M, int N, int K, float alpha);

void fb_op_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
void fb_op_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);
void fb_op_residual_rmsnorm_forward(float *sum, float *out, float *rstd, const float *a,
                                    const float *b, const float *weight, int N, int C, float eps);
void fb_op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                           int C, float eps);
void fb_op_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, int N, int C);
void fb_op_rope_forward(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                        int NH, int HD);
void fb_op_rope_backward(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                         int NH, int HD);
void fb_op_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void fb_op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n);
void fb_op_add(float *out, const float *a, const float *b, size_t n);
void fb_op_dropout(float *out, const float *inp, size_t n, float p, uint64_t seed);

/* Attention goes a block of at most FB_ATTN_BLOCK query rows at a time (new positions against a
 * KV cache too), each against only the keys its rows may see (the window's band), so a window W
 * costs O(T W) per head. Nothing of the softmax is kept but lse (may be NULL): backward
 * recomputes the probabilities. scratch holds fb_op_attention_scratch(T) floats. */
size_t fb_op_attention_scratch(int T);
void fb_op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                             const int32_t *seg, float *scratch, int B, int T, int NH, int NKV,
                             int HD, int window);
void fb_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const int32_t *seg, float *scratch,
                              int B, int T, int NH, int NKV, int HD, int window);
size_t fb_op_attention_cached_scratch(int max_len);
void fb_op_attention_cached(float *out, const float *q, const float *kc, const float *vc,
                            float *scratch, int n, int p0, int NH, int NKV, int HD, int window);

/* losses[N] = -log softmax(logits[n,:])[targets[n]], 0 where targets[n] < 0 (ignored) */
void fb_op_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N,
                                int V);
/* dlogits[N,V] = dloss * (softmax(logits) - onehot(target)), 0 on ignored rows. dlogits may be
 * the same buffer as logits (the logits are consumed row by row). */
void fb_op_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N,
                                 int V, float dloss);

void fb_op_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int t);
double fb_op_sumsq(const float *x, size_t n);
double fb_op_sum(const float *x, size_t n);
void fb_op_scale(float *x, size_t n, float s);

#endif
