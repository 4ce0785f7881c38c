/* matmul.cu: every matrix product of the GPU backend, through cuBLAS in row-major terms. A
 * product with a bf16 weight (the base model's) rounds its activation operand to bf16 (in the
 * shared workspace) and accumulates in fp32 on the tensor cores; fp32 weights (LoRA) take plain
 * fp32 products (no TF32). Kernels: bias add and bias gradient. */
#include "common.cuh"

/* out[n, o] += bias[o] */
__global__ void bias_add_kernel(float *out, const float *bias, size_t total, int OC) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < total) out[i] += bias[i % OC];
}

/* dbias[o] += alpha * sum_n dout[n, o]: one thread per column (biases are short) */
__global__ void bias_backward_kernel(float *dbias, const float *dout, int N, int OC, float alpha) {
  int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float acc = 0.0f;
  for (int n = 0; n < N; n++) acc += dout[(size_t)n * OC + o];
  dbias[o] += alpha * acc;
}

void fb_cuda_gemm(int tA, int tB, int M, int N, int K, float alpha, const void *A,
                  cudaDataType_t typeA, int lda, const void *B, cudaDataType_t typeB, int ldb,
                  float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  /* column-major view: C^T[N,M] = op(B)^T[N,K] @ op(A)^T[K,M] */
  FB_CUBLAS_CHECK(cublasGemmEx(fb_cuda_cublas(), tB ? CUBLAS_OP_T : CUBLAS_OP_N,
                               tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, typeB, ldb, A,
                               typeA, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

static void add_bias(float *out, const float *bias, int N, int OC) {
  size_t total = (size_t)N * OC;
  if (!total) return;
  FB_LAUNCH(bias_add_kernel, fb_blocks(total, 256), 256, 0, fb_cuda_stream(), out, bias, total, OC);
  FB_LAUNCH_CHECK();
}

/* The bf16 copy of x[rows, cols] in the workspace, for a product with a bf16 weight. */
static const fb_bf16 *rounded(const float *x, int rows, int cols) {
  size_t n = (size_t)rows * cols;
  fb_bf16 *x16 = (fb_bf16 *)fb_cuda_workspace(n * sizeof(fb_bf16), __FILE__, __LINE__);
  fb_cuda_to_bf16(x16, x, n);
  return x16;
}

static cudaDataType_t cuda_type(fb_dtype wdt) {
  if (wdt == FB_DT_BF16) return CUDA_R_16BF;
  if (wdt != FB_DT_F32) FB_CUDA_REFUSE("matmul weight dtype (F32 or BF16 only)");
  return CUDA_R_32F;
}

extern "C" void fb_cuda_matmul_forward(float *out, const float *inp, const void *weight,
                                       fb_dtype wdt, const float *bias, int N, int C, int OC,
                                       float alpha, float beta) {
  cudaDataType_t t = cuda_type(wdt);
  const void *x = t == CUDA_R_16BF ? (const void *)rounded(inp, N, C) : (const void *)inp;
  fb_cuda_gemm(0, 1, N, OC, C, alpha, x, t, C, weight, t, C, beta, out, OC);
  if (bias) add_bias(out, bias, N, OC);
}

extern "C" void fb_cuda_matmul_backward(float *dinp, float *dweight, float *dbias,
                                        const float *dout, const float *inp, const void *weight,
                                        fb_dtype wdt, int N, int C, int OC, float alpha) {
  cudaDataType_t t = cuda_type(wdt);
  if (t == CUDA_R_16BF && (dweight || dbias))
    FB_CUDA_REFUSE("matmul_backward: gradients of bf16 base weights (full-parameter training)");
  if (dinp) {
    const void *d = t == CUDA_R_16BF ? (const void *)rounded(dout, N, OC) : (const void *)dout;
    fb_cuda_gemm(0, 0, N, C, OC, alpha, d, t, OC, weight, t, C, 1.0f, dinp, C);
  }
  if (dweight)
    fb_cuda_gemm(1, 0, OC, C, N, alpha, dout, CUDA_R_32F, OC, inp, CUDA_R_32F, C, 1.0f, dweight, C);
  if (dbias && OC > 0) {
    FB_LAUNCH(bias_backward_kernel, fb_blocks(OC, 128), 128, 0, fb_cuda_stream(), dbias, dout, N,
              OC, alpha);
    FB_LAUNCH_CHECK();
  }
}

extern "C" void fb_cuda_addmm(float *out, const float *a, const float *b, int M, int N, int K,
                              float alpha) {
  fb_cuda_gemm(0, 0, M, N, K, alpha, a, CUDA_R_32F, K, b, CUDA_R_32F, N, 1.0f, out, N);
}

extern "C" void fb_cuda_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *a,
                                 int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  fb_cuda_gemm(ta, tb, M, N, K, alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, beta, c, ldc);
}
