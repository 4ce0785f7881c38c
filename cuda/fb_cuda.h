/* fb_cuda.h: the GPU side of the training core's compute interface (backend.h) for C callers:
 * the CUDA context (device, stream, cuBLAS), device memory with out-of-memory errors that say
 * how much was asked and how much is free, and every op on device pointers. Base weights are
 * bf16 (fb_bf16); activations, LoRA weights, their gradients and AdamW moments are fp32.
 *
 * The ops keep backend.h's llm.c shape (outputs first, then inputs, then sizes, the stream
 * last). Where the GPU needs something the CPU does not, it is an explicit argument: the
 * attention forward saves the softmax's log-sum-exp for the backward instead of a T x T
 * scratch, and the loss is fused with the lm_head product (no [N, V] logits are kept).
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

#include "error.h" /* a C header without its own extern "C" */

typedef uint16_t fb_bf16;              /* bfloat16 storage: the high half of an fp32 */
typedef struct CUstream_st *fb_stream; /* = cudaStream_t */

#define FB_CUDA_FAULT_EXIT 70 /* EX_SOFTWARE */
#define FB_CUDA_MIN_CC 80     /* bf16 matrix products: Ampere (sm_80) or newer */

/* Log "cuda: FILE:LINE: CALL: reason" and exit the process when code is not success. */
void fb_cuda_check(int code, const char *call, const char *file, int line);
void fb_cublas_check(int status, const char *call, const char *file, int line);
#define FB_CUDA_CHECK(call) fb_cuda_check((int)(call), #call, __FILE__, __LINE__)
#define FB_CUBLAS_CHECK(call) fb_cublas_check((int)(call), #call, __FILE__, __LINE__)

/* ---- context ---- */

/* 0 when a CUDA device this build can use is present; else -1 and why[] says what is missing
 * (no driver, no device, compute capability too old). Creates no context beyond the runtime's. */
int fb_cuda_probe(char *why, size_t n);
/* Device 0, one stream and a cuBLAS handle; idempotent. FB_EBACKEND when unusable (the probe's
 * reason in err). */
int fb_cuda_init(fb_err *err);
/* Frees the workspace, the handle and the stream (allocations made with fb_cuda_alloc must be
 * freed first). */
void fb_cuda_shutdown(void);
fb_stream fb_cuda_stream(void);
void fb_cuda_sync(void);
/* "NVIDIA H200 (sm_90, 139.8 GiB)" of the current device. */
const char *fb_cuda_device_name(void);

/* ---- memory ---- */

/* *p = bytes of device memory for `what` (named in the error). FB_ENOMEM: "cuda: out of memory
 * for <what>: asked 1.50 GiB (1610612736 bytes), 0.20 GiB free of 79.10 GiB". */
int fb_cuda_alloc(void **p, size_t bytes, const char *what, fb_err *err);
void fb_cuda_free(void *p); /* NULL is a no-op */
size_t fb_cuda_bytes_in_use(void);
size_t fb_cuda_peak_bytes(void); /* the high-water mark of bytes_in_use (workspace included) */
void fb_cuda_reset_peak(void);
/* Copies on the context stream; upload and download wait for the copy to finish. */
void fb_cuda_upload(void *dst, const void *src, size_t bytes);
void fb_cuda_download(void *dst, const void *src, size_t bytes);
void fb_cuda_zero(void *p, size_t bytes);
void fb_cuda_copy(void *dst, const void *src, size_t bytes); /* device to device, async */
/* Make sure the shared workspace (bf16 copies of matmul operands) holds bytes. */
int fb_cuda_workspace_reserve(size_t bytes, fb_err *err);

/* ---- conversions ---- */

void fb_cuda_to_bf16(fb_bf16 *out, const float *inp, size_t n, fb_stream s);
void fb_cuda_from_bf16(float *out, const fb_bf16 *inp, size_t n, fb_stream s);
/* Host-side round-to-nearest-even, for references and uploads. */
fb_bf16 fb_bf16_from_float(float x);
float fb_bf16_to_float(fb_bf16 x);

/* ---- matrix products (cuBLAS, fp32 accumulation) ---- */

/* Base projection, bf16 weight [OC,C]: out[N,OC] = alpha * inp[N,C] @ weight^T + beta * out
 * (+ bias[OC], fp32, if bias). inp is rounded to bf16 in the workspace (N*C*2 bytes). */
void fb_cuda_matmul_forward(float *out, const float *inp, const fb_bf16 *weight, const float *bias,
                            int N, int C, int OC, float alpha, float beta, fb_stream s);
/* dinp[N,C] += alpha * dout[N,OC] @ weight (dout rounded to bf16 in the workspace). Frozen
 * base weights have no weight gradient. */
void fb_cuda_matmul_backward(float *dinp, const float *dout, const fb_bf16 *weight, int N, int C,
                             int OC, float alpha, fb_stream s);
/* fp32 versions (LoRA), exactly backend.h's fb_op_matmul_forward/backward/addmm, computed in
 * full fp32 (no TF32). */
