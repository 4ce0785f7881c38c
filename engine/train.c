/* train.c: the training loop. The examples form one stream, epoch after epoch, each epoch in
 * the seeded order of fb_dataset_order(n, seed + epoch); a step takes grad_accum micro-batches
 * of micro_batch examples from it. Everything a step depends on (order, dropout masks) is a
 * function of the seed and the step, so a checkpoint need hold only the weights, the AdamW
 * moments and a few numbers to resume exactly. */
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "fsutil.h"
#include "gemm.h"
#include "generate.h"
#include "lora.h"
#include "optim.h"
#include "output.h"
#include "safetensors.h"

/* The training loss people see is an exponential moving average, bias-corrected as Adam's
 * moments are: loss_ema = SMOOTHING * loss_ema + (1 - SMOOTHING) * loss from 0, and
 * loss_smoothed = loss_ema / (1 - SMOOTHING^step), so it follows the first steps instead of
 * lagging at the first loss. */
#define SMOOTHING 0.9

typedef struct run {
  fb_model *m;
  const fb_backend *be; /* where it computes (the model's) */
  const fb_train_spec *spec;
  const fb_train_data *data;
  const fb_train_opts *opts;
  fb_lora *lora; /* NULL in full-parameter mode */
  fb_optim *optim;
  float *params, *grads; /* what the optimizer updates: the LoRA arena or the model's */
  size_t n;
  float *best;  /* params at the best evaluation (by eval loss with patience, or by scenarios),
                   or NULL */
  float *stage; /* host room for 4 arrays of n floats (checkpoints) off a host-memory backend */
  char device_note[400]; /* why "auto" took the CPU, logged after the start event */
  long n_train;
  fb_train_plan plan;
  char ckdir[FB_SPEC_PATH + 16];
  /* State kept in checkpoints. */
  int step; /* steps done */
  double loss_first, loss_smoothed, loss_last, loss_best, eval_last, eval_best, tokens, elapsed;
  double loss_ema; /* loss_smoothed before its bias correction (SMOOTHING) */
  double eval_base; /* eval loss before the first step: the base model's, or NAN */
  int bad_evals;
  int eval_best_step; /* the step of eval_best; 0: none yet */
  /* select "scenarios": the pass count and step of the weights in best (-1 and 0: none yet),
   * the eval loss at that step (NAN without eval examples), and each evaluation's pass count
   * (pairs step, passed). */
  int sel_passed, sel_step;
  double sel_eval;
  int *hist, n_hist, cap_hist;
  /* This session only. */
  int stop; /* a hook or early stopping ended the run */
  int start_step;
  double session_time, session_tokens;
  size_t *order;
  long order_epoch;
  int32_t *ids, *labels;
  size_t cap;
} run;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static cJSON *event(const char *name) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "event", name);
  return e;
}

/* Where the run computes: the device, its name and the most memory the run held on it. */
static void add_device(const run *r, cJSON *e) {
  cJSON_AddStringToObject(e, "device", r->be->name);
  cJSON_AddStringToObject(e, "device_name", r->be->device_name());
  cJSON_AddNumberToObject(e, "peak_memory_bytes", (double)r->be->peak_bytes());
}

/* Hand e to the caller and free it; the caller may ask to stop or set the learning rate.
 * Returns the caller's score (of a `scenarios` event), NAN when it gave none. */
static double emit(run *r, cJSON *e) {
  double score = NAN;
  if (e && r->opts && r->opts->on_event) {
    double lr = r->optim ? r->optim->cfg.lr : r->spec->lr;
    fb_train_control ctl = {.stop = 0, .lr = lr, .score = NAN};
    r->opts->on_event(r->opts->ud, e, &ctl);
    r->stop |= ctl.stop;
    if (r->optim && ctl.lr != lr && ctl.lr >= 0 && isfinite(ctl.lr))
      r->optim->cfg.lr = ctl.lr;
    score = ctl.score;
  }
  cJSON_Delete(e);
  return score;
}

static int selects_scenarios(const run *r) { return r->spec->select == FB_SELECT_SCENARIOS; }

/* Record that the weights of `step` passed `passed` scenarios (an evaluation of the same step
 * again, as a run resumed at its end makes, replaces its entry). */
static int push_history(run *r, int step, int passed, fb_err *err) {
  if (r->n_hist > 0 && r->hist[2 * (r->n_hist - 1)] == step)
    r->n_hist--;
  if (r->n_hist == r->cap_hist) {
    int cap = r->cap_hist ? 2 * r->cap_hist : 16, *h = realloc(r->hist, 2 * cap * sizeof *h);
    if (!h)
      return fb_err_set(err, FB_ENOMEM, "out of memory for the scenario history");
    r->hist = h;
    r->cap_hist = cap;
  }
  r->hist[2 * r->n_hist] = step;
  r->hist[2 * r->n_hist + 1] = passed;
  r->n_hist++;
  return 0;
}

static void emit_log(run *r, const char *level, const char *msg) {
  cJSON *e = event("log");
  cJSON_AddStringToObject(e, "level", level);
  cJSON_AddStringToObject(e, "message", msg);
  emit(r, e);
}

/* Report err as an `error` event at `where`; returns its code. */
static int fail(run *r, const char *where, fb_err *err) {
  cJSON *e = event("error");
  cJSON_AddStringToObject(e, "message", err->msg);
  cJSON_AddStringToObject(e, "where", where);
  emit(r, e);
  return err->code;
}

static int fail_step(run *r, fb_err *err) {
  char where[32];
  snprintf(where, sizeof where, "step %d", r->step + 1);
  return fail(r, where, err);
}

/* ---- the plan: batch shape, steps, intervals ---- */

static long ceil_div(long a, long b) { return (a + b - 1) / b; }

fb_train_plan fb_train_plan_for(const fb_train_spec *s, long n_train) {
  fb_train_plan p = {.B = s->micro_batch, .A = s->grad_accum};
  if (s->max_steps > 0) {
    p.total = s->max_steps;
    p.total_examples = (long)p.total * p.A * p.B;
    p.total_epochs = (double)p.total_examples / n_train;
  } else {
    p.total_examples = (long)s->epochs * n_train;
    /* Small-data mode: a smaller effective batch gives more (and noisier) steps to watch. */
    while (s->small_data && ceil_div(p.total_examples, (long)p.A * p.B) < FB_TRAIN_MIN_STEPS &&
           p.A * p.B > 1) {
      if (p.A > 1)
        p.A--;
      else
        p.B--;
    }
    p.total = (int)ceil_div(p.total_examples, (long)p.A * p.B);
    p.total_epochs = s->epochs;
  }
  p.eval_interval = s->eval_interval ? s->eval_interval : (p.total + 9) / 10;
  p.sample_interval = s->sample_interval ? s->sample_interval : (p.total + 4) / 5;
  return p;
}

