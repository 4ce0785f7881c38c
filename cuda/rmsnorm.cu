/* rmsnorm.cu: RMSNorm forward and backward, one block per row (Hugging Face's order:
 * weight * (x * rstd)). The weight gradient, which LoRA never needs, accumulates by atomics. */
#include "common.cuh"

__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp,
                                       const float *weight, int C, float eps) {
  const float *x = inp + (size_t)blockIdx.x * C;
  float *o = out + (size_t)blockIdx.x * C;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += x[c] * x[c];
  ss = fb_block_sum(ss);
  float r = 1.0f / sqrtf(ss / C + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = weight[c] * (x[c] * r);
}

/* dx += r * w * dy - x * r^3 / C * sum(w * dy * x);  dw += dy * x * r */
__global__ void rmsnorm_backward_kernel(float *dinp, float *dweight, const float *dout,
                                        const float *inp, const float *weight, const float *rstd,
                                        int C) {
  size_t row = (size_t)blockIdx.x * C;
  const float *x = inp + row, *dy = dout + row;
  float *dx = dinp + row, r = rstd[blockIdx.x];
  float dot = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dot += weight[c] * dy[c] * x[c];
  dot = fb_block_sum(dot);
  float k = dot * r * r * r / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    dx[c] += r * weight[c] * dy[c] - k * x[c];
    if (dweight) atomicAdd(&dweight[c], dy[c] * x[c] * r);
  }
}

static int row_threads(int C) { return C >= 1024 ? 1024 : C >= 256 ? 256 : 128; }

extern "C" void fb_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp,
                                        const float *weight, int N, int C, float eps) {
  if (N <= 0) return;
  FB_LAUNCH(rmsnorm_forward_kernel, N, row_threads(C), 0, fb_cuda_stream(), out, rstd, inp, weight,
            C, eps);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout,
                                         const float *inp, const float *weight, const float *rstd,
                                         int N, int C) {
  if (N <= 0) return;
  FB_LAUNCH(rmsnorm_backward_kernel, N, row_threads(C), 0, fb_cuda_stream(), dinp, dweight, dout,
            inp, weight, rstd, C);
  FB_LAUNCH_CHECK();
}