void fb_cuda_matmul_forward_f32(float *out, const float *inp, const float *weight,
                                const float *bias, int N, int C, int OC, float alpha, float beta,
                                fb_stream s);
void fb_cuda_matmul_backward_f32(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int N, int C, int OC,
                                 float alpha, fb_stream s);
void fb_cuda_addmm(float *out, const float *a, const float *b, int M, int N, int K, float alpha,
                   fb_stream s);

/* ---- element-wise and row ops (backend.h's, on device pointers) ---- */

/* out[N,C] = table[ids[n],:] (bf16 table);  dtable[V,C] += scatter of dout (fp32 table) */
void fb_cuda_embedding_forward(float *out, const int32_t *ids, const fb_bf16 *table, int N, int C,
                               fb_stream s);
void fb_cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C,
                                fb_stream s);
void fb_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                             int C, float eps, fb_stream s);
void fb_cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C, fb_stream s);
void fb_cuda_rope_forward(float *x, const float *cos, const float *sin, const int32_t *pos, int N,
                          int NH, int HD, fb_stream s);
void fb_cuda_rope_backward(float *dx, const float *cos, const float *sin, const int32_t *pos, int N,
                           int NH, int HD, fb_stream s);
void fb_cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n, fb_stream s);
void fb_cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, size_t n, fb_stream s);
void fb_cuda_add(float *out, const float *a, const float *b, size_t n, fb_stream s);
/* The same counter-based mask as the CPU's fb_op_dropout: identical (seed, i) -> keep. */
void fb_cuda_dropout(float *out, const float *inp, size_t n, float p, uint64_t seed, fb_stream s);
void fb_cuda_scale(float *x, size_t n, float v, fb_stream s);
/* sum of x[i]^2 / sum of x[i], accumulated in double; synchronous */
double fb_cuda_sumsq(const float *x, size_t n, fb_stream s);
double fb_cuda_sum(const float *x, size_t n, fb_stream s);
/* backend.h's fb_op_adamw (PyTorch's formula and rounding) */
void fb_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                   double beta1, double beta2, double eps, double weight_decay, int t, fb_stream s);

/* ---- attention: tiled, online softmax, never the T x T scores ---- */

/* head dims the attention kernels are built for */
int fb_cuda_attention_supports(int HD);
/* backend.h's causal GQA attention with seg and sliding window (0 = none). lse[B,NH,T]
 * (log-sum-exp of each query's scaled scores) is saved for the backward. */
void fb_cuda_attention_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const int32_t *seg, int B, int T, int NH, int NKV,
                               int HD, int window, fb_stream s);
/* dq, dk, dv overwritten (dk/dv summed over the query heads that share them). out and lse are
 * the forward's; scratch holds B*NH*T floats. */
void fb_cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *out, const float *lse, const float *q, const float *k,
                                const float *v, const int32_t *seg, float *scratch, int B, int T,
                                int NH, int NKV, int HD, int window, fb_stream s);
/* backend.h's fb_op_attention_cached: n new queries at positions p0.. against kc/vc rows
 * 0..p0+n-1. */
void fb_cuda_attention_cached(float *out, const float *q, const float *kc, const float *vc, int n,
                              int p0, int NH, int NKV, int HD, int window, fb_stream s);

/* ---- cross-entropy ---- */

/* backend.h's ops on materialised logits (for checks and small vocabularies). */
void fb_cuda_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N,
                                  int V, fb_stream s);
void fb_cuda_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
                                   int N, int V, float dloss, fb_stream s);

/* The lm_head product fused with the loss, over vocabulary chunks: at most N x chunk logits
 * exist at a time. Work buffers for N positions, owned by the caller. */
typedef struct fb_cuda_ce_work {
  int N, C, V, chunk;          /* N: the most rows it holds; chunk may be lowered after creation */
  fb_bf16 *x16;                /* [N,C] the normed input in bf16 */
  float *logits;               /* [N,chunk] */
  fb_bf16 *dlogits;            /* [N,chunk] */
  float *mx, *sum, *tgt, *lse; /* [N] running max, sum of exp, target logit; log-sum-exp */
} fb_cuda_ce_work;
int fb_cuda_ce_work_create(fb_cuda_ce_work *w, int N, int C, int V, fb_err *err);
void fb_cuda_ce_work_free(fb_cuda_ce_work *w);
/* losses[N] = -log softmax(lnf[N,C] @ W^T)[targets] (0 where targets < 0); W bf16 [V,C];
 * N at most the work's. */
void fb_cuda_lmhead_ce_forward(float *losses, const float *lnf, const fb_bf16 *W,
                               const int32_t *targets, int N, fb_cuda_ce_work *w, fb_stream s);
/* dlnf[N,C] += dloss * (softmax - onehot) @ W, from the forward's lse (same lnf, targets, N). */
void fb_cuda_lmhead_ce_backward(float *dlnf, const fb_bf16 *W, const int32_t *targets, int N,
                                float dloss, fb_cuda_ce_work *w, fb_stream s);

#ifdef __cplusplus
}
#endif

#endif
