/* gemm.h: the one matrix product of the CPU backend, row-major fp32, dispatched at run time to
 * the fastest path that passes a self-test on this CPU (oneDNN's dnnl_sgemm when libdnnl is
 * installed, or OpenBLAS cblas_sgemm). No other op lives here. */
#ifndef FB_GEMM_H
#define FB_GEMM_H

/* C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, row-major; op(X) = X^T when transX.
 * lda/ldb/ldc are row strides of the matrices as stored; C is not read when beta is 0. A single
 * row (M = 1) goes to OpenBLAS's sgemv whichever path is chosen. Safe from any thread once
 * fb_gemm_init has run (fb_gemm calls it on first use). */
void fb_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* R[M,N] = alpha * op(A) @ op(B) + beta * C in double precision, by the naive triple loop: the
 * reference every path of fb_gemm is checked against (fb_gemm_init's self-test, the tests). C
 * and R have row stride N; C is not read when beta is 0. */
void fb_gemm_reference(int transA, int transB, int M, int N, int K, double alpha, const float *A,
                       int lda, const float *B, int ldb, double beta, const float *C, double *R);

/* Pick the path (once per process): FB_GEMM=openblas|dnnl forces one. Otherwise each candidate
 * (OpenBLAS; oneDNN when libdnnl is installed) is checked against a double-precision reference
 * on a few shapes, and of those that agree the faster on a 512^3 product is used (oneDNN
 * dispatches AVX-512/AMX itself; an OpenBLAS that does not know the CPU falls back to slow
 * kernels, one that does can be faster). Costs ~10-50 ms once. Opening oneDNN sets
 * OMP_WAIT_POLICY=passive in the environment unless it is already set. Idempotent and
 * thread-safe; call it early if other threads may read the environment meanwhile. */
void fb_gemm_init(void);

/* Before the process's first product: take path ("openblas" or "dnnl") as FB_GEMM would (the
 * environment still wins). A resumed training run keeps the path its checkpoint was made with:
 * the two sum in different orders, and a switch would leave the resumed weights a few ulps from
 * an uninterrupted run's. Not thread-safe; no effect once fb_gemm_init has run. */
void fb_gemm_prefer(const char *path);

/* "dnnl" or "openblas": the path fb_gemm uses (runs fb_gemm_init). */
const char *fb_gemm_path(void);

#endif
