/* attention.cu: causal grouped-query attention in the flash style on tensor cores: tiles of
 * queries, keys and values are converted to bf16 in shared memory, the products S = Q K^T,
 * dP = dO V^T, O += P V, dQ += dS K, dK += dS^T Q and dV += P^T dO run as WMMA m16n16k16 (bf16
 * in, fp32 accumulate), and the softmax is fp32 with a running max and sum per query (no T x T
 * matrix is stored). The forward saves each query's log-sum-exp; the backward recomputes
 * probabilities from it in two kernels, dq by query block and dk/dv by key block x query head
 * (the query heads of a group add into dk/dv with fp32 atomics), after D = rowsum(dO * O).
 *
 * Masking (backend.h): query i (absolute position q0 + i) sees key j <= q0 + i, and with a
 * sliding window (window > 0) only keys with i - j < window; with seg, only keys of its own
 * sequence, and a padding position (seg < 0) only itself. Key (or query) tiles that the causal
 * mask or the window hides from a whole block are skipped.
 *
 * Which tile element an accumulator fragment's slot holds is the hardware's own: each warp
 * asks once (store_slot_map) and then reads or scales its fragments by row and column. */
#include <math.h>
#include <mma.h>

#include <type_traits>

#include "common.cuh"

namespace wmma = nvcuda::wmma;
typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_frag;

/* Every kernel: NW warps, BQ queries by BK keys per tile; rows of bf16 tiles padded by PAD
 * elements and of fp32 tiles by FPAD (WMMA wants 16-byte multiples; the pads spread rows over
 * shared-memory banks). G threads share each query row of the softmax. */
constexpr int NW = 4, NT = NW * 32, BQ = 32, BK = 32, PAD = 8, FPAD = 4, G = NT / BQ;
constexpr int SLD = BK + FPAD; /* row length of the fp32 score tiles */
static_assert(NT % BQ == 0 && BK % G == 0, "rows of the softmax split evenly over threads");
static_assert(BQ * SLD >= NW * 256, "a score tile holds every warp's slot-map probe");

__device__ inline bool allowed(const int32_t *seg_row, int si, int i_abs, int j, int sj,
                               int window) {
  if (j > i_abs || (window > 0 && i_abs - j >= window)) return false;
  if (!seg_row) return true;
  return si < 0 ? j == i_abs : sj == si;
}

/* The first key tile any query from position q_first on may see under the window. */
__device__ inline int first_key_tile(int q_first, int window) {
  int j = window > 0 ? q_first - window + 1 : 0;
  return j > 0 ? j / BK * BK : 0;
}

/* Rows row0..row0+R-1 of one head of a [.., T, heads, HD] tensor (src at row 0 of that head,
 * rows stride apart) into dst[R][LD] as bf16, zeros from row T on, by the whole block. */
template <int R, int HD, int LD>
__device__ inline void load_tile(bf16 (*dst)[LD], const float *src, size_t stride, int row0,
                                 int T) {
  for (int e = threadIdx.x; e < R * HD; e += NT) {
    int r = e / HD, d = e % HD, t = row0 + r;
    dst[r][d] = __float2bfloat16(t < T ? src[(size_t)t * stride + d] : 0.0f);
  }
}

/* Sequence ids of positions p0..p0+R-1 (0 past T or without seg). */
template <int R>
__device__ inline void load_seg(int32_t *dst, const int32_t *segb, int p0, int T) {
  for (int r = threadIdx.x; r < R; r += NT) dst[r] = segb && p0 + r < T ? segb[p0 + r] : 0;
}

/* slot[i]: the element (row * 16 + column) of a 16 x 16 tile that slot i of this lane's
 * accumulator fragments holds, found by storing a fragment of slot numbers into the warp's
 * 256 floats of shared scratch. */
