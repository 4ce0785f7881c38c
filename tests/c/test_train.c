/* test_train.c: training runs on a tiny random model (hidden 32, 2 layers, the byte tokenizer
 * plus <eos>) over 20 short question/answer examples: the loss falls, small-data mode gives
 * >= 50 progress events with every protocol field, a stopped and resumed run ends with the
 * weights of an uninterrupted one, evaluation with early stopping keeps the best adapter, the
 * watchdog stops a NaN run with the last checkpoint intact, summary.json says what happened and
 * example_losses.json ranks the examples; select "scenarios" publishes the weights whose answers
 * the receiver scored best, across a resume too. */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

#include "fsutil.h"
#include "safetensors.h"
#include "test.h"
#include "output.h"
#include "train.h"

#define N_EX 20
#define EOS 256

static fb_model *tiny(void) {
  fb_model_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
  c.vocab_size = 257;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.max_position_embeddings = 128;
  c.bos_token_id = -1;
  c.n_eos = 1;
  c.eos_token_ids[0] = EOS;
  fb_model *m = NULL;
  fb_err err = {0};
  if (fb_model_create(&m, &c, &err)) fprintf(stderr, "%s\n", err.msg);
  if (m) fb_model_init_random(m, 1, 0.3f);
  return m;
}

/* "Q: <question>\nA: <answer><eos>", the answer and <eos> trained. answer_shift gives another
 * answer to the same question (a set the training set contradicts). */
static void make_examples(fb_examples *ex, fb_tokenizer *tok, int answer_shift) {
  static const char *const words[] = {"red",  "blue", "green", "gold", "gray",
                                      "pink", "teal", "navy",  "rose", "jade"};
  fb_ex_opts o = {0};
  for (int i = 0; i < N_EX; i++) {
    char text[96];
    int q = snprintf(text, sizeof text, "Q: item %d\nA: ", i);
    int n = q + snprintf(text + q, sizeof text - q, "%s %s<eos>", words[(i + answer_shift) % 10],
                         words[(i / 10 + answer_shift) % 10]);
    fb_span sp = {(size_t)q, (size_t)n};
    fb_err err = {0};
    if (fb_examples_add(ex, tok, text, (size_t)n, &sp, 1, i + 1, &o, &err))
      fprintf(stderr, "%s\n", err.msg);
  }
}

typedef struct fixture {
  char dir[64];
  fb_tokenizer *tok;
  fb_model *m;
  fb_examples train, eval;
  fb_train_spec spec;
  fb_train_data data;
} fixture;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static int setup(fixture *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/fb_train_XXXXXX");
  const char *specials[] = {"<eos>"};
  fb_err err = {0};
  if (!mkdtemp(f->dir) || fb_tokenizer_bytes(&f->tok, specials, 1, &err) || !(f->m = tiny()))
    return -1;
  make_examples(&f->train, f->tok, 0);
  f->data = (fb_train_data){.train = &f->train, .dataset_hash = "fnv1a64:0123456789abcdef"};
  fb_train_spec *s = &f->spec;
  fb_train_spec_defaults(s);
  snprintf(s->model, sizeof s->model, "tiny-random");
  snprintf(s->data[0], sizeof s->data[0], "data.jsonl");
  s->n_data = 1;
  snprintf(s->out, sizeof s->out, "%s/out", f->dir);
  s->lr = 1e-2;
  s->warmup = 0;
  s->lora.r = 8;
  s->lora.lora_alpha = 16;
  s->lora.lora_dropout = 0.1;
  s->device = FB_DEVICE_CPU; /* the hooks below poke the host weights the CPU computes with */
  return 0;
}

static void teardown(fixture *f) {
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  fb_examples_free(&f->train);
  fb_examples_free(&f->eval);
  fb_model_free(f->m);
  fb_tokenizer_free(f->tok);
}

