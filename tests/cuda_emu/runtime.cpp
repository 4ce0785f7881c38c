/* runtime.cpp (CUDA emulator): the CUDA runtime API on the host: the device the FB_EMU_*
 * settings describe, device memory as exact-size heap blocks in a table of live allocations,
 * copies and sets checked for direction and bounds, streams, events, errors (sticky after a fault) and
 * the checks of a launch. Kernels run in sched.cpp. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "emu.h"

struct CUevent_st {
  double ms;     /* the host's clock when last recorded */
  bool recorded;
};

struct CUstream_st {
  unsigned flags;
  std::vector<cuda_emu::graph_node> *recording; /* while captured: the nodes so far */
  bool invalidated;                             /* a refused call broke this capture */
};

struct CUgraph_st {
  std::vector<cuda_emu::graph_node> nodes;
};

struct CUgraphExec_st {
  std::vector<cuda_emu::graph_node> nodes;
};

namespace cuda_emu {
namespace {

[[noreturn]] void bad_setting(const char *name, const char *value, const char *expected) {
  report("%s=%s: expected %s", name, value, expected);
  abort();
}

bool parse_u64(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-') return false;
  *out = v;
  return true;
}

settings load() {
  settings s = {order::forward, 0, 9, 0, 1, true, false, (size_t)16 << 30, 0};
  unsigned long long v;
  const char *e;
  if ((e = getenv("FB_EMU_ORDER")) && *e) {
    if (strcmp(e, "forward") == 0)
      s.thread_order = order::forward;
    else if (strcmp(e, "reverse") == 0)
      s.thread_order = order::reverse;
    else if (strncmp(e, "shuffle:", 8) == 0 && parse_u64(e + 8, &v)) {
      s.thread_order = order::shuffle;
      s.seed = v;
    } else {
      bad_setting("FB_EMU_ORDER", e, "forward, reverse or shuffle:SEED");
    }
  }
  if ((e = getenv("FB_EMU_SM")) && *e) {
    if (strlen(e) != 2 || !parse_u64(e, &v) || v < 10) bad_setting("FB_EMU_SM", e, "two digits");
    s.major = (int)(v / 10);
    s.minor = (int)(v % 10);
  }
  if ((e = getenv("FB_EMU_DEVICES")) && *e) {
    if (!parse_u64(e, &v) || v > 64) bad_setting("FB_EMU_DEVICES", e, "a count from 0 to 64");
    s.devices = (int)v;
  }
  if ((e = getenv("FB_EMU_DRIVER")) && *e) {
    if (strcmp(e, "0") && strcmp(e, "1")) bad_setting("FB_EMU_DRIVER", e, "0 or 1");
    s.driver = *e == '1';
  }
  if ((e = getenv("FB_EMU_BUSY")) && *e) {
    if (strcmp(e, "0") && strcmp(e, "1")) bad_setting("FB_EMU_BUSY", e, "0 or 1");
    s.busy = *e == '1';
  }
  if ((e = getenv("FB_EMU_MEMORY")) && *e) {
    if (!parse_u64(e, &v) || v == 0) bad_setting("FB_EMU_MEMORY", e, "a size in bytes");
    s.memory = (size_t)v;
  }
  if ((e = getenv("FB_EMU_FAULT_AT")) && *e) {
    if (!parse_u64(e, &v) || v == 0) bad_setting("FB_EMU_FAULT_AT", e, "a launch number from 1");
    s.fault_at = v;
  }
  return s;
}

/* ---- state ---- */

std::atomic<unsigned long> owner; /* the OS thread inside an API call, 0 when none */
std::atomic<const char *> owner_call;
int depth;

cudaError_t last_error, sticky;
int current_device;
uint64_t launches;

std::map<uintptr_t, size_t> live; /* device allocations: start -> bytes */
size_t in_use;
std::set<cudaStream_t> streams;
std::set<cudaEvent_t> events;
std::set<cudaStream_t> capturing;
std::set<cudaGraph_t> graphs;
std::set<cudaGraphExec_t> execs;

const struct {
  cudaError_t code;
  const char *name, *text;
} errors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection",
     "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorDevicesUnavailable, "cudaErrorDevicesUnavailable",
     "CUDA-capable device(s) is/are busy or unavailable"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress",
     "an illegal memory access was encountered"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
    {cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit",
     "operation would make the legacy stream depend on a capturing blocking stream"},
};

const char *kind_name(int kind) {
  static const char *const names[] = {"HostToHost", "HostToDevice", "DeviceToHost",
                                      "DeviceToDevice", "Default"};
  return kind >= 0 && kind <= 4 ? names[kind] : "?";
}

bool stream_ok(const char *fn, cudaStream_t s) {
  if (stream_valid(s)) return true;
  report("%s: stream %p is not a live stream (destroyed, or never created)", fn, (void *)s);
  return false;
}

/* The device's existence alone, for the calls that need no context. */
cudaError_t driver_error() {
  if (!env().driver) return cudaErrorInsufficientDriver;
  if (env().devices == 0) return cudaErrorNoDevice;
  return cudaSuccess;
}

cudaError_t copy(const char *fn, void *dst, const void *src, size_t bytes, int kind,
                 cudaStream_t s) {
  api_scope g(fn);
  if (cudaError_t e = device_error()) return record(e);
  if (!stream_ok(fn, s)) return record(cudaErrorInvalidResourceHandle);
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    report("%s: %d is not a cudaMemcpyKind", fn, kind);
    return record(cudaErrorInvalidMemcpyDirection);
  }
  if (bytes == 0) return cudaSuccess;
  if (kind != cudaMemcpyDeviceToDevice)
    if (cudaError_t e = refuse_in_capture(fn, s)) return record(e);
  cudaError_t ce;
  if (kind == cudaMemcpyDeviceToDevice && capture(
                                              s, [=] { copy(fn, dst, src, bytes, kind, s); }, &ce))
    return record(ce);
  if (cudaError_t e = refuse_in_capture(fn, s)) return record(e); /* the legacy stream */
  allocation a;
  bool dst_dev = find_allocation(dst, &a), src_dev = find_allocation(src, &a);
  if (kind == cudaMemcpyDefault) kind = (src_dev ? 2 : 0) + (dst_dev ? 1 : 0);
  bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const char *where[] = {"not device memory (a host pointer, or freed)", "device memory"};
  if (dst_dev != want_dst) {
    report("%s(%s): the destination %p is %s", fn, kind_name(kind), dst, where[dst_dev]);
    return record(cudaErrorInvalidValue);
  }
  if (src_dev != want_src) {
    report("%s(%s): the source %p is %s", fn, kind_name(kind), src, where[src_dev]);
    return record(cudaErrorInvalidValue);
  }
  char why[256];
  if (want_dst && !in_one_allocation(dst, bytes, why, sizeof why)) {
    report("%s(%s): the destination %s", fn, kind_name(kind), why);
    return record(cudaErrorInvalidValue);
  }
  if (want_src && !in_one_allocation(src, bytes, why, sizeof why)) {
    report("%s(%s): the source %s", fn, kind_name(kind), why);
    return record(cudaErrorInvalidValue);
  }
  memcpy(dst, src, bytes); /* overlapping ranges are undefined on the GPU; ASan says so here */
  return cudaSuccess;
}

