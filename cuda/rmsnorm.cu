/* rmsnorm.cu: RMSNorm forward (alone, or after the residual add it follows) and backward, one
 * block per row (Hugging Face's order: weight * (x * rstd)). Each writes its output's bf16 shadow too (fb_cuda.h): the forward's
 * feeds the projections, the backward's the products of the layer below. The weight gradient,
 * which LoRA never needs, accumulates by atomics. */
#include "common.cuh"

/* out = weight * (x * r) over the row x of C (its shadow too), r from the row's sum of squares
 * ss (saved in rstd); every thread takes the columns c of its own earlier loop. */
__device__ void normalize_row(float *out, __nv_bfloat16 *out16, float *rstd, const float *x,
                              const float *weight, int C, float ss, float eps) {
  ss = fb_block_sum(ss);
  float r = 1.0f / sqrtf(ss / C + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  size_t row = (size_t)blockIdx.x * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float y = weight[c] * (x[c] * r);
    out[row + c] = y;
    if (out16) out16[row + c] = __float2bfloat16_rn(y);
  }
}

__global__ void rmsnorm_forward_kernel(float *out, __nv_bfloat16 *out16, float *rstd,
                                       const float *inp, const float *weight, int C, float eps) {
  const float *x = inp + (size_t)blockIdx.x * C;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += x[c] * x[c];
  normalize_row(out, out16, rstd, x, weight, C, ss, eps);
}

/* sum = a + b, then its norm: the sum is read back by the thread that wrote it (sum may alias a
 * or b: each element is read before it is written, by one thread). */
__global__ void residual_rmsnorm_forward_kernel(float *sum, float *out, __nv_bfloat16 *out16,
                                                float *rstd, const float *a, const float *b,
                                                const float *weight, int C, float eps) {
  size_t row = (size_t)blockIdx.x * C;
  float *x = sum + row, ss = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float v = a[row + c] + b[row + c];
    x[c] = v;
    ss += v * v;
  }
  normalize_row(out, out16, rstd, x, weight, C, ss, eps);
}

/* dx += r * w * dy - x * r^3 / C * sum(w * dy * x);  dw += dy * x * r */
__global__ void rmsnorm_backward_kernel(float *dinp, __nv_bfloat16 *dinp16, float *dweight,
                                        const float *dout, const float *inp, const float *weight,
                                        const float *rstd, int C) {
  size_t row = (size_t)blockIdx.x * C;
  const float *x = inp + row, *dy = dout + row;
  float *dx = dinp + row, r = rstd[blockIdx.x];
  float dot = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dot += weight[c] * dy[c] * x[c];
  dot = fb_block_sum(dot);
  float k = dot * r * r * r / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float g = dx[c] + (r * weight[c] * dy[c] - k * x[c]);
    dx[c] = g;
    if (dinp16) dinp16[row + c] = __float2bfloat16_rn(g);
    if (dweight) atomicAdd(&dweight[c], dy[c] * x[c] * r);
  }
}

static int row_threads(int C) { return C >= 1024 ? 1024 : C >= 256 ? 256 : 128; }

extern "C" void fb_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp,
                                        const float *weight, int N, int C, float eps) {
  if (N <= 0) return;
  size_t n = (size_t)N * C;
  cudaStream_t s = fb_cuda_stream_writing({{out, n * sizeof(float)}, {rstd, N * sizeof(float)}});
  __nv_bfloat16 *out16 = fb_cuda_shadow_claim(out, n);
  FB_LAUNCH(rmsnorm_forward_kernel, N, row_threads(C), 0, s, out, out16, rstd, inp, weight, C, eps);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_residual_rmsnorm_forward(float *sum, float *out, float *rstd,
                                                 const float *a, const float *b,
                                                 const float *weight, int N, int C, float eps) {
  if (N <= 0) return;
  size_t n = (size_t)N * C;
  cudaStream_t s = fb_cuda_stream_writing(
      {{sum, n * sizeof(float)}, {out, n * sizeof(float)}, {rstd, N * sizeof(float)}});
  __nv_bfloat16 *out16 = fb_cuda_shadow_claim(out, n);
  FB_LAUNCH(residual_rmsnorm_forward_kernel, N, row_threads(C), 0, s, sum, out, out16, rstd, a, b,
            weight, C, eps);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout,
                                         const float *inp, const float *weight, const float *rstd,
                                         int N, int C) {
  if (N <= 0) return;
  size_t n = (size_t)N * C;
  cudaStream_t s = fb_cuda_stream_writing(
      {{dinp, n * sizeof(float)}, {dweight, dweight ? C * sizeof(float) : 0}});
  __nv_bfloat16 *dinp16 = fb_cuda_shadow_claim(dinp, n);
  FB_LAUNCH(rmsnorm_backward_kernel, N, row_threads(C), 0, s, dinp, dinp16, dweight, dout, inp,
            weight, rstd, C);
  FB_LAUNCH_CHECK();
}