__device__ inline void store_slot_map(uint8_t *slot, float *scratch) {
  int lane = threadIdx.x % 32;
  acc_frag f;
  for (int i = 0; i < f.num_elements; i++) f.x[i] = (float)(lane * f.num_elements + i);
  wmma::store_matrix_sync(scratch, f, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = 0; e < 256; e++) {
    int s = (int)scratch[e];
    if (s / f.num_elements == lane) slot[s % f.num_elements] = (uint8_t)e;
  }
  __syncwarp();
}

/* C[M][N] (fp32, row-major, ldc) = A[M][K] B[N][K]^T, A and B bf16 row-major in shared memory:
 * the block's warps take C's 16 x 16 tiles in turn. */
template <int M, int N, int K>
__device__ inline void gemm_nt(float *C, int ldc, const bf16 *A, int lda, const bf16 *B, int ldb) {
  for (int t = threadIdx.x / 32; t < (M / 16) * (N / 16); t += NW) {
    int i = t / (N / 16) * 16, j = t % (N / 16) * 16;
    acc_frag acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
      wmma::load_matrix_sync(a, A + i * lda + k, lda);
      wmma::load_matrix_sync(b, B + j * ldb + k, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(C + i * ldc + j, acc, ldc, wmma::mem_row_major);
  }
}

/* The 16 x 16 tiles of an [M][N] result a warp keeps in fragments: tile warp + NW * u. */
template <int M, int N>
struct warp_tiles {
  static constexpr int per_warp = (M / 16) * (N / 16) / NW;
  static_assert((M / 16) * (N / 16) % NW == 0, "tiles split evenly over the warps");
  __device__ static int row(int u) { return (threadIdx.x / 32 + NW * u) / (N / 16) * 16; }
  __device__ static int col(int u) { return (threadIdx.x / 32 + NW * u) % (N / 16) * 16; }
};

/* The warp's tiles of C[M][N] += op(A) B in acc[]: op(A)[M][K] is A row-major, or with TA the
 * transpose of a row-major [K][M]; B[K][N] row-major; all bf16 in shared memory. */
template <int M, int N, int K, bool TA>
__device__ inline void gemm_acc(acc_frag *acc, const bf16 *A, int lda, const bf16 *B, int ldb) {
  typedef typename std::conditional<TA, wmma::col_major, wmma::row_major>::type layout_a;
  typedef warp_tiles<M, N> tiles;
  for (int u = 0; u < tiles::per_warp; u++) {
    int i = tiles::row(u), j = tiles::col(u);
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, layout_a> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
      wmma::load_matrix_sync(a, TA ? A + k * lda + i : A + i * lda + k, lda);
      wmma::load_matrix_sync(b, B + k * ldb + j, ldb);
      wmma::mma_sync(acc[u], a, b, acc[u]);
    }
  }
}

/* f(row, column, value) for every slot of the warp's tiles of an [M][N] result. */
template <int M, int N, typename F>
__device__ inline void for_each_slot(acc_frag *acc, const uint8_t *slot, F f) {
  typedef warp_tiles<M, N> tiles;
  for (int u = 0; u < tiles::per_warp; u++)
    for (int i = 0; i < acc[u].num_elements; i++)
      f(tiles::row(u) + slot[i] / 16, tiles::col(u) + slot[i] % 16, acc[u].x[i]);
}

template <int M, int N>
__device__ inline void zero_tiles(acc_frag *acc) {
  for (int u = 0; u < warp_tiles<M, N>::per_warp; u++) wmma::fill_fragment(acc[u], 0.0f);
}

