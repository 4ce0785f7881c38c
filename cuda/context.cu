/* context.cu: the CUDA context of the training core: opening device 0 (and saying what is
 * missing when it cannot be used), the stream and the cuBLAS handle (each handed out saying what
 * the work will write, for the bf16 shadows), device memory with accounting and clear
 * out-of-memory errors, the workspace, copies, and the fault handler every checked call ends in.
 * No kernels but the bf16 rounding. */
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
  cublasLtHandle_t cublaslt; /* for the epilogues plain cuBLAS has not */
  void *ws;
  size_t ws_bytes;
  size_t in_use, peak;
  char name[320]; /* "<device name> (sm_90, 139.8 GiB)" */
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

/* Why device 0 cannot be used (FB_EBACKEND), or 0 with its name in ctx.name. */
static int probe(fb_err *err) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count < 1))
    return fb_err_set(err, FB_EBACKEND, "no CUDA device is visible");
  if (e != cudaSuccess)
    return fb_err_set(err, FB_EBACKEND, "no CUDA driver: %s (%s)", cudaGetErrorString(e),
                      cudaGetErrorName(e));
  cudaDeviceProp p;
  if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess)
    return fb_err_set(err, FB_EBACKEND, "CUDA device 0 cannot be queried: %s",
                      cudaGetErrorString(e));
  if (p.major * 10 + p.minor < FB_CUDA_MIN_CC)
    return fb_err_set(err, FB_EBACKEND, "device 0 (%s) is sm_%d%d; sm_%d or newer is needed",
                      p.name, p.major, p.minor, FB_CUDA_MIN_CC);
  snprintf(ctx.name, sizeof ctx.name, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
           p.totalGlobalMem / 1073741824.0);
  return 0;
}

extern "C" int fb_cuda_init(fb_err *err) {
  if (ctx.ready) return 0;
  int rc = probe(err);
  if (rc) return rc;
  /* the context is made by the first call that needs one: a device in exclusive use fails here */
  cudaError_t e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaFree(0);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking);
  if (e != cudaSuccess)
    return fb_err_set(err, FB_EBACKEND, "device 0 (%s) is not free: %s (%s)", ctx.name,
                      cudaGetErrorString(e), cudaGetErrorName(e));
  FB_CUBLAS_CHECK(cublasCreate(&ctx.cublas));
  FB_CUBLAS_CHECK(cublasSetStream(ctx.cublas, ctx.stream));
  FB_CUBLAS_CHECK(cublasLtCreate(&ctx.cublaslt));
  ctx.ready = 1;
  fb_info("cuda: using %s", ctx.name);
  return 0;
}

extern "C" void fb_cuda_sync(void) { FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream)); }
extern "C" const char *fb_cuda_device_name(void) { return ctx.name; }

cudaStream_t fb_cuda_stream(void) {
  fb_cuda_wrote_anything();
  return ctx.stream;
}

cudaStream_t fb_cuda_stream_writing(std::initializer_list<fb_span> writes) {
  for (const fb_span &w : writes) fb_cuda_wrote(w.p, w.bytes);
  return ctx.stream;
}

cublasHandle_t fb_cuda_cublas_writing(fb_span C) {
  fb_cuda_wrote(C.p, C.bytes);
  return ctx.cublas;
}

cublasLtHandle_t fb_cuda_cublaslt_writing(fb_span C) {
  fb_cuda_wrote(C.p, C.bytes);
  return ctx.cublaslt;
}

/* "1.50 GiB", or "12.3 MiB" under a GiB, into buf[32]. */
static const char *size_text(char *buf, size_t bytes) {
  if (bytes >= ((size_t)1 << 30))
    snprintf(buf, 32, "%.2f GiB", bytes / 1073741824.0);
  else
    snprintf(buf, 32, "%.1f MiB", bytes / 1048576.0);
  return buf;
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
    char asked[32], avail[32], all[32], held[32];
    return fb_err_set(err, FB_ENOMEM,
                      "cuda: out of memory for %s: asked %s (%zu bytes), %s free of %s (%s held "
                      "by this process)",
                      what, size_text(asked, bytes), bytes, size_text(avail, free_b),
                      size_text(all, total), size_text(held, ctx.in_use));
  }
  FB_CUDA_CHECK(e);
  fb_cuda_wrote(*p, bytes); /* memory a freed shadow's source had: that shadow is stale */
  b->p = *p;
  b->bytes = bytes;
  b->next = blocks;
  blocks = b;
  ctx.in_use += bytes;
  if (ctx.in_use > ctx.peak) ctx.peak = ctx.in_use;
  return 0;
}

/* Free p and its accounting. */
static void release(void *p) {
  if (!p) return;
  for (block **at = &blocks; *at; at = &(*at)->next)
    if ((*at)->p == p) {
      block *b = *at;
      *at = b->next;
      ctx.in_use -= b->bytes;
      fb_cuda_wrote(p, b->bytes);
      free(b);
      break;
    }
  FB_CUDA_CHECK(cudaFree(p));
}

extern "C" void fb_cuda_free(void *p) {
  if (!p) return;
  fb_cuda_graphs_drop(); /* a key names buffers by address, which the next allocation may take */
  release(p);
}

extern "C" size_t fb_cuda_peak_bytes(void) { return ctx.peak; }

extern "C" void fb_cuda_upload(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                fb_cuda_stream_writing({{dst, bytes}})));
  FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

extern "C" void fb_cuda_download(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  FB_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

extern "C" void fb_cuda_zero(void *p, size_t bytes) {
  FB_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, fb_cuda_stream_writing({{p, bytes}})));
}

extern "C" void fb_cuda_copy(void *dst, const void *src, size_t bytes) {
  FB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                fb_cuda_stream_writing({{dst, bytes}})));
}

void *fb_cuda_workspace(size_t bytes, const char *file, int line) {
  if (bytes <= ctx.ws_bytes) return ctx.ws;
  void *p;
  fb_err err{};
  fb_cuda_sync();             /* the old workspace may still be read by queued work */
  fb_cuda_graphs_recapture(); /* and by captured work */
  release(ctx.ws);
  ctx.ws = NULL;
  ctx.ws_bytes = 0;
  if (fb_cuda_alloc(&p, bytes, "the workspace", &err)) {
    fb_error("cuda: %s:%d: %s", file, line, err.msg);
    exit(FB_CUDA_FAULT_EXIT);
  }
  ctx.ws = p;
  ctx.ws_bytes = bytes;
  return p;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *inp, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(inp[i]);
}

void fb_cuda_to_bf16(fb_bf16 *out, const float *inp, size_t n) {
  if (!n) return;
  FB_LAUNCH(to_bf16_kernel, fb_blocks(n, 256), 256, 0, fb_cuda_stream_writing({{out, n * 2}}),
            (__nv_bfloat16 *)out, inp, n);
  FB_LAUNCH_CHECK();
}
