/* optim.cu: AdamW and the reductions the optimizer and the loss need (sum and sum of squares
 * in double, for the global gradient norm). */
#include <math.h>

#include "common.cuh"

/* PyTorch's AdamW, with the scalars rounded on the host exactly as cpu_backend.c does */
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                             float decay, float w1, float b2, float w2, float e, float step,
                             float bc2s) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = grad[i], p = param[i] * decay, mi = m[i], vi = v[i];
  mi += w1 * (g - mi);
  vi = vi * b2 + w2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = p - step * (mi / (sqrtf(vi) / bc2s + e));
}

/* *out += sum of x[i]^squares (squares = 1) or x[i], each block in double then one atomic */
__global__ void reduce_kernel(double *out, const float *x, size_t n, int squares) {
  double acc = 0.0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    acc += squares ? (double)x[i] * x[i] : (double)x[i];
  acc = fb_block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

extern "C" void fb_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n,
                              double lr, double beta1, double beta2, double eps,
                              double weight_decay, int t) {
  if (!n) return;
  float decay = (float)(1.0 - lr * weight_decay), w1 = (float)(1.0 - beta1);
  float b2 = (float)beta2, w2 = (float)(1.0 - beta2), e = (float)eps;
  float step = (float)(lr / (1.0 - pow(beta1, t))), bc2s = (float)sqrt(1.0 - pow(beta2, t));
  FB_LAUNCH(adamw_kernel, fb_blocks(n, 256), 256, 0, fb_cuda_stream(), param, grad, m, v, n, decay,
            w1, b2, w2, e, step, bc2s);
  FB_LAUNCH_CHECK();
}

static double reduce(const float *x, size_t n, int squares) {
  double *acc = (double *)fb_cuda_workspace(sizeof(double), __FILE__, __LINE__), out = 0.0;
  FB_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), fb_cuda_stream()));
  if (n) {
    unsigned blocks = fb_blocks(n, 256), grid = blocks < 1024 ? blocks : 1024;
    FB_LAUNCH(reduce_kernel, grid, 256, 0, fb_cuda_stream(), acc, x, n, squares);
    FB_LAUNCH_CHECK();
  }
  FB_CUDA_CHECK(cudaMemcpyAsync(&out, acc, sizeof out, cudaMemcpyDeviceToHost, fb_cuda_stream()));
  FB_CUDA_CHECK(cudaStreamSynchronize(fb_cuda_stream()));
  return out;
}

extern "C" double fb_cuda_sumsq(const float *x, size_t n) { return reduce(x, n, 1); }

extern "C" double fb_cuda_sum(const float *x, size_t n) { return reduce(x, n, 0); }
