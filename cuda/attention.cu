/* attention.cu: causal grouped-query attention in the flash style: tiles of keys and values
 * go through shared memory, each query keeps a running max and sum (online softmax), and no
 * T x T score matrix is ever stored. The forward saves each query's log-sum-exp; the backward
 * recomputes probabilities from it in two kernels (dq by query, dk/dv by key, summing the
 * query heads of a group), after D = rowsum(dO * O). fp32 on the CUDA cores; one thread owns
 * one query (or key) row, so a head dimension is a template parameter (64 and 128).
 *
 * Masking (backend.h): query i (absolute position q0 + i) sees key j <= q0 + i, and with a
 * sliding window (window > 0) only keys with i - j < window; with seg, only keys of its own
 * sequence, and a padding position (seg < 0) only itself. Key tiles that the window hides from
 * a whole block are skipped. */
#include <math.h>

#include "common.cuh"

__device__ inline bool allowed(const int32_t *seg_row, int si, int i_abs, int j, int sj,
                               int window) {
  if (j > i_abs || (window > 0 && i_abs - j >= window)) return false;
  if (!seg_row) return true;
  return si < 0 ? j == i_abs : sj == si;
}

/* Tile sizes that keep every kernel's static shared memory under 48 KiB. */
template <int HD>
struct tiles {
  static constexpr int BQ = HD <= 64 ? 64 : 32;  /* forward: queries per block */
  static constexpr int BK = HD <= 64 ? 32 : 16;  /* forward/dq: keys per tile */
  static constexpr int BQD = HD <= 64 ? 32 : 16; /* dq: queries per block */
  static constexpr int BKV = HD <= 64 ? 32 : 16; /* dk/dv: keys per block and queries per tile */
};

/* The first key tile any query from position q_first on may see under the window. */
__device__ inline int first_key_tile(int q_first, int window, int BK) {
  int j = window > 0 ? q_first - window + 1 : 0;
  return j > 0 ? j / BK * BK : 0;
}

/* Keys and values kt..kt+BK-1 of kv head g in batch row b into shared memory (zeros past Tk),
 * and their sequence ids, by the block's nthreads threads. */
template <int HD, int BK>
__device__ inline void load_kv_tile(float (*ks)[HD], float (*vs)[HD], int32_t *segk, const float *k,
                                    const float *v, const int32_t *segb, int b, int g, int kt,
                                    int Tk, int NKV, int nthreads) {
  for (int e = threadIdx.x; e < BK * HD; e += nthreads) {
    int r = e / HD, d = e % HD, j = kt + r;
    size_t at = (((size_t)b * Tk + j) * NKV + g) * HD + d;
    ks[r][d] = j < Tk ? k[at] : 0.0f;
    vs[r][d] = j < Tk ? v[at] : 0.0f;
  }
  for (int r = threadIdx.x; r < BK; r += nthreads) segk[r] = segb && kt + r < Tk ? segb[kt + r] : 0;
}

/* grid (ceil(Tq/BQ), NH, B), block BQ. q/out [B,Tq,NH,HD], k/v [B,Tk,NKV,HD], lse [B,NH,Tq]
 * (may be NULL), seg [B,Tq] (with Tq == Tk, q0 == 0) or NULL. */
template <int HD>
__global__ void attention_forward_kernel(float *out, float *lse, const float *q, const float *k,
                                         const float *v, const int32_t *seg, int Tq, int Tk, int q0,
                                         int NH, int NKV, int window, float scale) {
  constexpr int BQ = tiles<HD>::BQ, BK = tiles<HD>::BK;
  __shared__ float qs[BQ][HD + 1]; /* +1: each thread reads its own row without bank conflicts */
  __shared__ float ks[BK][HD], vs[BK][HD];
  __shared__ int32_t segk[BK];
  int b = blockIdx.z, h = blockIdx.y, g = h / (NH / NKV), tid = threadIdx.x;
  int qbase = blockIdx.x * BQ, i = qbase + tid;
  bool live = i < Tq;
  for (int e = tid; e < BQ * HD; e += BQ) {
    int r = e / HD, d = e % HD, qi = qbase + r;
    qs[r][d] = qi < Tq ? q[(((size_t)b * Tq + qi) * NH + h) * HD + d] * scale : 0.0f;
  }
  const int32_t *segb = seg ? seg + (size_t)b * Tq : NULL;
  int si = segb && live ? segb[i] : 0, i_abs = q0 + i;
  int last = q0 + (qbase + BQ < Tq ? qbase + BQ : Tq); /* keys any query here may see */
  int kend = last < Tk ? last : Tk;
  float m = -INFINITY, l = 0.0f, acc[HD];
#pragma unroll
  for (int d = 0; d < HD; d++) acc[d] = 0.0f;
  for (int kt = first_key_tile(q0 + qbase, window, BK); kt < kend; kt += BK) {
    __syncthreads();
    load_kv_tile<HD, BK>(ks, vs, segk, k, v, segb, b, g, kt, Tk, NKV, BQ);
    __syncthreads();
    if (!live) continue;
    float sc[BK], tmax = -INFINITY;
#pragma unroll
    for (int r = 0; r < BK; r++) {
      int j = kt + r;
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < HD; d++) dot += qs[tid][d] * ks[r][d];
      sc[r] = j < Tk && allowed(segb, si, i_abs, j, segk[r], window) ? dot : -INFINITY;
      tmax = fmaxf(tmax, sc[r]);
    }
    if (tmax == -INFINITY) continue;
    float mn = fmaxf(m, tmax), corr = expf(m - mn);
    l *= corr;
#pragma unroll
    for (int d = 0; d < HD; d++) acc[d] *= corr;
#pragma unroll
    for (int r = 0; r < BK; r++) {
      float p = expf(sc[r] - mn);
      l += p;
#pragma unroll
      for (int d = 0; d < HD; d++) acc[d] += p * vs[r][d];
    }
    m = mn;
  }
  if (!live) return;
  float inv = 1.0f / l; /* l >= 1: a query always sees itself */
  float *o = out + (((size_t)b * Tq + i) * NH + h) * HD;
