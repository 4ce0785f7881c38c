/* device.c: the choice of backend (device.h) and the loading of the CUDA plugin: dlopen of
 * libfastbrain_cuda.so, whose one entry point, fb_cuda_plugin_open, probes the GPU and returns
 * its backend table. The plugin resolves the engine's error and log functions from this
 * executable (which exports them). */
#include "device.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLUGIN_FILE "libfastbrain_cuda.so"

/* The plugin's entry point (cuda/plugin.c). */
typedef int (*plugin_open_fn)(int abi, const fb_backend **out, fb_err *err);

static const char *const names[] = {"auto", "cpu", "cuda"};

const char *fb_device_name(fb_device d) {
  return d >= FB_DEVICE_AUTO && d <= FB_DEVICE_CUDA ? names[d] : "?";
}

int fb_device_parse(const char *name) {
  for (int d = FB_DEVICE_AUTO; d <= FB_DEVICE_CUDA; d++)
    if (name && strcmp(name, names[d]) == 0) return d;
  return -1;
}

void fb_device_plugin_path(char *buf, size_t n) {
  const char *env = getenv("FB_CUDA_PLUGIN");
  if (env && *env) {
    snprintf(buf, n, "%s", env);
    return;
  }
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[len > 0 ? len : 0] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  snprintf(buf, n, "%s/%s", slash ? exe : ".", PLUGIN_FILE);
}

/* Whether the NVIDIA driver's library is installed: the plugin links cuBLAS, which takes a few
 * hundred milliseconds to load, so a machine without a driver is told so before that. A plugin
 * named by FB_CUDA_PLUGIN (the emulator's, a build of one's own) makes the check itself. */
static int driver_missing(fb_err *err) {
  if (getenv("FB_CUDA_PLUGIN") || dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) return 0;
  return fb_err_set(err, FB_EBACKEND,
                    "no CUDA driver: libcuda.so.1 (the NVIDIA driver's library) is not installed");
}

/* Load the plugin and open the GPU through it: its backend, or NULL with the reason in err. */
static const fb_backend *load_plugin(fb_err *err) {
  char path[PATH_MAX + 32];
  fb_device_plugin_path(path, sizeof path);
  if (access(path, F_OK) != 0) {
    fb_err_set(err, FB_EBACKEND, "no CUDA plugin: build with the CUDA toolkit (%s: %s)", path,
               strerror(errno));
    return NULL;
  }
  if (driver_missing(err)) return NULL;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fb_err_set(err, FB_EBACKEND, "the CUDA plugin cannot be loaded: %s", dlerror());
    return NULL;
  }
  plugin_open_fn open_fn = (plugin_open_fn)dlsym(h, "fb_cuda_plugin_open");
  if (!open_fn) {
    fb_err_set(err, FB_EBACKEND, "%s is not a fastbrain CUDA plugin: %s", path, dlerror());
    return NULL;
  }
  const fb_backend *gpu = NULL;
  return open_fn(FB_BACKEND_ABI, &gpu, err) == 0 ? gpu : NULL; /* stays loaded for good */
}

/* The GPU's backend, opened once; later calls get the same answer. */
static int open_cuda(const fb_backend **out, fb_err *err) {
  static int tried;
  static const fb_backend *gpu;
  static fb_err failure;
  if (!tried) {
    tried = 1;
    gpu = load_plugin(&failure);
  }
  if (!gpu) {
    if (err) *err = failure;
    return failure.code;
  }
  *out = gpu;
  return 0;
}

int fb_device_open(fb_device want, const fb_backend **out, char *why, size_t n, fb_err *err) {
  fb_err reason = {0};
  *out = fb_backend_cpu();
  if (want != FB_DEVICE_CPU && want != FB_DEVICE_CUDA && want != FB_DEVICE_AUTO)
    return fb_err_set(err, FB_EINVALID, "device %d is not one of auto, cpu, cuda", (int)want);
  if (want != FB_DEVICE_CPU && open_cuda(out, &reason) != 0) {
    if (want == FB_DEVICE_CUDA)
      return fb_err_set(err, FB_EBACKEND, "device \"cuda\": %s", reason.msg);
  }
  if (why) snprintf(why, n, "%s", reason.code ? reason.msg : (*out)->device_name());
  return 0;
}
