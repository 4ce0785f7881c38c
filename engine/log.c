/* log.c: leveled log lines to stderr with ISO-8601 UTC time. One write per line so lines
 * from several processes sharing stderr do not interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static fb_log_level current_level = FB_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int fb_log_parse_level(const char *name) {
  for (int i = 0; i <= FB_LOG_OFF; i++)
    if (name && strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *fb_log_level_name(fb_log_level level) { return level_names[level]; }
void fb_log_set_level(fb_log_level level) { current_level = level; }
fb_log_level fb_log_get_level(void) { return current_level; }

void fb_log_write(fb_log_level level, const char *msg) {
  static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < current_level || level >= FB_LOG_OFF) return;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[8192];
  int n = snprintf(line, sizeof line, "%s.%03dZ %s %s\n", stamp, (int)(tv.tv_usec / 1000),
                   tags[level], msg);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) { /* keep the cut visible and the newline */
    n = sizeof line - 1;
    memcpy(line + n - 4, "...\n", 4);
  }
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
    if (w <= 0) break;
    off += w;
  }
}

void fb_log(fb_log_level level, const char *fmt, ...) {
  if (level < current_level) return;
  char msg[8000];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fb_log_write(level, msg);
}
