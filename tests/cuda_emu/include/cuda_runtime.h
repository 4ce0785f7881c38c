/* cuda_runtime.h (CUDA emulator): the runtime API, the device built-ins and the kernel launcher
 * that let the project's .cu files compile unmodified as host C++ and run on the CPU. Only what
 * docs/cuda-emulator.md lists; C++ only (no C caller includes the real one either). */
#ifndef CUDA_EMU_CUDA_RUNTIME_H
#define CUDA_EMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the CUDA emulator's headers are C++: compile .cu files through fb_cuda_emu_sources"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

/* ---- qualifiers ---- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* One buffer per block is a static: blocks run one at a time. (g++ ignores section attributes
 * on the statics of templates, so shared memory cannot be found and poisoned per block.) */
#define __shared__ static

/* ---- types ---- */

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

/* The running fiber's coordinates: the scheduler sets them at every switch. */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
constexpr int warpSize = 32;

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorDevicesUnavailable = 46,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t; /* = fb_stream */
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;         /* work recorded by a stream capture */
typedef struct CUgraphExec_st *cudaGraphExec_t; /* an instantiated graph, launched as a whole */
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

typedef enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_16BF = 14,
} cudaDataType;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
};

/* ---- the runtime API (tests/cuda_emu/runtime.cpp) ---- */

extern "C" {
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

/* Stream capture: between Begin and End, work queued on the stream is recorded, not run; a
 * graph replays it in order with the arguments it was queued with. */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream = 0);
}

template <typename T>
inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}

/* ---- device built-ins ---- */

namespace cuda_emu {

enum class warp_op : uint8_t {
  shfl,
  shfl_up,
  shfl_down,
  shfl_xor,
  ballot,
  any,
  all,
  syncwarp,
  activemask,
  collective
};

/* The scheduler's switch points (sched.cpp): each waits for its block or warp, then resumes
 * the threads in the order FB_EMU_ORDER says. warp_sync returns the lane's result. */
void syncthreads(const char *file, int line);
uint64_t warp_sync(warp_op op, const char *file, int line, unsigned mask, uint64_t value, int param,
                   int width);
unsigned activemask(const char *file, int line);

/* A warp-collective operation (WMMA, mma.h): every lane of the warp brings its own record; when
 * all 32 have arrived, run() is called once with the 32 records in lane order, before any lane
 * goes on. It returns false, with why[] and the lane to blame in *bad, when the lanes disagree
 * (a fault). */
struct collective {
  bool (*run)(collective *const lanes[32], unsigned *bad, char *why, size_t n);
};
void warp_collective(const char *file, int line, collective *lane_record);

/* A fault found by device code in the running thread (an operand check): the fault line, the
 * block abandoned, the context broken. */
[[noreturn]] void device_fault(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

template <typename T>
inline T shfl(warp_op op, const char *file, int line, unsigned mask, T var, int param,
              int width = warpSize) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                "shuffles move values of at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &var, sizeof var);
  bits = warp_sync(op, file, line, mask, bits, param, width);
  memcpy(&var, &bits, sizeof var);
  return var;
}

inline unsigned vote(warp_op op, const char *file, int line, unsigned mask, int pred) {
  return (unsigned)warp_sync(op, file, line, mask, pred != 0, 0, warpSize);
}

/* __syncwarp(mask = all lanes) at a call site: an object called with the macro's arguments, so
 * that an empty argument list needs no comma elision (strict -std=c++17 keeps the comma). */
struct syncwarp_at {
  const char *file;
  int line;
  void operator()(unsigned mask = 0xffffffffu) const {
    warp_sync(warp_op::syncwarp, file, line, mask, 0, 0, warpSize);
  }
};

} /* namespace cuda_emu */

#define __syncthreads() ::cuda_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::cuda_emu::syncwarp_at{__FILE__, __LINE__}(__VA_ARGS__)
#define __activemask() ::cuda_emu::activemask(__FILE__, __LINE__)
#define __shfl_sync(...) \
  ::cuda_emu::shfl(::cuda_emu::warp_op::shfl, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) \
  ::cuda_emu::shfl(::cuda_emu::warp_op::shfl_up, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) \
  ::cuda_emu::shfl(::cuda_emu::warp_op::shfl_down, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) \
  ::cuda_emu::shfl(::cuda_emu::warp_op::shfl_xor, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred) \
  ::cuda_emu::vote(::cuda_emu::warp_op::ballot, __FILE__, __LINE__, mask, pred)
