/* train.c: the training loop. The examples form one stream, epoch after epoch, each epoch in
 * the seeded order of fb_dataset_order(n, seed + epoch); a step takes grad_accum micro-batches
 * of micro_batch examples from it. Everything a step depends on (order, dropout masks) is a
 * function of the seed and the step, so a checkpoint need hold only the weights, the AdamW
 * moments and a few numbers to resume exactly. */
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "output.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

cJSON *train_event(const char *name) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "event", name);
  return e;
}

void train_add_device(const run *r, cJSON *e) {
  cJSON_AddStringToObject(e, "device", r->be->name);
  cJSON_AddStringToObject(e, "device_name", r->be->device_name());
  cJSON_AddNumberToObject(e, "peak_memory_bytes", (double)r->be->peak_bytes());
}

double train_emit(run *r, cJSON *e) {
  double score = NAN;
  if (e && r->opts && r->opts->on_event) {
    double lr = r->optim ? r->optim->cfg.lr : r->spec->lr;
    fb_train_control ctl = {.stop = 0, .lr = lr, .score = NAN};
    r->opts->on_event(r->opts->ud, e, &ctl);
    r->stop |= ctl.stop;
    if (r->optim && ctl.lr != lr && ctl.lr >= 0 && isfinite(ctl.lr)) r->optim->cfg.lr = ctl.lr;
    score = ctl.score;
  }
  cJSON_Delete(e);
  return score;
}

int train_selects_scenarios(const run *r) { return r->spec->select == FB_SELECT_SCENARIOS; }

int train_push_history(run *r, int step, int passed, fb_err *err) {
  if (r->n_hist > 0 && r->hist[2 * (r->n_hist - 1)] == step) r->n_hist--;
  if (r->n_hist == r->cap_hist) {
    int cap = r->cap_hist ? 2 * r->cap_hist : 16, *h = realloc(r->hist, 2 * cap * sizeof *h);
    if (!h) return fb_err_set(err, FB_ENOMEM, "out of memory for the scenario history");
    r->hist = h;
    r->cap_hist = cap;
  }
  r->hist[2 * r->n_hist] = step;
  r->hist[2 * r->n_hist + 1] = passed;
  r->n_hist++;
  return 0;
}

void train_emit_log(run *r, const char *level, const char *msg) {
  cJSON *e = train_event("log");
  cJSON_AddStringToObject(e, "level", level);
  cJSON_AddStringToObject(e, "message", msg);
  train_emit(r, e);
}

/* Report err as an `error` event at `where`; returns its code. */
static int fail(run *r, const char *where, fb_err *err) {
  cJSON *e = train_event("error");
  cJSON_AddStringToObject(e, "message", err->msg);
  cJSON_AddStringToObject(e, "where", where);
  train_emit(r, e);
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
    if (e->n_trained == 0 && untrained++ == 0) first_untrained = e->line;
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
    train_emit_log(r, "warn", msg);
  }
  return 0;
}

/* select "scenarios" needs scenarios to answer, each with room in the model's context, and the
 * tokenizer to decode the answers. */