static void plan(run *r) {
  const fb_train_spec *s = r->spec;
  r->plan = fb_train_plan_for(s, r->n_train);
  if (s->checkpoints[0])
    snprintf(r->ckdir, sizeof r->ckdir, "%s", s->checkpoints);
  else
    snprintf(r->ckdir, sizeof r->ckdir, "%s/checkpoints", s->out);
}

static int check_examples(run *r, const fb_examples *ex, const char *what, fb_err *err) {
  size_t untrained = 0;
  int first_untrained = 0;
  for (size_t i = 0; ex && i < ex->n; i++) {
    const fb_example *e = &ex->v[i];
    if (e->n_trained == 0 && untrained++ == 0)
      first_untrained = e->line;
    char where[48];
    snprintf(where, sizeof where, "line %d", e->line);
    if (e->n < 1) {
      fb_err_set(err, FB_EINVALID, "%s example %zu (line %d) has no tokens", what, i + 1, e->line);
      return fail(r, where, err);
    }
    for (int t = 0; t < e->n; t++)
      if (e->ids[t] < 0 || e->ids[t] >= r->m->V) {
        fb_err_set(err, FB_EINVALID,
                   "%s example %zu (line %d): token %d is %d, outside the model's vocabulary of %d",
                   what, i + 1, e->line, t, e->ids[t], r->m->V);
        return fail(r, where, err);
      }
  }
  if (untrained && untrained == ex->n && ex == r->data->train) {
    fb_err_set(err, FB_EINVALID,
               "no training example has an answer token left to learn from (cut to "
               "max_len %d tokens: shorten the examples or raise max_len)",
               r->spec->max_len);
    return fail(r, "data", err);
  }
  if (untrained) {
    char msg[240];
    snprintf(msg, sizeof msg,
             "%zu %s example(s) have no answer token to learn from (the first at line %d); "
             "were they cut to max_len %d?",
             untrained, what, first_untrained, r->spec->max_len);
    emit_log(r, "warn", msg);
  }
  return 0;
}

/* select "scenarios" needs scenarios to answer, each with room in the model's context, and the
 * tokenizer to decode the answers. */
static int check_scenarios(run *r, fb_err *err) {
  const fb_train_data *d = r->data;
  if (!selects_scenarios(r))
    return 0;
  if (d->n_scenarios < 1 || !d->scenarios) {
    fb_err_set(err, FB_EINVALID,
               "spec.scenarios: select \"scenarios\" needs at least one scenario with hard "
               "checks (there are none)");
    return fail(r, "spec.scenarios", err);
  }
  if (!d->tok) {
    fb_err_set(err, FB_EINVALID, "select \"scenarios\": no tokenizer to decode the answers");
    return fail(r, "data", err);
  }
  for (int i = 0; i < d->n_scenarios; i++) {
    const fb_train_prompt *p = &d->scenarios[i];
    int bad = p->n < 1;
    for (int t = 0; !bad && t < p->n; t++)
      bad = p->ids[t] < 0 || p->ids[t] >= r->m->V;
    if (bad)
      fb_err_set(err, FB_EINVALID,
                 "spec.scenarios: '%s': its prompt is empty or has a token outside the model's "
                 "vocabulary",
                 p->text);
    else if (p->n >= r->m->cfg.max_position_embeddings)
      fb_err_set(err, FB_EINVALID,
                 "spec.scenarios: '%s': its prompt has %d tokens, which leaves no room to answer "
                 "in the model's context of %d",
                 p->text, p->n, r->m->cfg.max_position_embeddings);
    else
      continue;
    return fail(r, "spec.scenarios", err);
  }
  return 0;
}

/* Epochs done after `step` steps (the last batch may be cut short). */
static double epochs_at(const run *r, int step) {
  long seen = (long)step * r->plan.A * r->plan.B;
  return (double)(seen < r->plan.total_examples ? seen : r->plan.total_examples) / r->n_train;
}

/* ---- batches ---- */

/* The example at stream position k. */
static const fb_example *example_at(run *r, long k, fb_err *err) {
  long epoch = k / r->n_train;
  if (epoch != r->order_epoch) {
    free(r->order);
    r->order = NULL;
    if (fb_dataset_order((size_t)r->n_train, r->spec->seed + (uint64_t)epoch, &r->order)) {
      fb_err_set(err, FB_ENOMEM, "out of memory for the data order");
      return NULL;
    }
    r->order_epoch = epoch;
  }
  return &r->data->train->v[r->order[k % r->n_train]];
}

/* Fill b with rows ex[0..n), padded on the right (id 0, no label) to the longest. */
static int fill_batch(run *r, fb_batch *b, const fb_example *const *ex, int n, fb_err *err) {
  int T = 1;
  for (int i = 0; i < n; i++)
    T = ex[i]->n > T ? ex[i]->n : T;
  size_t need = (size_t)n * T;
  if (need > r->cap) {
    int32_t *ids = realloc(r->ids, need * sizeof *ids);
    if (ids)
      r->ids = ids;
    int32_t *labels = ids ? realloc(r->labels, need * sizeof *labels) : NULL;
    if (!labels)
      return fb_err_set(err, FB_ENOMEM, "out of memory for a batch of %d x %d", n, T);
    r->labels = labels;
    r->cap = need;
  }
  for (int i = 0; i < n; i++) {
    int32_t *ids = r->ids + (size_t)i * T, *labels = r->labels + (size_t)i * T;
    memcpy(ids, ex[i]->ids, ex[i]->n * sizeof *ids);
    memcpy(labels, ex[i]->labels, ex[i]->n * sizeof *labels);
    for (int t = ex[i]->n; t < T; t++) {
      ids[t] = 0;
      labels[t] = FB_IGNORE_INDEX;
    }
  }
  *b = (fb_batch){.B = n, .T = T, .ids = r->ids, .labels = r->labels};
  return 0;
}

/* Mean loss over the eval examples (by counted token); NAN when there are none to count. */
static int evaluate(run *r, double *out, fb_err *err) {
  const fb_examples *ev = r->data->eval;
  double sum = 0;
  long counted = 0;
  const fb_example *rows[64];
  int cap = r->plan.B < 64 ? r->plan.B : 64;
  for (size_t i = 0; i < ev->n; i += (size_t)cap) {
    int n = (int)(ev->n - i < (size_t)cap ? ev->n - i : (size_t)cap), rc;
    for (int j = 0; j < n; j++)
      rows[j] = &ev->v[i + j];
    fb_batch b;
    if ((rc = fill_batch(r, &b, rows, n, err)) ||
        (rc = fb_model_forward(r->m, r->lora, &b, 0, err)))
      return rc;
    sum += (double)r->m->loss * r->m->n_counted;
    counted += r->m->n_counted;
  }
  *out = counted ? sum / counted : NAN;
  return 0;
}