cudaError_t set(const char *fn, void *p, int value, size_t bytes, cudaStream_t s) {
  api_scope g(fn);
  if (cudaError_t e = device_error()) return record(e);
  if (!stream_ok(fn, s)) return record(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  cudaError_t ce;
  if (capture(
          s, [=] { set(fn, p, value, bytes, s); }, &ce))
    return record(ce);
  if (cudaError_t e = refuse_in_capture(fn, s)) return record(e); /* the legacy stream */
  char why[256];
  if (!in_one_allocation(p, bytes, why, sizeof why)) {
    report("%s: %s", fn, why);
    return record(cudaErrorInvalidValue);
  }
  memset(p, value, bytes);
  return cudaSuccess;
}

bool config_ok(dim3 grid, dim3 block, char *why, size_t n) {
  uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (!block.x || !block.y || !block.z)
    snprintf(why, n, "block (%u,%u,%u) has a zero dimension", block.x, block.y, block.z);
  else if (threads > 1024)
    snprintf(why, n, "block (%u,%u,%u) has %" PRIu64 " threads, more than 1024", block.x, block.y,
             block.z, threads);
  else if (block.z > 64)
    snprintf(why, n, "block (%u,%u,%u) exceeds the limits (1024,1024,64)", block.x, block.y,
             block.z);
  else if (!grid.x || !grid.y || !grid.z)
    snprintf(why, n, "grid (%u,%u,%u) has a zero dimension", grid.x, grid.y, grid.z);
  else if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    snprintf(why, n, "grid (%u,%u,%u) exceeds the limits (2^31-1,65535,65535)", grid.x, grid.y,
             grid.z);
  else
    return true;
  return false;
}

}  // namespace

