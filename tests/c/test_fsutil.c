/* test_fsutil.c: fb_write_file_atomic / fb_write_parts_atomic, fb_read_file and its cap,
 * fb_parse_file, fb_mkdir_p, on a scratch directory. */
#include "formats_tmp.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "fsutil.h"
#include "safetensors.h"

/* Entries in dir whose names start with prefix. */
static int count_prefixed(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  if (d) closedir(d);
  return n;
}

TEST(write_then_read_round_trips) {
  fb_err err = {0};
  const char *p = tmp_path("a.json");
  CHECK_INT(fb_write_file_atomic(p, "{\"x\":1}", 7, &err), 0);
  char *buf = NULL;
  size_t len = 0;
  CHECK_INT(fb_read_file(p, &buf, &len, 100, &err), 0);
  REQUIRE(buf);
  CHECK_INT(len, 7);
  CHECK_STR(buf, "{\"x\":1}");
  free(buf);
  struct stat st;
  REQUIRE(stat(p, &st) == 0);
  CHECK_INT(st.st_mode & 0777, 0644);
}

TEST(atomic_write_replaces_and_leaves_no_temp) {
  fb_err err = {0};
  const char *p = tmp_path("replace.txt");
  CHECK_INT(fb_write_file_atomic(p, "old contents", 12, &err), 0);
  fb_part parts[3] = {{"ne", 2}, {"", 0}, {"w", 1}};
  CHECK_INT(fb_write_parts_atomic(p, parts, 3, &err), 0);
  char *buf = NULL;
  CHECK_INT(fb_read_file(p, &buf, NULL, 100, &err), 0);
  CHECK_STR(buf, "new");
  free(buf);
  CHECK_INT(count_prefixed(tmp_dir(), "replace.txt.tmp"), 0);
}

TEST(atomic_write_into_missing_dir_fails_cleanly) {
  fb_err err = {0};
  const char *p = tmp_path("no/such/dir/file");
  CHECK_INT(fb_write_file_atomic(p, "x", 1, &err), FB_EIO);
  CHECK_CONTAINS(err.msg, "no/such/dir/file");
  CHECK_CONTAINS(err.msg, "create temp file");
}

TEST(atomic_write_over_a_directory_keeps_it_and_removes_temp) {
  fb_err err = {0};
  const char *d = tmp_path("isdir");
  REQUIRE(fb_mkdir_p(d, &err) == 0);
  CHECK_INT(fb_write_file_atomic(d, "x", 1, &err), FB_EIO);
  CHECK_CONTAINS(err.msg, "rename");
  struct stat st;
  CHECK(stat(d, &st) == 0 && S_ISDIR(st.st_mode));
  CHECK_INT(count_prefixed(tmp_dir(), "isdir.tmp"), 0);
}

TEST(read_refuses_over_cap_and_missing) {
  fb_err err = {0};
  const char *p = tmp_write("big.bin", "0123456789", 10);
  char *buf = (char *)1;
  CHECK_INT(fb_read_file(p, &buf, NULL, 9, &err), FB_ELIMIT);
  CHECK(buf == NULL);
  CHECK_CONTAINS(err.msg, "big.bin");
  CHECK_CONTAINS(err.msg, "over the limit of 9");
  CHECK_INT(fb_read_file(p, &buf, NULL, 10, &err), 0);
  free(buf);
  CHECK_INT(fb_read_file(tmp_path("missing"), &buf, NULL, 10, &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "missing");
  CHECK_INT(fb_read_file(tmp_dir(), &buf, NULL, 10, &err), FB_EIO);
  CHECK_CONTAINS(err.msg, "not a regular file");
}

/* A FIFO in a file's place is refused at once, not waited on: open() of a FIFO blocks until a
 * writer comes, and `generate` and `train` hung forever on one (issue 19). The alarm turns a
 * hang into a failure. */
TEST(read_refuses_a_fifo_without_waiting) {
  const char *p = tmp_path("model.safetensors");
  REQUIRE(mkfifo(p, 0644) == 0);
  alarm(10);
  fb_err err = {0};
  char *buf = (char *)1;
  CHECK_INT(fb_read_file(p, &buf, NULL, 100, &err), FB_EIO);
  CHECK(buf == NULL);
  CHECK_CONTAINS(err.msg, "model.safetensors: not a regular file (a FIFO)");
  fb_st_file *f = NULL;
  CHECK_INT(fb_st_open(&f, p, &err), FB_EIO);
  CHECK(f == NULL);
  CHECK_CONTAINS(err.msg, "not a regular file (a FIFO)");
  alarm(0);
  unlink(p);
}

TEST(read_empty_file) {
  fb_err err = {0};
  const char *p = tmp_write("empty", "", 0);
  char *buf = NULL;
  size_t len = 99;
  CHECK_INT(fb_read_file(p, &buf, &len, 10, &err), 0);
  REQUIRE(buf);
  CHECK_INT(len, 0);
  CHECK_STR(buf, "");
  free(buf);
}

/* What a parser given to fb_parse_file saw; it refuses a text that starts with '!'. */
struct seen {
  char text[32], label[256];
  size_t len;
  int calls;
};
static int record(void *out, const char *text, size_t len, const char *label, fb_err *err) {
  struct seen *s = out;
  s->calls++;
  s->len = len;
  snprintf(s->text, sizeof s->text, "%s", text);
  snprintf(s->label, sizeof s->label, "%s", label);
  return text[0] == '!' ? fb_err_set(err, FB_EFORMAT, "%s: refused", label) : 0;
}

TEST(parse_file_hands_the_text_and_path_to_the_parser) {
  fb_err err = {0};
  struct seen s = {0};
  const char *p = tmp_path("parse.txt");
  CHECK_INT(fb_write_file_atomic(p, "abc", 3, &err), 0);
  CHECK_INT(fb_parse_file(p, 10, record, &s, &err), 0);
  CHECK_INT(s.calls, 1);
  CHECK_INT(s.len, 3);
  CHECK_STR(s.text, "abc");
  CHECK_STR(s.label, p);
  CHECK_INT(fb_write_file_atomic(p, "!no", 3, &err), 0);
  CHECK_INT(fb_parse_file(p, 10, record, &s, &err), FB_EFORMAT);
  CHECK(strstr(err.msg, "parse.txt: refused") != NULL);
  /* A file that cannot be read never reaches the parser. */
  CHECK_INT(fb_parse_file(p, 2, record, &s, &err), FB_ELIMIT);
  CHECK_INT(fb_parse_file(tmp_path("missing"), 10, record, &s, &err), FB_ENOTFOUND);
  CHECK_INT(s.calls, 2);
}

TEST(mkdir_p_makes_parents_and_is_idempotent) {
  fb_err err = {0};
  const char *p = tmp_path("m/n//o/");
  CHECK_INT(fb_mkdir_p(p, &err), 0);
  CHECK_INT(fb_mkdir_p(p, &err), 0);
  struct stat st;
  CHECK(stat(tmp_path("m/n/o"), &st) == 0 && S_ISDIR(st.st_mode));
  tmp_write("plain", "x", 1);
  CHECK_INT(fb_mkdir_p(tmp_path("plain/sub"), &err), FB_EIO);
  CHECK_CONTAINS(err.msg, "plain");
  CHECK_INT(fb_mkdir_p("", &err), FB_EINVALID);
}