/* What the events of a run said. */
typedef struct seen {
  int progress, eval, sample, checkpoint, start, done, error, logs;
  int fields_ok; /* every progress event had every field as a number */
  double first_loss, last_smoothed, losses[256];
  char where[64], log[200], sample_text[200];
  int cancel_at; /* set the cancel flag after this step */
  volatile sig_atomic_t cancel;
  int nan_at;         /* poison the model after this step */
  int blow_at;        /* scale the output head by 100 after this step */
  int stop_at, lr_at; /* ask to stop / set the learning rate to 0 after this step */
  double lrs[257];    /* lr of each progress event, by count */
  fb_model *m;
  /* `scenarios` events: their count, the score to give at each step (-1: none), the answers
   * of the last, and the eval loss of each step */
  int scenarios, score_at[257], answers;
  char answer_id[32];
  double eval_at[257];
} seen;

static void on_event(void *ud, const cJSON *e, fb_train_control *ctl) {
  seen *s = ud;
  const char *name = cJSON_GetObjectItem(e, "event")->valuestring;
  if (strcmp(name, "progress") == 0) {
    static const char *const keys[] = {"step",         "total_steps",   "epoch", "total_epochs",
                                       "loss",         "loss_smoothed", "lr",    "grad_norm",
                                       "tokens_per_s", "elapsed_s",     "eta_s"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      if (!cJSON_IsNumber(cJSON_GetObjectItem(e, keys[i]))) s->fields_ok = 0;
    int step = cJSON_GetObjectItem(e, "step")->valueint;
    double loss = cJSON_GetObjectItem(e, "loss")->valuedouble;
    if (s->progress++ == 0) s->first_loss = loss;
    if (step < 256) s->losses[step] = loss;
    s->last_smoothed = cJSON_GetObjectItem(e, "loss_smoothed")->valuedouble;
    if (step == s->cancel_at) s->cancel = 1;
    if (step == s->stop_at) ctl->stop = 1;
    if (step == s->lr_at) ctl->lr = 0;
    if (step == s->nan_at) s->m->final_norm[0] = NAN;
    if (step == s->blow_at)
      for (size_t i = 0; i < (size_t)s->m->V * s->m->C; i++) s->m->lm_head[i] *= 100;
  } else if (strcmp(name, "eval") == 0) {
    s->eval++;
    int step = cJSON_GetObjectItem(e, "step")->valueint;
    if (step < 257) s->eval_at[step] = cJSON_GetObjectItem(e, "eval_loss")->valuedouble;
  } else if (strcmp(name, "scenarios") == 0) {
    int step = cJSON_GetObjectItem(e, "step")->valueint;
    const cJSON *answers = cJSON_GetObjectItem(e, "answers");
    s->scenarios++;
    s->answers = cJSON_GetArraySize(answers);
    snprintf(s->answer_id, sizeof s->answer_id, "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(answers, 0), "id")->valuestring);
    if (!cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(answers, 0), "text")))
      s->fields_ok = 0;
    if (step < 257 && s->score_at[step] >= 0) ctl->score = s->score_at[step];
  } else if (strcmp(name, "sample") == 0) {
    s->sample++;
    snprintf(s->sample_text, sizeof s->sample_text, "%s",
             cJSON_GetObjectItem(e, "text")->valuestring);
  } else if (strcmp(name, "checkpoint") == 0) {
    s->checkpoint++;
  } else if (strcmp(name, "start") == 0) {
    s->start++;
  } else if (strcmp(name, "done") == 0) {
    s->done++;
  } else if (strcmp(name, "log") == 0) {
    s->logs++;
    snprintf(s->log, sizeof s->log, "%s", cJSON_GetObjectItem(e, "message")->valuestring);
  } else if (strcmp(name, "error") == 0) {
    s->error++;
    snprintf(s->where, sizeof s->where, "%s", cJSON_GetObjectItem(e, "where")->valuestring);
  }
  if (strcmp(name, "progress") == 0)
    s->lrs[s->progress] = cJSON_GetObjectItem(e, "lr")->valuedouble;
}

static int train(fixture *f, seen *s, int resume, fb_err *err) {
  s->fields_ok = s->fields_ok || !s->progress;
  s->m = f->m;
  fb_train_opts o = {.on_event = on_event, .ud = s, .cancel = &s->cancel, .resume = resume};
  return fb_train(f->m, &f->spec, &f->data, &o, err);
}

