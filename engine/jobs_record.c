/* jobs_record.c: a job as the registry keeps it: its record (log tail, fields), as JSON for
 * clients and job.json (written now, or within SAVE_EVERY_MS of progress), rebuilt from
 * job.json at open, and its events read back from progress.jsonl. */
#include "jobs_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

void jobs_log_add(fb_job *job, const char *line) {
  free(job->log_tail[job->log_next]);
  job->log_tail[job->log_next] = strdup(line);
  job->log_next = (job->log_next + 1) % FB_JOB_LOG_LINES;
}

void jobs_set_str(char **dst, const char *s) {
  free(*dst);
  *dst = s ? strdup(s) : NULL;
}

void jobs_free_job(fb_job *job) {
  free(job->spec);
  cJSON_Delete(job->progress);
  cJSON_Delete(job->loss_history);
  cJSON_Delete(job->eval_history);
  cJSON_Delete(job->samples);
  cJSON_Delete(job->summary);
  free(job->adapter);
  free(job->error_message);
  free(job->error_where);
  free(job->set_aside);
  for (int i = 0; i < FB_JOB_LOG_LINES; i++) free(job->log_tail[i]);
  free(job);
}

static void add_time(cJSON *o, const char *name, int64_t ms) {
  if (ms)
    cJSON_AddNumberToObject(o, name, (double)ms);
  else
    cJSON_AddNullToObject(o, name);
}

static void add_copy(cJSON *o, const char *name, const cJSON *v) {
  if (v)
    cJSON_AddItemToObject(o, name, cJSON_Duplicate(v, 1));
  else
    cJSON_AddNullToObject(o, name);
}

void jobs_add_str(cJSON *o, const char *name, const char *s) {
  if (s)
    cJSON_AddStringToObject(o, name, s);
  else
    cJSON_AddNullToObject(o, name);
}

static cJSON *log_json(const fb_job *job) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < FB_JOB_LOG_LINES; i++) {
    const char *line = job->log_tail[(job->log_next + i) % FB_JOB_LOG_LINES];
    if (line) cJSON_AddItemToArray(a, cJSON_CreateString(line));
  }
  return a;
}

cJSON *fb_job_to_json(const fb_jobs *r, const fb_job *job) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "id", job->id);
  jobs_add_str(o, "skill", job->skill[0] ? job->skill : NULL); /* "" only for an unreadable job */
  cJSON_AddStringToObject(o, "state", fb_job_state_name(job->state));
  jobs_add_str(o, "reason", job->reason[0] ? job->reason : NULL);
  if (job->state == FB_JOB_QUEUED) cJSON_AddNumberToObject(o, "place", fb_jobs_queue_place(r, job));
  add_time(o, "created_at", job->created_at);
  add_time(o, "started_at", job->started_at);
  add_time(o, "finished_at", job->finished_at);
  add_time(o, "heartbeat_at", job->heartbeat_at);
  add_copy(o, "progress", job->progress);
  add_copy(o, "loss_history", job->loss_history);
  add_copy(o, "eval_history", job->eval_history);
  add_copy(o, "samples", job->samples);
  add_copy(o, "summary", job->summary);
  jobs_add_str(o, "adapter", job->adapter);
  if (job->error_message || job->state == FB_JOB_FAILED) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    jobs_add_str(e, "message", job->error_message ? job->error_message : job->reason);
    jobs_add_str(e, "where", job->error_where);
    cJSON_AddItemToObject(e, "log", log_json(job));
  } else {
    cJSON_AddNullToObject(o, "error");
  }
  cJSON_AddItemToObject(o, "log_tail", log_json(job));
  if (job->checkpoint_step >= 0)
    cJSON_AddNumberToObject(o, "checkpoint_step", (double)job->checkpoint_step);
  else
    cJSON_AddNullToObject(o, "checkpoint_step");
  cJSON_AddNumberToObject(o, "pid", (double)job->pid);
  if (job->memory_bytes)
    cJSON_AddNumberToObject(o, "memory_bytes", (double)job->memory_bytes);
  else
    cJSON_AddNullToObject(o, "memory_bytes");
  if (job->slurm_id[0]) {
    cJSON *sl = cJSON_AddObjectToObject(o, "slurm");
    cJSON_AddStringToObject(sl, "id", job->slurm_id);
    jobs_add_str(sl, "state", job->slurm_state[0] ? job->slurm_state : NULL);
    jobs_add_str(sl, "reason", job->slurm_reason[0] ? job->slurm_reason : NULL);
  } else {
    cJSON_AddNullToObject(o, "slurm");
  }
  cJSON_AddNumberToObject(o, "seq", (double)job->seq);
  if (job->state == FB_JOB_UNREADABLE) jobs_add_str(o, "set_aside", job->set_aside);
  return o;
}

static cJSON *take(cJSON *o, const char *name, int want_array) {
  cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(o, name);
  if (v && (want_array ? cJSON_IsArray(v) : cJSON_IsObject(v))) return v;
  cJSON_Delete(v);
  return want_array ? cJSON_CreateArray() : NULL;
}

