/* matmul.cu: every matrix product of the GPU backend, through cuBLAS in row-major terms. Base
 * weights are bf16, so their products round the activation operand to bf16 (in the shared
 * workspace) and accumulate in fp32 on the tensor cores; LoRA products are plain fp32 (no
 * TF32). Kernels: bias add and bias gradient. */
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
                  float beta, float *C, int ldc, fb_stream s) {
  if (M <= 0 || N <= 0) return;
  /* column-major view: C^T[N,M] = op(B)^T[N,K] @ op(A)^T[K,M] */
  FB_CUBLAS_CHECK(cublasGemmEx(fb_cuda_cublas(s), tB ? CUBLAS_OP_T : CUBLAS_OP_N,
                               tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, typeB, ldb, A,
                               typeA, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

static void add_bias(float *out, const float *bias, int N, int OC, fb_stream s) {
  size_t total = (size_t)N * OC;
  FB_LAUNCH(bias_add_kernel, fb_blocks(total, 256), 256, 0, s, out, bias, total, OC);
  FB_LAUNCH_CHECK();
}

extern "C" void fb_cuda_matmul_forward(float *out, const float *inp, const fb_bf16 *weight,
                                       const float *bias, int N, int C, int OC, float alpha,
                                       float beta, fb_stream s) {
  fb_bf16 *x16 = (fb_bf16 *)fb_cuda_workspace((size_t)N * C * 2, __FILE__, __LINE__);
  fb_cuda_to_bf16(x16, inp, (size_t)N * C, s);
  fb_cuda_gemm(0, 1, N, OC, C, alpha, x16, CUDA_R_16BF, C, weight, CUDA_R_16BF, C, beta, out, OC,
               s);
  if (bias) add_bias(out, bias, N, OC, s);
}

extern "C" void fb_cuda_matmul_backward(float *dinp, const float *dout, const fb_bf16 *weight,
                                        int N, int C, int OC, float alpha, fb_stream s) {
  fb_bf16 *d16 = (fb_bf16 *)fb_cuda_workspace((size_t)N * OC * 2, __FILE__, __LINE__);
  fb_cuda_to_bf16(d16, dout, (size_t)N * OC, s);
  fb_cuda_gemm(0, 0, N, C, OC, alpha, d16, CUDA_R_16BF, OC, weight, CUDA_R_16BF, C, 1.0f, dinp, C,
               s);
}

extern "C" void fb_cuda_matmul_forward_f32(float *out, const float *inp, const float *weight,
                                           const float *bias, int N, int C, int OC, float alpha,
                                           float beta, fb_stream s) {
  fb_cuda_gemm(0, 1, N, OC, C, alpha, inp, CUDA_R_32F, C, weight, CUDA_R_32F, C, beta, out, OC, s);
  if (bias) add_bias(out, bias, N, OC, s);
}

extern "C" void fb_cuda_matmul_backward_f32(float *dinp, float *dweight, float *dbias,
                                            const float *dout, const float *inp,
                                            const float *weight, int N, int C, int OC, float alpha,
                                            fb_stream s) {
  if (dinp)
    fb_cuda_gemm(0, 0, N, C, OC, alpha, dout, CUDA_R_32F, OC, weight, CUDA_R_32F, C, 1.0f, dinp, C,
                 s);
  if (dweight)
    fb_cuda_gemm(1, 0, OC, C, N, alpha, dout, CUDA_R_32F, OC, inp, CUDA_R_32F, C, 1.0f, dweight, C,
                 s);
  if (dbias) {
    FB_LAUNCH(bias_backward_kernel, fb_blocks(OC, 128), 128, 0, s, dbias, dout, N, OC, alpha);
    FB_LAUNCH_CHECK();
  }
}

extern "C" void fb_cuda_addmm(float *out, const float *a, const float *b, int M, int N, int K,
                              float alpha, fb_stream s) {
  fb_cuda_gemm(0, 0, M, N, K, alpha, a, CUDA_R_32F, K, b, CUDA_R_32F, N, 1.0f, out, N, s);
}