#pragma unroll
  for (int d = 0; d < HD; d++) o[d] = acc[d] * inv;
  if (lse) lse[((size_t)b * NH + h) * Tq + i] = m + logf(l);
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

/* dq: grid (ceil(T/BQD), NH, B), block BQD; one thread per query, keys in tiles. */
template <int HD>
__global__ void attention_dq_kernel(float *dq, const float *dout, const float *lse, const float *D,
                                    const float *q, const float *k, const float *v,
                                    const int32_t *seg, int T, int NH, int NKV, int window,
                                    float scale) {
  constexpr int BQ = tiles<HD>::BQD, BK = tiles<HD>::BK;
  __shared__ float qs[BQ][HD + 1], dos[BQ][HD + 1];
  __shared__ float ks[BK][HD], vs[BK][HD];
  __shared__ int32_t segk[BK];
  int b = blockIdx.z, h = blockIdx.y, g = h / (NH / NKV), tid = threadIdx.x;
  int qbase = blockIdx.x * BQ, i = qbase + tid;
  bool live = i < T;
  for (int e = tid; e < BQ * HD; e += BQ) {
    int r = e / HD, d = e % HD, qi = qbase + r;
    size_t at = (((size_t)b * T + qi) * NH + h) * HD + d;
    qs[r][d] = qi < T ? q[at] * scale : 0.0f;
    dos[r][d] = qi < T ? dout[at] : 0.0f;
  }
  const int32_t *segb = seg ? seg + (size_t)b * T : NULL;
  size_t row = ((size_t)b * NH + h) * T + i;
  int si = segb && live ? segb[i] : 0;
  float li = live ? lse[row] : 0.0f, Di = live ? D[row] : 0.0f, acc[HD];
#pragma unroll
  for (int d = 0; d < HD; d++) acc[d] = 0.0f;
  int kend = qbase + BQ < T ? qbase + BQ : T;
  for (int kt = first_key_tile(qbase, window, BK); kt < kend; kt += BK) {
    __syncthreads();
    load_kv_tile<HD, BK>(ks, vs, segk, k, v, segb, b, g, kt, T, NKV, BQ);
    __syncthreads();
    if (!live) continue;
    for (int r = 0; r < BK; r++) {
      int j = kt + r;
      if (j >= T || !allowed(segb, si, i, j, segk[r], window)) continue;
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < HD; d++) {
        s += qs[tid][d] * ks[r][d];
        dp += dos[tid][d] * vs[r][d];
      }
      float ds = expf(s - li) * (dp - Di); /* dS = P (dP - D) */
#pragma unroll
      for (int d = 0; d < HD; d++) acc[d] += ds * ks[r][d];
    }
  }
  if (!live) return;
  float *o = dq + (((size_t)b * T + i) * NH + h) * HD;
#pragma unroll
  for (int d = 0; d < HD; d++) o[d] = acc[d] * scale;
}

/* dk, dv: grid (ceil(T/BKV), NKV, B), block BKV; one thread per key, summing over the query
 * heads of its group and over query tiles from its own position on. */