/* Rebuild a job from job.json; FB_EFORMAT naming the field at fault. */
int jobs_from_json(cJSON *o, fb_job *job, fb_err *err) {
  const char *id = get_str(o, "id"), *skill = get_str(o, "skill"), *state = get_str(o, "state");
  if (!id || strlen(id) >= FB_JOB_ID_MAX)
    return fb_err_set(err, FB_EFORMAT, "field 'id' missing or too long");
  if (!skill || fb_jobs_check_skill(skill, NULL))
    return fb_err_set(err, FB_EFORMAT, "field 'skill' missing or invalid");
  int s = (int)jobs_state_named(state);
  if (s < 0) return fb_err_set(err, FB_EFORMAT, "field 'state' missing or unknown");
  snprintf(job->id, sizeof job->id, "%s", id);
  snprintf(job->skill, sizeof job->skill, "%s", skill);
  job->state = (fb_job_state)s;
  snprintf(job->reason, sizeof job->reason, "%s", get_str(o, "reason") ? get_str(o, "reason") : "");
  job->created_at = (int64_t)get_num(o, "created_at", 0);
  job->started_at = (int64_t)get_num(o, "started_at", 0);
  job->finished_at = (int64_t)get_num(o, "finished_at", 0);
  job->heartbeat_at = (int64_t)get_num(o, "heartbeat_at", 0);
  cJSON **fields[] = {&job->progress, &job->loss_history, &job->eval_history, &job->samples,
                      &job->summary};
  const char *names[] = {"progress", "loss_history", "eval_history", "samples", "summary"};
  for (int i = 0; i < 5; i++) {
    cJSON_Delete(*fields[i]);
    *fields[i] = take(o, names[i], i >= 1 && i <= 3);
  }
  jobs_set_str(&job->adapter, get_str(o, "adapter"));
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
  if (cJSON_IsObject(e) && get_str(e, "where"))
    jobs_set_str(&job->error_where, get_str(e, "where"));
  if (cJSON_IsObject(e) && get_str(e, "message") && strcmp(get_str(e, "message"), job->reason) != 0)
    jobs_set_str(&job->error_message, get_str(e, "message"));
  const cJSON *line;
  cJSON_ArrayForEach(line,
                     cJSON_GetObjectItemCaseSensitive(o, "log_tail")) if (cJSON_IsString(line))
      jobs_log_add(job, line->valuestring);
  job->checkpoint_step = (int64_t)get_num(o, "checkpoint_step", -1);
  job->pid = (long)get_num(o, "pid", 0);
  job->memory_bytes = (int64_t)get_num(o, "memory_bytes", 0);
  const cJSON *sl = cJSON_GetObjectItemCaseSensitive(o, "slurm");
  if (cJSON_IsObject(sl) && get_str(sl, "id")) {
    snprintf(job->slurm_id, sizeof job->slurm_id, "%s", get_str(sl, "id"));
    snprintf(job->slurm_state, sizeof job->slurm_state, "%s",
             get_str(sl, "state") ? get_str(sl, "state") : "");
    snprintf(job->slurm_reason, sizeof job->slurm_reason, "%s",
             get_str(sl, "reason") ? get_str(sl, "reason") : "");
  }
  job->seq = (int64_t)get_num(o, "seq", 0);
  return 0;
}

void jobs_save(fb_jobs *r, fb_job *job) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, job->id, "job.json");
  cJSON *o = fb_job_to_json(r, job);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  fb_err err = {0};
  if (!text)
    fb_warn("jobs: %s: out of memory", path);
  else if (fb_write_file_atomic(path, text, strlen(text), &err) != 0)
    fb_warn("jobs: %s", err.msg);
  free(text);
  job->dirty = 0;
  job->saved_ms = now_ms();
}

static void on_flush(uv_timer_t *t) {
  fb_jobs *r = t->data;
  for (fb_job *job = r->jobs; job; job = job->next)
    if (job->dirty) jobs_save(r, job);
}

/* job.json after progress: now, or within SAVE_EVERY_MS. */
void jobs_save_soon(fb_jobs *r, fb_job *job) {
  uint64_t since = now_ms() - job->saved_ms;
  if (since >= SAVE_EVERY_MS) {
    jobs_save(r, job);
    return;
  }
  job->dirty = 1;
  if (!uv_is_active((uv_handle_t *)&r->flush_timer))
    uv_timer_start(&r->flush_timer, on_flush, SAVE_EVERY_MS - since, 0);
}

fb_job *jobs_new_job(void) {
  fb_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->checkpoint_step = -1;
  job->loss_history = cJSON_CreateArray();
  job->eval_history = cJSON_CreateArray();
  job->samples = cJSON_CreateArray();
  return job;
}

int fb_jobs_events(fb_jobs *r, const fb_job *job, int64_t after,
                   void (*fn)(void *ud, const cJSON *ev), void *ud, fb_err *err) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, job->id, "progress.jsonl");
  char *buf;
  size_t len;
  if (access(path, F_OK) != 0) return 0;
  int rc = fb_read_file(path, &buf, &len, PROGRESS_MAX, err);
  if (rc != 0) return rc;
  int n = 0;
  for (char *line = buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    *nl = 0;
    cJSON *ev = cJSON_Parse(line); /* a line cut by a crash does not parse: skipped */
    if (ev && get_num(ev, "seq", 0) > (double)after) {
      fn(ud, ev);
      n++;
    }
    cJSON_Delete(ev);
  }
  free(buf);
  return n;
}