static int check_scenarios(run *r, fb_err *err) {
  const fb_train_data *d = r->data;
  if (!train_selects_scenarios(r)) return 0;
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
    for (int t = 0; !bad && t < p->n; t++) bad = p->ids[t] < 0 || p->ids[t] >= r->m->V;
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

double train_epochs_at(const run *r, int step) {
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

int train_fill_batch(run *r, fb_batch *b, const fb_example *const *ex, int n, fb_err *err) {
  int T = 1;
  for (int i = 0; i < n; i++) T = ex[i]->n > T ? ex[i]->n : T;
  size_t need = (size_t)n * T;
  if (need > r->cap) {
    int32_t *ids = realloc(r->ids, need * sizeof *ids);
    if (ids) r->ids = ids;
    int32_t *labels = ids ? realloc(r->labels, need * sizeof *labels) : NULL;
    if (!labels) return fb_err_set(err, FB_ENOMEM, "out of memory for a batch of %d x %d", n, T);
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

int train_evaluate(run *r, double *out, fb_err *err) {
  const fb_examples *ev = r->data->eval;
  double sum = 0;
  long counted = 0;
  const fb_example *rows[64];
  int cap = r->plan.B < 64 ? r->plan.B : 64;
  for (size_t i = 0; i < ev->n; i += (size_t)cap) {
    int n = (int)(ev->n - i < (size_t)cap ? ev->n - i : (size_t)cap), rc;
    for (int j = 0; j < n; j++) rows[j] = &ev->v[i + j];
    fb_batch b;
    if ((rc = train_fill_batch(r, &b, rows, n, err)) ||
        (rc = fb_model_forward(r->m, r->lora, &b, 0, err)))
      return rc;
    sum += (double)r->m->loss * r->m->n_counted;
    counted += r->m->n_counted;
  }
  *out = counted ? sum / counted : NAN;
  return 0;
}

/* ---- one step ---- */

/* Forward and backward over one micro-batch of the step; adds to *sum and *counted. */
static int micro_step(run *r, int a, double *sum, long *counted, double *tokens, fb_err *err) {
  long k0 = ((long)r->step * r->plan.A + a) * r->plan.B, k1 = k0 + r->plan.B;
  if (k1 > r->plan.total_examples) k1 = r->plan.total_examples;
  if (k0 >= k1) return 0;
  const fb_example *rows[4096]; /* micro_batch is at most 4096 (train_spec.c) */
  for (long k = k0; k < k1; k++)
    if (!(rows[k - k0] = example_at(r, k, err))) return err->code;
  fb_batch b;
  int rc = train_fill_batch(r, &b, rows, (int)(k1 - k0), err);
  if (rc) return rc;
  if (r->lora) r->lora->step = (uint64_t)r->step * r->plan.A + a;
  if ((rc = fb_model_forward(r->m, r->lora, &b, 1, err))) return rc;
  for (long k = k0; k < k1; k++) *tokens += rows[k - k0]->n;
  if (r->m->n_counted == 0) return 0;
  *sum += (double)r->m->loss * r->m->n_counted;
  *counted += r->m->n_counted;
  return fb_model_backward(r->m, r->lora, &b, err);
}

static cJSON *progress_event(const run *r, double loss, double lr, double norm) {
  cJSON *e = train_event("progress");
  int left = r->plan.total - r->step, done = r->step - r->start_step;
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddNumberToObject(e, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(e, "epoch", train_epochs_at(r, r->step));
  cJSON_AddNumberToObject(e, "total_epochs", r->plan.total_epochs);
  cJSON_AddNumberToObject(e, "loss", loss);
  cJSON_AddNumberToObject(e, "loss_smoothed", r->loss_smoothed);
  cJSON_AddNumberToObject(e, "lr", lr);
  cJSON_AddNumberToObject(e, "grad_norm", norm);
  cJSON_AddNumberToObject(e, "tokens_per_s",
                          r->session_time > 0 ? r->session_tokens / r->session_time : 0);
  cJSON_AddNumberToObject(e, "elapsed_s", r->elapsed);
  cJSON_AddNumberToObject(e, "eta_s", done > 0 ? r->session_time / done * left : 0);
  train_add_device(r, e);
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
    if ((rc = micro_step(r, a, &sum, &counted, &tokens, err))) return rc;
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
  if (r->plan.A > 1) r->be->scale(r->grads, r->n, 1.0f / (float)r->plan.A);
  double norm = fb_optim_clip(r->optim, r->grads, r->spec->clip);
  double lr = fb_optim_lr(&r->optim->cfg, r->step);
  if ((rc = fb_optim_step(r->optim, r->params, r->grads, lr, err))) return rc;
  if (r->step == 0) r->loss_first = r->loss_best = loss;
  r->loss_ema = SMOOTHING * r->loss_ema + (1 - SMOOTHING) * loss;
  r->loss_smoothed = r->loss_ema / (1 - pow(SMOOTHING, r->step + 1));
  if (loss < r->loss_best) r->loss_best = loss;
  r->loss_last = loss;
  r->step++;
  double dt = now() - t0;
  r->session_time += dt;
  r->session_tokens += tokens;
  r->elapsed += dt;
  r->tokens += tokens;
  train_emit(r, progress_event(r, loss, lr, norm));
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
  if (rc) return rc;
  if (want == FB_DEVICE_AUTO && r->be->device == FB_DEVICE_CPU)
    snprintf(r->device_note, sizeof r->device_note, "device: auto: using the CPU: %s", why);
  return fb_model_place(r->m, r->be, err);
}

static int setup(run *r, fb_err *err) {
  const fb_train_spec *s = r->spec;
  int rc;
  if ((rc = choose_device(r, err))) return rc;
  if (s->full) {
    if ((rc = fb_model_enable_grads(r->m, err))) return rc;
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
  if ((rc = fb_optim_create(&r->optim, r->be, r->n, &oc, err))) return rc;
  if (((s->patience > 0 && train_has_eval(r)) || train_selects_scenarios(r)) &&
      (rc = r->be->alloc((void **)&r->best, r->n * sizeof *r->best, "the best adapter", err)))
    return rc;
  if ((!r->be->host_memory || r->lora) && !(r->stage = malloc(5 * r->n * sizeof *r->stage)))
    return fb_err_set(err, FB_ENOMEM, "out of memory for checkpoints of %zu floats", r->n);
  return 0;
}

static void start_event(run *r) {
  cJSON *e = train_event("start");
  cJSON_AddNumberToObject(e, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(e, "total_epochs", r->plan.total_epochs);
  cJSON_AddNumberToObject(e, "examples", (double)r->n_train);
  cJSON_AddNumberToObject(e, "eval_examples", r->data->eval ? (double)r->data->eval->n : 0);
  train_add_device(r, e);
  cJSON_AddStringToObject(e, "model", r->spec->model);
  cJSON_AddNumberToObject(e, "resumed_from_step", r->start_step);
  train_emit(r, e);
  if (r->device_note[0]) train_emit_log(r, "info", r->device_note);
}

/* The steps are done; the checkpoint, the adapter and its example losses are written next
 * (seconds on a large model): a progress bar at 100% says so. */
static void saving_event(run *r) {
  cJSON *e = train_event("saving");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddStringToObject(e, "adapter", r->spec->out);
  train_emit(r, e);
}

static int loop(run *r, fb_err *err) {
  int rc;
  volatile sig_atomic_t *cancel = r->opts ? r->opts->cancel : NULL;
  if ((rc = train_evaluate_base(r, err))) return fail_step(r, err);
  while (r->step < r->plan.total && !r->stop) {
    if (cancel && *cancel) {
      if ((rc = train_save_checkpoint(r, err))) return fail(r, r->ckdir, err);
      return fb_err_set(err, FB_ECANCELLED, "cancelled at step %d; a checkpoint was written to %s",
                        r->step, r->ckdir);
    }
    if ((rc = train_step(r, err)) || (rc = train_maybe_evaluate(r, 0, err)) ||
        (rc = train_samples(r, err)))
      return fail_step(r, err);
    int ci = r->spec->checkpoint_interval;
    if (ci > 0 && r->step % ci == 0 && r->step < r->plan.total &&
        (rc = train_save_checkpoint(r, err)))
      return fail(r, r->ckdir, err);
  }
  if (r->step % r->plan.eval_interval != 0 && (rc = train_maybe_evaluate(r, 1, err)))
    return fail_step(r, err);
  saving_event(r);
  if ((rc = train_save_checkpoint(r, err))) return fail(r, r->ckdir, err);
  if ((rc = train_write_output(r, err))) return fail(r, r->spec->out, err);
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
  if (rc) return fail(&r, "spec", err);
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
    train_emit_log(&r, "info", msg);
  }
  int found = 0;
  fb_output_settle_checkpoints(r.ckdir);
  if ((rc = fb_output_settle(spec->out, err))) {
    fail(&r, spec->out, err);
  } else if ((rc = setup(&r, err))) {
    fail(&r, "setup", err);
  } else if (opts && opts->resume && (rc = train_load_checkpoint(&r, &found, err))) {
    fail(&r, r.ckdir, err);
  } else {
    r.start_step = r.step;
    start_event(&r);
    rc = loop(&r, err);
  }
  fb_lora_free(r.lora);
  fb_optim_free(r.optim);
  if (r.best) r.be->free(r.best);
  free(r.stage);
  free(r.order);
  free(r.ids);
  free(r.labels);
  free(r.hist);
  return rc;
}