/* ---- checkpoints ---- */

static void remove_checkpoint(const char *dir) {
  char path[2 * FB_SPEC_PATH];
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/state.json", dir);
  unlink(path);
  rmdir(dir);
}

/* Remove all but the newest FB_TRAIN_KEEP_CHECKPOINTS step directories, and any step-N.old or
 * step-N.tmp a crash left behind (called once the new checkpoint is in place). */
static void prune(const char *ckdir) {
  struct dirent **list;
  int n = scandir(ckdir, &list, fb_output_is_step_entry, alphasort), kept = 0;
  for (int i = n - 1; i >= 0; i--) {
    int aside = strchr(list[i]->d_name, '.') != NULL;
    if (aside || ++kept > FB_TRAIN_KEEP_CHECKPOINTS) {
      char path[FB_SPEC_PATH + 300];
      snprintf(path, sizeof path, "%s/%s", ckdir, list[i]->d_name);
      remove_checkpoint(path);
    }
    free(list[i]);
  }
  if (n >= 0)
    free(list);
}

static cJSON *state_json(const run *r) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "step", r->step);
  cJSON_AddNumberToObject(j, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(j, "params", (double)r->n);
  cJSON_AddNumberToObject(j, "optim_t", r->optim->t);
  cJSON_AddNumberToObject(j, "examples_seen", (double)((long)r->step * r->plan.A * r->plan.B));
  cJSON_AddNumberToObject(j, "loss_first", r->loss_first);
  cJSON_AddNumberToObject(j, "loss_smoothed", r->loss_smoothed);
  cJSON_AddNumberToObject(j, "loss_ema", r->loss_ema);
  cJSON_AddNumberToObject(j, "loss_last", r->loss_last);
  cJSON_AddNumberToObject(j, "loss_best", r->loss_best);
  if (r->data->dataset_hash)
    cJSON_AddStringToObject(j, "dataset_hash", r->data->dataset_hash);
  if (isfinite(r->eval_last))
    cJSON_AddNumberToObject(j, "eval_last", r->eval_last);
  if (isfinite(r->eval_best))
    cJSON_AddNumberToObject(j, "eval_best", r->eval_best);
  if (isfinite(r->eval_base))
    cJSON_AddNumberToObject(j, "eval_base", r->eval_base);
  cJSON_AddNumberToObject(j, "bad_evals", r->bad_evals);
  cJSON_AddNumberToObject(j, "eval_best_step", r->eval_best_step);
  cJSON_AddStringToObject(j, "select", selects_scenarios(r) ? "scenarios" : "eval_loss");
  if (selects_scenarios(r)) {
    cJSON_AddNumberToObject(j, "select_passed", r->sel_passed);
    cJSON_AddNumberToObject(j, "select_step", r->sel_step);
    if (isfinite(r->sel_eval))
      cJSON_AddNumberToObject(j, "select_eval_loss", r->sel_eval);
    cJSON *h = cJSON_AddArrayToObject(j, "scenario_history"); /* [[step, passed]...] */
    for (int i = 0; h && i < r->n_hist; i++)
      cJSON_AddItemToArray(h, cJSON_CreateIntArray(r->hist + 2 * i, 2));
  }
  cJSON_AddNumberToObject(j, "lr", r->optim->cfg.lr);
  cJSON_AddNumberToObject(j, "tokens", r->tokens);
  cJSON_AddNumberToObject(j, "elapsed_s", r->elapsed);
  cJSON_AddNumberToObject(j, "seed", (double)r->spec->seed);
  if (r->be->device == FB_DEVICE_CPU)
    cJSON_AddStringToObject(j, "cpu_gemm", fb_gemm_path()); /* resume keeps it: fb_gemm_prefer */
  return j;
}

/* The backend's array dev of n floats as the host sees it: dev itself on a backend that computes
 * in host memory, else a copy downloaded into slot k of the staging room. */
static const float *on_host(run *r, const float *dev, int k) {
  if (r->be->host_memory)
    return dev;
  float *h = r->stage + (size_t)k * r->n;
  r->be->download(h, dev, r->n * sizeof(float));
  return h;
}

/* The checkpoint's files, written into the temporary directory tmp. */
static int write_checkpoint(run *r, const char *tmp, fb_err *err) {
  char path[FB_SPEC_PATH + 128];
  int rc = fb_mkdir_p(tmp, err);
  if (rc)
    return rc;
  fb_st_out t[4] = {
      {"params", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->params, 0)},
      {"adam.m", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->optim->m, 1)},
      {"adam.v", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->optim->v, 2)},
      {"best", FB_DT_F32, 1, {(int64_t)r->n}, r->best ? on_host(r, r->best, 3) : NULL},
  };
  snprintf(path, sizeof path, "%s/state.safetensors", tmp);
  if ((rc = fb_st_write(path, t, r->best ? 4 : 3, NULL, err)))
    return rc;
  cJSON *j = state_json(r);
  char *text = j ? cJSON_Print(j) : NULL;
  cJSON_Delete(j);
  if (!text)
    return fb_err_set(err, FB_ENOMEM, "out of memory for the checkpoint state");
  snprintf(path, sizeof path, "%s/state.json", tmp);
  rc = fb_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

