/* elementwise.cu: the backend's element-wise ops on the GPU: embedding lookup and scatter,
 * rotary embedding, SwiGLU, add, dropout (the CPU's exact mask), scale. One thread per
 * element; nothing here allocates. */
#include "common.cuh"

__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const __nv_bfloat16 *table,
                                         size_t total, int C) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  size_t n = i / C, c = i % C;
  out[i] = __bfloat162float(table[(size_t)ids[n] * C + c]);
}

__global__ void embedding_backward_kernel(float *dtable, const float *dout, const int32_t *ids,
                                          size_t total, int C) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  size_t n = i / C, c = i % C;
  atomicAdd(&dtable[(size_t)ids[n] * C + c], dout[i]);
}

/* (x1, x2) -> (x1 cos - x2 sin*sign, x2 cos + x1 sin*sign) on each half-pair of every head */
__global__ void rope_kernel(float *x, const float *cos, const float *sin, const int32_t *pos,
                            size_t total, int NH, int half, float sign) {
  size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (t >= total) return;
  size_t i = t % half, nh = t / half, n = nh / NH;
  float *v = x + nh * 2 * half;
  size_t at = (size_t)pos[n] * half + i;
  float x1 = v[i], x2 = v[i + half], c = cos[at], s = sign * sin[at];
  v[i] = x1 * c - x2 * s;
  v[i + half] = x2 * c + x1 * s;
}

__global__ void swiglu_forward_kernel(float *out, const float *gate, const float *up, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = gate[i];
  out[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dout,
                                       const float *gate, const float *up, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), d = dout[i];
  float u = up[i]; /* read before writing: dup may alias up in a caller's buffer plan */
  dup[i] = d * g * sg;
  dgate[i] = d * u * sg * (1.0f + g * (1.0f - sg));
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float *x, size_t n, float v) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) x[i] *= v;
}

/* splitmix64 of (seed, i), as cpu_backend.c's mix() */
__device__ inline uint64_t mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* the seed from device memory: a graph captured once serves every step's masks */
__global__ void dropout_kernel(float *out, const float *inp, size_t n, float p, float keep,
                               const uint64_t *seed) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  double u = (double)(mix(*seed, i) >> 11) * 0x1.0p-53;
  out[i] = u < p ? 0.0f : inp[i] * keep;
}

#define LAUNCH(kernel, n, ...)                                                                     \
  do {                                                                                             \
    if ((n) == 0) break;                                                                           \
    FB_LAUNCH(kernel, fb_blocks((n), 256), 256, 0, fb_cuda_stream(), __VA_ARGS__);                 \
    FB_LAUNCH_CHECK();                                                                             \
  } while (0)

extern "C" void fb_cuda_embedding_forward(float *out, const int32_t *ids, const void *table, int N,
                                          int C) {
  size_t total = (size_t)N * C;
  LAUNCH(embedding_forward_kernel, total, out, ids, (const __nv_bfloat16 *)table, total, C);
}

extern "C" void fb_cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                                           int N, int C) {
  size_t total = (size_t)N * C;
  LAUNCH(embedding_backward_kernel, total, dtable, dout, ids, total, C);
}

extern "C" void fb_cuda_rope_forward(float *x, const float *cos, const float *sin,
                                     const int32_t *pos, int N, int NH, int HD) {
  size_t total = (size_t)N * NH * (HD / 2);
  LAUNCH(rope_kernel, total, x, cos, sin, pos, total, NH, HD / 2, 1.0f);
}

extern "C" void fb_cuda_rope_backward(float *dx, const float *cos, const float *sin,
                                      const int32_t *pos, int N, int NH, int HD) {
  size_t total = (size_t)N * NH * (HD / 2);
  LAUNCH(rope_kernel, total, dx, cos, sin, pos, total, NH, HD / 2, -1.0f);
}

extern "C" void fb_cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
  LAUNCH(swiglu_forward_kernel, n, out, gate, up, n);
}

extern "C" void fb_cuda_swiglu_backward(float *dgate, float *dup, const float *dout,
                                        const float *gate, const float *up, size_t n) {
  LAUNCH(swiglu_backward_kernel, n, dgate, dup, dout, gate, up, n);
}

extern "C" void fb_cuda_add(float *out, const float *a, const float *b, size_t n) {
  LAUNCH(add_kernel, n, out, a, b, n);
}

extern "C" void fb_cuda_scale(float *x, size_t n, float s) { LAUNCH(scale_kernel, n, x, n, s); }

extern "C" void fb_cuda_dropout(float *out, const float *inp, size_t n, float p,
                                const uint64_t *seed) {
  LAUNCH(dropout_kernel, n, out, inp, n, p, 1.0f / (1.0f - p), seed);
}
