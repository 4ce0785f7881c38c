/* crossentropy.cu: cross-entropy on materialised logits (backend.h's ops) and the lm_head
 * product fused with the loss: the vocabulary goes chunk by chunk through a bf16 GEMM and an
 * online log-sum-exp, so no [N, V] logits are ever kept; the backward recomputes each chunk. */
#include <math.h>
#include <string.h>

#include "common.cuh"

/* Rows are handled one block each; 256 threads. */
#define CE_THREADS 256

/* The max of x[0..V) and the sum of exp(x - max), for the whole block. */
__device__ inline void row_max_sum(const float *x, int V, float *mx_out, float *sum_out) {
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, x[i]);
  mx = fb_block_max(mx);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) sum += expf(x[i] - mx);
  *mx_out = mx;
  *sum_out = fb_block_sum(sum);
}

__global__ void ce_forward_kernel(float *losses, const float *logits, const int32_t *targets,
                                  int V) {
  int n = blockIdx.x, t = targets[n];
  const float *x = logits + (size_t)n * V;
  float mx, sum;
  row_max_sum(x, V, &mx, &sum);
  if (threadIdx.x == 0) losses[n] = t < 0 ? 0.0f : logf(sum) + mx - x[t];
}

__global__ void ce_backward_kernel(float *dlogits, const float *logits, const int32_t *targets,
                                   int V, float dloss) {
  int n = blockIdx.x, t = targets[n];
  const float *x = logits + (size_t)n * V;
  float *d = dlogits + (size_t)n * V, mx, sum;
  row_max_sum(x, V, &mx, &sum);
  float inv = 1.0f / sum;
  __syncthreads(); /* every thread has read x before any writes d (they may alias) */
  for (int i = threadIdx.x; i < V; i += blockDim.x)
    d[i] = t < 0 ? 0.0f : dloss * (expf(x[i] - mx) * inv - (i == t ? 1.0f : 0.0f));
}

/* Fold one chunk [c0, c0+vc) of row n's logits into its running max and sum of exp, and pick
 * up the target's logit if the chunk holds it. */
__global__ void ce_chunk_kernel(float *mx, float *sum, float *tgt, const float *logits,
                                const int32_t *targets, int vc, int c0) {
  int n = blockIdx.x, t = targets[n];
  const float *x = logits + (size_t)n * vc;
  float cm, cs;
  row_max_sum(x, vc, &cm, &cs);
  if (threadIdx.x == 0) {
    float m0 = mx[n], m1 = fmaxf(m0, cm);
    sum[n] = sum[n] * expf(m0 - m1) + cs * expf(cm - m1);
    mx[n] = m1;
    if (t >= c0 && t < c0 + vc) tgt[n] = x[t - c0];
  }
}

__global__ void ce_init_kernel(float *mx, float *sum, int N) {
  int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n < N) {
    mx[n] = -INFINITY;
    sum[n] = 0.0f;
  }
}

__global__ void ce_finish_kernel(float *losses, float *lse, const float *mx, const float *sum,
                                 const float *tgt, const int32_t *targets, int N) {
  int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float l = logf(sum[n]) + mx[n];
  lse[n] = l;
  losses[n] = targets[n] < 0 ? 0.0f : l - tgt[n];
}

/* dlogits (bf16) of one chunk: dloss * (exp(x - lse) - onehot), 0 on ignored rows */
__global__ void ce_chunk_grad_kernel(__nv_bfloat16 *d, const float *logits, const float *lse,
                                     const int32_t *targets, size_t total, int vc, int c0,
                                     float dloss) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  int n = (int)(i / vc), col = (int)(i % vc) + c0, t = targets[n];
  float g = t < 0 ? 0.0f : dloss * (expf(logits[i] - lse[n]) - (col == t ? 1.0f : 0.0f));
  d[i] = __float2bfloat16_rn(g);
}

