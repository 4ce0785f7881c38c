/* test_device.c: choosing the backend and opening the CUDA plugin. A plugin is opened once per
 * process, so every case that opens one runs in a child of its own with its environment:
 * FB_CUDA_PLUGIN names the plugin file, and the CUDA emulator's plugin (FB_TEST_EMU_PLUGIN, set
 * by ctest) plays a GPU without a driver, an old one, a busy one and a good one through its
 * FB_EMU_* settings. ctest runs this with CUDA_VISIBLE_DEVICES=-1, so a real GPU on the machine
 * never answers. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device.h"
#include "test.h"

/* What fb_device_open(want) did in a fresh child with the environment "K=V" pairs (NULL-ended):
 * its return code, and its error message or the chosen backend's name and `why`. */
typedef struct outcome {
  int rc;
  char text[600];
} outcome;

static outcome open_in_child(fb_device want, ...) {
  outcome o = {.rc = 99, .text = ""};
  int fd[2];
  if (pipe(fd) != 0) return o;
  pid_t pid = fork();
  if (pid == 0) {
    va_list ap;
    va_start(ap, want);
    for (const char *kv; (kv = va_arg(ap, const char *));) putenv((char *)kv);
    va_end(ap);
    const fb_backend *be = NULL;
    char why[300] = "";
    fb_err err = {0};
    outcome r = {.rc = fb_device_open(want, &be, why, sizeof why, &err)};
    if (r.rc)
      snprintf(r.text, sizeof r.text, "%s", err.msg);
    else
      snprintf(r.text, sizeof r.text, "%s: %s", be->name, why);
    if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(2);
    _exit(0);
  }
  close(fd[1]);
  if (read(fd[0], &o, sizeof o) != (ssize_t)sizeof o)
    snprintf(o.text, sizeof o.text, "(child died)");
  close(fd[0]);
  waitpid(pid, NULL, 0);
  return o;
}

static const char *emu_plugin(void) { return getenv("FB_TEST_EMU_PLUGIN"); }

static char *env_pair(const char *key, const char *value) {
  static char buf[8][4300];
  static int next;
  char *b = buf[next++ % 8];
  snprintf(b, sizeof buf[0], "%s=%s", key, value);
  return b;
}

TEST(names) {
  CHECK_STR(fb_device_name(FB_DEVICE_AUTO), "auto");
  CHECK_STR(fb_device_name(FB_DEVICE_CPU), "cpu");
  CHECK_STR(fb_device_name(FB_DEVICE_CUDA), "cuda");
  CHECK_INT(fb_device_parse("cuda"), FB_DEVICE_CUDA);
  CHECK_INT(fb_device_parse("cpu"), FB_DEVICE_CPU);
  CHECK_INT(fb_device_parse("gpu"), -1);
  CHECK_INT(fb_device_parse(NULL), -1);
}

TEST(cpu_is_always_there) {
  const fb_backend *be = NULL;
  fb_err err = {0};
  char why[256];
  CHECK_INT(fb_device_open(FB_DEVICE_CPU, &be, why, sizeof why, &err), 0);
  REQUIRE(be == fb_backend_cpu());
  CHECK_STR(be->name, "cpu");
  CHECK(be->host_memory && be->trains_base);
  CHECK_STR(why, be->device_name());
  CHECK_CONTAINS(why, "cores)");
}

TEST(no_plugin_file) {
  outcome o =
      open_in_child(FB_DEVICE_CUDA, "FB_CUDA_PLUGIN=/nonexistent/libfastbrain_cuda.so", NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "device \"cuda\": no CUDA plugin: build with the CUDA toolkit");
  CHECK_CONTAINS(o.text, "/nonexistent/libfastbrain_cuda.so");
  o = open_in_child(FB_DEVICE_AUTO, "FB_CUDA_PLUGIN=/nonexistent/libfastbrain_cuda.so", NULL);
  CHECK_INT(o.rc, 0);
  CHECK_CONTAINS(o.text, "cpu: no CUDA plugin: build with the CUDA toolkit");
}

