/* crossentropy.cu: the lm_head product fused with the loss: the vocabulary goes chunk by chunk
 * through a bf16 GEMM and an online log-sum-exp, so no [N, V] logits are ever kept; the backward
 * recomputes each chunk from the forward's bf16 input and log-sum-exp. */
#include <math.h>
#include <stdlib.h>
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

/* dlogits (bf16) of one chunk: *dloss * (exp(x - lse) - onehot), 0 on ignored rows (dloss in
 * device memory: a graph captured once serves every step's) */
__global__ void ce_chunk_grad_kernel(__nv_bfloat16 *d, const float *logits, const float *lse,
                                     const int32_t *targets, size_t total, int vc, int c0,
                                     const float *dloss) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  int n = (int)(i / vc), col = (int)(i % vc) + c0, t = targets[n];
  float g = t < 0 ? 0.0f : *dloss * (expf(logits[i] - lse[n]) - (col == t ? 1.0f : 0.0f));
  d[i] = __float2bfloat16_rn(g);
}

/* Chunks of about 64 Mi logits (256 MiB fp32), a multiple of 128 columns; FB_CUDA_LOSS_CHUNK
 * sets the columns instead (tests use it to go over several chunks with a small vocabulary). */
static int chunk_for(int N, int V) {
  const char *env = getenv("FB_CUDA_LOSS_CHUNK");
  size_t c = env && atoi(env) > 0 ? (size_t)atoi(env) : ((size_t)64 << 20) / (size_t)N / 128 * 128;
  if (c < 128 && !env) c = 128;
  return c > (size_t)V ? V : (int)c;
}

/* What the backward needs of the forward, for up to N rows. */
typedef struct ce_work {
  int N, C, V, chunk;
  fb_bf16 *x16;                /* [N,C] the normed input in bf16 */
  float *logits;               /* [N,chunk] */
  fb_bf16 *dlogits;            /* [N,chunk] */
  float *mx, *sum, *tgt, *lse; /* [N] running max, sum of exp, target logit; log-sum-exp */
} ce_work;

extern "C" void fb_cuda_ce_free(void *work) {
  ce_work *w = (ce_work *)work;
  if (!w) return;
  fb_cuda_free(w->x16);
  fb_cuda_free(w->logits);
  fb_cuda_free(w->dlogits);
  fb_cuda_free(w->mx);
  free(w);
}

extern "C" int fb_cuda_ce_create(void **out, int N, int C, int V, fb_err *err) {
  ce_work *w = (ce_work *)calloc(1, sizeof *w);
  if (!w) return fb_err_set(err, FB_ENOMEM, "cuda: out of host memory");
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
    fb_cuda_ce_free(w);
    return rc;
  }
  w->sum = w->mx + N;
  w->tgt = w->sum + N;
  w->lse = w->tgt + N;
  *out = w;
  return 0;
}

/* logits[N, vc] = x16 @ W[c0:c0+vc]^T */
static void chunk_logits(ce_work *w, const fb_bf16 *W, int N, int c0, int vc) {
  fb_cuda_gemm(0, 1, N, vc, w->C, 1.0f, w->x16, CUDA_R_16BF, w->C, W + (size_t)c0 * w->C,
               CUDA_R_16BF, w->C, 0.0f, w->logits, vc);
}

extern "C" void fb_cuda_lmhead_ce_forward(float *losses, const float *lnf, const void *weight,
                                          const int32_t *targets, int N, void *work) {
  ce_work *w = (ce_work *)work;
  const fb_bf16 *W = (const fb_bf16 *)weight;
  cudaStream_t s = fb_cuda_stream();
  if (N > w->N) FB_CUDA_REFUSE("loss rows over the work's");
  if (N <= 0) return;
  fb_cuda_to_bf16(w->x16, lnf, (size_t)N * w->C);
  FB_LAUNCH(ce_init_kernel, fb_blocks(N, 256), 256, 0, s, w->mx, w->sum, N);
  FB_LAUNCH_CHECK();
  /* rows whose target is ignored still get a (never used) target logit */
  FB_CUDA_CHECK(cudaMemsetAsync(w->tgt, 0, (size_t)N * 4, s));
  for (int c0 = 0; c0 < w->V; c0 += w->chunk) {
    int vc = w->V - c0 < w->chunk ? w->V - c0 : w->chunk;
    chunk_logits(w, W, N, c0, vc);
    FB_LAUNCH(ce_chunk_kernel, N, CE_THREADS, 0, s, w->mx, w->sum, w->tgt, w->logits, targets, vc,
              c0);
    FB_LAUNCH_CHECK();
  }
  FB_LAUNCH(ce_finish_kernel, fb_blocks(N, 256), 256, 0, s, losses, w->lse, w->mx, w->sum, w->tgt,
            targets, N);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_lmhead_ce_backward(float *dlnf, float *dW, const float *lnf,
                                           const void *weight, const int32_t *targets, int N,
                                           const float *dloss, void *work) {
  ce_work *w = (ce_work *)work;
  const fb_bf16 *W = (const fb_bf16 *)weight;
  int C = w->C;
  (void)lnf; /* its bf16 copy is the forward's */
  if (dW) FB_CUDA_REFUSE("the lm_head's weight gradient (full-parameter training)");
  if (N > w->N) FB_CUDA_REFUSE("loss rows over the work's");
  for (int c0 = 0; c0 < w->V && N > 0; c0 += w->chunk) {
    int vc = w->V - c0 < w->chunk ? w->V - c0 : w->chunk;
    size_t total = (size_t)N * vc;
    chunk_logits(w, W, N, c0, vc);
    FB_LAUNCH(ce_chunk_grad_kernel, fb_blocks(total, 256), 256, 0, fb_cuda_stream(),
              (__nv_bfloat16 *)w->dlogits, w->logits, w->lse, targets, total, vc, c0, dloss);
    FB_LAUNCH_CHECK();
    /* dlnf[N,C] += dlogits[N,vc] @ W[c0:c0+vc] */
    fb_cuda_gemm(0, 0, N, C, vc, 1.0f, w->dlogits, CUDA_R_16BF, vc, W + (size_t)c0 * C, CUDA_R_16BF,
                 C, 1.0f, dlnf, C);
  }
}
