/* device.c: the choice between the CPU and the CUDA backend (see device.h). The CUDA side is
 * compiled in only with FB_HAVE_CUDA (the fb_cuda library is then linked). */
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#ifdef FB_HAVE_CUDA
#include "fb_cuda.h"
#endif

const char *fb_compute_name(fb_compute c) { return c == FB_COMPUTE_CUDA ? "cuda" : "cpu"; }

int fb_device_cuda_built(void) {
#ifdef FB_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

/* 0 with the device's name in why, or -1 with what is missing. */
static int cuda_usable(char *why, size_t n) {
#ifdef FB_HAVE_CUDA
  return fb_cuda_probe(why, n);
#else
  snprintf(why, n, "this build has no CUDA backend (configure with a CUDA toolkit, FB_CUDA=ON)");
  return -1;
#endif
}

int fb_device_select(const char *want, fb_compute *out, char *why, size_t n, fb_err *err) {
  char reason[256];
  if (!want) want = "auto";
  *out = FB_COMPUTE_CPU;
  if (strcmp(want, "cpu") == 0) {
    snprintf(reason, sizeof reason, "asked for the CPU");
  } else if (strcmp(want, "cuda") == 0 || strcmp(want, "auto") == 0) {
    if (cuda_usable(reason, sizeof reason) == 0) {
      *out = FB_COMPUTE_CUDA;
    } else if (want[0] == 'c') {
      return fb_err_set(err, FB_EBACKEND, "device \"cuda\": %s", reason);
    } else {
      fb_info("device: auto: using the CPU: %s", reason);
    }
  } else {
    return fb_err_set(err, FB_EINVALID, "device \"%s\" is not one of auto, cpu, cuda", want);
  }
  if (why) snprintf(why, n, "%s", reason);
  return 0;
}
