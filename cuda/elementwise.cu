/* elementwise.cu: the backend's element-wise ops on the GPU: embedding lookup and scatter,
 * rotary embedding, SwiGLU, add, dropout (the CPU's exact mask), scale. One thread per
 * element; nothing here allocates. Rotary embedding and SwiGLU write their outputs' bf16
 * shadows too (fb_cuda.h): they feed the projections (forward) and their gradients (backward). */
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
__global__ void rope_kernel(float *x, __nv_bfloat16 *x16, const float *cos, const float *sin,
                            const int32_t *pos, size_t total, int NH, int half, float sign) {
  size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (t >= total) return;
  size_t i = t % half, nh = t / half, n = nh / NH;
  float *v = x + nh * 2 * half;
  size_t at = (size_t)pos[n] * half + i;
  float x1 = v[i], x2 = v[i + half], c = cos[at], s = sign * sin[at];
  float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
  v[i] = y1;
  v[i + half] = y2;
  if (!x16) return;
  __nv_bfloat16 *v16 = x16 + nh * 2 * half;
  v16[i] = __float2bfloat16_rn(y1);
  v16[i + half] = __float2bfloat16_rn(y2);
}

__global__ void swiglu_forward_kernel(float *out, __nv_bfloat16 *out16, const float *gate,
                                      const float *up, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = gate[i], y = g / (1.0f + expf(-g)) * up[i];
  out[i] = y;
  if (out16) out16[i] = __float2bfloat16_rn(y);
}

__global__ void swiglu_backward_kernel(float *dgate, __nv_bfloat16 *dgate16, float *dup,
                                       __nv_bfloat16 *dup16, const float *dout, const float *gate,
                                       const float *up, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), d = dout[i];
  float u = up[i]; /* read before writing: dup may alias up in a caller's buffer plan */
  float du = d * g * sg, dg = d * u * sg * (1.0f + g * (1.0f - sg));
  dup[i] = du;
  dgate[i] = dg;
  if (dup16) dup16[i] = __float2bfloat16_rn(du);
  if (dgate16) dgate16[i] = __float2bfloat16_rn(dg);
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

/* kernel over n threads on `stream` (which names what it writes, common.cuh) */
#define LAUNCH(kernel, n, stream, ...)                                                             \
  do {                                                                                             \
    if ((n) == 0) break;                                                                           \
    FB_LAUNCH(kernel, fb_blocks((n), 256), 256, 0, stream, __VA_ARGS__);                           \
    FB_LAUNCH_CHECK();                                                                             \
  } while (0)

/* The stream for a kernel that writes only x[n] (fp32). */
static cudaStream_t writing(const float *x, size_t n) {
  return fb_cuda_stream_writing({{x, n * sizeof(float)}});
}

extern "C" void fb_cuda_embedding_forward(float *out, const int32_t *ids, const void *table, int N,
                                          int C) {
  size_t total = (size_t)N * C;
  LAUNCH(embedding_forward_kernel, total, writing(out, total), out, ids,
         (const __nv_bfloat16 *)table, total, C);
}

extern "C" void fb_cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                                           int N, int C) {
  size_t total = (size_t)N * C;
  /* the rows it scatters into are the ids' (the table's size is not known here) */
  LAUNCH(embedding_backward_kernel, total, fb_cuda_stream(), dtable, dout, ids, total, C);
}

/* x rotated in place (sign 1) or back (-1), with its bf16 shadow */
static void rope(float *x, const float *cos, const float *sin, const int32_t *pos, int N, int NH,
                 int HD, float sign) {
  size_t total = (size_t)N * NH * (HD / 2), n = (size_t)N * NH * HD;
  if (!total) return;
  cudaStream_t s = writing(x, n);
  LAUNCH(rope_kernel, total, s, x, fb_cuda_shadow_claim(x, n), cos, sin, pos, total, NH, HD / 2,
         sign);
}

extern "C" void fb_cuda_rope_forward(float *x, const float *cos, const float *sin,
                                     const int32_t *pos, int N, int NH, int HD) {
  rope(x, cos, sin, pos, N, NH, HD, 1.0f);
}

extern "C" void fb_cuda_rope_backward(float *dx, const float *cos, const float *sin,
                                      const int32_t *pos, int N, int NH, int HD) {
  rope(dx, cos, sin, pos, N, NH, HD, -1.0f);
}

extern "C" void fb_cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
  if (!n) return;
  cudaStream_t s = writing(out, n);
  LAUNCH(swiglu_forward_kernel, n, s, out, fb_cuda_shadow_claim(out, n), gate, up, n);
}

extern "C" void fb_cuda_swiglu_backward(float *dgate, float *dup, const float *dout,
                                        const float *gate, const float *up, size_t n) {
  if (!n) return;
  cudaStream_t s = fb_cuda_stream_writing({{dgate, n * sizeof(float)}, {dup, n * sizeof(float)}});
  __nv_bfloat16 *dgate16 = fb_cuda_shadow_claim(dgate, n), *dup16 = fb_cuda_shadow_claim(dup, n);
  LAUNCH(swiglu_backward_kernel, n, s, dgate, dgate16, dup, dup16, dout, gate, up, n);
}

extern "C" void fb_cuda_add(float *out, const float *a, const float *b, size_t n) {
  LAUNCH(add_kernel, n, writing(out, n), out, a, b, n);
}

extern "C" void fb_cuda_scale(float *x, size_t n, float s) {
  LAUNCH(scale_kernel, n, writing(x, n), x, n, s);
}

extern "C" void fb_cuda_dropout(float *out, const float *inp, size_t n, float p,
                                const uint64_t *seed) {
  LAUNCH(dropout_kernel, n, writing(out, n), out, inp, n, p, 1.0f / (1.0f - p), seed);
}