/* ---- shared with sched.cpp and cublas.cpp ---- */

const settings &env() {
  static const settings s = load();
  return s;
}

api_scope::api_scope(const char *fn) {
  unsigned long self = (unsigned long)pthread_self(), none = 0;
  if (!owner.compare_exchange_strong(none, self) && none != self) {
    report(
        "%s called on one OS thread while another is inside %s: the emulator runs one thread "
        "at a time",
        fn, owner_call.load());
    abort();
  }
  if (in_kernel()) {
    report("%s called from inside a kernel (device code cannot call the runtime)", fn);
    abort();
  }
  if (depth++ == 0) owner_call = fn;
}

api_scope::~api_scope() {
  if (--depth == 0) owner = 0;
}

void report(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cuda-emu: %s\n", line);
}

cudaError_t device_error() {
  if (cudaError_t e = driver_error()) return e;
  if (sticky) return sticky;
  if (env().busy) return cudaErrorDevicesUnavailable;
  return cudaSuccess;
}

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

void fault(cudaError_t code, const char *kernel, uint3 block, uint3 thread, const char *file,
           int line, const char *what) {
  report("fault in %s block (%u,%u,%u) thread (%u,%u,%u): %s at %s:%d", kernel, block.x, block.y,
         block.z, thread.x, thread.y, thread.z, what, file, line);
  if (!sticky) sticky = code;
  last_error = sticky;
}

bool find_allocation(const void *p, allocation *out) {
  auto it = live.upper_bound((uintptr_t)p);
  if (it == live.begin()) return false;
  --it;
  if ((uintptr_t)p - it->first >= it->second) return false;
  *out = {(const char *)it->first, it->second};
  return true;
}

bool in_one_allocation(const void *p, size_t bytes, char *why, size_t n) {
  allocation a;
  if (!find_allocation(p, &a)) {
    snprintf(why, n, "%p is not in any live device allocation (a host pointer, or freed)", p);
    return false;
  }
  size_t room = a.bytes - (size_t)((const char *)p - a.base);
  if (bytes <= room) return true;
  snprintf(why, n, "%p + %zu bytes runs %zu bytes past the end of its allocation (%p, %zu bytes)",
           p, bytes, bytes - room, (const void *)a.base, a.bytes);
  return false;
}

bool stream_valid(cudaStream_t s) { return s == nullptr || streams.count(s); }

bool capture(cudaStream_t s, graph_node node, cudaError_t *e) {
  if (!s || !s->recording) return false;
  *e = s->invalidated ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
  if (!s->invalidated) s->recording->push_back(std::move(node));
  return true;
}

/* s's capture invalidated by fn, with a line saying so; the error CUDA gives fn. */
static cudaError_t refuse(const char *fn, cudaStream_t s) {
  report("%s while stream %p is captured: not allowed in a CUDA graph (the capture is "
         "invalidated)",
         fn, (void *)s);
  s->invalidated = true;
  return cudaErrorStreamCaptureUnsupported;
}

cudaError_t refuse_in_capture(const char *fn, cudaStream_t s) {
  if (s && s->recording) return refuse(fn, s);
  if (s || capturing.empty()) return cudaSuccess;
  report("%s on the legacy default stream while stream %p is captured (the capture is "
         "invalidated)",
         fn, (void *)*capturing.begin());
  for (cudaStream_t c : capturing) c->invalidated = true;
  return cudaErrorStreamCaptureImplicit;
}

cudaError_t refuse_in_any_capture(const char *fn) {
  return capturing.empty() ? cudaSuccess : refuse(fn, *capturing.begin());
}