static float *read_adapter(const char *out, size_t *n) {
  char path[256];
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
  fb_st_file *st = NULL;
  fb_err err = {0};
  if (fb_st_open(&st, path, &err)) return NULL;
  size_t total = 0;
  for (int i = 0; i < fb_st_count(st); i++) total += (size_t)fb_st_at(st, i)->numel;
  float *w = malloc(total * sizeof *w), *p = w;
  for (int i = 0; i < fb_st_count(st); i++) {
    fb_st_read_f32(fb_st_at(st, i), p, &err);
    p += fb_st_at(st, i)->numel;
  }
  fb_st_close(st);
  *n = total;
  return w;
}

static cJSON *read_summary(const char *out) {
  char path[FB_SPEC_PATH + 32], *text = NULL;
  size_t len;
  fb_err err = {0};
  snprintf(path, sizeof path, "%s/summary.json", out);
  if (fb_read_file(path, &text, &len, 1 << 20, &err)) return NULL;
  cJSON *j = cJSON_Parse(text);
  free(text);
  return j;
}

/* The largest difference between the weights of the adapters in a and b (INFINITY when they
 * cannot be read or differ in shape). */
static double max_diff(const char *a, const char *b) {
  size_t n1 = 0, n2 = 0;
  float *w1 = read_adapter(a, &n1), *w2 = read_adapter(b, &n2);
  double d = w1 && w2 && n1 == n2 && n1 > 0 ? 0 : INFINITY;
  for (size_t i = 0; d < INFINITY && i < n1; i++) d = fmax(d, fabs(w1[i] - w2[i]));
  free(w1);
  free(w2);
  return d;
}

TEST(loss_falls_and_samples_show_it) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.epochs = 40; /* 200 steps of 4 examples */
  f.spec.n_prompts = 1;
  snprintf(f.spec.prompts[0], sizeof f.spec.prompts[0], "item 3");
  const char *rendered = "Q: item 3\nA: ";
  int32_t prompt[16];
  for (int i = 0; rendered[i]; i++) prompt[i] = (unsigned char)rendered[i];
  fb_train_prompt p = {"item 3", prompt, (int)strlen(rendered)};
  f.data.tok = f.tok;
  f.data.prompts = &p;
  f.data.n_prompts = 1;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), 0);
  CHECK_INT(s.start, 1);
  CHECK_INT(s.progress, 200);
  /* The first step's loss is ~6.5 on this random model; memorising 20 answers takes the
   * smoothed loss under 0.6. */
  CHECK(s.first_loss > 5);
  CHECK(s.last_smoothed < 0.6);
  fprintf(stderr, "  loss %.3f -> %.3f (smoothed) in %d steps; sample \"%s\"\n", s.first_loss,
          s.last_smoothed, s.progress, s.sample_text);
  CHECK_INT(s.sample, 5);                /* every 40 steps: the fifth at the last step */
  CHECK_CONTAINS(s.sample_text, " red"); /* every answer of items 0-9 ends in "red" */
  CHECK_INT(s.done, 1);
  teardown(&f);
}

TEST(small_data_mode_draws_a_curve_with_every_field) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.epochs = 3; /* 60 examples: 15 steps of 4, so small-data mode goes to 1 x 60 */
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), 0);
  CHECK_INT(s.progress, 60);
  CHECK(s.fields_ok);
  CHECK_CONTAINS(s.log, "small-data mode: micro_batch 1 x grad_accum 1 (was 4 x 1) for 60 steps");
  teardown(&f);
}

