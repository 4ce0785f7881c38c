/* common.cuh: what the .cu files share and C callers never see: the stream and the cuBLAS
 * handle, the workspace, the row-major GEMM every product goes through, launch checking, grid
 * sizes and block reductions. */
#ifndef FB_CUDA_COMMON_CUH
#define FB_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

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

/* The context's stream (every launch and copy goes on it) and its cuBLAS handle. */
cudaStream_t fb_cuda_stream(void);
cublasHandle_t fb_cuda_cublas(void);
/* A device workspace of at least bytes, shared by the ops (bf16 copies of product operands,
 * reduction results); it grows when asked for more, after the work queued so far is done. Out
 * of memory here is a fault naming the caller's file and line. */
void *fb_cuda_workspace(size_t bytes, const char *file, int line);

/* fp32 x[n] rounded to bf16 into out (round to nearest even). */
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
