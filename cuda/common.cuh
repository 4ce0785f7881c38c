/* common.cuh: what the .cu files share and C callers never see: the stream and the cuBLAS
 * handle, the bf16 shadows, the workspace, the row-major GEMM every product goes through, launch
 * checking, grid sizes and block reductions. */
#ifndef FB_CUDA_COMMON_CUH
#define FB_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <initializer_list>

#include "fb_cuda.h"

/* Every kernel launch goes through this one macro, FB_LAUNCH(kernel, grid, block, shared bytes,
 * stream, arguments...), so the CUDA emulator of the tests (tests/cuda_emu), whose
 * cuda_runtime.h defines its own FB_LAUNCH, compiles these files unmodified as host C++. */
#ifndef FB_LAUNCH
#define FB_LAUNCH(kernel, grid, block, shared, stream, ...)                                        \
  kernel<<<grid, block, shared, stream>>>(__VA_ARGS__)
#endif

/* Check the launch that just happened (configuration errors; faults show at the next sync). */
#define FB_LAUNCH_CHECK()                                                                          \
  fb_cuda_check((int)cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

/* Bytes of device memory that a piece of work writes. */
struct fb_span {
  const void *p;
  size_t bytes;
};

/* The context's stream: every launch and copy goes on it. Getting it counts as writing all of
 * memory (every bf16 shadow goes stale, fb_cuda.h), so work that names nothing is always safe.
 * fb_cuda_stream_writing is the stream for work that writes exactly `writes` and nothing else
 * (only the shadows of fp32 memory those overlap go stale; {} for an event, which writes none). */
cudaStream_t fb_cuda_stream(void);
cudaStream_t fb_cuda_stream_writing(std::initializer_list<fb_span> writes);
/* The cuBLAS handle (on the stream) and the cuBLASLt handle (which takes the stream per call)
 * for products that write exactly C. */
cublasHandle_t fb_cuda_cublas_writing(fb_span C);
cublasLtHandle_t fb_cuda_cublaslt_writing(fb_span C);

/* The shadow bookkeeping of shadow.cu: fb_cuda_wrote marks work queued on [p, p+bytes),
 * fb_cuda_wrote_anything work that may write anywhere. */
void fb_cuda_wrote(const void *p, size_t bytes);
void fb_cuda_wrote_anything(void);
/* Room for x[n]'s bf16 copy, which the kernel launched next writes beside x (NULL: no room; the
 * kernel then writes none). Call it after getting that launch's stream, which names x. */
__nv_bfloat16 *fb_cuda_shadow_claim(const float *x, size_t n);
/* x[n]'s bf16 copy when one is valid for exactly that pointer and size, else NULL. */
const fb_bf16 *fb_cuda_shadow_of(const float *x, size_t n);
/* A device workspace of at least bytes, shared by the ops (bf16 copies of product operands,
 * reduction results); it grows when asked for more, after the work queued so far is done. Out
 * of memory here is a fault naming the caller's file and line. */
void *fb_cuda_workspace(size_t bytes, const char *file, int line);

/* fp32 x[n] rounded to bf16 into out (round to nearest even); __float2bfloat16_rn is the one
 * rounding every shadow writer uses too, so a shadow equals this bit for bit. */
void fb_cuda_to_bf16(fb_bf16 *out, const float *inp, size_t n);

/* Row-major C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C with fp32 C and accumulation;
 * A and B are fp32 or bf16 (CUDA_R_32F / CUDA_R_16BF), op(X) = X^T when tX. */
void fb_cuda_gemm(int tA, int tB, int M, int N, int K, float alpha, const void *A,
                  cudaDataType_t typeA, int lda, const void *B, cudaDataType_t typeB, int ldb,
                  float beta, float *C, int ldc);

/* A caller's mistake the ops cannot honour (a size or option they do not support): a fault. */
#define FB_CUDA_REFUSE(what) fb_cuda_check((int)cudaErrorInvalidValue, what, __FILE__, __LINE__)

static inline unsigned fb_blocks(size_t n, unsigned threads) {
  return (unsigned)((n + threads - 1) / threads);
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
template <typename T>
__device__ inline T fb_block_sum(T v) {
  __shared__ T part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads(); /* part[] may still be read by a previous call */
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < nw ? part[lane] : (T)0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ inline T fb_block_max(T v) {
  __shared__ T part[32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < nw ? part[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#endif