TEST(resume_gives_the_weights_of_an_uninterrupted_run) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 16;
  f.spec.micro_batch = 3;
  f.spec.grad_accum = 2;
  seen whole = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  REQUIRE(train(&f, &whole, 0, &err) == 0);
  char whole_out[FB_SPEC_PATH];
  snprintf(whole_out, sizeof whole_out, "%s", f.spec.out);
  snprintf(f.spec.out, sizeof f.spec.out, "%s/out2", f.dir);
  seen part = {.cancel_at = 7, .nan_at = -1};
  CHECK_INT(train(&f, &part, 0, &err), FB_ECANCELLED);
  CHECK_CONTAINS(err.msg, "cancelled at step 7");
  CHECK_INT(part.progress, 7);
  CHECK_INT(part.checkpoint, 1);
  seen rest = {.cancel_at = -1, .nan_at = -1};
  CHECK_INT(train(&f, &rest, 1, &err), 0);
  CHECK_INT(rest.progress, 9);
  for (int step = 8; step <= 16; step++) CHECK_NEAR(rest.losses[step], whole.losses[step], 1e-6);
  /* The smoothed loss is the bias-corrected average of the steps' losses, across the resume. */
  double ema = 0;
  for (int step = 1; step <= 16; step++) ema = 0.9 * ema + 0.1 * whole.losses[step];
  CHECK_NEAR(whole.last_smoothed, ema / (1 - pow(0.9, 16)), 1e-9);
  CHECK_NEAR(rest.last_smoothed, whole.last_smoothed, 1e-6);
  double maxdiff = max_diff(whole_out, f.spec.out);
  CHECK(maxdiff <= 1e-6);
  fprintf(stderr, "  max |w_whole - w_resumed| = %g\n", maxdiff);
  teardown(&f);
}

/* A checkpoint as an adapter: the last step's is the adapter the run published (a run without
 * a kept best publishes its last weights); a spec of another rank is refused naming the tensor. */
TEST(a_checkpoint_becomes_the_adapter_of_its_step) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 6;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  REQUIRE(train(&f, &s, 0, &err) == 0);
  char step_dir[FB_SPEC_PATH + 64], out[FB_SPEC_PATH + 16];
  snprintf(step_dir, sizeof step_dir, "%s/checkpoints/step-00000006", f.spec.out);
  snprintf(out, sizeof out, "%s/from-checkpoint", f.dir);
  CHECK_INT(fb_checkpoint_adapter(f.m, &f.spec, step_dir, out, &err), 0);
  CHECK(max_diff(f.spec.out, out) == 0);
  CHECK(max_diff(f.spec.out, out) < INFINITY);
  f.spec.lora.r = 4;
  CHECK_INT(fb_checkpoint_adapter(f.m, &f.spec, step_dir, out, &err), FB_EFORMAT);
  CHECK_CONTAINS(err.msg, "params");
  f.spec.lora.r = 8;
  snprintf(step_dir, sizeof step_dir, "%s/checkpoints/step-00000099", f.spec.out);
  CHECK(fb_checkpoint_adapter(f.m, &f.spec, step_dir, out, &err) != 0);
  CHECK_CONTAINS(err.msg, "step-00000099/state.safetensors");
  teardown(&f);
}

/* A run resumes only on the data it started with: a skill's data replaced while its job was
 * paused was trained on without a word (84 -> 88 examples mid-run; issue 19). */
TEST(resume_on_changed_data_is_refused) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 8;
  seen part = {.cancel_at = 4, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &part, 0, &err), FB_ECANCELLED);
  f.data.dataset_hash = "fnv1a64:fedcba9876543210";
  seen rest = {.cancel_at = -1, .nan_at = -1};
  CHECK_INT(train(&f, &rest, 1, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg,
                 "the training data changed since this run started "
                 "(fnv1a64:0123456789abcdef, now fnv1a64:fedcba9876543210)");
  CHECK_INT(rest.progress, 0);
  f.data.dataset_hash = "fnv1a64:0123456789abcdef"; /* the same data again: it resumes */
  CHECK_INT(train(&f, &rest, 1, &err), 0);
  CHECK_INT(rest.progress, 4);
  teardown(&f);
}