void launch(const launch_site &site, dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
            int nargs, const void *const *ptrs, const bool *is_ptr, void (*body)(void *),
            void *closure, const closure_ops &ops) {
  api_scope g("a kernel launch");
  if (cudaError_t e = device_error()) {
    record(e);
    return;
  }
  char why[256];
  if (!config_ok(grid, block, why, sizeof why)) {
    report("launch of %s at %s:%d: %s", site.kernel, site.file, site.line, why);
    record(cudaErrorInvalidConfiguration);
    return;
  }
  if (shared) {
    report(
        "launch of %s at %s:%d: %zu bytes of dynamic shared memory are not emulated (declare "
        "__shared__ arrays)",
        site.kernel, site.file, site.line, shared);
    record(cudaErrorNotSupported);
    return;
  }
  if (!stream_ok("a kernel launch", stream)) {
    record(cudaErrorInvalidResourceHandle);
    return;
  }
  if (stream && stream->recording) { /* recorded with a copy of its closure */
    std::shared_ptr<void> kept(ops.clone(closure), ops.drop);
    std::vector<const void *> args(ptrs, ptrs + nargs);
    launch_site at = site;
    closure_ops o = ops;
    cudaError_t ce;
    capture(
        stream,
        [=] {
          launch(at, grid, block, shared, stream, nargs, args.data(), is_ptr, body, kept.get(), o);
        },
        &ce);
    record(ce);
    return;
  }
  if (cudaError_t e = refuse_in_capture("a kernel launch", stream)) { /* the legacy stream */
    record(e);
    return;
  }
  uint64_t no = ++launches;
  if (no == env().fault_at) {
    snprintf(why, sizeof why, "injected fault (FB_EMU_FAULT_AT=%" PRIu64 ")", no);
    fault(cudaErrorLaunchFailure, site.kernel, uint3{0, 0, 0}, uint3{0, 0, 0}, site.file, site.line,
          why);
    return;
  }
  allocation a;
  for (int i = 0; i < nargs; i++)
    if (is_ptr[i] && ptrs[i] && !find_allocation(ptrs[i], &a)) {
      snprintf(why, sizeof why,
               "argument %d (%p) points to no live device allocation (a host pointer, or freed)",
               i + 1, ptrs[i]);
      fault(cudaErrorIllegalAddress, site.kernel, uint3{0, 0, 0}, uint3{0, 0, 0}, site.file,
            site.line, why);
      return;
    }
  run_grid(site, grid, block, body, closure, no);
}

} /* namespace cuda_emu */

using namespace cuda_emu;

/* ---- errors ---- */

const char *cudaGetErrorString(cudaError_t e) {
  for (const auto &x : errors)
    if (x.code == e) return x.text;
  return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t e) {
  for (const auto &x : errors)
    if (x.code == e) return x.name;
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void) {
  api_scope g("cudaGetLastError");
  cudaError_t e = last_error;
  last_error = sticky; /* a sticky fault is never cleared */
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  api_scope g("cudaPeekAtLastError");
  return last_error;
}

/* ---- the device ---- */

cudaError_t cudaGetDeviceCount(int *count) {
  api_scope g("cudaGetDeviceCount");
  if (!count) return record(cudaErrorInvalidValue);
  *count = 0;
  if (cudaError_t e = driver_error()) return record(e);
  *count = env().devices;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  api_scope g("cudaGetDeviceProperties");
  if (!prop) return record(cudaErrorInvalidValue);
  if (cudaError_t e = driver_error()) return record(e);
  if (device < 0 || device >= env().devices) return record(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "fastbrain CUDA emulator");
  prop->totalGlobalMem = env().memory;
  prop->sharedMemPerBlock = 48 << 10;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->major = env().major;
  prop->minor = env().minor;
  prop->multiProcessorCount = 8; /* blocks run one at a time; more than one for grid sizing */
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  api_scope g("cudaSetDevice");
  if (cudaError_t e = driver_error()) return record(e);
  if (device < 0 || device >= env().devices) return record(cudaErrorInvalidDevice);
  if (cudaError_t e = device_error()) return record(e);
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  api_scope g("cudaGetDevice");
  if (!device) return record(cudaErrorInvalidValue);
  if (cudaError_t e = driver_error()) return record(e);
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  api_scope g("cudaDeviceSynchronize");
  if (cudaError_t e = refuse_in_any_capture("cudaDeviceSynchronize")) return record(e);
  return record(device_error());
}

