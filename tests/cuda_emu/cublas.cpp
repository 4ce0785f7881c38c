/* cublas.cpp (CUDA emulator): a reference cuBLAS: handles, and cublasGemmEx validated as cuBLAS
 * does (dimensions, leading dimensions, types), each operand's touched extent checked against
 * the live device allocations, then computed by OpenBLAS's sgemm with bf16 operands widened
 * to fp32 (exact, as are the products of two bf16 values in fp32, so only the order of the
 * fp32 sums differs from a GPU's). */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <set>

#include "cublas_v2.h"
#include "emu.h"

struct cublasContext {
  cudaStream_t stream;
};

using namespace cuda_emu;

namespace {

std::set<cublasHandle_t> handles;

const struct {
  cublasStatus_t code;
  const char *name, *text;
} statuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED",
     "the library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE",
     "an invalid numeric value was used as an argument"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH",
     "an absent device architectural feature is required"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR",
     "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED",
     "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED",
     "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR",
     "an error was detected when checking the current licensing"},
};

cublasStatus_t invalid(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
cublasStatus_t invalid(const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  report("cublasGemmEx: %s", why);
  return CUBLAS_STATUS_INVALID_VALUE;
}

struct operand {
  const char *name;
  const void *p;
  cudaDataType_t type;
  int rows, cols, ld; /* as stored, column-major */
  size_t elems() const { return rows && cols ? (size_t)ld * (cols - 1) + rows : 0; }
  size_t elem_bytes() const { return type == CUDA_R_16BF ? 2 : 4; }
};

/* The touched extent of x lies inside one live device allocation; else a line naming it. */
bool inside(const operand &x) {
  char why[256];
  size_t bytes = x.elems() * x.elem_bytes();
  if (!bytes || in_one_allocation(x.p, bytes, why, sizeof why)) return true;
  report("cublasGemmEx: %s (%d x %d %s, ld %d, %zu bytes): %s", x.name, x.rows, x.cols,
         x.type == CUDA_R_16BF ? "bf16" : "fp32", x.ld, bytes, why);
  return false;
}

/* x as fp32 in x's own layout: the operand itself, or a widened copy (*owned) of a bf16 one. */
const float *as_f32(const operand &x, float **owned) {
  *owned = nullptr;
  if (x.type == CUDA_R_32F) return (const float *)x.p;
  size_t n = x.elems();
  float *f = (float *)malloc(n * sizeof(float));
  if (!f) return nullptr;
  const uint16_t *h = (const uint16_t *)x.p;
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)h[i] << 16;
    memcpy(&f[i], &u, 4);
  }
  return *owned = f;
}

bool live_handle(cublasHandle_t h) { return h && handles.count(h); }

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
  api_scope g("cublasCreate");
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  if (device_error()) return CUBLAS_STATUS_NOT_INITIALIZED;
  *handle = new cublasContext{nullptr};
  handles.insert(*handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  api_scope g("cublasDestroy");
  if (!live_handle(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handles.erase(handle);
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  api_scope g("cublasSetStream");
  if (!live_handle(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream_valid(stream)) {
    report("cublasSetStream: stream %p is not a live stream", (void *)stream);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) {
  for (const auto &s : statuses)
    if (s.code == status) return s.text;
  return "unknown error";
}

const char *cublasGetStatusName(cublasStatus_t status) {
  for (const auto &s : statuses)
    if (s.code == status) return s.name;
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
  api_scope g("cublasGemmEx");
  if (!live_handle(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if ((unsigned)transa > CUBLAS_OP_C) return invalid("transa %d is not an operation", transa);
  if ((unsigned)transb > CUBLAS_OP_C) return invalid("transb %d is not an operation", transb);
  bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N; /* C = T for real types */
  if (m < 0 || n < 0 || k < 0) return invalid("m %d, n %d, k %d: negative", m, n, k);
  int need_a = ta ? k : m, need_b = tb ? n : k;
  if (lda < (need_a > 1 ? need_a : 1))
    return invalid("lda %d < max(1, %s) = %d", lda, ta ? "k" : "m", need_a > 1 ? need_a : 1);
  if (ldb < (need_b > 1 ? need_b : 1))
    return invalid("ldb %d < max(1, %s) = %d", ldb, tb ? "n" : "k", need_b > 1 ? need_b : 1);
  if (ldc < (m > 1 ? m : 1)) return invalid("ldc %d < max(1, m) = %d", ldc, m > 1 ? m : 1);
  if (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return invalid("algo %d is not one the emulator knows", algo);
  if (Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F || Atype != Btype ||
      (Atype != CUDA_R_32F && Atype != CUDA_R_16BF)) {
    report(
        "cublasGemmEx: types A %d, B %d, C %d, compute %d: only (bf16, bf16 -> fp32) and "
        "(fp32, fp32 -> fp32) with CUBLAS_COMPUTE_32F",
        Atype, Btype, Ctype, computeType);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  allocation a;
  if (!alpha || !beta) return invalid("alpha or beta is NULL");
  if (find_allocation(alpha, &a) || find_allocation(beta, &a))
    return invalid("alpha or beta is device memory, but the pointer mode is host");
  if (device_error()) return CUBLAS_STATUS_EXECUTION_FAILED;
  cudaError_t ce;
  float al_kept, be_kept; /* host pointer mode: a graph keeps the values of capture time */
  memcpy(&al_kept, alpha, 4);
  memcpy(&be_kept, beta, 4);
  if (capture(
          handle->stream,
          [=] {
            cublasGemmEx(handle, transa, transb, m, n, k, &al_kept, A, Atype, lda, B, Btype, ldb,
                         &be_kept, C, Ctype, ldc, computeType, algo);
          },
          &ce))
    return ce ? CUBLAS_STATUS_EXECUTION_FAILED : CUBLAS_STATUS_SUCCESS;
  if (refuse_in_capture("cublasGemmEx", handle->stream)) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;

  operand opA = {"A", A, Atype, ta ? k : m, ta ? m : k, lda};
  operand opB = {"B", B, Btype, tb ? n : k, tb ? k : n, ldb};
  operand opC = {"C", C, CUDA_R_32F, m, n, ldc};
  if (!inside(opC) || !inside(opA) || !inside(opB)) return CUBLAS_STATUS_EXECUTION_FAILED;

  float al, be, *c = (float *)C;
  memcpy(&al, alpha, 4);
  memcpy(&be, beta, 4);
  for (int j = 0; j < n; j++) { /* beta == 0 never reads C (it may hold NaN) */
    float *col = c + (size_t)j * ldc;
    if (be == 0.0f)
      memset(col, 0, (size_t)m * sizeof(float));
    else if (be != 1.0f)
      for (int i = 0; i < m; i++) col[i] *= be;
  }
  if (k == 0 || al == 0.0f) return CUBLAS_STATUS_SUCCESS;
  float *wa, *wb;
  const float *fa = as_f32(opA, &wa), *fb = as_f32(opB, &wb);
  if (fa && fb)
    cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, al, fa, lda, fb, ldb, 1.0f, c, ldc);
  free(wa);
  free(wb);
  return fa && fb ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
