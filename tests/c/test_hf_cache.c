/* test_hf_cache.c: models named ORG/NAME[@REVISION] found in a Hugging Face cache laid out as
 * huggingface_hub lays it out (blobs, snapshots of relative links, refs), built here in a
 * temporary directory; the cache's root from the environment; names refused; and a model loaded
 * by its repository id, its commit recorded. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "hf_cache.h"
#include "model.h"
#include "test.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"
#define OTHER "fedcba9876543210fedcba9876543210fedcba98"

static char root[256];

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) fputs(text, f);
  if (f) fclose(f);
}

/* models--acme--tiny-llm with refs/main -> COMMIT, refs/v2 -> OTHER, each snapshot's config.json a
 * relative link into blobs/; OTHER's snapshot holds a real (saved) model. */
static int make_cache(void) {
  snprintf(root, sizeof root, "/tmp/fb_hf_XXXXXX");
  if (!mkdtemp(root)) return -1;
  char path[512], repo[400];
  fb_err err = {0};
  snprintf(repo, sizeof repo, "%s/models--acme--tiny-llm", root);
  const char *dirs[] = {"blobs", "refs", "snapshots/" COMMIT, "snapshots/" OTHER};
  for (size_t i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", repo, dirs[i]);
    if (fb_mkdir_p(path, &err)) return -1;
  }
  snprintf(path, sizeof path, "%s/refs/main", repo);
  put(path, COMMIT);
  snprintf(path, sizeof path, "%s/refs/v2", repo);
  put(path, OTHER "\n");
  snprintf(path, sizeof path, "%s/blobs/3f2a", repo);
  put(path, "{}");
  snprintf(path, sizeof path, "%s/snapshots/" COMMIT "/config.json", repo);
  if (symlink("../../blobs/3f2a", path)) return -1;
  fb_model_config c = {.vocab_size = 40,
                       .hidden_size = 16,
                       .intermediate_size = 24,
                       .num_hidden_layers = 1,
                       .num_attention_heads = 2,
                       .num_key_value_heads = 1,
                       .head_dim = 8,
                       .rms_norm_eps = 1e-5,
                       .rope_theta = 10000,
                       .max_position_embeddings = 64,
                       .bos_token_id = -1};
  fb_model *m = NULL;
  snprintf(path, sizeof path, "%s/snapshots/" OTHER, repo);
  int rc = fb_model_create(&m, &c, &err) || fb_model_save(m, NULL, path, &err);
  fb_model_free(m);
  setenv("HF_HUB_CACHE", root, 1);
  return rc ? -1 : 0;
}

TEST(the_caches_root_from_the_environment) {
  char buf[512];
  setenv("HF_HUB_CACHE", "/x/hub-cache", 1);
  setenv("HF_HOME", "/y/hf", 1);
  fb_hf_cache_root(buf, sizeof buf);
  CHECK_STR(buf, "/x/hub-cache");
  unsetenv("HF_HUB_CACHE");
  fb_hf_cache_root(buf, sizeof buf);
  CHECK_STR(buf, "/y/hf/hub");
  unsetenv("HF_HOME");
  setenv("HOME", "/home/u", 1);
  unsetenv("XDG_CACHE_HOME");
  fb_hf_cache_root(buf, sizeof buf);
  CHECK_STR(buf, "/home/u/.cache/huggingface/hub");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  fb_hf_cache_root(buf, sizeof buf);
  CHECK_STR(buf, "/xdg/huggingface/hub");
  setenv("HF_HOME", "~/hf", 1); /* huggingface_hub expands a leading ~ */
  fb_hf_cache_root(buf, sizeof buf);
  CHECK_STR(buf, "/home/u/hf/hub");
  unsetenv("HF_HOME");
  unsetenv("XDG_CACHE_HOME");
}

