/* fb_cuda.h: the CUDA backend's C surface inside the plugin: the context (device, stream,
 * cuBLAS), device memory with out-of-memory errors that say how much was asked and how much is
 * free, and every op of backend.h on device pointers, each with backend.h's signature so that
 * plugin.c's table points straight at them. Everything runs on the context's one stream.
 * Base weights are bf16 (fb_bf16); activations, LoRA weights, their gradients and AdamW moments
 * are fp32.
 *
 * Where the GPU works differently from the CPU, backend.h's arguments allow it: the attention
 * forward saves each query's log-sum-exp (lse) and the backward takes it instead of a T x T
 * scratch, and the loss is fused with the lm_head product over vocabulary chunks (no [N, V]
 * logits are kept).
 *
 * bf16 shadows. A product with a bf16 weight needs its activation operand in bf16. The ops whose
 * outputs feed such products (rmsnorm forward and backward, rope, SwiGLU forward and backward,
 * the attention forward's out) write that bf16 copy, the output's "shadow", in the same kernel,
 * and the products read it instead of rounding the fp32 output again. The rule that keeps a
 * shadow from ever being stale: a shadow is valid for exactly the pointer and size it was written
 * for, and only until the next piece of work that may write that fp32 memory. Every piece of
 * work gets the stream (or cuBLAS handle) through common.cuh, and plain fb_cuda_stream() counts
 * as writing all of memory (a generation counter moves on; every shadow goes stale); only work
 * that names the ranges it writes (fb_cuda_stream_writing: copies, zeroing, the element-wise
 * ops, the products' outputs) keeps the shadows of the rest. An op that forgets to name its
 * writes is therefore safe, only slower. Shadows live in one arena of twice the largest shadow
 * asked for (two [N, max(C, I)] bf16 buffers); a new shadow takes the first gap and evicts the
 * oldest when none is left, so a layer's forward and backward keep what their products need.
 *
 * Errors: a failed CUDA or cuBLAS call (a launch too) is a fault: it is logged with the file,
 * line and call and the process exits with FB_CUDA_FAULT_EXIT (training runs in a worker
 * process, so this ends the worker, never the server). Out of memory is not a fault:
 * fb_cuda_alloc returns FB_ENOMEM with the bytes asked and free. */
#ifndef FB_CUDA_H
#define FB_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend.h" /* C headers without their own extern "C" */
#include "error.h"

typedef uint16_t fb_bf16; /* bfloat16 storage: the high half of an fp32 */

#define FB_CUDA_FAULT_EXIT 70 /* EX_SOFTWARE */
#define FB_CUDA_MIN_CC 80     /* bf16 matrix products: Ampere (sm_80) or newer */

/* Log "cuda: FILE:LINE: CALL: reason" and exit the process when code is not success. */
void fb_cuda_check(int code, const char *call, const char *file, int line);
void fb_cublas_check(int status, const char *call, const char *file, int line);
#define FB_CUDA_CHECK(call) fb_cuda_check((int)(call), #call, __FILE__, __LINE__)
#define FB_CUBLAS_CHECK(call) fb_cublas_check((int)(call), #call, __FILE__, __LINE__)

/* ---- context ---- */

/* Device 0, one stream and a cuBLAS handle; idempotent. FB_EBACKEND with what is missing: no
 * driver, no device, a compute capability under 8.0, a device that is not free. */
int fb_cuda_init(fb_err *err);
void fb_cuda_sync(void);
/* "NVIDIA H200 (sm_90, 139.8 GiB)" of the current device. */
const char *fb_cuda_device_name(void);

/* ---- memory ---- */

/* *p = bytes of device memory for `what` (named in the error). FB_ENOMEM: "cuda: out of memory
 * for <what>: asked 1.50 GiB (1610612736 bytes), 0.20 GiB free of 79.10 GiB". */