TEST(a_step_saved_twice_replaces_its_checkpoint) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 8;
  f.spec.checkpoint_interval = 4;
  seen part = {.cancel_at = 4, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &part, 0, &err), FB_ECANCELLED);
  CHECK_INT(part.checkpoint, 2); /* the periodic one, then the cancel's at the same step */
  char path[FB_SPEC_PATH + 64];
  snprintf(path, sizeof path, "%s/checkpoints/step-00000004.old", f.spec.out);
  CHECK(access(path, F_OK) != 0);
  /* A crash between stepping the old directory aside and renaming the new one in: */
  char dir[FB_SPEC_PATH + 64];
  snprintf(dir, sizeof dir, "%s/checkpoints/step-00000004", f.spec.out);
  REQUIRE(rename(dir, path) == 0);
  seen rest = {.cancel_at = -1, .nan_at = -1};
  CHECK_INT(train(&f, &rest, 1, &err), 0);
  CHECK_INT(rest.progress, 4);    /* resumed from step-00000004.old */
  CHECK(access(path, F_OK) != 0); /* pruned once step 8 was saved */
  teardown(&f);
}

/* The number of step-N.tmp entries in dir. */
static int count_tmp(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) n += strstr(e->d_name, ".tmp") != NULL;
  if (d) closedir(d);
  return n;
}

/* Checkpoints on a full disk (a filled 256 KiB tmpfs; root only): the run fails saying so,
 * step-N.tmp goes at once, and one a kill left goes at the next run. */
TEST(a_checkpoint_on_a_full_disk_fails_clearly_and_leaves_no_tmp) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  char ck[FB_SPEC_PATH], cmd[2 * FB_SPEC_PATH + 80];
  snprintf(ck, sizeof ck, "%s/ck", f.dir);
  REQUIRE(fb_mkdir_p(ck, NULL) == 0);
  snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=256k tmpfs '%s' 2>/dev/null", ck);
  if (system(cmd) != 0) {
    fprintf(stderr, "  skipped: cannot mount a tmpfs here (needs root)\n");
    teardown(&f);
    return;
  }
  snprintf(cmd, sizeof cmd, "dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null", ck);
  CHECK(system(cmd) != 0); /* dd stops at ENOSPC */
  snprintf(f.spec.checkpoints, sizeof f.spec.checkpoints, "%s", ck);
  f.spec.max_steps = 2;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), FB_ENOSPACE);
  CHECK_CONTAINS(err.msg, "disk full while writing the checkpoint of step 2");
  CHECK_INT(count_tmp(ck), 0);
  snprintf(cmd, sizeof cmd, "%s/filler", ck);
  unlink(cmd);
  snprintf(cmd, sizeof cmd, "%s/step-00000009.tmp", ck); /* as a kill would leave it */
  REQUIRE(fb_mkdir_p(cmd, NULL) == 0);
  CHECK_INT(fb_output_settle_checkpoints(ck), 1);
  CHECK_INT(count_tmp(ck), 0);
  snprintf(cmd, sizeof cmd, "umount '%s'", ck);
  CHECK_INT(system(cmd), 0);
  teardown(&f);
}

