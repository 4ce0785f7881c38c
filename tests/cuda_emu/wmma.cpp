/* wmma.cpp (CUDA emulator): the warp's work behind mma.h. Each lane checks its own operand
 * (ldm, alignment, the extent in device memory), then waits for the other 31 at the scheduler's
 * warp-collective switch point; the last to arrive checks that all brought the same call and
 * does it for the warp: a 16 x 16 tile gathered from memory or from the 32 lanes' fragments,
 * D = A B + C in fp32 (bf16 products are exact), the result scattered back. */
#include <stdio.h>

#include <mma.h>

#include "emu.h"

namespace cuda_emu {
namespace {

const char *call_name(wmma_kind k) {
  switch (k) {
    case wmma_kind::load_a:
    case wmma_kind::load_b:
    case wmma_kind::load_c:
      return "wmma::load_matrix_sync";
    case wmma_kind::store_c:
      return "wmma::store_matrix_sync";
    default:
      return "wmma::mma_sync";
  }
}

const char *operand_name(wmma_kind k) {
  static const char *const names[] = {"matrix_a", "matrix_b", "accumulator", "accumulator", ""};
  return names[(int)k];
}

/* Fragment slot s = lane * 8 + i holds element layout()[s] (row * 16 + column) of its tile: an
 * odd multiplier and an offset mod 256, reversed under FB_EMU_ORDER=reverse and drawn from the
 * seed under shuffle, so that no kernel can lean on it. */
const uint8_t *layout() {
  static uint8_t map[256];
  static bool made;
  if (!made) {
    const settings &s = env();
    unsigned mul = 37, add = 11;
    if (s.thread_order == order::shuffle) {
      uint64_t h = (s.seed + 1) * 0x9E3779B97F4A7C15ull; /* small seeds, far-apart layouts */
      mul = ((unsigned)(h >> 40) & 255) | 1;
      add = (unsigned)(h >> 56);
    }
    for (unsigned e = 0; e < 256; e++) {
      unsigned v = (e * mul + add) & 255;
      map[e] = (uint8_t)(s.thread_order == order::reverse ? 255 - v : v);
    }
    made = true;
  }
  return map;
}

bool is_bf16(wmma_kind k) { return k == wmma_kind::load_a || k == wmma_kind::load_b; }

/* Element (r, c) of the memory tile: row-major r * ldm + c, column-major c * ldm + r. */
size_t at(const wmma_call &c, unsigned r, unsigned col) {
  return c.col_major ? (size_t)col * c.ldm + r : (size_t)r * c.ldm + col;
}

void gather(float *tile, const void *const frag[32], bool bf16) {
  const uint8_t *map = layout();
  for (unsigned s = 0; s < 256; s++) {
    unsigned lane = s / 8, i = s % 8;
    tile[map[s]] = bf16 ? __bfloat162float(((const __nv_bfloat16 *)frag[lane])[i])
                        : ((const float *)frag[lane])[i];
  }
}

void scatter(void *const frag[32], const float *tile, bool bf16) {
  const uint8_t *map = layout();
  for (unsigned s = 0; s < 256; s++) {
    unsigned lane = s / 8, i = s % 8;
    if (bf16)
      ((__nv_bfloat16 *)frag[lane])[i] = __float2bfloat16_rn(tile[map[s]]);
    else
      ((float *)frag[lane])[i] = tile[map[s]];
  }
}

/* The warp's call, once every lane has arrived: the same call from all, then the work. */
bool run(collective *const lanes[32], unsigned *bad, char *why, size_t n) {
  wmma_call *call[32];
  for (unsigned l = 0; l < 32; l++) call[l] = static_cast<wmma_call *>(lanes[l]);
  const wmma_call &c0 = *call[0];
  for (unsigned l = 1; l < 32; l++) {
    const wmma_call &c = *call[l];
    if (c.kind == c0.kind && c.mem == c0.mem && c.ldm == c0.ldm && c.col_major == c0.col_major)
      continue;
    *bad = l;
    if (c.kind != c0.kind)
      snprintf(why, n, "%s (%s) meets lane 0 at %s (%s): every lane must make the same call",
               call_name(c.kind), operand_name(c.kind), call_name(c0.kind), operand_name(c0.kind));
    else
      snprintf(why, n,
               "%s with pointer %p, ldm %u, %s-major, where lane 0 has %p, ldm %u, %s-major: "
               "every lane must pass the same arguments",
               call_name(c.kind), c.mem, c.ldm, c.col_major ? "column" : "row", c0.mem, c0.ldm,
               c0.col_major ? "column" : "row");
    return false;
  }
  void *out[32];
  for (unsigned l = 0; l < 32; l++) out[l] = call[l]->frag;
  float tile[256];
  switch (c0.kind) {
    case wmma_kind::load_a:
    case wmma_kind::load_b:
    case wmma_kind::load_c:
      for (unsigned r = 0; r < 16; r++)
        for (unsigned col = 0; col < 16; col++) {
          size_t i = at(c0, r, col);
          tile[r * 16 + col] = is_bf16(c0.kind)
                                   ? __bfloat162float(((const __nv_bfloat16 *)c0.mem)[i])
                                   : ((const float *)c0.mem)[i];
        }
      scatter(out, tile, is_bf16(c0.kind));
      break;
    case wmma_kind::store_c:
      gather(tile, out, false);
      for (unsigned r = 0; r < 16; r++)
        for (unsigned col = 0; col < 16; col++)
          ((float *)c0.mem)[at(c0, r, col)] = tile[r * 16 + col];
      break;
    case wmma_kind::mma: {
      const void *fa[32], *fb[32], *fc[32];
      for (unsigned l = 0; l < 32; l++) {
        fa[l] = call[l]->a;
        fb[l] = call[l]->b;
        fc[l] = call[l]->c;
      }
      float a[256], b[256];
      gather(a, fa, true);
      gather(b, fb, true);
      gather(tile, fc, false);
      for (unsigned r = 0; r < 16; r++)
        for (unsigned col = 0; col < 16; col++) {
          float acc = tile[r * 16 + col];
          for (unsigned k = 0; k < 16; k++) acc += a[r * 16 + k] * b[k * 16 + col];
          tile[r * 16 + col] = acc;
        }
      scatter(out, tile, false); /* after every input is read: d may be c */
      break;
    }
  }
  return true;
}

} // namespace

void wmma(const char *file, int line, wmma_call &call) {
  call.run = run;
  if (call.kind != wmma_kind::mma) {
    const char *name = call_name(call.kind);
    size_t esize = is_bf16(call.kind) ? 2 : 4;
    unsigned step = 16 / (unsigned)esize;
    if (!call.mem) device_fault(file, line, "%s: a NULL pointer", name);
    if (call.ldm % step)
      device_fault(file, line, "%s: ldm %u is not a multiple of %u (16 bytes of %s)", name,
                   call.ldm, step, esize == 2 ? "bf16" : "float");
    if ((uintptr_t)call.mem % 32)
      device_fault(file, line, "%s: pointer %p is not 32-byte aligned", name, call.mem);
    allocation a;
    char why[256];
    size_t bytes = (15 * (size_t)call.ldm + 16) * esize;
    if (find_allocation(call.mem, &a) && !in_one_allocation(call.mem, bytes, why, sizeof why))
      device_fault(file, line, "%s: a 16 x 16 tile with ldm %u: %s", name, call.ldm, why);
  }
  warp_collective(file, line, &call);
}

} /* namespace cuda_emu */
