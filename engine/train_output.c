/* train_output.c: a run's published output: the adapter (or the whole model), summary.json
 * and example_losses.json (each training example's loss, worst first), then the `done` event. */
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "output.h"

/* ---- output ---- */

/* Whether the output is the weights kept in best rather than the last ones: the best by
 * scenarios, or with patience the best by eval loss. */
static int kept_best(const run *r) {
  if (train_selects_scenarios(r)) return r->sel_step > 0;
  return r->best != NULL && isfinite(r->eval_best);
}

/* How the published weights were chosen: select, selected_step (the step they are from; null
 * where a checkpoint from before this field hid it) and, by scenarios, selected_passed,
 * scenario_total and scenario_history [{step, passed}]. */
static void add_selection(const run *r, cJSON *s) {
  int scenarios = train_selects_scenarios(r);
  cJSON_AddStringToObject(s, "select", scenarios ? "scenarios" : "eval_loss");
  int step = !kept_best(r) ? r->step : scenarios ? r->sel_step : r->eval_best_step;
  if (step > 0)
    cJSON_AddNumberToObject(s, "selected_step", step);
  else
    cJSON_AddNullToObject(s, "selected_step");
  if (!scenarios) return;
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
  if (r->m->revision[0]) cJSON_AddStringToObject(s, "base_model_revision", r->m->revision);
  cJSON_AddStringToObject(s, "dataset_hash", r->data->dataset_hash ? r->data->dataset_hash : "");
  cJSON_AddNumberToObject(s, "examples", (double)r->n_train);
  cJSON_AddNumberToObject(s, "eval_examples", r->data->eval ? (double)r->data->eval->n : 0);
  cJSON_AddNumberToObject(s, "tokens", r->tokens);
  cJSON_AddNumberToObject(s, "steps", r->step);
  cJSON_AddNumberToObject(s, "total_steps", r->plan.total);
  cJSON_AddNumberToObject(s, "epochs", train_epochs_at(r, r->step));
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
  train_add_device(r, s);
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
    if ((rc = train_fill_batch(r, &b, &e, 1, err)) ||
        (rc = fb_model_forward(r->m, r->lora, &b, 0, err)))
      break;
    rows[i] = cJSON_CreateObject();
    cJSON_AddNumberToObject(rows[i], "line", e->line);
    cJSON_AddNumberToObject(rows[i], "loss", r->m->loss);
    cJSON_AddNumberToObject(rows[i], "trained_tokens", e->n_trained);
  }
  if (!rc) {
    qsort(rows, ex->n, sizeof *rows, by_loss_desc);
    for (size_t i = 0; i < ex->n; i++) cJSON_AddItemToArray(list, rows[i]);
    char *text = cJSON_Print(list), path[FB_SPEC_PATH + 48];
    snprintf(path, sizeof path, "%s/example_losses.json", dir);
    rc = text ? fb_write_file_atomic(path, text, strlen(text), err)
              : fb_err_set(err, FB_ENOMEM, "out of memory for example_losses.json");
    free(text);
  } else {
    for (size_t i = 0; rows && i < ex->n; i++) cJSON_Delete(rows[i]);
  }
  cJSON_Delete(list);
  free(rows);
  return rc;
}

static int write_summary(const char *dir, const cJSON *sum, fb_err *err) {
  char *text = cJSON_Print(sum), path[FB_SPEC_PATH + 32];
  if (!text) return fb_err_set(err, FB_ENOMEM, "out of memory for summary.json");
  snprintf(path, sizeof path, "%s/summary.json", dir);
  int rc = fb_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int train_write_output(run *r, fb_err *err) {
  const fb_train_spec *s = r->spec;
  if (kept_best(r)) r->be->copy(r->params, r->best, r->n * sizeof *r->params);
  char dir[FB_SPEC_PATH + 16];
  cJSON *sum = NULL;
  int rc = fb_output_partial_path(dir, sizeof dir, s->out, err);
  if (!rc) rc = fb_mkdir_p(dir, err);
  if (!rc) rc = r->lora ? fb_lora_save(r->lora, dir, err) : fb_model_save(r->m, s->model, dir, err);
  if (!rc) rc = write_example_losses(r, dir, err);
  if (!rc && !(sum = summary(r))) rc = fb_err_set(err, FB_ENOMEM, "out of memory for summary.json");
  if (!rc) rc = write_summary(dir, sum, err);
  if (!rc) rc = fb_output_publish(dir, s->out, err);
  if (rc) {
    fb_remove_tree(dir, NULL);
    cJSON_Delete(sum);
    return rc;
  }
  cJSON *e = train_event("done");
  cJSON_AddItemToObject(e, "summary", sum);
  cJSON_AddStringToObject(e, "adapter", s->out);
  train_emit(r, e);
  return 0;
}