TEST(repository_ids_parsed_as_the_hub_allows_them) {
  char repo[FB_HF_REPO], rev[FB_HF_REVISION];
  CHECK_INT(fb_hf_parse("org/m_1.x@v1.0", repo, rev), 0);
  CHECK_STR(repo, "org/m_1.x");
  CHECK_STR(rev, "v1.0");
  CHECK_INT(fb_hf_parse("Qwen/Qwen2.5-0.5B", repo, rev), 0);
  CHECK_STR(rev, "main");
  CHECK_INT(fb_hf_parse("org/m@refs/pr/1", repo, rev), 0);
  CHECK_STR(rev, "refs/pr/1");
  const char *bad[] = {"llama",  "a/b/c", "../x/y", "org/..", "org/a--b",   "org/m@../x",
                       "org/m@", "/m",    "org/-m", "org/m.", "org/m@a//b", "org/m@x/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(fb_hf_parse(bad[i], repo, rev), -1);
}

TEST(repository_ids_and_revisions) {
  REQUIRE(make_cache() == 0);
  char dir[1024], commit[FB_HF_COMMIT], want[1024];
  fb_err err = {0};
  CHECK_INT(fb_hf_locate("acme/tiny-llm", dir, sizeof dir, commit, &err), 0);
  snprintf(want, sizeof want, "%s/models--acme--tiny-llm/snapshots/" COMMIT, root);
  CHECK_STR(dir, want);
  CHECK_STR(commit, COMMIT);
  CHECK_INT(fb_hf_locate("acme/tiny-llm@v2", dir, sizeof dir, commit, &err), 0);
  CHECK_STR(commit, OTHER);
  CHECK_INT(fb_hf_locate("acme/tiny-llm@" COMMIT, dir, sizeof dir, commit, &err), 0);
  CHECK_STR(dir, want);
  /* a directory that exists is a model directory, whatever it looks like */
  CHECK_INT(fb_hf_locate(root, dir, sizeof dir, commit, &err), 0);
  CHECK_STR(dir, root);
  CHECK_STR(commit, "");
  fb_remove_tree(root, NULL);
}

TEST(what_is_not_there_says_how_to_get_it) {
  REQUIRE(make_cache() == 0);
  char dir[1024], commit[FB_HF_COMMIT];
  fb_err err = {0};
  CHECK_INT(fb_hf_locate("acme/other-model", dir, sizeof dir, commit, &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "model \"acme/other-model\" is not in the Hugging Face cache (");
  CHECK_CONTAINS(err.msg, "): fastbrain pull acme/other-model");
  CHECK_INT(fb_hf_locate("acme/tiny-llm@dev", dir, sizeof dir, commit, &err), FB_ENOTFOUND);
  CHECK_INT(fb_hf_locate("acme/tiny-llm@"
                         "1111111111111111111111111111111111111111",
                         dir, sizeof dir, commit, &err),
            FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "has no config.json: fastbrain pull acme/tiny-llm@1111");
  fb_remove_tree(root, NULL);
}

TEST(names_that_are_neither) {
  const char *bad[] = {"no-slash", "a/b/c",      "../x",  "acme/..",   "acme/tiny@../../etc",
                       "/abs/x",   "acme/tiny@", "acme/", "acme/ti ny"};
  char dir[1024], commit[FB_HF_COMMIT];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fb_err err = {0};
    CHECK_INT(fb_hf_locate(bad[i], dir, sizeof dir, commit, &err), FB_EINVALID);
    CHECK_CONTAINS(err.msg, "nor a Hugging Face repository id ORG/NAME[@REVISION]");
  }
}

TEST(a_model_loads_by_its_repository_id) {
  REQUIRE(make_cache() == 0);
  fb_model *m = NULL;
  fb_err err = {0};
  CHECK_INT(fb_model_load(&m, "acme/tiny-llm@v2", &err), 0);
  REQUIRE(m);
  CHECK_INT(m->V, 40);
  CHECK_STR(m->revision, OTHER);
  fb_model_free(m);
  CHECK_INT(fb_model_load(&m, "acme/tiny-llm", &err), FB_EFORMAT); /* main's config.json is {} */
  CHECK_INT(fb_model_load(&m, "acme/absent", &err), FB_ENOTFOUND);
  CHECK_CONTAINS(err.msg, "fastbrain pull acme/absent");
  fb_remove_tree(root, NULL);
}