#define __any_sync(mask, pred) \
  (int)::cuda_emu::vote(::cuda_emu::warp_op::any, __FILE__, __LINE__, mask, pred)
#define __all_sync(mask, pred) \
  (int)::cuda_emu::vote(::cuda_emu::warp_op::all, __FILE__, __LINE__, mask, pred)

/* Threads switch only at the primitives above, so a read-modify-write is atomic. */
inline float atomicAdd(float *p, float v) {
  float old = *p;
  *p = old + v;
  return old;
}
inline double atomicAdd(double *p, double v) {
  double old = *p;
  *p = old + v;
  return old;
}
inline int atomicAdd(int *p, int v) {
  int old = *p;
  *p = (int)((unsigned)old + (unsigned)v); /* wraps like the hardware's */
  return old;
}
inline unsigned atomicAdd(unsigned *p, unsigned v) {
  unsigned old = *p;
  *p = old + v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  unsigned long long old = *p;
  *p = old + v;
  return old;
}

/* ---- launches ---- */

namespace cuda_emu {

struct launch_site {
  const char *kernel, *file;
  int line;
};

/* How a launch's closure is kept by a stream capture: clone copies it to the heap, drop frees
 * that copy. */
struct closure_ops {
  void *(*clone)(const void *closure);
  void (*drop)(void *closure);
};

/* The runtime's half of a launch (runtime.cpp): the configuration, the stream and every pointer
 * argument (is_ptr[i]: argument i is a pointer, its value in ptrs[i]) are checked, then every
 * block runs body(closure) once per thread, before this returns; on a capturing stream a copy
 * (ops) is recorded instead and the pointers are checked when the graph runs. Errors go to
 * cudaGetLastError; faults print one line and break the context. */
void launch(const launch_site &site, dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
            int nargs, const void *const *ptrs, const bool *is_ptr, void (*body)(void *),
            void *closure, const closure_ops &ops);

template <typename... P>
struct closure {
  void (*kernel)(P...);
  std::tuple<std::decay_t<P>...> args; /* converted to the parameter types, as CUDA does */
};

template <typename... P>
void run_closure(void *c) {
  closure<P...> *k = static_cast<closure<P...> *>(c);
  std::apply(k->kernel, k->args); /* each thread gets its own copies of the arguments */
}

template <typename... P>
void *clone_closure(const void *c) {
  return new closure<P...>(*static_cast<const closure<P...> *>(c));
}

template <typename... P>
void drop_closure(void *c) {
  delete static_cast<closure<P...> *>(c);
}

template <typename T>
inline const void *pointer_value(const T &v) {
  if constexpr (std::is_pointer<T>::value)
    return (const void *)v;
  else
    return nullptr;
}

template <typename... P, size_t... I>
inline void launch_closure(const launch_site &site, dim3 grid, dim3 block, size_t shared,
                           cudaStream_t stream, closure<P...> &c, std::index_sequence<I...>) {
  const void *ptrs[] = {pointer_value(std::get<I>(c.args))..., nullptr};
  static const bool is_ptr[] = {std::is_pointer<std::decay_t<P>>::value..., false};
  static const closure_ops ops = {clone_closure<P...>, drop_closure<P...>};
  launch(site, grid, block, shared, stream, (int)sizeof...(P), ptrs, is_ptr, run_closure<P...>, &c,
         ops);
}

template <typename... P, typename... A>
inline void launch_kernel(const launch_site &site, void (*kernel)(P...), dim3 grid, dim3 block,
                          size_t shared, cudaStream_t stream, A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "a kernel launched with the wrong argument count");
  closure<P...> c{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  launch_closure(site, grid, block, shared, stream, c, std::index_sequence_for<P...>());
}

} /* namespace cuda_emu */

/* common.cuh's launch macro, run synchronously by the emulator. */
#define FB_LAUNCH(kernel, grid, block, shared, stream, ...)                                     \
  ::cuda_emu::launch_kernel(::cuda_emu::launch_site{#kernel, __FILE__, __LINE__}, kernel, grid, \
                            block, shared, stream, ##__VA_ARGS__)

#endif
