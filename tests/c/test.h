/* test.h: a small C test harness, header only. Tests register themselves at load time
 * (TEST(name) { ... }); main runs them all, or those whose names contain argv[1], and
 * prints one line per test plus a summary. A failed CHECK reports file:line and the
 * values, and the test goes on so one run shows every broken expectation.
 *
 * Why our own: it is ~100 lines, needs no package, runs clean under ASan/UBSan and
 * forks nothing, so sanitizer reports and leaks land in the test that caused them. */
#ifndef FB_TEST_H
#define FB_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*fb_test_fn)(void);
struct fb_test_case { const char *name; fb_test_fn fn; };

#define FB_TEST_MAX 512
static struct fb_test_case fb_tests[FB_TEST_MAX];
static int fb_test_count, fb_test_failed_checks;

static inline void fb_test_register(const char *name, fb_test_fn fn) {
  if (fb_test_count == FB_TEST_MAX) { fprintf(stderr, "test.h: too many tests\n"); abort(); }
  fb_tests[fb_test_count].name = name;
  fb_tests[fb_test_count++].fn = fn;
}

#define TEST(name)                                                              \
  static void name(void);                                                       \
  __attribute__((constructor)) static void fb_test_reg_##name(void) {          \
    fb_test_register(#name, name);                                              \
  }                                                                             \
  static void name(void)

#define FB_FAIL_(...)                                                           \
  do {                                                                          \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                           \
    fprintf(stderr, __VA_ARGS__);                                               \
    fputc('\n', stderr);                                                        \
    fb_test_failed_checks++;                                                    \
  } while (0)

#define CHECK(cond)                                                             \
  do { if (!(cond)) FB_FAIL_("CHECK(%s) failed", #cond); } while (0)

#define CHECK_INT(a, b)                                                         \
  do {                                                                          \
    long long fb_a_ = (long long)(a), fb_b_ = (long long)(b);                   \
    if (fb_a_ != fb_b_) FB_FAIL_("%s == %s: %lld != %lld", #a, #b, fb_a_, fb_b_); \
  } while (0)

#define CHECK_STR(a, b)                                                         \
  do {                                                                          \
    const char *fb_a_ = (a), *fb_b_ = (b);                                      \
    if (!fb_a_ || !fb_b_ || strcmp(fb_a_, fb_b_) != 0)                          \
      FB_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, fb_a_ ? fb_a_ : "(null)",  \
               fb_b_ ? fb_b_ : "(null)");                                       \
  } while (0)

/* a contains b */
#define CHECK_CONTAINS(a, b)                                                    \
  do {                                                                          \
    const char *fb_a_ = (a), *fb_b_ = (b);                                      \
    if (!fb_a_ || !fb_b_ || !strstr(fb_a_, fb_b_))                              \
      FB_FAIL_("\"%s\" does not contain \"%s\"", fb_a_ ? fb_a_ : "(null)", fb_b_); \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                   \
  do {                                                                          \
    double fb_a_ = (double)(a), fb_b_ = (double)(b);                            \
    if (!(fabs(fb_a_ - fb_b_) <= (tol)))                                        \
      FB_FAIL_("%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, fb_a_, fb_b_, (double)(tol)); \
  } while (0)

/* Stop the current test when a precondition fails (later checks would only add noise). */
#define REQUIRE(cond)                                                           \
  do { if (!(cond)) { FB_FAIL_("REQUIRE(%s) failed", #cond); return; } } while (0)

int main(int argc, char **argv) {
  int failed_tests = 0, run = 0;
  for (int i = 0; i < fb_test_count; i++) {
    if (argc > 1 && !strstr(fb_tests[i].name, argv[1])) continue;
    int before = fb_test_failed_checks;
    fb_tests[i].fn();
    run++;
    int bad = fb_test_failed_checks != before;
    failed_tests += bad;
    printf("%s %s\n", bad ? "FAIL" : "ok  ", fb_tests[i].name);
  }
  printf("%d passed, %d failed\n", run - failed_tests, failed_tests);
  return failed_tests ? 1 : 0;
}

#endif