/* ---- streams: every call runs at once, so they only need to be live ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
  api_scope g("cudaStreamCreateWithFlags");
  if (cudaError_t e = device_error()) return record(e);
  if (!stream || (flags & ~(unsigned)cudaStreamNonBlocking)) return record(cudaErrorInvalidValue);
  *stream = new CUstream_st{flags, nullptr, false};
  streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) { /* after a fault too, as cudaFree */
  api_scope g("cudaStreamDestroy");
  cudaError_t e = device_error();
  if (e && e != sticky) return record(e);
  if (!stream || !streams.erase(stream)) {
    if (e) return record(e);
    report("cudaStreamDestroy: stream %p is not a live stream", (void *)stream);
    return record(cudaErrorInvalidResourceHandle);
  }
  delete stream;
  return record(e);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  api_scope g("cudaStreamSynchronize");
  if (cudaError_t e = device_error()) return record(e);
  if (!stream_ok("cudaStreamSynchronize", stream)) return record(cudaErrorInvalidResourceHandle);
  return record(refuse_in_capture("cudaStreamSynchronize", stream));
}

/* ---- stream capture and graphs: the work recorded, then replayed in order ---- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  api_scope g("cudaStreamBeginCapture");
  (void)mode; /* every mode refuses what the global one does, for this thread */
  if (cudaError_t e = device_error()) return record(e);
  if (!stream_ok("cudaStreamBeginCapture", stream)) return record(cudaErrorInvalidResourceHandle);
  if (!stream) { /* as CUDA: the legacy stream cannot be captured */
    report("cudaStreamBeginCapture: the legacy default stream cannot be captured");
    return record(cudaErrorStreamCaptureUnsupported);
  }
  if (stream->recording) {
    report("cudaStreamBeginCapture: stream %p is already captured", (void *)stream);
    return record(cudaErrorInvalidValue);
  }
  stream->recording = new std::vector<graph_node>();
  stream->invalidated = false;
  capturing.insert(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
  api_scope g("cudaStreamEndCapture");
  if (!graph) return record(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!stream_ok("cudaStreamEndCapture", stream)) return record(cudaErrorInvalidResourceHandle);
  if (!stream || !stream->recording) {
    report("cudaStreamEndCapture: stream %p is not being captured", (void *)stream);
    return record(cudaErrorInvalidValue);
  }
  std::unique_ptr<std::vector<graph_node>> nodes(stream->recording);
  stream->recording = nullptr;
  capturing.erase(stream);
  if (stream->invalidated) return record(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{std::move(*nodes)};
  graphs.insert(*graph);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
  api_scope g("cudaStreamIsCapturing");
  if (!status) return record(cudaErrorInvalidValue);
  if (!stream_ok("cudaStreamIsCapturing", stream)) return record(cudaErrorInvalidResourceHandle);
  *status = !stream || !stream->recording ? cudaStreamCaptureStatusNone
            : stream->invalidated         ? cudaStreamCaptureStatusInvalidated
                                          : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  api_scope g("cudaGraphInstantiate");
  if (!exec || flags) return record(cudaErrorInvalidValue);
  *exec = nullptr;
  if (cudaError_t e = device_error()) return record(e);
  if (!graphs.count(graph)) {
    report("cudaGraphInstantiate: graph %p is not a live graph", (void *)graph);
    return record(cudaErrorInvalidResourceHandle);
  }
  *exec = new CUgraphExec_st{graph->nodes};
  execs.insert(*exec);
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  api_scope g("cudaGraphLaunch");
  if (cudaError_t e = device_error()) return record(e);
  if (!execs.count(exec)) {
    report("cudaGraphLaunch: %p is not a live instantiated graph", (void *)exec);
    return record(cudaErrorInvalidResourceHandle);
  }
  if (!stream_ok("cudaGraphLaunch", stream)) return record(cudaErrorInvalidResourceHandle);
  if (cudaError_t e = refuse_in_capture("cudaGraphLaunch", stream)) return record(e);
  for (const graph_node &node : exec->nodes) node();
  return cudaSuccess;
}

/* Delete h, one of a live set's handles; a line and an error for anything else. */
template <typename H>
static cudaError_t destroy_live(std::set<H> &live_set, H h, const char *fn, const char *what) {
  api_scope g(fn);
  if (!live_set.erase(h)) {
    report("%s: %p is not a live %s", fn, (void *)h, what);
    return record(cudaErrorInvalidResourceHandle);
  }
  delete h;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  return destroy_live(execs, exec, "cudaGraphExecDestroy", "instantiated graph");
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  return destroy_live(graphs, graph, "cudaGraphDestroy", "graph");
}

/* ---- events: every call runs at once, so an event's time is the host's when it is recorded ---- */

static bool event_ok(const char *fn, cudaEvent_t e) {
  if (events.count(e)) return true;
  report("%s: event %p is not a live event (destroyed, or never created)", fn, (void *)e);
  return false;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
  api_scope g("cudaEventCreate");
  if (cudaError_t e = device_error()) return record(e);
  if (!event) return record(cudaErrorInvalidValue);
  *event = new CUevent_st{};
  events.insert(*event);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  api_scope g("cudaEventDestroy");
  if (!events.erase(event)) {
    report("cudaEventDestroy: event %p is not a live event", (void *)event);
    return record(cudaErrorInvalidResourceHandle);
  }
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  api_scope g("cudaEventRecord");
  if (cudaError_t e = device_error()) return record(e);
  if (!event_ok("cudaEventRecord", event) || !stream_ok("cudaEventRecord", stream))
    return record(cudaErrorInvalidResourceHandle);
  if (cudaError_t e =
          refuse_in_capture("cudaEventRecord (events in a graph are not emulated)", stream))
    return record(e);
  event->ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now().time_since_epoch()).count();
  event->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  api_scope g("cudaEventSynchronize");
  if (cudaError_t e = device_error()) return record(e);
  if (!event_ok("cudaEventSynchronize", event)) return record(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  api_scope g("cudaEventElapsedTime");
  if (cudaError_t e = device_error()) return record(e);
  if (!ms) return record(cudaErrorInvalidValue);
  if (!event_ok("cudaEventElapsedTime", start) || !event_ok("cudaEventElapsedTime", end))
    return record(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) { /* as CUDA: an event never recorded has no time */
    report("cudaEventElapsedTime: event %p was never recorded",
           (void *)(start->recorded ? end : start));
    return record(cudaErrorInvalidResourceHandle);
  }
  *ms = (float)(end->ms - start->ms);
  return cudaSuccess;
}

/* ---- memory ---- */

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
  api_scope g("cudaMalloc");
  if (!ptr) return record(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (cudaError_t e = device_error()) return record(e);
  if (cudaError_t e = refuse_in_any_capture("cudaMalloc")) return record(e);
  if (bytes == 0) return cudaSuccess;
  void *p;
  if (bytes > env().memory - in_use || posix_memalign(&p, 256, bytes) != 0)
    return record(cudaErrorMemoryAllocation);
  memset(p, 0xff, bytes); /* NaN floats: an output never written shows */
  live[(uintptr_t)p] = bytes;
  in_use += bytes;
  *ptr = p;
  return cudaSuccess;
}

/* After a fault the memory still goes back to the heap, so that a leak check at exit names
 * only the allocations a program never frees, but the call fails like every other. */
cudaError_t cudaFree(void *ptr) {
  api_scope g("cudaFree");
  cudaError_t e = device_error();
  if (e && e != sticky) return record(e);
  if (!ptr) return record(e); /* cudaFree(0): the usual way to create the context */
  if (cudaError_t c = refuse_in_any_capture("cudaFree")) return record(c);
  auto it = live.find((uintptr_t)ptr);
  if (it == live.end()) {
    if (e) return record(e);
    allocation a;
    if (find_allocation(ptr, &a))
      report("cudaFree(%p): inside the allocation %p of %zu bytes, not its start", ptr,
             (const void *)a.base, a.bytes);
    else
      report("cudaFree(%p): not a live device allocation (a host pointer, or freed twice)", ptr);
    return record(cudaErrorInvalidValue);
  }
  in_use -= it->second;
  live.erase(it);
  free(ptr);
  return record(e);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
  api_scope g("cudaMemGetInfo");
  if (cudaError_t e = device_error()) return record(e);
  if (!free_bytes || !total_bytes) return record(cudaErrorInvalidValue);
  *total_bytes = env().memory;
  *free_bytes = env().memory - in_use;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
  return copy("cudaMemcpy", dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return copy("cudaMemcpyAsync", dst, src, bytes, kind, stream);
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
  return set("cudaMemset", ptr, value, bytes, nullptr);
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream) {
  return set("cudaMemsetAsync", ptr, value, bytes, stream);
}
