/* emu.h (CUDA emulator): what the emulator's own sources share and kernels never see: the
 * settings from the environment, the error state, the allocation table, faults and the
 * scheduler's entry points. */
#ifndef CUDA_EMU_EMU_H
#define CUDA_EMU_EMU_H

#include <functional>

#include "cuda_runtime.h"

namespace cuda_emu {

enum class order { forward, reverse, shuffle };

/* FB_EMU_* (docs/cuda-emulator.md), read once at the first call. */
struct settings {
  order thread_order;
  uint64_t seed;               /* shuffle:SEED */
  int major, minor;            /* FB_EMU_SM */
  int devices;                 /* FB_EMU_DEVICES */
  bool driver, busy;           /* FB_EMU_DRIVER, FB_EMU_BUSY */
  size_t memory;               /* FB_EMU_MEMORY */
  unsigned long long fault_at; /* FB_EMU_FAULT_AT, 0 = never */
};
const settings &env();

/* Held by every API entry: one OS thread at a time, and never from inside a kernel; either
 * misuse aborts with a message naming both calls. */
class api_scope {
 public:
  explicit api_scope(const char *fn);
  ~api_scope();
};

/* One "cuda-emu: ..." line on stderr. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What a call that needs the device gets now: the sticky fault, no driver, no device, or a
 * busy device; cudaSuccess when it may go on. */
cudaError_t device_error();
/* Remember e for cudaGetLastError (success is not remembered); returns e. */
cudaError_t record(cudaError_t e);
/* Print the fault line and break the context: every later call returns sticky. */
void fault(cudaError_t sticky, const char *kernel, uint3 block, uint3 thread, const char *file,
           int line, const char *what);

struct allocation {
  const char *base;
  size_t bytes;
};
/* The live device allocation holding p; false when p is in none. */
bool find_allocation(const void *p, allocation *out);
/* Whether [p, p + bytes) lies inside one live allocation; if not, why[] says how it misses. */
bool in_one_allocation(const void *p, size_t bytes, char *why, size_t n);
bool stream_valid(cudaStream_t s);

/* Stream capture: a call that queues work on a capturing stream records it as a node and
 * runs nothing; the graph runs the nodes in order. capture() is true when s captures (*e then
 * says whether the capture still stands: cudaErrorStreamCaptureInvalidated after a refusal). */
typedef std::function<void()> graph_node;
bool capture(cudaStream_t s, graph_node node, cudaError_t *e);
/* For a call CUDA refuses in a capture (a sync, a host copy): while s captures, a line naming
 * fn, the capture invalidated and cudaErrorStreamCaptureUnsupported; on the legacy stream
 * while any stream captures, cudaErrorStreamCaptureImplicit; else cudaSuccess. */
cudaError_t refuse_in_capture(const char *fn, cudaStream_t s);
/* The same for a call on no stream (cudaMalloc, cudaDeviceSynchronize): refused while any
 * stream captures. */
cudaError_t refuse_in_any_capture(const char *fn);

/* sched.cpp: run every block of a launch that passed its checks; launch_no (from 1) seeds the
 * shuffled orders. */
void run_grid(const launch_site &site, dim3 grid, dim3 block, void (*body)(void *), void *closure,
              uint64_t launch_no);
/* True while a grid runs (so an API call now comes from device code). */
bool in_kernel();

} /* namespace cuda_emu */

#endif
