/* matmul.cu: every matrix product of the GPU backend, through cuBLAS in row-major terms. A
 * product with a bf16 weight (the base model's) takes its activation operand in bf16: the
 * shadow the op that wrote it left (fb_cuda.h), else a rounding into the shared workspace; it
 * accumulates in fp32 on the tensor cores. fp32 weights (LoRA) take plain fp32 products (no
 * TF32). A bias (Qwen2's q, k, v) is cuBLASLt's bias epilogue, not a pass of its own. Kernel:
 * the bias gradient. */
#include "common.cuh"

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
  fb_span written = {C, ((size_t)(M - 1) * ldc + N) * sizeof(float)};
  /* column-major view: C^T[N,M] = op(B)^T[N,K] @ op(A)^T[K,M] */
  FB_CUBLAS_CHECK(cublasGemmEx(fb_cuda_cublas_writing(written), tB ? CUBLAS_OP_T : CUBLAS_OP_N,
                               tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, typeB, ldb, A,
                               typeA, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

static void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                          const void *value, size_t bytes) {
  FB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, value, bytes));
}

static cublasLtMatrixLayout_t layout(cudaDataType_t type, int rows, int cols, int ld) {
  cublasLtMatrixLayout_t l;
  FB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
  return l;
}

/* out[N,OC] = alpha * x[N,C] @ weight[OC,C]^T + beta * out + bias[OC], the bias added by
 * cuBLASLt's epilogue as the product is stored. */
static void product_with_bias(float *out, const void *x, const void *weight, cudaDataType_t t,
                              const float *bias, int N, int C, int OC, float alpha, float beta) {
  if (N <= 0 || OC <= 0) return;
  cublasLtMatmulDesc_t desc;
  FB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  int32_t transposed = CUBLAS_OP_T;
  uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  set_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transposed, sizeof transposed);
  set_attribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
  set_attribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  /* column-major view: out^T[OC,N] = (weight^T)^T[OC,C] @ x^T[C,N], bias down each column */
  cublasLtMatrixLayout_t w = layout(t, C, OC, C), xl = layout(t, C, N, C),
                         o = layout(CUDA_R_32F, OC, N, OC);
  fb_span written = {out, (size_t)N * OC * sizeof(float)};
  FB_CUBLAS_CHECK(cublasLtMatmul(fb_cuda_cublaslt_writing(written), desc, &alpha, weight, w, x, xl,
                                 &beta, out, o, out, o, NULL, NULL, 0,
                                 fb_cuda_stream_writing({written})));
  for (cublasLtMatrixLayout_t l : {w, xl, o}) FB_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(l));
  FB_CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

/* The bf16 copy of x[rows, cols] for a product with a bf16 weight: x's shadow when the op that
 * wrote x left a valid one, else x rounded into the workspace. */
static const fb_bf16 *rounded(const float *x, int rows, int cols) {
  size_t n = (size_t)rows * cols;
  const fb_bf16 *shadow = fb_cuda_shadow_of(x, n);
  if (shadow) return shadow;
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
  if (bias)
    product_with_bias(out, x, weight, t, bias, N, C, OC, alpha, beta);
  else
    fb_cuda_gemm(0, 1, N, OC, C, alpha, x, t, C, weight, t, C, beta, out, OC);
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
    FB_LAUNCH(bias_backward_kernel, fb_blocks(OC, 128), 128, 0,
              fb_cuda_stream_writing({{dbias, OC * sizeof(float)}}), dbias, dout, N, OC, alpha);
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
