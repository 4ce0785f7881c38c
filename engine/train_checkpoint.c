/* train_checkpoint.c: a run's checkpoints: step-N folders under the checkpoint directory, each
 * written whole (the weights, the AdamW moments and the state a resume needs, as safetensors
 * and JSON), the latest kept and older ones pruned; and read back so a resumed run goes on
 * exactly as the uninterrupted one would. */
#include "train_impl.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "gemm.h"
#include "output.h"

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
  if (n >= 0) free(list);
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
  if (r->data->dataset_hash) cJSON_AddStringToObject(j, "dataset_hash", r->data->dataset_hash);
  if (isfinite(r->eval_last)) cJSON_AddNumberToObject(j, "eval_last", r->eval_last);
  if (isfinite(r->eval_best)) cJSON_AddNumberToObject(j, "eval_best", r->eval_best);
  if (isfinite(r->eval_base)) cJSON_AddNumberToObject(j, "eval_base", r->eval_base);
  cJSON_AddNumberToObject(j, "bad_evals", r->bad_evals);
  cJSON_AddNumberToObject(j, "eval_best_step", r->eval_best_step);
  cJSON_AddStringToObject(j, "select", train_selects_scenarios(r) ? "scenarios" : "eval_loss");
  if (train_selects_scenarios(r)) {
    cJSON_AddNumberToObject(j, "select_passed", r->sel_passed);
    cJSON_AddNumberToObject(j, "select_step", r->sel_step);
    if (isfinite(r->sel_eval)) cJSON_AddNumberToObject(j, "select_eval_loss", r->sel_eval);
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

/* The backend's array dev of n floats as the host sees it, in file order (an adapter's arena
 * order is not: fb_lora_to_file_order): dev itself on a backend that computes in host memory
 * without an adapter, else a copy made in slot k of the staging room. */
static const float *on_host(run *r, const float *dev, int k) {
  if (r->be->host_memory && !r->lora) return dev;
  float *h = r->stage + (size_t)k * r->n, *work = r->stage + 4 * r->n;
  if (!r->lora) {
    r->be->download(h, dev, r->n * sizeof(float));
    return h;
  }
  const float *arena = dev;
  if (!r->be->host_memory) {
    r->be->download(work, dev, r->n * sizeof(float));
    arena = work;
  }
  fb_lora_to_file_order(r->lora, h, arena);
  return h;
}

/* The checkpoint's files, written into the temporary directory tmp. */
static int write_checkpoint(run *r, const char *tmp, fb_err *err) {
  char path[FB_SPEC_PATH + 128];
  int rc = fb_mkdir_p(tmp, err);
  if (rc) return rc;
  fb_st_out t[4] = {
      {"params", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->params, 0)},
      {"adam.m", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->optim->m, 1)},
      {"adam.v", FB_DT_F32, 1, {(int64_t)r->n}, on_host(r, r->optim->v, 2)},
      {"best", FB_DT_F32, 1, {(int64_t)r->n}, r->best ? on_host(r, r->best, 3) : NULL},
  };
  snprintf(path, sizeof path, "%s/state.safetensors", tmp);
  if ((rc = fb_st_write(path, t, r->best ? 4 : 3, NULL, err))) return rc;
  cJSON *j = state_json(r);
  char *text = j ? cJSON_Print(j) : NULL;
  cJSON_Delete(j);
  if (!text) return fb_err_set(err, FB_ENOMEM, "out of memory for the checkpoint state");
  snprintf(path, sizeof path, "%s/state.json", tmp);
  rc = fb_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int train_save_checkpoint(run *r, fb_err *err) {
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
  if ((rc = fb_write_file_atomic(path, line, (size_t)len, err))) return rc;
  prune(r->ckdir);
  cJSON *e = train_event("checkpoint");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddStringToObject(e, "path", dir);
  train_emit(r, e);
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
 * room off a host-memory backend or with an adapter, whose arena order is not the file's). */
static int read_into(run *r, const fb_st_file *f, const char *name, float *dev, int k,
                     fb_err *err) {
  int direct = r->be->host_memory && !r->lora;
  float *h = direct ? dev : r->stage + (size_t)k * r->n;
  int rc = read_tensor(f, name, r->n, h, err);
  if (rc || direct) return rc;
  if (!r->lora) {
    r->be->upload(dev, h, r->n * sizeof(float));
    return 0;
  }
  float *arena = r->be->host_memory ? dev : r->stage + 4 * r->n;
  fb_lora_from_file_order(r->lora, arena, h);
  if (arena != dev) r->be->upload(dev, arena, r->n * sizeof(float));
  return 0;
}

int train_load_checkpoint(run *r, int *found, fb_err *err) {
  char path[FB_SPEC_PATH + 340], dir[FB_SPEC_PATH + 300], *text = NULL; /* latest: <= 256 bytes */
  size_t len;
  *found = 0;
  snprintf(path, sizeof path, "%s/latest", r->ckdir);
  if (access(path, F_OK) != 0) return 0;
  int rc = fb_read_file(path, &text, &len, 256, err);
  if (rc) return rc;
  text[strcspn(text, "\r\n")] = '\0';
  snprintf(dir, sizeof dir, "%s/%s", r->ckdir, text);
  free(text);
  if (access(dir, F_OK) != 0) strcat(dir, ".old"); /* a crash while saving the same step again */
  snprintf(path, sizeof path, "%s/state.json", dir);
  if ((rc = fb_read_file(path, &text, &len, 1 << 20, err))) return rc;
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  if (!j) return fb_err_set(err, FB_EFORMAT, "%s: not valid JSON", path);
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
  if (r->be->device == FB_DEVICE_CPU && cJSON_IsString(gemm)) fb_gemm_prefer(gemm->valuestring);
  /* A checkpoint from before the bias correction: its smoothed loss stands for the average. */
  r->loss_ema = get_number(j, "loss_ema", &ev, path, NULL)
                    ? r->loss_smoothed * (1 - pow(SMOOTHING, step))
                    : ev;
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
  if (!rc && sel_scenarios != train_selects_scenarios(r))
    rc = fb_err_set(err, FB_EINVALID,
                    "%s: made by another spec (select \"%s\"; this run has \"%s\")", path,
                    sel_scenarios ? "scenarios" : "eval_loss",
                    train_selects_scenarios(r) ? "scenarios" : "eval_loss");
  if (!rc && sel_scenarios) {
    r->sel_passed = get_number(j, "select_passed", &ev, path, NULL) ? -1 : (int)ev;
    r->sel_step = get_number(j, "select_step", &ev, path, NULL) ? 0 : (int)ev;
    r->sel_eval = get_number(j, "select_eval_loss", &ev, path, NULL) ? NAN : ev;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(j, "scenario_history")) {
      if (!rc && cJSON_GetArraySize(pair) == 2)
        rc = train_push_history(r, cJSON_GetArrayItem(pair, 0)->valueint,
                                cJSON_GetArrayItem(pair, 1)->valueint, err);
    }
  }
  cJSON_Delete(j);
  if (rc) return err->code;
  if ((size_t)n != r->n || (int)total != r->plan.total || (uint64_t)seed != r->spec->seed)
    return fb_err_set(err, FB_EINVALID,
                      "%s: made by another spec (%.0f parameters, %.0f steps, seed %.0f; this run "
                      "has %zu, %d, %llu)",
                      path, n, total, seed, r->n, r->plan.total, (unsigned long long)r->spec->seed);
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  fb_st_file *f = NULL;
  if ((rc = fb_st_open(&f, path, err))) return rc;
  rc = read_into(r, f, "params", r->params, 0, err);
  if (!rc) rc = read_into(r, f, "adam.m", r->optim->m, 1, err);
  if (!rc) rc = read_into(r, f, "adam.v", r->optim->v, 2, err);
  if (!rc && r->best) {
    if (fb_st_find(f, "best"))
      rc = read_into(r, f, "best", r->best, 3, err);
    else
      r->be->copy(r->best, r->params, r->n * sizeof *r->best);
  }
  fb_st_close(f);
  if (rc) return fb_err_prefix(err, "%s", path);
  r->step = (int)step;
  r->optim->t = (int)t;
  r->bad_evals = (int)bad;
  *found = 1;
  return 0;
}