static int save_checkpoint(run *r, fb_err *err) {
  char dir[FB_SPEC_PATH + 64], tmp[FB_SPEC_PATH + 80], path[FB_SPEC_PATH + 128], name[32];
  snprintf(name, sizeof name, "step-%08d", r->step);
  snprintf(dir, sizeof dir, "%s/%s", r->ckdir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", dir);
  fb_remove_tree(tmp, NULL);
  int rc = write_checkpoint(r, tmp, err);
  if (rc) { /* a full disk: what was written goes, and the error says so */
    fb_remove_tree(tmp, NULL);
    if (rc == FB_ENOSPACE)
      fb_err_prefix(err, "disk full while writing the checkpoint of step %d", r->step);
    return rc;
  }
  /* The same step saved again (a cancel or the end right after a periodic checkpoint): the old
   * directory steps aside as step-N.old, which a load falls back to, until the new one is in. */
  char old[FB_SPEC_PATH + 80];
  snprintf(old, sizeof old, "%s.old", dir);
  remove_checkpoint(old);
  if (access(dir, F_OK) == 0 && rename(dir, old) != 0)
    return fb_err_set(err, FB_EIO, "%s: cannot rename to %s: %s", dir, old, strerror(errno));
  if (rename(tmp, dir) != 0)
    return fb_err_set(err, FB_EIO, "%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
  remove_checkpoint(old);
  snprintf(path, sizeof path, "%s/latest", r->ckdir);
  char line[40];
  int len = snprintf(line, sizeof line, "%s\n", name);
  if ((rc = fb_write_file_atomic(path, line, (size_t)len, err)))
    return rc;
  prune(r->ckdir);
  cJSON *e = event("checkpoint");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddStringToObject(e, "path", dir);
  emit(r, e);
  return 0;
}

static int get_number(const cJSON *j, const char *key, double *out, const char *label,
                      fb_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!cJSON_IsNumber(v))
    return fb_err_set(err, FB_EFORMAT, "%s: field '%s' missing or not a number", label, key);
  *out = v->valuedouble;
  return 0;
}

static int read_tensor(const fb_st_file *f, const char *name, size_t n, float *dst, fb_err *err) {
  int64_t shape[1] = {(int64_t)n};
  const fb_st_tensor *t;
  int rc = fb_st_expect(f, name, 1, shape, &t, err);
  return rc ? rc : fb_st_read_f32(t, dst, err);
}

/* Read a checkpoint's tensor name into the backend's array dev (through slot k of the staging
 * room off a host-memory backend). */
static int read_into(run *r, const fb_st_file *f, const char *name, float *dev, int k,
                     fb_err *err) {
  float *h = r->be->host_memory ? dev : r->stage + (size_t)k * r->n;
  int rc = read_tensor(f, name, r->n, h, err);
  if (!rc && h != dev)
    r->be->upload(dev, h, r->n * sizeof(float));
  return rc;
}

/* Load the latest checkpoint when there is one; *found says whether there was. */
static int load_checkpoint(run *r, int *found, fb_err *err) {
  char path[FB_SPEC_PATH + 340], dir[FB_SPEC_PATH + 300], *text = NULL; /* latest: <= 256 bytes */
  size_t len;
  *found = 0;
  snprintf(path, sizeof path, "%s/latest", r->ckdir);
  if (access(path, F_OK) != 0)
    return 0;
  int rc = fb_read_file(path, &text, &len, 256, err);
  if (rc)
    return rc;
  text[strcspn(text, "\r\n")] = '\0';
  snprintf(dir, sizeof dir, "%s/%s", r->ckdir, text);
  free(text);
  if (access(dir, F_OK) != 0)
    strcat(dir, ".old"); /* a crash while saving the same step again */
  snprintf(path, sizeof path, "%s/state.json", dir);
  if ((rc = fb_read_file(path, &text, &len, 1 << 20, err)))
    return rc;
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  if (!j)
    return fb_err_set(err, FB_EFORMAT, "%s: not valid JSON", path);
  double step = 0, total = 0, n = 0, t = 0, seed = 0, ev = 0;
  rc = get_number(j, "step", &step, path, err) || get_number(j, "total_steps", &total, path, err) ||
       get_number(j, "params", &n, path, err) || get_number(j, "optim_t", &t, path, err) ||
       get_number(j, "seed", &seed, path, err) ||
       get_number(j, "loss_first", &r->loss_first, path, err) ||
       get_number(j, "loss_smoothed", &r->loss_smoothed, path, err) ||
       get_number(j, "loss_last", &r->loss_last, path, err) ||
       get_number(j, "loss_best", &r->loss_best, path, err) ||
       get_number(j, "tokens", &r->tokens, path, err) ||
       get_number(j, "elapsed_s", &r->elapsed, path, err);
  double bad = 0;
  if (!rc)
    rc = get_number(j, "bad_evals", &bad, path, err) ||
         get_number(j, "lr", &r->optim->cfg.lr, path, err);
  const cJSON *gemm = cJSON_GetObjectItemCaseSensitive(j, "cpu_gemm");
  if (r->be->device == FB_DEVICE_CPU && cJSON_IsString(gemm))
    fb_gemm_prefer(gemm->valuestring);
  /* A checkpoint from before the bias correction: its smoothed loss stands for the average. */
  r->loss_ema = get_number(j, "loss_ema", &ev, path, NULL) ? r->loss_smoothed * (1 - pow(SMOOTHING, step)) : ev;
  r->eval_last = get_number(j, "eval_last", &ev, path, NULL) ? NAN : ev;
  r->eval_best = get_number(j, "eval_best", &ev, path, NULL) ? INFINITY : ev;
  r->eval_base = get_number(j, "eval_base", &ev, path, NULL) ? NAN : ev;
  r->eval_best_step = get_number(j, "eval_best_step", &ev, path, NULL) ? 0 : (int)ev;
  /* A run resumes on the data it started with: data changed meanwhile would be trained on
   * without a word (a skill's data replaced while its job was paused). */
  const cJSON *hash = cJSON_GetObjectItemCaseSensitive(j, "dataset_hash");
  if (!rc && cJSON_IsString(hash) && r->data->dataset_hash &&
      strcmp(hash->valuestring, r->data->dataset_hash) != 0)
    rc = fb_err_set(err, FB_EINVALID,
                    "%s: the training data changed since this run started (%s, now %s): start a "
                    "new run",
                    path, hash->valuestring, r->data->dataset_hash);
  /* A checkpoint from before spec.select selected by eval loss. */
  const cJSON *sel = cJSON_GetObjectItemCaseSensitive(j, "select");
  int sel_scenarios = cJSON_IsString(sel) && strcmp(sel->valuestring, "scenarios") == 0;
  if (!rc && sel_scenarios != selects_scenarios(r))
    rc = fb_err_set(err, FB_EINVALID,
                    "%s: made by another spec (select \"%s\"; this run has \"%s\")", path,
                    sel_scenarios ? "scenarios" : "eval_loss",
                    selects_scenarios(r) ? "scenarios" : "eval_loss");
  if (!rc && sel_scenarios) {
    r->sel_passed = get_number(j, "select_passed", &ev, path, NULL) ? -1 : (int)ev;
    r->sel_step = get_number(j, "select_step", &ev, path, NULL) ? 0 : (int)ev;
    r->sel_eval = get_number(j, "select_eval_loss", &ev, path, NULL) ? NAN : ev;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(j, "scenario_history")) {
      if (!rc && cJSON_GetArraySize(pair) == 2)
        rc = push_history(r, cJSON_GetArrayItem(pair, 0)->valueint,
                          cJSON_GetArrayItem(pair, 1)->valueint, err);
    }
  }
  cJSON_Delete(j);
  if (rc)
    return err->code;
  if ((size_t)n != r->n || (int)total != r->plan.total || (uint64_t)seed != r->spec->seed)
    return fb_err_set(err, FB_EINVALID,
                      "%s: made by another spec (%.0f parameters, %.0f steps, seed %.0f; this run "
                      "has %zu, %d, %llu)",
                      path, n, total, seed, r->n, r->plan.total, (unsigned long long)r->spec->seed);
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  fb_st_file *f = NULL;
  if ((rc = fb_st_open(&f, path, err)))
    return rc;
  rc = read_into(r, f, "params", r->params, 0, err);
  if (!rc)
    rc = read_into(r, f, "adam.m", r->optim->m, 1, err);
  if (!rc)
    rc = read_into(r, f, "adam.v", r->optim->v, 2, err);
  if (!rc && r->best) {
    if (fb_st_find(f, "best"))
      rc = read_into(r, f, "best", r->best, 3, err);
    else
      r->be->copy(r->best, r->params, r->n * sizeof *r->best);
  }
  fb_st_close(f);
  if (rc)
    return fb_err_prefix(err, "%s", path);
  r->step = (int)step;
  r->optim->t = (int)t;
  r->bad_evals = (int)bad;
  *found = 1;
  return 0;
}

