/* log.h: leveled log lines to stderr ("2026-11-29T10:00:00.123Z INFO message").
 * The level is process-wide; the engine and the Lua binding share it. */
#ifndef FB_LOG_H
#define FB_LOG_H

typedef enum { FB_LOG_DEBUG, FB_LOG_INFO, FB_LOG_WARN, FB_LOG_ERROR, FB_LOG_OFF } fb_log_level;

/* Parse "debug", "info", "warn", "error" or "off"; returns -1 for anything else. */
int fb_log_parse_level(const char *name);
const char *fb_log_level_name(fb_log_level level);
void fb_log_set_level(fb_log_level level);
fb_log_level fb_log_get_level(void);

void fb_log(fb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write one message that is already formatted (may span lines). */
void fb_log_write(fb_log_level level, const char *msg);

#define fb_debug(...) fb_log(FB_LOG_DEBUG, __VA_ARGS__)
#define fb_info(...) fb_log(FB_LOG_INFO, __VA_ARGS__)
#define fb_warn(...) fb_log(FB_LOG_WARN, __VA_ARGS__)
#define fb_error(...) fb_log(FB_LOG_ERROR, __VA_ARGS__)

#endif
