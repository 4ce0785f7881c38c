/* test_device.c: device selection. ctest runs it with CUDA_VISIBLE_DEVICES=-1, so no GPU is
 * visible even on a machine that has one: "auto" must fall back to the CPU and say why, and
 * "cuda" must fail with the reason, whether or not the build has the CUDA backend. */
#include "device.h"
#include "test.h"

TEST(cpu_is_always_there) {
  fb_compute c = FB_COMPUTE_CUDA;
  fb_err err = {0};
  char why[256];
  CHECK_INT(fb_device_select("cpu", &c, why, sizeof why, &err), 0);
  CHECK_INT(c, FB_COMPUTE_CPU);
  CHECK_STR(fb_compute_name(c), "cpu");
}

TEST(auto_falls_back_with_the_reason) {
  fb_compute c = FB_COMPUTE_CUDA;
  fb_err err = {0};
  char why[256] = "";
  CHECK_INT(fb_device_select("auto", &c, why, sizeof why, &err), 0);
  CHECK_INT(c, FB_COMPUTE_CPU);
  /* built with CUDA: the runtime's answer; without: the build says so */
  const char *expect = fb_device_cuda_built() ? "CUDA" : "no CUDA backend";
  if (!strstr(why, expect)) FB_FAIL_("reason \"%s\" does not mention \"%s\"", why, expect);
  CHECK_INT(fb_device_select(NULL, &c, why, sizeof why, &err), 0); /* NULL is auto */
  CHECK_INT(c, FB_COMPUTE_CPU);
}

TEST(cuda_without_a_gpu_is_a_clear_error) {
  fb_compute c = FB_COMPUTE_CPU;
  fb_err err = {0};
  CHECK_INT(fb_device_select("cuda", &c, NULL, 0, &err), FB_EBACKEND);
  CHECK_INT(err.code, FB_EBACKEND);
  if (!strstr(err.msg, "device \"cuda\": ") || strlen(err.msg) < 30)
    FB_FAIL_("unclear message: %s", err.msg);
  CHECK_INT(c, FB_COMPUTE_CPU);
}

TEST(unknown_names_are_refused) {
  fb_compute c;
  fb_err err = {0};
  CHECK_INT(fb_device_select("gpu", &c, NULL, 0, &err), FB_EINVALID);
  CHECK_STR(err.msg, "device \"gpu\" is not one of auto, cpu, cuda");
}
