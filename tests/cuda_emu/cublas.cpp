/* cublas.cpp (CUDA emulator): a reference cuBLAS: handles, and cublasGemmEx validated as cuBLAS
 * does (dimensions, leading dimensions, types), each operand's touched extent checked against
 * the live device allocations, then computed by OpenBLAS's sgemm with bf16 operands widened
 * to fp32 (exact, as are the products of two bf16 values in fp32, so only the order of the
 * fp32 sums differs from a GPU's). cuBLASLt's cublasLtMatmul (cublasLt.h says how much of it)
 * goes through the same product, with its bias epilogue added after it. */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <set>

#include "cublasLt.h"
#include "cublas_v2.h"
#include "emu.h"

struct cublasContext {
  cudaStream_t stream;
};
struct cublasLtContext {
  int unused;
};
struct cublasLtMatmulDescEmu {
  cublasOperation_t ta, tb;
  cublasLtEpilogue_t epilogue;
  const void *bias;
};
struct cublasLtMatrixLayoutEmu {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
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

/* "API: why" reported, and status returned */
cublasStatus_t refuse(cublasStatus_t status, const char *api, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cublasStatus_t refuse(cublasStatus_t status, const char *api, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  report("%s: %s", api, why);
  return status;
}
#define invalid(...) refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasGemmEx", __VA_ARGS__)

struct operand {
  const char *name;
  const void *p;
  cudaDataType_t type;
  int rows, cols, ld; /* as stored, column-major */
  size_t elems() const { return rows && cols ? (size_t)ld * (cols - 1) + rows : 0; }
  size_t elem_bytes() const { return type == CUDA_R_16BF ? 2 : 4; }
};

/* The touched extent of x lies inside one live device allocation; else a line naming it. */
bool inside(const char *api, const operand &x) {
  char why[256];
  size_t bytes = x.elems() * x.elem_bytes();
  if (!bytes || in_one_allocation(x.p, bytes, why, sizeof why)) return true;
  report("%s: %s (%d x %d %s, ld %d, %zu bytes): %s", api, x.name, x.rows, x.cols,
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

namespace {
/* C[m,n] = alpha * op(A) @ op(B) + beta * C (+ bias[m] on every column when bias), after the
 * checks both APIs share, on stream (recorded when it is capturing); api names the caller in
 * reports. */
cublasStatus_t product(const char *api, bool ta, bool tb, int m, int n, int k, const void *alpha,
                       const void *A, cudaDataType_t Atype, int lda, const void *B,
                       cudaDataType_t Btype, int ldb, const void *beta, void *C, int ldc,
                       const float *bias, cudaStream_t stream) {
  cublasStatus_t bad = CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0) return refuse(bad, api, "m %d, n %d, k %d: negative", m, n, k);
  int need_a = ta ? k : m, need_b = tb ? n : k;
  if (lda < (need_a > 1 ? need_a : 1))
    return refuse(bad, api, "lda %d < max(1, %s) = %d", lda, ta ? "k" : "m",
                  need_a > 1 ? need_a : 1);
  if (ldb < (need_b > 1 ? need_b : 1))
    return refuse(bad, api, "ldb %d < max(1, %s) = %d", ldb, tb ? "n" : "k",
                  need_b > 1 ? need_b : 1);
  if (ldc < (m > 1 ? m : 1)) return refuse(bad, api, "ldc %d < max(1, m) = %d", ldc, m > 1 ? m : 1);
  if (Atype != Btype || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, api,
                  "types A %d, B %d: only (bf16, bf16 -> fp32) and (fp32, fp32 -> fp32) with "
                  "CUBLAS_COMPUTE_32F",
                  Atype, Btype);
  allocation a;
  if (!alpha || !beta) return refuse(bad, api, "alpha or beta is NULL");
  if (find_allocation(alpha, &a) || find_allocation(beta, &a))
    return refuse(bad, api, "alpha or beta is device memory, but the pointer mode is host");
  if (device_error()) return CUBLAS_STATUS_EXECUTION_FAILED;
  cudaError_t ce;
  float al_kept, be_kept; /* host pointer mode: a graph keeps the values of capture time */
  memcpy(&al_kept, alpha, 4);
  memcpy(&be_kept, beta, 4);
  if (capture(
          stream,
          [=] {
            api_scope g(api);
            product(api, ta, tb, m, n, k, &al_kept, A, Atype, lda, B, Btype, ldb, &be_kept, C, ldc,
                    bias, stream);
          },
          &ce))
    return ce ? CUBLAS_STATUS_EXECUTION_FAILED : CUBLAS_STATUS_SUCCESS;
  if (refuse_in_capture(api, stream)) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;

  operand opA = {"A", A, Atype, ta ? k : m, ta ? m : k, lda};
  operand opB = {"B", B, Btype, tb ? n : k, tb ? k : n, ldb};
  operand opC = {"C", C, CUDA_R_32F, m, n, ldc};
  operand opBias = {"bias", bias, CUDA_R_32F, bias ? m : 0, 1, m};
  if (!inside(api, opC) || !inside(api, opA) || !inside(api, opB) || !inside(api, opBias))
    return CUBLAS_STATUS_EXECUTION_FAILED;

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
  float *wa = nullptr, *wb = nullptr;
  const float *fa = nullptr, *fb = nullptr;
  if (k != 0 && al != 0.0f) {
    fa = as_f32(opA, &wa);
    fb = as_f32(opB, &wb);
    if (fa && fb)
      cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                  n, k, al, fa, lda, fb, ldb, 1.0f, c, ldc);
    free(wa);
    free(wb);
    if (!fa || !fb) return CUBLAS_STATUS_ALLOC_FAILED;
  }
  for (int j = 0; j < n && bias; j++) /* the epilogue: after the product and beta * C */
    for (int i = 0; i < m; i++) c[(size_t)j * ldc + i] += bias[i];
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

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
  if (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return invalid("algo %d is not one the emulator knows", algo);
  if (Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "cublasGemmEx",
                  "types A %d, B %d, C %d, compute %d: only (bf16, bf16 -> fp32) and "
                  "(fp32, fp32 -> fp32) with CUBLAS_COMPUTE_32F",
                  Atype, Btype, Ctype, computeType);
  /* C = T for real types */
  return product("cublasGemmEx", transa != CUBLAS_OP_N, transb != CUBLAS_OP_N, m, n, k, alpha, A,
                 Atype, lda, B, Btype, ldb, beta, C, ldc, nullptr, handle->stream);
}

/* ---- cuBLASLt ---- */

namespace {
std::set<cublasLtHandle_t> lt_handles;
std::set<cublasLtMatmulDesc_t> descs;
std::set<cublasLtMatrixLayout_t> layouts;

#define lt_invalid(api, ...) refuse(CUBLAS_STATUS_INVALID_VALUE, api, __VA_ARGS__)
#define lt_unsupported(api, ...) refuse(CUBLAS_STATUS_NOT_SUPPORTED, api, __VA_ARGS__)

/* buf holds exactly one T (the attribute's size), read into *out */
template <typename T>
bool attribute(const void *buf, size_t bytes, T *out) {
  if (!buf || bytes != sizeof(T)) return false;
  memcpy(out, buf, sizeof(T));
  return true;
}

/* The layout as op(X)'s [rows, cols] after transposition, with its stored shape checked. */
bool shape(const cublasLtMatrixLayoutEmu *l, bool t, uint64_t *rows, uint64_t *cols) {
  *rows = t ? l->cols : l->rows;
  *cols = t ? l->rows : l->cols;
  return l->rows <= INT32_MAX && l->cols <= INT32_MAX && l->ld <= INT32_MAX &&
         l->ld >= (int64_t)(l->rows > 1 ? l->rows : 1);
}
}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  api_scope g("cublasLtCreate");
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  if (device_error()) return CUBLAS_STATUS_NOT_INITIALIZED;
  *handle = new cublasLtContext{0};
  lt_handles.insert(*handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  api_scope g("cublasLtDestroy");
  if (!lt_handles.erase(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
  api_scope g("cublasLtMatmulDescCreate");
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute != CUBLAS_COMPUTE_32F || scale_type != CUDA_R_32F)
    return lt_unsupported("cublasLtMatmulDescCreate",
                          "compute %d, scale type %d: only CUBLAS_COMPUTE_32F with fp32 scales",
                          compute, scale_type);
  *desc = new cublasLtMatmulDescEmu{CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr};
  descs.insert(*desc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  api_scope g("cublasLtMatmulDescDestroy");
  if (!descs.erase(desc)) return lt_invalid("cublasLtMatmulDescDestroy", "not a live descriptor");
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t bytes) {
  const char *api = "cublasLtMatmulDescSetAttribute";
  api_scope g(api);
  if (!descs.count(desc)) return lt_invalid(api, "not a live descriptor");
  int32_t op;
  uint32_t epilogue;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
      if (!attribute(buf, bytes, &op) || (op != CUBLAS_OP_N && op != CUBLAS_OP_T))
        return lt_invalid(api, "attribute %d: an int32_t CUBLAS_OP_N or CUBLAS_OP_T", attr);
      (attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->ta : desc->tb) = (cublasOperation_t)op;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (!attribute(buf, bytes, &epilogue)) return lt_invalid(api, "the epilogue is a uint32_t");
      if (epilogue != CUBLASLT_EPILOGUE_DEFAULT && epilogue != CUBLASLT_EPILOGUE_BIAS)
        return lt_unsupported(api, "epilogue %u: only DEFAULT and BIAS", epilogue);
      desc->epilogue = (cublasLtEpilogue_t)epilogue;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (!attribute(buf, bytes, &desc->bias)) return lt_invalid(api, "the bias is a pointer");
      return CUBLAS_STATUS_SUCCESS;
  }
  return lt_unsupported(api, "attribute %d is not one the emulator knows", attr);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  api_scope g("cublasLtMatrixLayoutCreate");
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutEmu{type, rows, cols, ld};
  layouts.insert(*layout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  api_scope g("cublasLtMatrixLayoutDestroy");
  if (!layouts.erase(layout)) return lt_invalid("cublasLtMatrixLayoutDestroy", "not a live layout");
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  const char *api = "cublasLtMatmul";
  api_scope g(api);
  if (!lt_handles.count(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!descs.count(desc)) return lt_invalid(api, "not a live descriptor");
  for (cublasLtMatrixLayout_t l : {Adesc, Bdesc, Cdesc, Ddesc})
    if (!layouts.count(l)) return lt_invalid(api, "a layout that is not live");
  if (!stream_valid(stream))
    return lt_invalid(api, "stream %p is not a live stream", (void *)stream);
  if (algo) return lt_unsupported(api, "an explicit algo: the emulator has none (pass NULL)");
  char why[256];
  if (workspace_bytes && !in_one_allocation(workspace, workspace_bytes, why, sizeof why))
    return lt_invalid(api, "workspace of %zu bytes: %s", workspace_bytes, why);
  if (C != D || Cdesc->type != Ddesc->type || Cdesc->rows != Ddesc->rows ||
      Cdesc->cols != Ddesc->cols || Cdesc->ld != Ddesc->ld)
    return lt_unsupported(api, "C and D differ: only in place (C == D, one layout)");
  if (Ddesc->type != CUDA_R_32F) return lt_unsupported(api, "D of type %d: fp32 only", Ddesc->type);
  uint64_t m, n, am, ak, bk, bn;
  if (!shape(Adesc, desc->ta != CUBLAS_OP_N, &am, &ak) ||
      !shape(Bdesc, desc->tb != CUBLAS_OP_N, &bk, &bn) || !shape(Ddesc, false, &m, &n))
    return lt_invalid(api, "a layout with ld < rows or over 2^31");
  if (am != m || bn != n || ak != bk)
    return lt_invalid(api, "op(A) %llu x %llu, op(B) %llu x %llu, D %llu x %llu do not chain",
                      (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk,
                      (unsigned long long)bn, (unsigned long long)m, (unsigned long long)n);
  bool with_bias = desc->epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (with_bias && !desc->bias) return lt_invalid(api, "the bias epilogue with no bias pointer");
  return product(api, desc->ta != CUBLAS_OP_N, desc->tb != CUBLAS_OP_N, (int)m, (int)n, (int)ak,
                 alpha, A, Adesc->type, (int)Adesc->ld, B, Bdesc->type, (int)Bdesc->ld, beta, D,
                 (int)Ddesc->ld, with_bias ? (const float *)desc->bias : nullptr, stream);
}
