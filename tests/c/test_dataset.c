/* test_dataset.c: the JSONL loader (three shapes, tolerated layout, every refusal and its
 * message), tokenized examples with answer-only labels and truncation, the seeded order and
 * split, and the statistics. Uses the byte tokenizer, so it needs no downloaded files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "test.h"

static char dir[64];

__attribute__((destructor)) static void remove_dir(void) {
  if (!dir[0]) return;
  char path[128];
  snprintf(path, sizeof path, "%s/data.jsonl", dir);
  unlink(path);
  rmdir(dir);
}

static const char *write_file(const char *name, const char *data, size_t n) {
  static char path[128];
  if (!dir[0]) {
    strcpy(dir, "/tmp/fb_test_dataset_XXXXXX");
    if (!mkdtemp(dir)) abort();
  }
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
  return path;
}

static fb_dataset *load_text(const char *text, fb_ds_report *rep, fb_err *err, int *rc) {
  fb_dataset *ds = NULL;
  *rc = fb_dataset_read(&ds, write_file("data.jsonl", text, strlen(text)), rep, err);
  return ds;
}

TEST(messages_with_bom_crlf_blank_lines_and_no_final_newline) {
  const char *text =
      "\xEF\xBB\xBF{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
      "{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"}]}\r\n"
      "\r\n   \n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"2+2?\"},{\"role\":\"assistant\",\"content\":\"4\"}]}";
  fb_err err = {0};
  int rc;
  fb_dataset *ds = load_text(text, NULL, &err, &rc);
  REQUIRE(rc == 0);
  CHECK_INT(fb_dataset_count(ds), 2);
  CHECK_STR(fb_dataset_shape_name(fb_dataset_shape(ds)), "messages");
  const fb_conv *c = fb_dataset_conv(ds, 1);
  CHECK_INT(c->line, 4);
  CHECK_INT(c->n, 2);
  CHECK_STR(c->msgs[0].content, "2+2?");
  CHECK_INT(c->msgs[1].role, FB_ROLE_ASSISTANT);
  CHECK_STR(fb_dataset_conv(ds, 0)->msgs[0].content, "Be brief.");
  CHECK_INT(strncmp(fb_dataset_hash(ds), "fnv1a64:", 8), 0);
  CHECK_INT(strlen(fb_dataset_hash(ds)), 24);
  char h1[32];
  strcpy(h1, fb_dataset_hash(ds));
  fb_dataset_free(ds);
  ds = load_text(text, NULL, &err, &rc); /* same bytes, same hash; one byte more, another */
  CHECK_STR(fb_dataset_hash(ds), h1);
  fb_dataset_free(ds);
  char more[1024];
  snprintf(more, sizeof more, "%s\n", text);
  ds = load_text(more, NULL, &err, &rc);
  CHECK(strcmp(fb_dataset_hash(ds), h1) != 0);
  fb_dataset_free(ds);
}

TEST(sharegpt_and_alpaca_shapes) {
  fb_err err = {0};
  int rc;
  fb_dataset *ds = load_text(
      "{\"conversations\":[{\"from\":\"human\",\"value\":\"Q\"},{\"from\":\"gpt\",\"value\":\"A\"}]}\n",
      NULL, &err, &rc);
  REQUIRE(rc == 0);
  CHECK_STR(fb_dataset_shape_name(fb_dataset_shape(ds)), "sharegpt");
  CHECK_INT(fb_dataset_conv(ds, 0)->msgs[0].role, FB_ROLE_USER);
  CHECK_INT(fb_dataset_conv(ds, 0)->msgs[1].role, FB_ROLE_ASSISTANT);
  fb_dataset_free(ds);
  ds = load_text(
      "{\"instruction\":\"Translate\",\"input\":\"chat\",\"output\":\"cat\",\"system\":\"S\"}\n"
      "{\"instruction\":\"Say hi\",\"input\":\"\",\"output\":\"hi\"}\n",
      NULL, &err, &rc);
  REQUIRE(rc == 0);
  CHECK_STR(fb_dataset_shape_name(fb_dataset_shape(ds)), "alpaca");
  const fb_conv *c = fb_dataset_conv(ds, 0);
  REQUIRE(c->n == 3);
  CHECK_INT(c->msgs[0].role, FB_ROLE_SYSTEM);
  CHECK_STR(c->msgs[1].content, "Translate\n\nchat");
  CHECK_INT(c->msgs[1].len, 15);
  CHECK_STR(c->msgs[2].content, "cat");
  CHECK_INT(fb_dataset_conv(ds, 1)->n, 2);
  CHECK_STR(fb_dataset_conv(ds, 1)->msgs[0].content, "Say hi");
  fb_dataset_free(ds);
}

