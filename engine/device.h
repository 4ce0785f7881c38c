/* device.h: which backend a run computes on. "cpu" is always there. "cuda" needs the CUDA plugin
 * (libfastbrain_cuda.so beside the binary, or the file $FB_CUDA_PLUGIN names), a driver that
 * answers and a free device of compute capability 8.0 or newer; without them it is an error
 * that says which was missing. "auto" takes the GPU when "cuda" would work, else the CPU, and
 * says why (for the caller to log). The plugin is loaded when a run first asks for a GPU, once
 * per process; this binary links no CUDA library itself. */
#ifndef FB_DEVICE_H
#define FB_DEVICE_H

#include <stddef.h>

#include "backend.h"
#include "error.h"

/* "auto", "cpu" or "cuda" */
const char *fb_device_name(fb_device d);
/* The device of one of those names; -1 for anything else. */
int fb_device_parse(const char *name);

/* The backend for want. why[] (may be NULL) gets one line: the device's name, or why "auto"
 * took the CPU. FB_EBACKEND for "cuda" without a usable GPU (the reason in err). */
int fb_device_open(fb_device want, const fb_backend **out, char *why, size_t n, fb_err *err);

/* The file the CUDA plugin is (or would be) loaded from. */
void fb_device_plugin_path(char *buf, size_t n);

#endif
