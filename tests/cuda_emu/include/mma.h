/* mma.h (CUDA emulator): nvcuda::wmma for the m16n16k16 shape with __nv_bfloat16 inputs and
 * float accumulators: fragments, fill_fragment, load_matrix_sync, mma_sync, store_matrix_sync.
 * The _sync calls are warp-collective (tests/cuda_emu/wmma.cpp): all 32 lanes of the warp must
 * reach them together with the same arguments, or the kernel faults. Which matrix element a
 * fragment's x[i] holds is the emulator's own, and changes with FB_EMU_ORDER, so a kernel that
 * depends on it gets wrong numbers. */
#ifndef CUDA_EMU_MMA_H
#define CUDA_EMU_MMA_H

#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace cuda_emu {

enum class wmma_kind : uint8_t { load_a, load_b, load_c, store_c, mma };

/* One lane's part in a WMMA call; wmma.cpp checks it and does the warp's work. */
struct wmma_call : collective {
  wmma_kind kind;
  bool col_major;  /* how the memory operand is laid out */
  const void *mem; /* the memory operand of a load or store, ldm elements apart */
  unsigned ldm;
  void *frag;             /* the lane's elements a load or mma_sync writes, a store reads */
  const void *a, *b, *c;  /* mma_sync's inputs */
};

/* The operand checks of the calling lane (ldm, alignment, bounds of device memory), then the
 * warp-collective operation. */
void wmma(const char *file, int line, wmma_call &call);

/* A load or store: the call of kind with its memory operand and the lane's fragment elements. */
inline void wmma_memory(wmma_kind kind, bool col_major, const void *mem, unsigned ldm, void *frag,
                        const char *file, int line) {
  wmma_call c{};
  c.kind = kind;
  c.col_major = col_major;
  c.mem = mem;
  c.ldm = ldm;
  c.frag = frag;
  wmma(file, line, c);
}

} /* namespace cuda_emu */

namespace nvcuda {
namespace wmma {

struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment {
  static_assert(m == 16 && n == 16 && k == 16, "the CUDA emulator's WMMA has m16n16k16 only");
  static_assert(std::is_same<Use, accumulator>::value
                    ? std::is_same<T, float>::value && std::is_void<Layout>::value
                    : std::is_same<T, __nv_bfloat16>::value &&
                          (std::is_same<Layout, row_major>::value ||
                           std::is_same<Layout, col_major>::value),
                "the CUDA emulator's WMMA: bf16 matrix_a/matrix_b (row_major or col_major) "
                "and float accumulators");

 public:
  static constexpr int num_elements = 8; /* 256 elements over 32 lanes */
  T x[num_elements];
};

template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, const T &v) {
  for (T &e : f.x) e = v;
}

template <typename Use, typename Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f,
                             const __nv_bfloat16 *p, unsigned ldm,
                             const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  cuda_emu::wmma_memory(std::is_same<Use, matrix_a>::value ? cuda_emu::wmma_kind::load_a
                                                            : cuda_emu::wmma_kind::load_b,
                        std::is_same<Layout, col_major>::value, p, ldm, f.x, file, line);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p,
                             unsigned ldm, layout_t layout, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
  cuda_emu::wmma_memory(cuda_emu::wmma_kind::load_c, layout == mem_col_major, p, ldm, f.x, file,
                        line);
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ldm, layout_t layout, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  cuda_emu::wmma_memory(cuda_emu::wmma_kind::store_c, layout == mem_col_major, p, ldm,
                        const_cast<float *>(f.x), file, line);
}

/* d = a b + c (d may be c) */
template <typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c,
                     const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  cuda_emu::wmma_call call{};
  call.kind = cuda_emu::wmma_kind::mma;
  call.frag = d.x;
  call.a = a.x;
  call.b = b.x;
  call.c = c.x;
  cuda_emu::wmma(file, line, call);
}

} /* namespace wmma */
} /* namespace nvcuda */

#endif
