/* context.cu: the CUDA context of the training core: device choice and probe, the stream,
 * the cuBLAS handle, device memory with accounting and clear out-of-memory errors, the bf16
 * workspace, copies, and the fault handler every checked call ends in. No kernels but the
 * conversions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

extern "C" {
#include "log.h"
}

static struct {
  int ready;
  cudaStream_t stream;
  cublasHandle_t cublas;
  void *ws;
  size_t ws_bytes;
  size_t in_use, peak;
  char name[256];
} ctx;

/* Every live allocation and its size, so frees keep the accounting right. */
typedef struct block {
  void *p;
  size_t bytes;
  struct block *next;
} block;
static block *blocks;

extern "C" void fb_cuda_check(int code, const char *call, const char *file, int line) {
  if (code == cudaSuccess) return;
  fb_error("cuda: %s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString((cudaError_t)code),
           cudaGetErrorName((cudaError_t)code));
  exit(FB_CUDA_FAULT_EXIT);
}

extern "C" void fb_cublas_check(int status, const char *call, const char *file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fb_error("cuda: %s:%d: %s: cuBLAS %s (%s)", file, line, call,
           cublasGetStatusString((cublasStatus_t)status),
           cublasGetStatusName((cublasStatus_t)status));
  exit(FB_CUDA_FAULT_EXIT);
}

extern "C" int fb_cuda_probe(char *why, size_t n) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(why, n, "no usable CUDA driver or device: %s", cudaGetErrorString(e));
    return -1;
  }
  if (count < 1) {
    snprintf(why, n, "no CUDA device is visible");
    return -1;
  }
  cudaDeviceProp p;
  if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
    snprintf(why, n, "CUDA device 0 cannot be queried: %s", cudaGetErrorString(e));
    return -1;
  }
  if (p.major * 10 + p.minor < FB_CUDA_MIN_CC) {
    snprintf(why, n, "CUDA device 0 (%s) has compute capability %d.%d; this build needs %d.%d",
             p.name, p.major, p.minor, FB_CUDA_MIN_CC / 10, FB_CUDA_MIN_CC % 10);
    return -1;
  }
  snprintf(why, n, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
           p.totalGlobalMem / 1073741824.0);
  return 0;
}

extern "C" int fb_cuda_init(fb_err *err) {
  if (ctx.ready) return 0;
  char why[256];
  if (fb_cuda_probe(why, sizeof why)) return fb_err_set(err, FB_EBACKEND, "cuda: %s", why);
  snprintf(ctx.name, sizeof ctx.name, "%s", why);
  FB_CUDA_CHECK(cudaSetDevice(0));
  FB_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  FB_CUBLAS_CHECK(cublasCreate(&ctx.cublas));
  FB_CUBLAS_CHECK(cublasSetStream(ctx.cublas, ctx.stream));
  ctx.ready = 1;
  fb_info("cuda: using %s", ctx.name);
  /* enough for the reductions and small products; models reserve what their shapes need */
  return fb_cuda_workspace_reserve((size_t)1 << 20, err);
}

extern "C" void fb_cuda_shutdown(void) {
  if (!ctx.ready) return;
  fb_cuda_free(ctx.ws);
  ctx.ws = NULL;
  ctx.ws_bytes = 0;
  FB_CUBLAS_CHECK(cublasDestroy(ctx.cublas));
  FB_CUDA_CHECK(cudaStreamDestroy(ctx.stream));
  ctx.ready = 0;
}

extern "C" fb_stream fb_cuda_stream(void) { return ctx.stream; }
extern "C" void fb_cuda_sync(void) { FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream)); }
extern "C" const char *fb_cuda_device_name(void) { return ctx.name; }

cublasHandle_t fb_cuda_cublas(fb_stream s) {
  FB_CUBLAS_CHECK(cublasSetStream(ctx.cublas, s));
  return ctx.cublas;
}

extern "C" int fb_cuda_alloc(void **p, size_t bytes, const char *what, fb_err *err) {
  *p = NULL;
  block *b = (block *)malloc(sizeof *b);
  if (!b) return fb_err_set(err, FB_ENOMEM, "cuda: out of host memory tracking %s", what);
  cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError(); /* clear it: running out of memory is not a fault */
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    free(b);
    *p = NULL;
    return fb_err_set(err, FB_ENOMEM,
                      "cuda: out of memory for %s: asked %.2f GiB (%zu bytes), %.2f GiB free of "
                      "%.2f GiB (%.2f GiB held by this process)",
                      what, bytes / 1073741824.0, bytes, free_b / 1073741824.0,
                      total / 1073741824.0, ctx.in_use / 1073741824.0);
  }
  FB_CUDA_CHECK(e);
  b->p = *p;
  b->bytes = bytes;
  b->next = blocks;
  blocks = b;
  ctx.in_use += bytes;
  if (ctx.in_use > ctx.peak) ctx.peak = ctx.in_use;
  return 0;
}

extern "C" void fb_cuda_free(void *p) {
  if (!p) return;
  for (block **at = &blocks; *at; at = &(*at)->next)
    if ((*at)->p == p) {
      block *b = *at;
      *at = b->next;
      ctx.in_use -= b->bytes;
      free(b);
      break;
    }
  FB_CUDA_CHECK(cudaFree(p));
}

extern "C" size_t fb_cuda_bytes_in_use(void) { return ctx.in_use; }
extern "C" size_t fb_cuda_peak_bytes(void) { return ctx.peak; }
extern "C" void fb_cuda_reset_peak(void) { ctx.peak = ctx.in_use; }

extern "C" void fb_cuda_upload(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream));
  FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

extern "C" void fb_cuda_download(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

extern "C" void fb_cuda_zero(void *p, size_t bytes) {
  FB_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx.stream));
}

extern "C" void fb_cuda_copy(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx.stream));
}

extern "C" int fb_cuda_workspace_reserve(size_t bytes, fb_err *err) {
  if (bytes <= ctx.ws_bytes) return 0;
  void *p;
  int rc = fb_cuda_alloc(&p, bytes, "the bf16 workspace", err);
  if (rc) return rc;
  fb_cuda_free(ctx.ws);
  ctx.ws = p;
  ctx.ws_bytes = bytes;
  return 0;
}

void *fb_cuda_workspace(size_t bytes, const char *file, int line) {
  if (bytes > ctx.ws_bytes) {
    fb_error("cuda: %s:%d: needs %zu bytes of workspace, %zu reserved", file, line, bytes,
             ctx.ws_bytes);
    exit(FB_CUDA_FAULT_EXIT);
  }
  return ctx.ws;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *inp, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(inp[i]);
}

__global__ void from_bf16_kernel(float *out, const __nv_bfloat16 *inp, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(inp[i]);
}

extern "C" void fb_cuda_to_bf16(fb_bf16 *out, const float *inp, size_t n, fb_stream s) {
  if (!n) return;
  FB_LAUNCH(to_bf16_kernel, fb_blocks(n, 256), 256, 0, s, (__nv_bfloat16 *)out, inp, n);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_from_bf16(float *out, const fb_bf16 *inp, size_t n, fb_stream s) {
  if (!n) return;
  FB_LAUNCH(from_bf16_kernel, fb_blocks(n, 256), 256, 0, s, out, (const __nv_bfloat16 *)inp, n);
  FB_LAUNCH_CHECK();
}

extern "C" fb_bf16 fb_bf16_from_float(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (fb_bf16)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
  return (fb_bf16)(u >> 16);
}

extern "C" float fb_bf16_to_float(fb_bf16 x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