TEST(early_stopping_keeps_the_best_adapter) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  make_examples(&f.eval, f.tok, 5); /* the same questions, other answers */
  f.data.eval = &f.eval;
  f.spec.max_steps = 100;
  f.spec.micro_batch = 2;
  f.spec.eval_interval = 5;
  f.spec.patience = 2;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), 0);
  CHECK_CONTAINS(s.log, "early stopping at step");
  CHECK(s.progress < 100);
  CHECK_INT(s.eval, s.progress / 5 + 1); /* and the base's, before the first step */
  char path[FB_SPEC_PATH + 32], *text = NULL;
  size_t len;
  snprintf(path, sizeof path, "%s/summary.json", f.spec.out);
  REQUIRE(fb_read_file(path, &text, &len, 1 << 20, &err) == 0);
  cJSON *j = cJSON_Parse(text);
  free(text);
  REQUIRE(j);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "kept_best")));
  CHECK_STR(cJSON_GetObjectItem(j, "select")->valuestring, "eval_loss");
  CHECK(cJSON_GetObjectItem(j, "selected_step")->valueint < s.progress); /* not the last */
  CHECK(cJSON_GetObjectItem(j, "best_eval_loss")->valuedouble <
        cJSON_GetObjectItem(j, "eval_loss")->valuedouble);
  CHECK(cJSON_GetObjectItem(j, "best_eval_loss")->valuedouble <
        cJSON_GetObjectItem(j, "base_eval_loss")->valuedouble);
  CHECK_INT(cJSON_GetObjectItem(j, "steps")->valueint, s.progress);
  CHECK_INT(cJSON_GetObjectItem(j, "examples")->valueint, N_EX);
  CHECK_INT(cJSON_GetObjectItem(j, "eval_examples")->valueint, N_EX);
  CHECK_STR(cJSON_GetObjectItem(j, "dataset_hash")->valuestring, "fnv1a64:0123456789abcdef");
  CHECK_STR(cJSON_GetObjectItem(j, "base_model")->valuestring, "tiny-random");
  CHECK_STR(cJSON_GetObjectItem(j, "device")->valuestring, "cpu");
  CHECK(cJSON_GetObjectItem(j, "tokens")->valuedouble > 0);
  CHECK(cJSON_GetObjectItem(j, "wall_time_s")->valuedouble > 0);
  CHECK(cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble > 0);
  CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "lora"), "r")
                ->valueint,
            8);
  cJSON_Delete(j);
  snprintf(path, sizeof path, "%s/example_losses.json", f.spec.out);
  REQUIRE(fb_read_file(path, &text, &len, 1 << 20, &err) == 0);
  j = cJSON_Parse(text);
  free(text);
  REQUIRE(cJSON_GetArraySize(j) == N_EX);
  for (int i = 1; i < N_EX; i++) /* worst first */
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(j, i - 1), "loss")->valuedouble >=
          cJSON_GetObjectItem(cJSON_GetArrayItem(j, i), "loss")->valuedouble);
  CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "line")->valueint >= 1);
  cJSON_Delete(j);
  teardown(&f);
}

TEST(watchdog_stops_a_nan_run_and_keeps_the_last_checkpoint) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 10;
  f.spec.checkpoint_interval = 2;
  seen s = {.cancel_at = -1, .nan_at = 5};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), FB_ENUMERIC);
  CHECK_CONTAINS(err.msg, "the loss is nan at step 6");
  CHECK_INT(s.error, 1);
  CHECK_STR(s.where, "step 6");
  CHECK_INT(s.checkpoint, 2);
  char path[160], *text = NULL;
  size_t len;
  snprintf(path, sizeof path, "%s/out/checkpoints/latest", f.dir);
  REQUIRE(fb_read_file(path, &text, &len, 100, &err) == 0);
  CHECK_STR(text, "step-00000004\n");
  free(text);
  snprintf(path, sizeof path, "%s/out/checkpoints/step-00000002/state.json", f.dir);
  CHECK(access(path, F_OK) == 0);
  snprintf(path, sizeof path, "%s/out/summary.json", f.dir);
  CHECK(access(path, F_OK) != 0);
  teardown(&f);
}

TEST(watchdog_stops_an_exploding_loss) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 10;
  seen s = {.cancel_at = -1, .nan_at = -1, .blow_at = 3};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), FB_ENUMERIC);
  CHECK_CONTAINS(err.msg, "the loss exploded at step 4");
  CHECK_STR(s.where, "step 4");
  CHECK_INT(s.progress, 3);
  teardown(&f);
}

TEST(a_receiver_stops_the_run_or_sets_the_learning_rate) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 20;
  f.spec.schedule = FB_SCHED_CONSTANT;
  seen s = {.cancel_at = -1, .nan_at = -1, .stop_at = 8, .lr_at = 4};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), 0);
  CHECK_INT(s.progress, 8);
  CHECK_INT(s.done, 1);
  CHECK_NEAR(s.lrs[4], 1e-2, 0);
  CHECK_NEAR(s.lrs[5], 0, 0);
  teardown(&f);
}

