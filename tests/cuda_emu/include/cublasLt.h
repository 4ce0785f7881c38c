/* cublasLt.h (CUDA emulator): the part of cuBLASLt the backend uses: a handle, a matmul
 * descriptor with the transpose, epilogue and bias attributes, column-major matrix layouts, and
 * cublasLtMatmul with the default or the bias epilogue (tests/cuda_emu/cublas.cpp), validated
 * like the real one and computed by the reference GEMM. Whatever else cuBLASLt offers (other
 * attributes and epilogues, heuristics, out-of-place C != D, device pointer mode) is refused
 * with CUBLAS_STATUS_NOT_SUPPORTED and a line saying what. The enums carry cuBLASLt's values. */
#ifndef CUDA_EMU_CUBLASLT_H
#define CUDA_EMU_CUBLASLT_H

#include <stdint.h>

#include "cublas_v2.h"

typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescEmu *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutEmu *cublasLtMatrixLayout_t;
typedef struct {
  uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef enum {
  CUBLASLT_MATMUL_DESC_TRANSA = 3,       /* int32_t cublasOperation_t, default CUBLAS_OP_N */
  CUBLASLT_MATMUL_DESC_TRANSB = 4,       /* int32_t cublasOperation_t, default CUBLAS_OP_N */
  CUBLASLT_MATMUL_DESC_EPILOGUE = 7,     /* uint32_t cublasLtEpilogue_t */
  CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8, /* const void *: bias[rows of D], D's type */
} cublasLtMatmulDescAttributes_t;

typedef enum {
  CUBLASLT_EPILOGUE_DEFAULT = 1,
  CUBLASLT_EPILOGUE_BIAS = 4, /* D[i, j] += bias[i] */
} cublasLtEpilogue_t;

extern "C" {
cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t bytes);
/* rows x cols stored column-major with leading dimension ld */
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout);
/* D = alpha * op(A) @ op(B) + beta * C (+ bias), column-major; C and D the same matrix here;
 * algo NULL (cuBLASLt's own heuristic); alpha, beta host floats. */
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream);
}

#endif