extern "C" void fb_cuda_crossentropy_forward(float *losses, const float *logits,
                                             const int32_t *targets, int N, int V, fb_stream s) {
  if (N <= 0) return;
  FB_LAUNCH(ce_forward_kernel, N, CE_THREADS, 0, s, losses, logits, targets, V);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_crossentropy_backward(float *dlogits, const float *logits,
                                              const int32_t *targets, int N, int V, float dloss,
                                              fb_stream s) {
  if (N <= 0) return;
  FB_LAUNCH(ce_backward_kernel, N, CE_THREADS, 0, s, dlogits, logits, targets, V, dloss);
  FB_LAUNCH_CHECK();
}

/* Chunks of about 64 Mi logits (256 MiB fp32), a multiple of 128 columns. */
static int chunk_for(int N, int V) {
  size_t c = ((size_t)64 << 20) / (size_t)N;
  c = c / 128 * 128;
  if (c < 128) c = 128;
  return c > (size_t)V ? V : (int)c;
}

extern "C" int fb_cuda_ce_work_create(fb_cuda_ce_work *w, int N, int C, int V, fb_err *err) {
  memset(w, 0, sizeof *w);
  w->N = N;
  w->C = C;
  w->V = V;
  w->chunk = chunk_for(N, V);
  size_t nc = (size_t)N * w->chunk;
  int rc;
  if ((rc = fb_cuda_alloc((void **)&w->x16, (size_t)N * C * 2, "loss input (bf16)", err)) ||
      (rc = fb_cuda_alloc((void **)&w->logits, nc * 4, "logits chunk", err)) ||
      (rc = fb_cuda_alloc((void **)&w->dlogits, nc * 2, "logit gradient chunk", err)) ||
      (rc = fb_cuda_alloc((void **)&w->mx, (size_t)N * 4 * 4, "loss row state", err))) {
    fb_cuda_ce_work_free(w);
    return rc;
  }
  w->sum = w->mx + N;
  w->tgt = w->sum + N;
  w->lse = w->tgt + N;
  return 0;
}

extern "C" void fb_cuda_ce_work_free(fb_cuda_ce_work *w) {
  fb_cuda_free(w->x16);
  fb_cuda_free(w->logits);
  fb_cuda_free(w->dlogits);
  fb_cuda_free(w->mx);
  memset(w, 0, sizeof *w);
}

/* logits[N, vc] = x16 @ W[c0:c0+vc]^T */
static void chunk_logits(fb_cuda_ce_work *w, const fb_bf16 *W, int N, int c0, int vc, fb_stream s) {
  fb_cuda_gemm(0, 1, N, vc, w->C, 1.0f, w->x16, CUDA_R_16BF, w->C, W + (size_t)c0 * w->C,
               CUDA_R_16BF, w->C, 0.0f, w->logits, vc, s);
}

extern "C" void fb_cuda_lmhead_ce_forward(float *losses, const float *lnf, const fb_bf16 *W,
                                          const int32_t *targets, int N, fb_cuda_ce_work *w,
                                          fb_stream s) {
  if (N > w->N) /* a caller's bug: the work was made for fewer rows */
    fb_cuda_check((int)cudaErrorInvalidValue, "loss rows over the work's", __FILE__, __LINE__);
  fb_cuda_to_bf16(w->x16, lnf, (size_t)N * w->C, s);
  FB_LAUNCH(ce_init_kernel, fb_blocks(N, 256), 256, 0, s, w->mx, w->sum, N);
  FB_LAUNCH_CHECK();
  /* rows whose target is ignored still get a (never used) target logit */
  FB_CUDA_CHECK(cudaMemsetAsync(w->tgt, 0, (size_t)N * 4, s));
  for (int c0 = 0; c0 < w->V; c0 += w->chunk) {
    int vc = w->V - c0 < w->chunk ? w->V - c0 : w->chunk;
    chunk_logits(w, W, N, c0, vc, s);
    FB_LAUNCH(ce_chunk_kernel, N, CE_THREADS, 0, s, w->mx, w->sum, w->tgt, w->logits, targets, vc,
              c0);
    FB_LAUNCH_CHECK();
  }
  FB_LAUNCH(ce_finish_kernel, fb_blocks(N, 256), 256, 0, s, losses, w->lse, w->mx, w->sum, w->tgt,
            targets, N);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_lmhead_ce_backward(float *dlnf, const fb_bf16 *W, const int32_t *targets,
                                           int N, float dloss, fb_cuda_ce_work *w, fb_stream s) {
  int C = w->C;
  if (N > w->N) /* a caller's bug: the work was made for fewer rows */
    fb_cuda_check((int)cudaErrorInvalidValue, "loss rows over the work's", __FILE__, __LINE__);
  for (int c0 = 0; c0 < w->V; c0 += w->chunk) {
    int vc = w->V - c0 < w->chunk ? w->V - c0 : w->chunk;
    size_t total = (size_t)N * vc;
    chunk_logits(w, W, N, c0, vc, s);
    FB_LAUNCH(ce_chunk_grad_kernel, fb_blocks(total, 256), 256, 0, s, (__nv_bfloat16 *)w->dlogits,
              w->logits, w->lse, targets, total, vc, c0, dloss);
    FB_LAUNCH_CHECK();
    /* dlnf[N,C] += dlogits[N,vc] @ W[c0:c0+vc] */
    fb_cuda_gemm(0, 0, N, C, vc, 1.0f, w->dlogits, CUDA_R_16BF, vc, W + (size_t)c0 * C, CUDA_R_16BF,
                 C, 1.0f, dlnf, C, s);
  }
}