TEST(examples_with_nothing_to_learn_are_reported) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 2;
  for (int i = 0; i < 3; i++) {
    for (int t = 0; t < f.train.v[i].n; t++) f.train.v[i].labels[t] = FB_IGNORE_INDEX;
    f.train.v[i].n_trained = 0;
  }
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), 0);
  CHECK_CONTAINS(s.log,
                 "3 training example(s) have no answer token to learn from (the first at line 1)");
  for (int i = 3; i < N_EX; i++) f.train.v[i].n_trained = 0;
  CHECK_INT(train(&f, &s, 0, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "no training example has an answer token left to learn from");
  CHECK_STR(s.where, "data");
  teardown(&f);
}

TEST(bad_data_is_an_error_naming_the_line) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.train.v[3].ids[2] = 300;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), FB_EINVALID);
  CHECK_CONTAINS(
      err.msg,
      "training example 4 (line 4): token 2 is 300, outside the model's vocabulary of 257");
  CHECK_STR(s.where, "line 4");
  teardown(&f);
}

/* Three scenarios (one prompt under three ids) and a receiver that scores them per step. */
static const char *const scenario_ids[] = {"a", "b", "c"};
static void with_scenarios(fixture *f, fb_train_prompt *p, int32_t *ids, seen *s) {
  const char *rendered = "Q: item 3\nA: ";
  int n = (int)strlen(rendered);
  for (int i = 0; i < n; i++) ids[i] = (unsigned char)rendered[i];
  for (int i = 0; i < 3; i++) p[i] = (fb_train_prompt){scenario_ids[i], ids, n};
  f->data.tok = f->tok;
  f->data.scenarios = p;
  f->data.n_scenarios = 3;
  f->spec.select = FB_SELECT_SCENARIOS;
  f->spec.select_tokens = 8;
  for (int i = 0; i < 257; i++) s->score_at[i] = -1;
}

TEST(select_scenarios_publishes_the_best_scored_step_across_a_resume) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 20;
  f.spec.eval_interval = 5;
  f.spec.schedule = FB_SCHED_CONSTANT; /* so a 10-step run ends with step 10's weights */
  fb_train_prompt p[3];
  int32_t ids[16];
  seen whole = {.cancel_at = -1, .nan_at = -1};
  with_scenarios(&f, p, ids, &whole);
  whole.score_at[5] = 1, whole.score_at[10] = 3, whole.score_at[15] = 3, whole.score_at[20] = 2;
  fb_err err = {0};
  REQUIRE(train(&f, &whole, 0, &err) == 0);
  CHECK_INT(whole.scenarios, 4); /* no eval examples: scenarios alone make the evaluations */
  CHECK_INT(whole.eval, 0);
  CHECK_INT(whole.answers, 3);
  CHECK_STR(whole.answer_id, "a");
  cJSON *j = read_summary(f.spec.out);
  REQUIRE(j);
  CHECK_STR(cJSON_GetObjectItem(j, "select")->valuestring, "scenarios");
  CHECK_INT(cJSON_GetObjectItem(j, "selected_step")->valueint, 10); /* a tie keeps the earlier */
  CHECK_INT(cJSON_GetObjectItem(j, "selected_passed")->valueint, 3);
  CHECK_INT(cJSON_GetObjectItem(j, "scenario_total")->valueint, 3);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "kept_best")));
  const cJSON *h = cJSON_GetObjectItem(j, "scenario_history");
  CHECK_INT(cJSON_GetArraySize(h), 4);
  CHECK_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 3), "step")->valueint, 20);
  CHECK_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 3), "passed")->valueint, 2);
  cJSON_Delete(j);
  char whole_out[FB_SPEC_PATH];
  snprintf(whole_out, sizeof whole_out, "%s", f.spec.out);

  /* The published adapter is step 10's: the adapter of a run that stops there. */
  snprintf(f.spec.out, sizeof f.spec.out, "%s/ten", f.dir);
  f.spec.max_steps = 10;
  f.spec.select = FB_SELECT_EVAL_LOSS;
  seen ten = {.cancel_at = -1, .nan_at = -1};
  REQUIRE(train(&f, &ten, 0, &err) == 0);
  CHECK(max_diff(whole_out, f.spec.out) == 0);

  /* Cancelled at step 12 and resumed: the same selection, history and weights. */
  snprintf(f.spec.out, sizeof f.spec.out, "%s/resumed", f.dir);
  f.spec.max_steps = 20;
  seen part = {.cancel_at = 12, .nan_at = -1}, rest = {.cancel_at = -1, .nan_at = -1};
  with_scenarios(&f, p, ids, &part);
  with_scenarios(&f, p, ids, &rest);
  memcpy(part.score_at, whole.score_at, sizeof part.score_at);
  memcpy(rest.score_at, whole.score_at, sizeof rest.score_at);
  CHECK_INT(train(&f, &part, 0, &err), FB_ECANCELLED);
  CHECK_INT(part.scenarios, 2);
  CHECK_INT(train(&f, &rest, 1, &err), 0);
  CHECK_INT(rest.scenarios, 2);
  j = read_summary(f.spec.out);
  REQUIRE(j);
  CHECK_INT(cJSON_GetObjectItem(j, "selected_step")->valueint, 10);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "scenario_history")), 4);
  cJSON_Delete(j);
  CHECK(max_diff(whole_out, f.spec.out) == 0);

  /* A checkpoint of one select does not resume a run of the other. */
  f.spec.select = FB_SELECT_EVAL_LOSS;
  seen other = {.cancel_at = -1, .nan_at = -1};
  CHECK_INT(train(&f, &other, 1, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg,
                 "made by another spec (select \"scenarios\"; this run has \"eval_loss\")");
  teardown(&f);
}