template <int HD>
__global__ void attention_dkv_kernel(float *dk, float *dv, const float *dout, const float *lse,
                                     const float *D, const float *q, const float *k, const float *v,
                                     const int32_t *seg, int T, int NH, int NKV, int window,
                                     float scale) {
  constexpr int BK = tiles<HD>::BKV, BQ = tiles<HD>::BKV;
  __shared__ float ks[BK][HD + 1], vs[BK][HD + 1];
  __shared__ float qs[BQ][HD], dos[BQ][HD];
  __shared__ float ls[BQ], Ds[BQ];
  __shared__ int32_t segq[BQ];
  int b = blockIdx.z, g = blockIdx.y, group = NH / NKV, tid = threadIdx.x;
  int kbase = blockIdx.x * BK, j = kbase + tid;
  bool live = j < T;
  for (int e = tid; e < BK * HD; e += BK) {
    int r = e / HD, d = e % HD, kj = kbase + r;
    size_t at = (((size_t)b * T + kj) * NKV + g) * HD + d;
    ks[r][d] = kj < T ? k[at] : 0.0f;
    vs[r][d] = kj < T ? v[at] : 0.0f;
  }
  const int32_t *segb = seg ? seg + (size_t)b * T : NULL;
  int sj = segb && live ? segb[j] : 0;
  float gk[HD], gv[HD];
#pragma unroll
  for (int d = 0; d < HD; d++) gk[d] = gv[d] = 0.0f;
  /* queries that may see a key here: from kbase on, and under a window up to its last key's */
  int qend = window > 0 && kbase + BK - 1 + window < T ? kbase + BK - 1 + window : T;
  for (int h = g * group; h < (g + 1) * group; h++)
    for (int qt = kbase / BQ * BQ; qt < qend; qt += BQ) {
      __syncthreads();
      for (int e = tid; e < BQ * HD; e += BK) {
        int r = e / HD, d = e % HD, qi = qt + r;
        size_t at = (((size_t)b * T + qi) * NH + h) * HD + d;
        qs[r][d] = qi < T ? q[at] : 0.0f;
        dos[r][d] = qi < T ? dout[at] : 0.0f;
      }
      for (int r = tid; r < BQ; r += BK) {
        int qi = qt + r;
        size_t row = ((size_t)b * NH + h) * T + qi;
        ls[r] = qi < T ? lse[row] : 0.0f;
        Ds[r] = qi < T ? D[row] : 0.0f;
        segq[r] = segb && qi < T ? segb[qi] : 0;
      }
      __syncthreads();
      if (!live) continue;
      for (int r = 0; r < BQ; r++) {
        int i = qt + r;
        if (i >= T || !allowed(segb, segq[r], i, j, sj, window)) continue;
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int d = 0; d < HD; d++) {
          s += qs[r][d] * ks[tid][d];
          dp += dos[r][d] * vs[tid][d];
        }
        float p = expf(s * scale - ls[r]), ds = p * (dp - Ds[r]) * scale;
#pragma unroll
        for (int d = 0; d < HD; d++) {
          gv[d] += p * dos[r][d];
          gk[d] += ds * qs[r][d];
        }
      }
    }
  if (!live) return;
  size_t at = (((size_t)b * T + j) * NKV + g) * HD;
#pragma unroll
  for (int d = 0; d < HD; d++) {
    dk[at + d] = gk[d];
    dv[at + d] = gv[d];
  }
}

extern "C" int fb_cuda_attention_supports(int HD) { return HD == 64 || HD == 128; }

template <int HD>
static void forward(float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *seg, int B, int Tq, int Tk, int q0, int NH, int NKV,
                    int window) {
  constexpr int BQ = tiles<HD>::BQ;
  dim3 grid((Tq + BQ - 1) / BQ, NH, B);
  FB_LAUNCH(attention_forward_kernel<HD>, grid, BQ, 0, fb_cuda_stream(), out, lse, q, k, v, seg, Tq,
            Tk, q0, NH, NKV, window, 1.0f / sqrtf((float)HD));
  FB_LAUNCH_CHECK();
}

template <int HD>
static void backward(float *dq, float *dk, float *dv, const float *dout, const float *lse,
                     const float *D, const float *q, const float *k, const float *v,
                     const int32_t *seg, int B, int T, int NH, int NKV, int window) {
  constexpr int BQD = tiles<HD>::BQD, BKV = tiles<HD>::BKV;
  float scale = 1.0f / sqrtf((float)HD);
  FB_LAUNCH(attention_dq_kernel<HD>, dim3((T + BQD - 1) / BQD, NH, B), BQD, 0, fb_cuda_stream(), dq,
            dout, lse, D, q, k, v, seg, T, NH, NKV, window, scale);
  FB_LAUNCH_CHECK();
  FB_LAUNCH(attention_dkv_kernel<HD>, dim3((T + BKV - 1) / BKV, NKV, B), BKV, 0, fb_cuda_stream(),
            dk, dv, dout, lse, D, q, k, v, seg, T, NH, NKV, window, scale);
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