/* Max and sum over the G threads of a softmax row (adjacent lanes). */
__device__ inline float row_max(float v) {
  for (int o = G / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ inline float row_sum(float v) {
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* grid (ceil(Tq/BQ), NH, B), block NT. q/out [B,Tq,NH,HD], k/v [B,Tk,NKV,HD], lse [B,NH,Tq]
 * (may be NULL), seg [B,Tq] (with Tq == Tk, q0 == 0) or NULL. */
template <int HD>
__global__ void __launch_bounds__(NT)
    attention_forward_kernel(float *out, __nv_bfloat16 *out16, float *lse, const float *q,
                             const float *k, const float *v, const int32_t *seg, int Tq, int Tk,
                             int q0, int NH, int NKV, int window, float scale) {
  __shared__ __align__(32) bf16 qs[BQ][HD + PAD], ks[BK][HD + PAD], vs[BK][HD + PAD];
  __shared__ __align__(32) bf16 ps[BQ][BK + PAD];
  __shared__ __align__(32) float ss[BQ][SLD];
  __shared__ float rowf[BQ]; /* each row's rescale factor, at the end 1 / sum */
  __shared__ int32_t segk[BK];
  int b = blockIdx.z, h = blockIdx.y, g = h / (NH / NKV), tid = threadIdx.x;
  int qbase = blockIdx.x * BQ;
  load_tile<BQ, HD, HD + PAD>(qs, q + ((size_t)b * Tq * NH + h) * HD, (size_t)NH * HD, qbase, Tq);
  uint8_t slot[acc_frag::num_elements];
  store_slot_map(slot, &ss[0][0] + tid / 32 * 256);
  acc_frag acc[warp_tiles<BQ, HD>::per_warp];
  zero_tiles<BQ, HD>(acc);
  const int32_t *segb = seg ? seg + (size_t)b * Tq : NULL;
  const float *kb = k + ((size_t)b * Tk * NKV + g) * HD, *vb = v + ((size_t)b * Tk * NKV + g) * HD;
  /* this thread's part of softmax row r: columns c0, c0 + G, ... */
  int r = tid / G, c0 = tid % G, i = qbase + r, i_abs = q0 + i;
  int si = segb && i < Tq ? segb[i] : 0;
  float m = -INFINITY, l = 0.0f;
  int last = q0 + (qbase + BQ < Tq ? qbase + BQ : Tq); /* keys any query here may see */
  int kend = last < Tk ? last : Tk;
  for (int kt = first_key_tile(q0 + qbase, window); kt < kend; kt += BK) {
    __syncthreads(); /* the last tile's K, V, P are read */
    load_tile<BK, HD, HD + PAD>(ks, kb, (size_t)NKV * HD, kt, Tk);
    load_tile<BK, HD, HD + PAD>(vs, vb, (size_t)NKV * HD, kt, Tk);
    load_seg<BK>(segk, segb, kt, Tk);
    __syncthreads();
    gemm_nt<BQ, BK, HD>(&ss[0][0], SLD, &qs[0][0], HD + PAD, &ks[0][0], HD + PAD);
    __syncthreads();
    float sc[BK / G], tmax = -INFINITY;
    for (int u = 0; u < BK / G; u++) {
      int c = c0 + G * u, j = kt + c;
      bool on = j < Tk && allowed(segb, si, i_abs, j, segk[c], window);
      sc[u] = on ? ss[r][c] * scale : -INFINITY;
      tmax = fmaxf(tmax, sc[u]);
    }
    float mn = fmaxf(m, row_max(tmax)), sum = 0.0f;
    for (int u = 0; u < BK / G; u++) {
      float p = sc[u] == -INFINITY ? 0.0f : expf(sc[u] - mn);
      ps[r][c0 + G * u] = __float2bfloat16(p);
      sum += p;
    }
    float corr = mn == -INFINITY ? 1.0f : expf(m - mn);
    l = l * corr + row_sum(sum);
    m = mn;
    if (c0 == 0) rowf[r] = corr;
    __syncthreads();
    for (int u = 0; u < warp_tiles<BQ, HD>::per_warp; u++)
      for (int e = 0; e < acc[u].num_elements; e++)
        acc[u].x[e] *= rowf[warp_tiles<BQ, HD>::row(u) + slot[e] / 16];
    gemm_acc<BQ, HD, BK, false>(acc, &ps[0][0], BK + PAD, &vs[0][0], HD + PAD);
  }
  __syncthreads(); /* rowf is read */
  if (c0 == 0) {
    rowf[r] = 1.0f / l; /* l >= 1 for a query that exists: it sees itself */
    if (lse && i < Tq) lse[((size_t)b * NH + h) * Tq + i] = m + logf(l);
  }
  __syncthreads();
  size_t ob = ((size_t)b * Tq * NH + h) * HD;
  for_each_slot<BQ, HD>(acc, slot, [&](int row, int col, float x) {
    if (qbase + row >= Tq) return;
    size_t at = ob + (size_t)(qbase + row) * NH * HD + col;
    float y = x * rowf[row];
    out[at] = y;
    if (out16) out16[at] = __float2bfloat16_rn(y); /* the o projection's operand */
  });
}

/* D[b,h,i] = sum_d dout * out over row (b, i, h) */
__global__ void attention_delta_kernel(float *D, const float *dout, const float *out, int T, int NH,
                                       int HD, size_t rows) {
  size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (r >= rows) return;
  size_t h = r % NH, bi = r / NH, b = bi / T, i = bi % T;
  const float *a = dout + r * HD, *o = out + r * HD;
  float acc = 0.0f;
  for (int d = 0; d < HD; d++) acc += a[d] * o[d];
  D[(b * NH + h) * T + i] = acc;
}

/* The scores of a BQ x BK tile of queries qt.. and keys kt.. (ss, raw Q K^T) and dP = dO V^T
 * (dps) give P = exp(S scale - lse) where the mask allows, else 0, and dS = P (dP - D): f(u, r,
 * c, p, ds) for the u-th element this thread takes (e = thread + NT u: row e / BK, column
 * e % BK). */
template <typename F>
__device__ inline void probabilities(const float (*ss)[SLD], const float (*dps)[SLD],
                                     const float *ls, const float *Ds, const int32_t *segq,
                                     const int32_t *segk, const int32_t *segb, int qt, int kt,
                                     int T, int window, float scale, F f) {
  for (int u = 0; u < BQ * BK / NT; u++) {
    int e = threadIdx.x + NT * u, r = e / BK, c = e % BK, i = qt + r, j = kt + c;
    bool on = i < T && j < T && allowed(segb, segq[r], i, j, segk[c], window);
    float p = on ? expf(ss[r][c] * scale - ls[r]) : 0.0f;
    f(u, r, c, p, p * (dps[r][c] - Ds[r]));
  }
}

/* lse and D of queries qt..qt+BQ-1 of head h, and their sequence ids. */
__device__ inline void load_rows(float *ls, float *Ds, int32_t *segq, const float *lse,
                                 const float *D, const int32_t *segb, size_t row0, int qt, int T) {
  for (int r = threadIdx.x; r < BQ; r += NT) {
    bool in = qt + r < T;
    ls[r] = in ? lse[row0 + qt + r] : 0.0f;
    Ds[r] = in ? D[row0 + qt + r] : 0.0f;
  }
  load_seg<BQ>(segq, segb, qt, T);
}

/* dq: grid (ceil(T/BQ), NH, B), block NT; key tiles in turn, dq in fragments. */
template <int HD>
__global__ void __launch_bounds__(NT)
    attention_dq_kernel(float *dq, const float *dout, const float *lse, const float *D,
                        const float *q, const float *k, const float *v, const int32_t *seg, int T,
                        int NH, int NKV, int window, float scale) {
  __shared__ __align__(32) bf16 qs[BQ][HD + PAD], dos[BQ][HD + PAD];
  __shared__ __align__(32) bf16 ks[BK][HD + PAD], vs[BK][HD + PAD];
  __shared__ __align__(32) bf16 dss[BQ][BK + PAD];
  __shared__ __align__(32) float ss[BQ][SLD], dps[BQ][SLD];
  __shared__ float ls[BQ], Ds[BQ];
  __shared__ int32_t segq[BQ], segk[BK];
  int b = blockIdx.z, h = blockIdx.y, g = h / (NH / NKV), tid = threadIdx.x;
  int qbase = blockIdx.x * BQ;
  size_t qoff = ((size_t)b * T * NH + h) * HD, koff = ((size_t)b * T * NKV + g) * HD;
  const int32_t *segb = seg ? seg + (size_t)b * T : NULL;
  load_tile<BQ, HD, HD + PAD>(qs, q + qoff, (size_t)NH * HD, qbase, T);
  load_tile<BQ, HD, HD + PAD>(dos, dout + qoff, (size_t)NH * HD, qbase, T);
  load_rows(ls, Ds, segq, lse, D, segb, ((size_t)b * NH + h) * T, qbase, T);
  uint8_t slot[acc_frag::num_elements];
  store_slot_map(slot, &ss[0][0] + tid / 32 * 256);
  acc_frag acc[warp_tiles<BQ, HD>::per_warp];
  zero_tiles<BQ, HD>(acc);
  int kend = qbase + BQ < T ? qbase + BQ : T;
  for (int kt = first_key_tile(qbase, window); kt < kend; kt += BK) {
    __syncthreads(); /* the last tile's K and dS are read */
    load_tile<BK, HD, HD + PAD>(ks, k + koff, (size_t)NKV * HD, kt, T);
    load_tile<BK, HD, HD + PAD>(vs, v + koff, (size_t)NKV * HD, kt, T);
    load_seg<BK>(segk, segb, kt, T);
    __syncthreads();
    gemm_nt<BQ, BK, HD>(&ss[0][0], SLD, &qs[0][0], HD + PAD, &ks[0][0], HD + PAD);
    gemm_nt<BQ, BK, HD>(&dps[0][0], SLD, &dos[0][0], HD + PAD, &vs[0][0], HD + PAD);
    __syncthreads();
    probabilities(ss, dps, ls, Ds, segq, segk, segb, qbase, kt, T, window, scale,
                  [&](int, int r, int c, float, float ds) { dss[r][c] = __float2bfloat16(ds); });
    __syncthreads();
    gemm_acc<BQ, HD, BK, false>(acc, &dss[0][0], BK + PAD, &ks[0][0], HD + PAD);
  }
  float *qb = dq + qoff;
  for_each_slot<BQ, HD>(acc, slot, [&](int row, int col, float x) {
    if (qbase + row < T) qb[(size_t)(qbase + row) * NH * HD + col] = x * scale;
  });
}

/* dk, dv: grid (ceil(T/BK), NH, B), block NT: the keys of one block for one query head, query
 * tiles in turn from the block's first key on (and under a window up to its last key's reach);
 * the heads of a group add into dk and dv (zeroed first) atomically. */
template <int HD>
__global__ void __launch_bounds__(NT)
    attention_dkv_kernel(float *dk, float *dv, const float *dout, const float *lse, const float *D,
                         const float *q, const float *k, const float *v, const int32_t *seg, int T,
                         int NH, int NKV, int window, float scale) {
  __shared__ __align__(32) bf16 ks[BK][HD + PAD], vs[BK][HD + PAD];
  __shared__ __align__(32) bf16 qs[BQ][HD + PAD], dos[BQ][HD + PAD];
  /* S and dP in fp32, then P and dS in bf16 over them (static shared memory stays < 48 KiB) */
  __shared__ __align__(32) float ss[BQ][SLD], dps[BQ][SLD];
  __shared__ float ls[BQ], Ds[BQ];
  __shared__ int32_t segq[BQ], segk[BK];
  bf16(*ps)[BK + PAD] = reinterpret_cast<bf16(*)[BK + PAD]>(&ss[0][0]);
  bf16(*dss)[BK + PAD] = reinterpret_cast<bf16(*)[BK + PAD]>(&dps[0][0]);
  static_assert(sizeof(bf16) * (BK + PAD) <= sizeof(float) * SLD, "P fits in S's rows");
  int b = blockIdx.z, h = blockIdx.y, g = h / (NH / NKV), tid = threadIdx.x;
  int kbase = blockIdx.x * BK;
  size_t qoff = ((size_t)b * T * NH + h) * HD, koff = ((size_t)b * T * NKV + g) * HD;
  const int32_t *segb = seg ? seg + (size_t)b * T : NULL;
  load_tile<BK, HD, HD + PAD>(ks, k + koff, (size_t)NKV * HD, kbase, T);
  load_tile<BK, HD, HD + PAD>(vs, v + koff, (size_t)NKV * HD, kbase, T);
  load_seg<BK>(segk, segb, kbase, T);
  uint8_t slot[acc_frag::num_elements];
  store_slot_map(slot, &ss[0][0] + tid / 32 * 256);
  acc_frag gk[warp_tiles<BK, HD>::per_warp], gv[warp_tiles<BK, HD>::per_warp];
  zero_tiles<BK, HD>(gk);
  zero_tiles<BK, HD>(gv);
  int qend = window > 0 && kbase + BK - 1 + window < T ? kbase + BK - 1 + window : T;
  constexpr int per_thread = BQ * BK / NT;
  for (int qt = kbase / BQ * BQ; qt < qend; qt += BQ) {
    __syncthreads(); /* the last tile's Q, dO, P and dS are read */
    load_tile<BQ, HD, HD + PAD>(qs, q + qoff, (size_t)NH * HD, qt, T);
    load_tile<BQ, HD, HD + PAD>(dos, dout + qoff, (size_t)NH * HD, qt, T);
    load_rows(ls, Ds, segq, lse, D, segb, ((size_t)b * NH + h) * T, qt, T);
    __syncthreads();
    gemm_nt<BQ, BK, HD>(&ss[0][0], SLD, &qs[0][0], HD + PAD, &ks[0][0], HD + PAD);
    gemm_nt<BQ, BK, HD>(&dps[0][0], SLD, &dos[0][0], HD + PAD, &vs[0][0], HD + PAD);
    __syncthreads();
    bf16 p[per_thread], ds[per_thread];
    probabilities(ss, dps, ls, Ds, segq, segk, segb, qt, kbase, T, window, scale,
                  [&](int u, int, int, float pu, float dsu) {
                    p[u] = __float2bfloat16(pu);
                    ds[u] = __float2bfloat16(dsu);
                  });
    __syncthreads(); /* every S and dP is read before P and dS overwrite them */
    for (int u = 0; u < per_thread; u++) {
      int e = tid + NT * u, r = e / BK, c = e % BK;
      ps[r][c] = p[u];
      dss[r][c] = ds[u];
    }
    __syncthreads();
    gemm_acc<BK, HD, BQ, true>(gv, &ps[0][0], BK + PAD, &dos[0][0], HD + PAD);
    gemm_acc<BK, HD, BQ, true>(gk, &dss[0][0], BK + PAD, &qs[0][0], HD + PAD);
  }
  float *kb = dk + koff, *vb = dv + koff;
  size_t stride = (size_t)NKV * HD;
  for_each_slot<BK, HD>(gk, slot, [&](int row, int col, float x) {
    if (kbase + row < T) atomicAdd(&kb[(kbase + row) * stride + col], x * scale);
  });
  for_each_slot<BK, HD>(gv, slot, [&](int row, int col, float x) {
    if (kbase + row < T) atomicAdd(&vb[(kbase + row) * stride + col], x);
  });
}

extern "C" int fb_cuda_attention_supports(int HD) { return HD == 64 || HD == 128; }

template <int HD>
static void forward(float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *seg, int B, int Tq, int Tk, int q0, int NH, int NKV,
                    int window) {
  dim3 grid((Tq + BQ - 1) / BQ, NH, B);
  size_t n = (size_t)B * Tq * NH * HD;
  cudaStream_t s = fb_cuda_stream_writing(
      {{out, n * sizeof(float)}, {lse, lse ? (size_t)B * NH * Tq * sizeof(float) : 0}});
  __nv_bfloat16 *out16 = fb_cuda_shadow_claim(out, n);
  FB_LAUNCH(attention_forward_kernel<HD>, grid, NT, 0, s, out, out16, lse, q, k, v, seg, Tq, Tk, q0,
            NH, NKV, window, 1.0f / sqrtf((float)HD));
  FB_LAUNCH_CHECK();
}

template <int HD>
static void backward(float *dq, float *dk, float *dv, const float *dout, const float *lse,
                     const float *D, const float *q, const float *k, const float *v,
                     const int32_t *seg, int B, int T, int NH, int NKV, int window) {
  float scale = 1.0f / sqrtf((float)HD);
  size_t kv_bytes = (size_t)B * T * NKV * HD * sizeof(float);
  FB_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_bytes, fb_cuda_stream())); /* the heads add into it */
  FB_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_bytes, fb_cuda_stream()));
  FB_LAUNCH(attention_dq_kernel<HD>, dim3((T + BQ - 1) / BQ, NH, B), NT, 0, fb_cuda_stream(), dq,
            dout, lse, D, q, k, v, seg, T, NH, NKV, window, scale);
  FB_LAUNCH_CHECK();
  fb_cuda_phase(FB_PHASE_ATTN_DKDV); /* a profile tells the two backward kernels apart */
  FB_LAUNCH(attention_dkv_kernel<HD>, dim3((T + BK - 1) / BK, NH, B), NT, 0, fb_cuda_stream(), dk,
            dv, dout, lse, D, q, k, v, seg, T, NH, NKV, window, scale);
  FB_LAUNCH_CHECK();
}