static void expect_refusal(const char *text, const char *want) {
  fb_err err = {0};
  fb_ds_report rep;
  int rc;
  fb_dataset *ds = load_text(text, &rep, &err, &rc);
  CHECK_INT(rc, FB_EFORMAT);
  CHECK(ds == NULL);
  CHECK_CONTAINS(err.msg, want);
}

TEST(bad_lines_are_named) {
  const char *ok =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n";
  char text[2048];
  snprintf(text, sizeof text,
           "%s\n{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
           "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"admin\",\"content\":\"c\"}]}\n",
           ok);
  expect_refusal(text,
                 "data.jsonl:3: messages[2].role: \"admin\" is not one of system, user, assistant");
  expect_refusal(
      "{\"messages\":[{\"role\":\"user\",\"content\":5},{\"role\":\"assistant\",\"content\":\"b\"}]}",
      "data.jsonl:1: messages[0].content: expected a string, got 5");
  expect_refusal("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 "data.jsonl:1: messages: no assistant turn to learn from");
  expect_refusal("{\"messages\":[]}", "data.jsonl:1: messages: expected a non-empty array");
  expect_refusal(
      "{\"conversations\":[{\"from\":\"bot\",\"value\":\"x\"}]}",
      "conversations[0].from: \"bot\" is not one of system, human, gpt (or user, assistant)");
  expect_refusal("{\"instruction\":\"x\"}", "data.jsonl:1: output: missing");
  expect_refusal("{\"prompt\":\"x\"}",
                 "expected a \"messages\", \"conversations\" or \"instruction\" field");
  snprintf(text, sizeof text, "%s{\"instruction\":\"x\",\"output\":\"y\"}\n", ok);
  expect_refusal(text,
                 "data.jsonl:2: has \"instruction\" but line 1 made this a \"messages\" file");
  snprintf(text, sizeof text, "%s{\"messages\": [}\n", ok);
  expect_refusal(text, "data.jsonl:2: not valid JSON (column 15)");
  snprintf(text, sizeof text, "%s{} {}\n", ok);
  expect_refusal(text, "data.jsonl:2: text after the JSON value (column 4)");
  expect_refusal("[1,2]\n", "data.jsonl:1: expected a JSON object");
}

/* Bytes that would break every later reader of the data, and keys whose meaning depends on
 * the parser, are refused by line and column (issue 19). */
TEST(bad_bytes_and_duplicate_keys_are_refused) {
  static const char nul_line[] =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"a\0b\"},"
      "{\"role\":\"assistant\",\"content\":\"c\"}]}\n";
  fb_err err = {0};
  fb_dataset *ds = NULL;
  CHECK_INT(
      fb_dataset_read(&ds, write_file("data.jsonl", nul_line, sizeof nul_line - 1), NULL, &err),
      FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "data.jsonl:1: a NUL byte (column 41)");
  expect_refusal(
      "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xC3\"},"
      "{\"role\":\"assistant\",\"content\":\"b\"}]}",
      "data.jsonl:1: invalid UTF-8 (column 43)");
  expect_refusal(
      "{\"messages\":[{\"role\":\"user\",\"role\":\"system\",\"content\":\"a\"},"
      "{\"role\":\"assistant\",\"content\":\"b\"}]}",
      "data.jsonl:1: duplicate key \"role\"");
  expect_refusal("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"messages\":[]}",
                 "data.jsonl:1: duplicate key \"messages\"");
}

TEST(empty_file_is_refused) {
  expect_refusal("", "data.jsonl: no examples (the file is empty)");
  expect_refusal("\xEF\xBB\xBF\n\r\n  \n", "data.jsonl: no examples");
  fb_dataset *ds;
  fb_err err = {0};
  CHECK_INT(fb_dataset_read(&ds, "/nonexistent/data.jsonl", NULL, &err), FB_ENOTFOUND);
  CHECK_STR(err.msg, "/nonexistent/data.jsonl: open: No such file or directory");
}

TEST(long_line_is_refused) {
  size_t n = FB_DS_MAX_LINE + 100;
  char *text = malloc(n + 1);
  memset(text, ' ', n);
  memcpy(text, "{\"x\":1}", 7);
  text[n] = 0;
  expect_refusal(text, "data.jsonl:1: line of 1048676 bytes is longer than the 1048576-byte limit");
  free(text);
}

TEST(at_most_20_problems_are_kept) {
  char text[8192] = "";
  for (int i = 0; i < 25; i++)
    strcat(text, "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}\n");
  fb_err err = {0};
  fb_ds_report rep;
  int rc;
  fb_dataset *ds = load_text(text, &rep, &err, &rc);
  CHECK_INT(rc, FB_EFORMAT);
  CHECK(ds == NULL);
  CHECK_INT(rep.n, 20);
  CHECK_INT(rep.total, 25);
  CHECK_CONTAINS(rep.lines[19],
                 "/data.jsonl:20: messages[0].role: \"bot\" is not one of system, user, assistant");
  CHECK_CONTAINS(err.msg, "25 bad lines, the first: /tmp/");
  CHECK_CONTAINS(err.msg, "/data.jsonl:1: messages[0].role");
}

/* A test renderer: "<|user|>q<|assistant|>a<|end|>" with the span over "a<|end|>". */
static int add_rendered(fb_examples *ex, fb_tokenizer *tok, const char *q, const char *a,
                        const fb_ex_opts *opts) {
  char text[512];
  int n = snprintf(text, sizeof text, "<|user|>%s<|assistant|>", q);
  fb_span span = {(size_t)n, 0};
  n += snprintf(text + n, sizeof text - (size_t)n, "%s<|end|>", a);
  span.end = (size_t)n;
  fb_err err = {0};
  return fb_examples_add(ex, tok, text, (size_t)n, &span, 1, 7, opts, &err);
}

TEST(labels_only_on_answers_with_end_token_and_truncation) {
  const char *specials[] = {"<|user|>", "<|assistant|>", "<|end|>"};
  fb_tokenizer *tok;
  fb_err err = {0};
  REQUIRE(fb_tokenizer_bytes(&tok, specials, 3, &err) == 0);
  fb_examples ex = {0};
  fb_ex_opts opts = {.max_len = 0};
  CHECK_INT(add_rendered(&ex, tok, "hi", "yo", &opts), 0);
  REQUIRE(ex.n == 1);
  fb_example *e = &ex.v[0];
  int32_t ids[] = {256, 'h', 'i', 257, 'y', 'o', 258};
  int32_t labels[] = {-100, -100, -100, -100, 'y', 'o', 258};
  REQUIRE(e->n == 7);
  for (int i = 0; i < 7; i++) {
    CHECK_INT(e->ids[i], ids[i]);
    CHECK_INT(e->labels[i], labels[i]);
  }
  CHECK_INT(e->n_trained, 3);
  CHECK_INT(e->line, 7);
  opts.max_len = 5;
  CHECK_INT(add_rendered(&ex, tok, "hi", "yo", &opts), 0);
  CHECK_INT(ex.v[1].n, 5);
  CHECK_INT(ex.v[1].full_len, 7);
  CHECK_INT(ex.v[1].n_trained, 1);
  CHECK_INT(ex.truncated, 1);
  opts = (fb_ex_opts){.train_on_all = 1};
  CHECK_INT(add_rendered(&ex, tok, "hi", "yo", &opts), 0);
  CHECK_INT(ex.v[2].n_trained, 7);
  CHECK_INT(ex.v[2].labels[0], 256);
  fb_examples_free(&ex);
  fb_tokenizer_free(tok);
}

TEST(order_is_seeded_and_split_keeps_training_data) {
  size_t *a, *b, *c;
  REQUIRE(fb_dataset_order(100, 1, &a) == 0);
  REQUIRE(fb_dataset_order(100, 1, &b) == 0);
  REQUIRE(fb_dataset_order(100, 2, &c) == 0);
  CHECK(memcmp(a, b, 100 * sizeof *a) == 0);
  CHECK(memcmp(a, c, 100 * sizeof *a) != 0);
  int seen[100] = {0}, moved = 0;
  for (int i = 0; i < 100; i++) {
    seen[a[i]]++;
    moved += a[i] != (size_t)i;
  }
  for (int i = 0; i < 100; i++) CHECK_INT(seen[i], 1);
  CHECK(moved > 90);
  CHECK_INT(a[0], 32); /* pinned: the order must not change between releases */
  free(a);
  free(b);
  free(c);
  CHECK_INT(fb_dataset_eval_count(100, 0.1, 0), 10);
  CHECK_INT(fb_dataset_eval_count(100, 0.1, 3), 3);
  CHECK_INT(fb_dataset_eval_count(5, 0.5, 0), 3);
  CHECK_INT(fb_dataset_eval_count(1, 0.5, 0), 0);
  CHECK_INT(fb_dataset_eval_count(4, 0, 10), 3);
}

TEST(statistics) {
  const char *text =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"Is the boiler on?\"},{\"role\":\"assistant\",\"content\":\"Yes, it is running fine.\"}]}\n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"Is the boiler on?\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}\n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"is the BOILER on\"},{\"role\":\"assistant\",\"content\":\"  \"}]}\n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"Something else entirely\"},{\"role\":\"assistant\",\"content\":\"A long enough answer here.\"}]}\n";
  fb_err err = {0};
  int rc;
  fb_dataset *ds = load_text(text, NULL, &err, &rc);
  REQUIRE(rc == 0);
  const char *specials[] = {"<|user|>", "<|assistant|>", "<|end|>"};
  fb_tokenizer *tok;
  REQUIRE(fb_tokenizer_bytes(&tok, specials, 3, &err) == 0);
  fb_examples ex = {0};
  fb_ex_opts opts = {.max_len = 40};
  for (size_t i = 0; i < fb_dataset_count(ds); i++) {
    const fb_conv *c = fb_dataset_conv(ds, i);
    CHECK_INT(add_rendered(&ex, tok, c->msgs[0].content, c->msgs[1].content, &opts), 0);
    ex.v[i].line = c->line;
  }
  fb_ds_stats st;
  CHECK_INT(fb_dataset_stats(ds, &ex, &st), 0);
  CHECK_INT(st.examples, 4);
  CHECK_INT(st.duplicate_prompts, 1);
  CHECK_INT(st.near_duplicate_prompts, 1);
  CHECK_INT(st.empty_answers, 1);
  CHECK_INT(st.short_answers, 1);
  CHECK_INT(st.truncated, 2); /* 17+24+2 and 23+26+2 tokens are over 40 */
  CHECK_INT(st.max_len, 40);
  CHECK_INT(st.min_len, 21); /* 2 + 16 + 2 + 1 */
  CHECK_INT(st.n_longest, 4);
  CHECK_INT(st.longest_line[0], 4);
  CHECK_INT(st.longest_len[0], 3 + 23 + 26);
  CHECK_INT(st.longest_line[3], 3);
  size_t in_hist = 0;
  for (int b = 0; b < FB_DS_HIST; b++) in_hist += st.hist[b];
  CHECK_INT(in_hist, 4);
  CHECK_INT(st.hist[1] + st.hist[2], 4); /* 21..52 tokens: buckets <=32 and <=64 */
  CHECK_INT(st.tokens, 21 + 22 + 40 + 40);
  fb_examples_free(&ex);
  fb_tokenizer_free(tok);
  fb_dataset_free(ds);
}
