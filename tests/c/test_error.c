/* Tests of the engine's error record and code table. */
#include "error.h"
#include "log.h"
#include "test.h"

TEST(error_codes_have_text) {
  CHECK_STR(fb_strerror(FB_ENOMEM), "out of memory");
  CHECK_STR(fb_strerror(FB_EFORMAT), "malformed input");
  CHECK_STR(fb_strerror(12345), "unknown error");
}

TEST(error_set_and_prefix) {
  fb_err err = {0};
  CHECK_INT(fb_err_set(&err, FB_EFORMAT, "tensor '%s': bad dtype %s", "w", "I8"), FB_EFORMAT);
  CHECK_INT(err.code, FB_EFORMAT);
  CHECK_STR(err.msg, "tensor 'w': bad dtype I8");
  CHECK_INT(fb_err_prefix(&err, "%s", "model.safetensors"), FB_EFORMAT);
  CHECK_STR(err.msg, "model.safetensors: tensor 'w': bad dtype I8");
  CHECK_INT(fb_err_set(NULL, FB_EIO, "ignored"), FB_EIO);
}

TEST(error_message_is_truncated_not_overflowed) {
  fb_err err;
  char big[2000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  fb_err_set(&err, FB_EINVALID, "%s", big);
  CHECK_INT(strlen(err.msg), sizeof err.msg - 1);
}

TEST(log_levels_parse) {
  CHECK_INT(fb_log_parse_level("debug"), FB_LOG_DEBUG);
  CHECK_INT(fb_log_parse_level("off"), FB_LOG_OFF);
  CHECK_INT(fb_log_parse_level("loud"), -1);
  CHECK_INT(fb_log_parse_level(NULL), -1);
  CHECK_STR(fb_log_level_name(FB_LOG_WARN), "warn");
}