TEST(select_scenarios_breaks_a_tie_by_the_lower_eval_loss) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  make_examples(&f.eval, f.tok, 5);
  f.data.eval = &f.eval;
  f.spec.max_steps = 20;
  f.spec.micro_batch = 2;
  f.spec.eval_interval = 4;
  fb_train_prompt p[3];
  int32_t ids[16];
  seen s = {.cancel_at = -1, .nan_at = -1};
  with_scenarios(&f, p, ids, &s);
  for (int step = 4; step <= 20; step += 4) s.score_at[step] = 2;
  fb_err err = {0};
  REQUIRE(train(&f, &s, 0, &err) == 0);
  CHECK_INT(s.scenarios, 5);
  int lowest = 4;
  for (int step = 8; step <= 20; step += 4)
    if (s.eval_at[step] < s.eval_at[lowest]) lowest = step;
  cJSON *j = read_summary(f.spec.out);
  REQUIRE(j);
  CHECK_INT(cJSON_GetObjectItem(j, "selected_step")->valueint, lowest);
  CHECK_INT(cJSON_GetObjectItem(j, "selected_passed")->valueint, 2);
  fprintf(stderr, "  five evaluations pass 2 of 3; the lowest eval loss, %.4f, is step %d's\n",
          s.eval_at[lowest], lowest);
  cJSON_Delete(j);
  teardown(&f);
}

TEST(select_scenarios_needs_scenarios_and_scores) {
  fixture f;
  REQUIRE(setup(&f) == 0);
  f.spec.max_steps = 4;
  f.spec.eval_interval = 4;
  f.spec.select = FB_SELECT_SCENARIOS;
  f.data.tok = f.tok;
  seen s = {.cancel_at = -1, .nan_at = -1};
  fb_err err = {0};
  CHECK_INT(train(&f, &s, 0, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "spec.scenarios: select \"scenarios\" needs at least one scenario");
  CHECK_STR(s.where, "spec.scenarios");
  fb_train_prompt p[3];
  int32_t ids[16];
  seen unscored = {.cancel_at = -1, .nan_at = -1};
  with_scenarios(&f, p, ids, &unscored);
  CHECK_INT(train(&f, &unscored, 0, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "the answers of step 4 were not scored");
  CHECK_STR(unscored.where, "step 5"); /* reported as a failure after step 4 */
  teardown(&f);
}