TEST(a_file_that_is_not_a_plugin) {
  outcome o = open_in_child(FB_DEVICE_CUDA, "FB_CUDA_PLUGIN=/etc/hostname", NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "the CUDA plugin cannot be loaded: /etc/hostname");
  Dl_info libm; /* a library without the entry point */
  REQUIRE(dladdr((void *)cos, &libm) && libm.dli_fname);
  o = open_in_child(FB_DEVICE_CUDA, env_pair("FB_CUDA_PLUGIN", libm.dli_fname), NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "is not a fastbrain CUDA plugin");
}

/* The plugin built beside this binary, when the build has the CUDA toolkit. Without a driver
 * it is not even loaded; named explicitly it loads (its symbols resolve against this binary) and
 * the CUDA runtime says what is missing. */
TEST(the_real_plugin_without_a_gpu) {
  char path[4200];
  fb_device_plugin_path(path, sizeof path);
  if (access(path, F_OK) != 0) {
    printf("  (no %s: this build has no CUDA toolkit)\n", path);
    return;
  }
  outcome o = open_in_child(FB_DEVICE_CUDA, NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  if (!strstr(o.text, "no CUDA device is visible") && !strstr(o.text, "no CUDA driver: "))
    FB_FAIL_("unclear reason: %s", o.text);
  o = open_in_child(FB_DEVICE_AUTO, NULL);
  CHECK_INT(o.rc, 0);
  CHECK(strncmp(o.text, "cpu: no CUDA", 12) == 0);
  o = open_in_child(FB_DEVICE_CUDA, env_pair("FB_CUDA_PLUGIN", path), NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  if (!strstr(o.text, "no CUDA device is visible") && !strstr(o.text, "no CUDA driver: "))
    FB_FAIL_("unclear reason from the loaded plugin: %s", o.text);
  printf("  the plugin says: %s\n", o.text);
}

TEST(emulated_gpus) {
  const char *plugin = emu_plugin();
  if (!plugin) {
    printf("  (FB_TEST_EMU_PLUGIN is not set: no emulated plugin)\n");
    return;
  }
  char *p = env_pair("FB_CUDA_PLUGIN", plugin);
  outcome o = open_in_child(FB_DEVICE_CUDA, p, NULL);
  CHECK_INT(o.rc, 0);
  CHECK_CONTAINS(o.text, "cuda: fastbrain CUDA emulator (sm_90, ");
  o = open_in_child(FB_DEVICE_AUTO, p, NULL);
  CHECK_CONTAINS(o.text, "cuda: fastbrain CUDA emulator");
  o = open_in_child(FB_DEVICE_CUDA, p, "FB_EMU_DRIVER=0", NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "device \"cuda\": no CUDA driver: ");
  o = open_in_child(FB_DEVICE_CUDA, p, "FB_EMU_DEVICES=0", NULL);
  CHECK_CONTAINS(o.text, "device \"cuda\": no CUDA device is visible");
  o = open_in_child(FB_DEVICE_CUDA, p, "FB_EMU_SM=75", NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "is sm_75; sm_80 or newer is needed");
  o = open_in_child(FB_DEVICE_AUTO, p, "FB_EMU_SM=75", NULL);
  CHECK_INT(o.rc, 0);
  CHECK_CONTAINS(o.text, "cpu: device 0 (fastbrain CUDA emulator) is sm_75; sm_80 or newer");
  o = open_in_child(FB_DEVICE_CUDA, p, "FB_EMU_BUSY=1", NULL);
  CHECK_INT(o.rc, FB_EBACKEND);
  CHECK_CONTAINS(o.text, "device 0 (fastbrain CUDA emulator (sm_90, ");
  CHECK_CONTAINS(o.text, ") is not free: ");
}

/* A plugin built for another layout of the table is refused before it is used. */
TEST(plugin_of_another_interface) {
  const char *plugin = emu_plugin();
  if (!plugin) return;
  void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h);
  int (*open_fn)(int, const fb_backend **, fb_err *) =
      (int (*)(int, const fb_backend **, fb_err *))dlsym(h, "fb_cuda_plugin_open");
  REQUIRE(open_fn);
  const fb_backend *be = (const fb_backend *)1;
  fb_err err = {0};
  CHECK_INT(open_fn(FB_BACKEND_ABI + 1, &be, &err), FB_EBACKEND);
  CHECK(be == NULL);
  CHECK_CONTAINS(err.msg, "rebuild them together");
}