/* ---- one step ---- */

/* Forward and backward over one micro-batch of the step; adds to *sum and *counted. */
static int micro_step(run *r, int a, double *sum, long *counted, double *tokens, fb_err *err) {
  long k0 = ((long)r->step * r->plan.A + a) * r->plan.B, k1 = k0 + r->plan.B;
  if (k1 > r->plan.total_examples)
    k1 = r->plan.total_examples;
  if (k0 >= k1)
    return 0;
  const fb_example *rows[4096]; /* micro_batch is at most 4096 (train_spec.c) */
  for (long k = k0; k < k1; k++)
    if (!(rows[k - k0] = example_at(r, k, err)))
      return err->code;
  fb_batch b;
  int rc = fill_batch(r, &b, rows, (int)(k1 - k0), err);
  if (rc)
    return rc;
  if (r->lora)
    r->lora->step = (uint64_t)r->step * r->plan.A + a;
  if ((rc = fb_model_forward(r->m, r->lora, &b, 1, err)))
    return rc;
  for (long k = k0; k < k1; k++)
    *tokens += rows[k - k0]->n;
  if (r->m->n_counted == 0)
    return 0;
  *sum += (double)r->m->loss * r->m->n_counted;
  *counted += r->m->n_counted;
  return fb_model_backward(r->m, r->lora, &b, err);
}