int fb_cuda_alloc(void **p, size_t bytes, const char *what, fb_err *err);
void fb_cuda_free(void *p);      /* NULL is a no-op */
size_t fb_cuda_peak_bytes(void); /* the high-water mark of the bytes allocated (workspace too) */
/* Copies on the context stream; upload and download wait for the copy to finish. */
void fb_cuda_upload(void *dst, const void *src, size_t bytes);
void fb_cuda_download(void *dst, const void *src, size_t bytes);
void fb_cuda_zero(void *p, size_t bytes);
void fb_cuda_copy(void *dst, const void *src, size_t bytes); /* device to device */

/* ---- backend.h's ops ---- */

void fb_cuda_matmul_forward(float *out, const float *inp, const void *weight, fb_dtype wdt,
                            const float *bias, int N, int C, int OC, float alpha, float beta);
void fb_cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const void *weight, fb_dtype wdt, int N, int C,
                             int OC, float alpha);
void fb_cuda_addmm(float *out, const float *a, const float *b, int M, int N, int K, float alpha);
void fb_cuda_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

void fb_cuda_embedding_forward(float *out, const int32_t *ids, const void *table, int N, int C);
void fb_cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);
void fb_cuda_residual_rmsnorm_forward(float *sum, float *out, float *rstd, const float *a,
                                      const float *b, const float *weight, int N, int C, float eps);
void fb_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                             int C, float eps);
void fb_cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C);
void fb_cuda_rope_forward(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                          int NH, int HD);
void fb_cuda_rope_backward(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                           int NH, int HD);
void fb_cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void fb_cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, size_t n);
void fb_cuda_add(float *out, const float *a, const float *b, size_t n);
/* The CPU's counter-based mask, bit for bit. */
void fb_cuda_dropout(float *out, const float *inp, size_t n, float p, const uint64_t *seed);

/* Tiled, online softmax, never the T x T scores; head dims 64 and 128. */
int fb_cuda_attention_supports(int HD);
size_t fb_cuda_attention_scratch(int N, int T, int NH); /* D = rowsum(dO * O) of the backward */
void fb_cuda_attention_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const int32_t *seg, float *scratch, int B, int T,
                               int NH, int NKV, int HD, int window);
void fb_cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *out, const float *lse, const float *q, const float *k,
                                const float *v, const int32_t *seg, float *scratch, int B, int T,
                                int NH, int NKV, int HD, int window);
size_t fb_cuda_attention_cached_scratch(int max_len); /* none */
void fb_cuda_attention_cached(float *out, const float *q, const float *kc, const float *vc,
                              float *scratch, int n, int p0, int NH, int NKV, int HD, int window);

/* The loss over vocabulary chunks (about 256 MiB of logits at a time). */
int fb_cuda_ce_create(void **work, int N, int C, int V, fb_err *err);
void fb_cuda_ce_free(void *work);
void fb_cuda_lmhead_ce_forward(float *losses, const float *lnf, const void *W,
                               const int32_t *targets, int N, void *work);
void fb_cuda_lmhead_ce_backward(float *dlnf, float *dW, const float *lnf, const void *W,
                                const int32_t *targets, int N, const float *dloss, void *work);

void fb_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                   double beta1, double beta2, double eps, double weight_decay, int t);
double fb_cuda_sumsq(const float *x, size_t n);
double fb_cuda_sum(const float *x, size_t n);
void fb_cuda_scale(float *x, size_t n, float s);

/* Profiling with events on the stream (backend.h's phase and profile); profiling: whether a
 * profile is being taken. */
void fb_cuda_phase(fb_phase p);
void fb_cuda_profile(int on, double *ms);
int fb_cuda_profiling(void);

/* backend.h's replay as CUDA graphs (graph.cu). recapture: every graph kept is captured again
 * at its key's next call (the workspace is about to move); drop: every graph and key is
 * forgotten (device memory is about to be freed, and its addresses reused). */
int fb_cuda_replay(uint64_t key, void (*work)(void *ctx), void *ctx);
void fb_cuda_graphs_recapture(void);
void fb_cuda_graphs_drop(void);

#ifdef __cplusplus
}
#endif

#endif