extern "C" size_t fb_cuda_attention_scratch(int N, int T, int NH) {
  (void)T;
  return (size_t)N * NH;
}

extern "C" void fb_cuda_attention_forward(float *out, float *lse, const float *q, const float *k,
                                          const float *v, const int32_t *seg, float *scratch, int B,
                                          int T, int NH, int NKV, int HD, int window) {
  (void)scratch; /* scores live in shared memory, tile by tile */
  if (HD == 64)
    forward<64>(out, lse, q, k, v, seg, B, T, T, 0, NH, NKV, window);
  else if (HD == 128)
    forward<128>(out, lse, q, k, v, seg, B, T, T, 0, NH, NKV, window);
  else
    FB_CUDA_REFUSE("attention head_dim (64 or 128 only)");
}

extern "C" void fb_cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                           const float *out, const float *lse, const float *q,
                                           const float *k, const float *v, const int32_t *seg,
                                           float *scratch, int B, int T, int NH, int NKV, int HD,
                                           int window) {
  size_t rows = (size_t)B * T * NH;
  if (!rows) return;
  FB_LAUNCH(attention_delta_kernel, fb_blocks(rows, 256), 256, 0, fb_cuda_stream(), scratch, dout,
            out, T, NH, HD, rows);
  FB_LAUNCH_CHECK();
  if (HD == 64)
    backward<64>(dq, dk, dv, dout, lse, scratch, q, k, v, seg, B, T, NH, NKV, window);
  else if (HD == 128)
    backward<128>(dq, dk, dv, dout, lse, scratch, q, k, v, seg, B, T, NH, NKV, window);
  else
    FB_CUDA_REFUSE("attention head_dim (64 or 128 only)");
}

extern "C" size_t fb_cuda_attention_cached_scratch(int max_len) {
  (void)max_len;
  return 0;
}

extern "C" void fb_cuda_attention_cached(float *out, const float *q, const float *kc,
                                         const float *vc, float *scratch, int n, int p0, int NH,
                                         int NKV, int HD, int window) {
  (void)scratch;
  if (HD == 64)
    forward<64>(out, NULL, q, kc, vc, NULL, 1, n, p0 + n, p0, NH, NKV, window);
  else if (HD == 128)
    forward<128>(out, NULL, q, kc, vc, NULL, 1, n, p0 + n, p0, NH, NKV, window);
  else
    FB_CUDA_REFUSE("attention head_dim (64 or 128 only)");
}