static cJSON *progress_event(const run *r, double loss, double lr, double norm) {
  cJSON *e = event("progress");
  int left = r->plan.total - r->step, done = r->step - r->start_step;
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddNumberToObject(e, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(e, "epoch", epochs_at(r, r->step));
  cJSON_AddNumberToObject(e, "total_epochs", r->plan.total_epochs);
  cJSON_AddNumberToObject(e, "loss", loss);
  cJSON_AddNumberToObject(e, "loss_smoothed", r->loss_smoothed);
  cJSON_AddNumberToObject(e, "lr", lr);
  cJSON_AddNumberToObject(e, "grad_norm", norm);
  cJSON_AddNumberToObject(e, "tokens_per_s",
                          r->session_time > 0 ? r->session_tokens / r->session_time : 0);
  cJSON_AddNumberToObject(e, "elapsed_s", r->elapsed);
  cJSON_AddNumberToObject(e, "eta_s", done > 0 ? r->session_time / done * left : 0);
  add_device(r, e);
  return e;
}

/* One optimizer step. */
static int train_step(run *r, fb_err *err) {
  double t0 = now(), sum = 0, tokens = 0;
  long counted = 0;
  int rc;
  if (r->lora)
    fb_lora_zero_grad(r->lora);
  else
    fb_model_zero_grad(r->m);
  for (int a = 0; a < r->plan.A; a++)
    if ((rc = micro_step(r, a, &sum, &counted, &tokens, err)))
      return rc;
  double loss = counted ? sum / counted : 0;
  if (!isfinite(loss))
    return fb_err_set(err, FB_ENUMERIC,
                      "the loss is %g at step %d: the run is stopped (lower the learning rate?)",
                      loss, r->step + 1);
  if (r->step > 0 && loss > FB_TRAIN_EXPLOSION * r->loss_first)
    return fb_err_set(err, FB_ENUMERIC,
                      "the loss exploded at step %d: %g, over %g times the first step's %g (lower "
                      "the learning rate?)",
                      r->step + 1, loss, FB_TRAIN_EXPLOSION, r->loss_first);
  if (r->plan.A > 1)
    r->be->scale(r->grads, r->n, 1.0f / (float)r->plan.A);
  double norm = fb_optim_clip(r->optim, r->grads, r->spec->clip);
  double lr = fb_optim_lr(&r->optim->cfg, r->step);
  if ((rc = fb_optim_step(r->optim, r->params, r->grads, lr, err)))
    return rc;
  if (r->step == 0)
    r->loss_first = r->loss_best = loss;
  r->loss_ema = SMOOTHING * r->loss_ema + (1 - SMOOTHING) * loss;
  r->loss_smoothed = r->loss_ema / (1 - pow(SMOOTHING, r->step + 1));
  if (loss < r->loss_best)
    r->loss_best = loss;
  r->loss_last = loss;
  r->step++;
  double dt = now() - t0;
  r->session_time += dt;
  r->session_tokens += tokens;
  r->elapsed += dt;
  r->tokens += tokens;
  emit(r, progress_event(r, loss, lr, norm));
  return 0;
}

static int has_eval(const run *r) { return r->data->eval && r->data->eval->n > 0; }

static void eval_event(run *r, double loss) {
  cJSON *e = event("eval");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddNumberToObject(e, "eval_loss", loss);
  emit(r, e);
}

/* The eval loss before the first step (LoRA's B starts at zero, so the base model's), which is
 * what the adapter's eval loss is judged against. */
static int evaluate_base(run *r, fb_err *err) {
  if (!has_eval(r) || r->step > 0)
    return 0;
  int rc = evaluate(r, &r->eval_base, err);
  if (!rc)
    eval_event(r, r->eval_base);
  return rc;
}

/* The greedy answer of the weights as they are to prompt p: at most max_tokens new tokens
 * (within the model's context; out has room for max_tokens), with the samples' repetition
 * penalty, up to an end-of-sequence token, decoded into text (NUL-terminated). */
static int answer(run *r, const fb_train_prompt *p, int max_tokens, int32_t *out, fb_text *text,
                  fb_err *err) {
  fb_gen_config g = fb_gen_defaults();
  int n = 0, room = r->m->cfg.max_position_embeddings - p->n;
  g.max_new_tokens = max_tokens < room ? max_tokens : room;
  g.repetition_penalty = r->spec->sample_repetition_penalty;
  g.n_stop = r->m->cfg.n_eos < FB_GEN_MAX_STOP ? r->m->cfg.n_eos : FB_GEN_MAX_STOP;
  memcpy(g.stop, r->m->cfg.eos_token_ids, g.n_stop * sizeof g.stop[0]);
  int rc = fb_generate(r->m, r->lora, p->ids, p->n, &g, out, &n, NULL, err);
  if (!rc)
    rc = fb_tokenizer_decode(r->data->tok, out, (size_t)n, FB_TOK_SKIP_SPECIAL, text, err);
  if (!rc)
    rc = fb_text_put(text, "", 1, 0); /* NUL */
  return rc;
}

/* select "scenarios": answer every scenario with the weights as they are, have the receiver of
 * the `scenarios` event score the answers, and keep the weights in best when they pass more
 * scenarios than any before; on a tie, when their eval loss (loss; NAN without eval examples)
 * is lower, else the earlier stay. */
static int score_scenarios(run *r, double loss, fb_err *err) {
  const fb_train_data *d = r->data;
  int32_t *out = malloc((size_t)r->spec->select_tokens * sizeof *out);
  int rc = 0;
  cJSON *e = event("scenarios"), *answers = NULL;
  if (e) {
    cJSON_AddNumberToObject(e, "step", r->step);
    cJSON_AddNumberToObject(e, "total", d->n_scenarios);
    answers = cJSON_AddArrayToObject(e, "answers");
  }
  if (!out || !answers)
    rc = fb_err_set(err, FB_ENOMEM, "out of memory for the scenarios' answers");
  for (int i = 0; i < d->n_scenarios && !rc; i++) {
    fb_text text = {0};
    cJSON *a = NULL;
    rc = answer(r, &d->scenarios[i], r->spec->select_tokens, out, &text, err);
    if (!rc && !(a = cJSON_CreateObject()))
      rc = fb_err_set(err, FB_ENOMEM, "out of memory for the scenarios' answers");
    if (!rc) {
      cJSON_AddStringToObject(a, "id", d->scenarios[i].text);
      cJSON_AddStringToObject(a, "text", text.s);
      cJSON_AddItemToArray(answers, a);
    }
    fb_text_free(&text);
  }
  free(out);
  if (rc) {
    cJSON_Delete(e);
    return rc;
  }
  double score = emit(r, e);
  volatile sig_atomic_t *cancel = r->opts ? r->opts->cancel : NULL;
  if (isnan(score) && cancel && *cancel)
    return 0; /* a receiver that failed cancelled the run: it stops before the next step */
  if (!(score >= 0 && score <= d->n_scenarios && score == floor(score)))
    return fb_err_set(err, FB_EINVALID,
                      "select \"scenarios\": the answers of step %d were not scored (the receiver "
                      "of the `scenarios` event gives how many passed, 0..%d)",
                      r->step, d->n_scenarios);
  int passed = (int)score;
  if ((rc = push_history(r, r->step, passed, err)))
    return rc;
  if (passed > r->sel_passed || (passed == r->sel_passed && loss < r->sel_eval)) {
    r->sel_passed = passed;
    r->sel_step = r->step;
    r->sel_eval = loss;
    r->be->copy(r->best, r->params, r->n * sizeof *r->best);
  }
  return 0;
}

/* Evaluation at its interval: the eval loss, with early stopping, and with select "scenarios"
 * the scenarios' answers. */
static int maybe_evaluate(run *r, int force, fb_err *err) {
  int scenarios = selects_scenarios(r);
  if ((!has_eval(r) && !scenarios) || (!force && r->step % r->plan.eval_interval != 0))
    return 0;
  double loss = NAN;
  int rc;
  if (has_eval(r)) {
    if ((rc = evaluate(r, &loss, err)))
      return rc;
    r->eval_last = loss;
    eval_event(r, loss);
    if (loss < r->eval_best) {
      r->eval_best = loss;
      r->eval_best_step = r->step;
      r->bad_evals = 0;
      if (r->best && !scenarios)
        r->be->copy(r->best, r->params, r->n * sizeof *r->best);
    } else if (r->spec->patience > 0 && ++r->bad_evals >= r->spec->patience) {
      char msg[160];
      snprintf(msg, sizeof msg,
               "early stopping at step %d: no better eval loss in %d evaluations (best %.4f)",
               r->step, r->bad_evals, r->eval_best);
      emit_log(r, "info", msg);
      r->stop = 1;
    }
  }
  return scenarios ? score_scenarios(r, loss, err) : 0;
}

static int samples(run *r, fb_err *err) {
  const fb_train_data *d = r->data;
  if (!d->tok || d->n_prompts == 0 ||
      (r->step % r->plan.sample_interval != 0 && r->step != r->plan.total))
    return 0;
  int32_t *out = malloc((size_t)r->spec->sample_tokens * sizeof *out);
  if (!out)
    return fb_err_set(err, FB_ENOMEM, "out of memory for a sample");
  int rc = 0;
  for (int i = 0; i < d->n_prompts && !rc; i++) {
    fb_text text = {0};
    if (d->prompts[i].n >= r->m->cfg.max_position_embeddings)
      continue; /* a prompt as long as the model's context has no room to answer */
    rc = answer(r, &d->prompts[i], r->spec->sample_tokens, out, &text, err);
    if (!rc) {
      cJSON *e = event("sample");
      cJSON_AddNumberToObject(e, "step", r->step);
      cJSON_AddStringToObject(e, "prompt", d->prompts[i].text);
      cJSON_AddStringToObject(e, "text", text.s);
      emit(r, e);
    }
    fb_text_free(&text);
  }
  free(out);
  return rc;
}

/* ---- output ---- */

/* Whether the output is the weights kept in best rather than the last ones: the best by
 * scenarios, or with patience the best by eval loss. */
static int kept_best(const run *r) {
  if (selects_scenarios(r))
    return r->sel_step > 0;
  return r->best != NULL && isfinite(r->eval_best);
}

/* How the published weights were chosen: select, selected_step (the step they are from; null
 * where a checkpoint from before this field hid it) and, by scenarios, selected_passed,
 * scenario_total and scenario_history [{step, passed}]. */
static void add_selection(const run *r, cJSON *s) {
  int scenarios = selects_scenarios(r);
  cJSON_AddStringToObject(s, "select", scenarios ? "scenarios" : "eval_loss");
  int step = !kept_best(r) ? r->step : scenarios ? r->sel_step : r->eval_best_step;
  if (step > 0)
    cJSON_AddNumberToObject(s, "selected_step", step);
  else
    cJSON_AddNullToObject(s, "selected_step");
  if (!scenarios)
    return;
  cJSON_AddNumberToObject(s, "selected_passed", r->sel_passed);
  cJSON_AddNumberToObject(s, "scenario_total", r->data->n_scenarios);
  cJSON *h = cJSON_AddArrayToObject(s, "scenario_history");
  for (int i = 0; h && i < r->n_hist; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", r->hist[2 * i]);
    cJSON_AddNumberToObject(o, "passed", r->hist[2 * i + 1]);
    cJSON_AddItemToArray(h, o);
  }
}

static cJSON *summary(const run *r) {
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "base_model", r->spec->model);
  if (r->m->revision[0])
    cJSON_AddStringToObject(s, "base_model_revision", r->m->revision);
  cJSON_AddStringToObject(s, "dataset_hash", r->data->dataset_hash ? r->data->dataset_hash : "");
  cJSON_AddNumberToObject(s, "examples", (double)r->n_train);
  cJSON_AddNumberToObject(s, "eval_examples", r->data->eval ? (double)r->data->eval->n : 0);
  cJSON_AddNumberToObject(s, "tokens", r->tokens);
  cJSON_AddNumberToObject(s, "steps", r->step);
  cJSON_AddNumberToObject(s, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(s, "epochs", epochs_at(r, r->step));
  cJSON_AddNumberToObject(s, "final_loss", r->loss_last);
  cJSON_AddNumberToObject(s, "final_loss_smoothed", r->loss_smoothed);
  cJSON_AddNumberToObject(s, "best_loss", r->loss_best);
  if (isfinite(r->eval_last))
    cJSON_AddNumberToObject(s, "eval_loss", r->eval_last);
  else
    cJSON_AddNullToObject(s, "eval_loss");
  if (isfinite(r->eval_best))
    cJSON_AddNumberToObject(s, "best_eval_loss", r->eval_best);
  else
    cJSON_AddNullToObject(s, "best_eval_loss");
  if (isfinite(r->eval_base))
    cJSON_AddNumberToObject(s, "base_eval_loss", r->eval_base);
  else
    cJSON_AddNullToObject(s, "base_eval_loss");
  cJSON_AddBoolToObject(s, "kept_best", kept_best(r));
  add_selection(r, s);
  cJSON_AddNumberToObject(s, "wall_time_s", r->elapsed);
  cJSON_AddNumberToObject(s, "tokens_per_s", r->elapsed > 0 ? r->tokens / r->elapsed : 0);
  add_device(r, s);
  cJSON_AddItemToObject(s, "spec", fb_train_spec_to_json(r->spec));
  return s;
}

static int by_loss_desc(const void *a, const void *b) {
  double x = cJSON_GetObjectItem(*(cJSON *const *)a, "loss")->valuedouble;
  double y = cJSON_GetObjectItem(*(cJSON *const *)b, "loss")->valuedouble;
  return (x < y) - (x > y);
}

/* example_losses.json: each training example's loss under the final weights, worst first (the
 * examples the adapter still gets wrong). */
static int write_example_losses(run *r, const char *dir, fb_err *err) {
  const fb_examples *ex = r->data->train;
  cJSON **rows = calloc(ex->n, sizeof *rows), *list = cJSON_CreateArray();
  int rc = rows && list ? 0 : fb_err_set(err, FB_ENOMEM, "out of memory for the example losses");
  for (size_t i = 0; !rc && i < ex->n; i++) {
    const fb_example *e = &ex->v[i];
    fb_batch b;
    if ((rc = fill_batch(r, &b, &e, 1, err)) || (rc = fb_model_forward(r->m, r->lora, &b, 0, err)))
      break;
    rows[i] = cJSON_CreateObject();
    cJSON_AddNumberToObject(rows[i], "line", e->line);
    cJSON_AddNumberToObject(rows[i], "loss", r->m->loss);
    cJSON_AddNumberToObject(rows[i], "trained_tokens", e->n_trained);
  }
  if (!rc) {
    qsort(rows, ex->n, sizeof *rows, by_loss_desc);
    for (size_t i = 0; i < ex->n; i++)
      cJSON_AddItemToArray(list, rows[i]);
    char *text = cJSON_Print(list), path[FB_SPEC_PATH + 48];
    snprintf(path, sizeof path, "%s/example_losses.json", dir);
    rc = text ? fb_write_file_atomic(path, text, strlen(text), err)
              : fb_err_set(err, FB_ENOMEM, "out of memory for example_losses.json");
    free(text);
  } else {
    for (size_t i = 0; rows && i < ex->n; i++)
      cJSON_Delete(rows[i]);
  }
  cJSON_Delete(list);
  free(rows);
  return rc;
}

static int write_summary(const char *dir, const cJSON *sum, fb_err *err) {
  char *text = cJSON_Print(sum), path[FB_SPEC_PATH + 32];
  if (!text)
    return fb_err_set(err, FB_ENOMEM, "out of memory for summary.json");
  snprintf(path, sizeof path, "%s/summary.json", dir);
  int rc = fb_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

static int write_output(run *r, fb_err *err) {
  const fb_train_spec *s = r->spec;
  if (kept_best(r))
    r->be->copy(r->params, r->best, r->n * sizeof *r->params);
  char dir[FB_SPEC_PATH + 16];
  cJSON *sum = NULL;
  int rc = fb_output_partial_path(dir, sizeof dir, s->out, err);
  if (!rc)
    rc = fb_mkdir_p(dir, err);
  if (!rc)
    rc = r->lora ? fb_lora_save(r->lora, dir, err) : fb_model_save(r->m, s->model, dir, err);
  if (!rc)
    rc = write_example_losses(r, dir, err);
  if (!rc && !(sum = summary(r)))
    rc = fb_err_set(err, FB_ENOMEM, "out of memory for summary.json");
  if (!rc)
    rc = write_summary(dir, sum, err);
  if (!rc)
    rc = fb_output_publish(dir, s->out, err);
  if (rc) {
    fb_remove_tree(dir, NULL);
    cJSON_Delete(sum);
    return rc;
  }
  cJSON *e = event("done");
  cJSON_AddItemToObject(e, "summary", sum);
  cJSON_AddStringToObject(e, "adapter", s->out);
  emit(r, e);
  return 0;
}

/* ---- the run ---- */

/* The backend the spec's device names (full-parameter training runs on the CPU), with the model
 * placed on it. */
static int choose_device(run *r, fb_err *err) {
  const fb_train_spec *s = r->spec;
  fb_device want = s->full ? FB_DEVICE_CPU : s->device; /* spec check refused full on cuda */
  char why[320];
  int rc = fb_device_open(want, &r->be, why, sizeof why, err);
  if (rc)
    return rc;
  if (want == FB_DEVICE_AUTO && r->be->device == FB_DEVICE_CPU)
    snprintf(r->device_note, sizeof r->device_note, "device: auto: using the CPU: %s", why);
  return fb_model_place(r->m, r->be, err);
}

static int setup(run *r, fb_err *err) {
  const fb_train_spec *s = r->spec;
  int rc;
  if ((rc = choose_device(r, err)))
    return rc;
  if (s->full) {
    if ((rc = fb_model_enable_grads(r->m, err)))
      return rc;
    r->params = r->m->params;
    r->grads = r->m->grads;
    r->n = r->m->n_floats;
  } else {
    fb_adapter_config c = s->lora;
    snprintf(c.base_model_name_or_path, sizeof c.base_model_name_or_path, "%.511s", s->model);
    snprintf(c.revision, sizeof c.revision, "%s", r->m->revision);
    if ((rc = fb_lora_create(&r->lora, r->m, &c, err)) ||
        (rc = fb_lora_init(r->lora, s->seed, err)))
      return rc;
    r->params = r->lora->params;
    r->grads = r->lora->grads;
    r->n = r->lora->n_floats;
  }
  fb_optim_config oc = fb_optim_defaults();
  oc.lr = s->lr;
  oc.weight_decay = s->weight_decay;
  oc.max_grad_norm = s->clip;
  oc.schedule = s->schedule;
  oc.total_steps = r->plan.total;
  oc.warmup_steps = (int)lround(s->warmup * r->plan.total);
  if ((rc = fb_optim_create(&r->optim, r->be, r->n, &oc, err)))
    return rc;
  if (((s->patience > 0 && has_eval(r)) || selects_scenarios(r)) &&
      (rc = r->be->alloc((void **)&r->best, r->n * sizeof *r->best, "the best adapter", err)))
    return rc;
  if (!r->be->host_memory && !(r->stage = malloc(4 * r->n * sizeof *r->stage)))
    return fb_err_set(err, FB_ENOMEM, "out of memory for checkpoints of %zu floats", r->n);
  return 0;
}

static void start_event(run *r) {
  cJSON *e = event("start");
  cJSON_AddNumberToObject(e, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(e, "total_epochs", r->plan.total_epochs);
  cJSON_AddNumberToObject(e, "examples", (double)r->n_train);
  cJSON_AddNumberToObject(e, "eval_examples", r->data->eval ? (double)r->data->eval->n : 0);
  add_device(r, e);
  cJSON_AddStringToObject(e, "model", r->spec->model);
  cJSON_AddNumberToObject(e, "resumed_from_step", r->start_step);
  emit(r, e);
  if (r->device_note[0])
    emit_log(r, "info", r->device_note);
}

/* The steps are done; the checkpoint, the adapter and its example losses are written next
 * (seconds on a large model): a progress bar at 100% says so. */
static void saving_event(run *r) {
  cJSON *e = event("saving");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddStringToObject(e, "adapter", r->spec->out);
  emit(r, e);
}

static int loop(run *r, fb_err *err) {
  int rc;
  volatile sig_atomic_t *cancel = r->opts ? r->opts->cancel : NULL;
  if ((rc = evaluate_base(r, err)))
    return fail_step(r, err);
  while (r->step < r->plan.total && !r->stop) {
    if (cancel && *cancel) {
      if ((rc = save_checkpoint(r, err)))
        return fail(r, r->ckdir, err);
      return fb_err_set(err, FB_ECANCELLED, "cancelled at step %d; a checkpoint was written to %s",
                        r->step, r->ckdir);
    }
    if ((rc = train_step(r, err)) || (rc = maybe_evaluate(r, 0, err)) || (rc = samples(r, err)))
      return fail_step(r, err);
    int ci = r->spec->checkpoint_interval;
    if (ci > 0 && r->step % ci == 0 && r->step < r->plan.total && (rc = save_checkpoint(r, err)))
      return fail(r, r->ckdir, err);
  }
  if (r->step % r->plan.eval_interval != 0 && (rc = maybe_evaluate(r, 1, err)))
    return fail_step(r, err);
  saving_event(r);
  if ((rc = save_checkpoint(r, err)))
    return fail(r, r->ckdir, err);
  if ((rc = write_output(r, err)))
    return fail(r, r->spec->out, err);
  return 0;
}

int fb_train(fb_model *m, const fb_train_spec *spec, const fb_train_data *data,
             const fb_train_opts *opts, fb_err *err) {
  run r = {.m = m,
           .spec = spec,
           .data = data,
           .opts = opts,
           .order_epoch = -1,
           .eval_last = NAN,
           .eval_best = INFINITY,
           .eval_base = NAN,
           .sel_passed = -1,
           .sel_eval = NAN};
  int rc = fb_train_spec_check(spec, err);
  if (rc)
    return fail(&r, "spec", err);
  if (!data->train || data->train->n == 0) {
    fb_err_set(err, FB_EINVALID, "no training examples");
    return fail(&r, "data", err);
  }
  r.n_train = (long)data->train->n;
  if ((rc = check_examples(&r, data->train, "training", err)) ||
      (rc = check_examples(&r, data->eval, "eval", err)) || (rc = check_scenarios(&r, err)))
    return rc;
  plan(&r);
  if (r.plan.A != spec->grad_accum || r.plan.B != spec->micro_batch) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "small-data mode: micro_batch %d x grad_accum %d (was %d x %d) for %d steps", r.plan.B,
             r.plan.A, spec->micro_batch, spec->grad_accum, r.plan.total);
    emit_log(&r, "info", msg);
  }
  int found = 0;
  fb_output_settle_checkpoints(r.ckdir);
  if ((rc = fb_output_settle(spec->out, err))) {
    fail(&r, spec->out, err);
  } else if ((rc = setup(&r, err))) {
    fail(&r, "setup", err);
  } else if (opts && opts->resume && (rc = load_checkpoint(&r, &found, err))) {
    fail(&r, r.ckdir, err);
  } else {
    r.start_step = r.step;
    start_event(&r);
    rc = loop(&r, err);
  }
  fb_lora_free(r.lora);
  fb_optim_free(r.optim);
  if (r.best)
    r.be->free(r.best);
  free(r.stage);
  free(r.order);
  free(r.ids);
  free(r.labels);
  free(r.hist);
  return rc;
}
