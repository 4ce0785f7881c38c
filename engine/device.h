/* device.h: which compute device a run uses. "cpu" is always there; "cuda" needs a build with
 * the CUDA backend (cuda/, FB_CUDA) and a usable GPU, and is an error naming what is missing
 * otherwise; "auto" takes the GPU when "cuda" would work, else the CPU with a log line saying
 * why. Nothing here allocates or starts the GPU beyond the CUDA runtime's own probe. */
#ifndef FB_DEVICE_H
#define FB_DEVICE_H

#include <stddef.h>

#include "error.h"

typedef enum { FB_COMPUTE_CPU, FB_COMPUTE_CUDA } fb_compute;

/* "cpu" or "cuda" */
const char *fb_compute_name(fb_compute c);
/* 1 when this binary was built with the CUDA backend */
int fb_device_cuda_built(void);
/* Resolve want ("auto", "cpu", "cuda"; NULL means "auto") to *out. why[] (may be NULL) gets
 * one line: the GPU's name, or why the CPU was taken. FB_EINVALID for an unknown name;
 * FB_EBACKEND for "cuda" without a usable GPU (the reason in err). */
int fb_device_select(const char *want, fb_compute *out, char *why, size_t n, fb_err *err);

#endif
