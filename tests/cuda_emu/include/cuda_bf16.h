/* cuda_bf16.h (CUDA emulator): __nv_bfloat16 as 16 bits of storage with CUDA's conversions:
 * round to nearest even, NaN to the canonical NaN 0x7fff as the toolkit's host path does.
 * No bf16 arithmetic: kernels convert to float and back. */
#ifndef CUDA_EMU_CUDA_BF16_H
#define CUDA_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16;
inline __nv_bfloat16 __float2bfloat16_rn(float f);
inline float __bfloat162float(__nv_bfloat16 h);

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default; /* trivial, so device buffers of it can be memcpy'd */
  __nv_bfloat16(float f) { *this = __float2bfloat16_rn(f); }
  operator float() const { return __bfloat162float(*this); }
};
typedef __nv_bfloat16 nv_bfloat16;

inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 h;
  h.__x = u;
  return h;
}

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __ushort_as_bfloat16(0x7fff);
  u += 0x7fffu + ((u >> 16) & 1u); /* ties go to the even neighbour */
  return __ushort_as_bfloat16((unsigned short)(u >> 16));
}

inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t u = (uint32_t)h.__x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#endif
