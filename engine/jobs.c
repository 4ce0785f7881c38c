/* jobs.c: the job registry of jobs.h (the files it is split into: jobs_impl.h): single flight
 * per skill, a run limit with a FIFO queue, start, cancel and resume, stale takeover, open and
 * close. */
#include "jobs_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "memcg.h"

static const char *const state_names[] = {"queued",    "running",     "succeeded", "failed",
                                          "cancelled", "interrupted", "unreadable"};

const char *fb_job_state_name(fb_job_state s) { return state_names[s]; }

fb_job_state jobs_state_named(const char *name) {
  for (int i = 0; name && i < (int)(sizeof state_names / sizeof *state_names); i++)
    if (strcmp(name, state_names[i]) == 0) return (fb_job_state)i;
  return (fb_job_state)-1;
}

int fb_jobs_check_skill(const char *skill, fb_err *err) {
  size_t n = strlen(skill);
  if (n == 0 || n > FB_JOB_SKILL_MAX)
    return fb_err_set(err, FB_EINVALID, "skill: must be 1 to %d characters", FB_JOB_SKILL_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = skill[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return fb_err_set(err, FB_EINVALID, "skill '%s': only a-z, 0-9, '_' and '-' are allowed",
                        skill);
  }
  return 0;
}

/* ---- the queue ------------------------------------------------------------------------ */

static int count_running(const fb_jobs *r) {
  int n = 0;
  for (const fb_job *j = r->jobs; j; j = j->next) n += j->state == FB_JOB_RUNNING;
  return n;
}

static void dequeue(fb_jobs *r, const fb_job *job) {
  for (int i = 0; i < r->queue_n; i++)
    if (r->queue[i] == job) {
      memmove(r->queue + i, r->queue + i + 1, (r->queue_n - i - 1) * sizeof *r->queue);
      r->queue_n--;
      return;
    }
}

int jobs_enqueue(fb_jobs *r, fb_job *job, fb_err *err) {
  if (r->queue_n == r->queue_cap) {
    int cap = r->queue_cap ? r->queue_cap * 2 : 8;
    fb_job **q = realloc(r->queue, cap * sizeof *q);
    if (!q) return fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
    r->queue = q;
    r->queue_cap = cap;
  }
  r->queue[r->queue_n++] = job;
  return 0;
}

/* Start queued jobs while there is room. */
void jobs_pump(fb_jobs *r) {
  while (!r->closed && r->queue_n > 0 && count_running(r) < r->max_running) {
    fb_job *job = r->queue[0];
    dequeue(r, job);
    fb_err err = {0};
    job->slurm_id[0] = job->slurm_state[0] = job->slurm_reason[0] = '\0'; /* the last run's */
    if (r->exec->start(r, job, &err) == 0) {
      jobs_set_state(r, job, FB_JOB_RUNNING, NULL);
    } else {
      jobs_log_add(job, err.msg);
      jobs_set_state(r, job, FB_JOB_FAILED, err.msg);
    }
  }
}

int fb_jobs_queue_place(const fb_jobs *r, const fb_job *job) {
  for (int i = 0; i < r->queue_n; i++)
    if (r->queue[i] == job) return i + 1;
  return 0;
}

/* ---- start, cancel, resume ------------------------------------------------------------ */

static fb_job *live_job(const fb_jobs *r, const char *skill) {
  for (fb_job *j = r->jobs; j; j = j->next)
    if (is_live(j) && strcmp(j->skill, skill) == 0) return j;
  return NULL;
}

/* A fresh job directory named for the wall clock: jobs/YYYYmmdd-HHMMSS-mmm[-N]. */
static int make_job_dir(fb_jobs *r, fb_job *job, fb_err *err) {
  int64_t ms = wall_ms();
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[20];
  strftime(base, sizeof base, "%Y%m%d-%H%M%S", &tm);
  char path[PATH_MAX];
  for (int n = 1; n < 1000; n++) {
    if (n == 1)
      snprintf(job->id, sizeof job->id, "%s-%03d", base, (int)(ms % 1000));
    else
      snprintf(job->id, sizeof job->id, "%s-%03d-%d", base, (int)(ms % 1000), n);
    job_path(path, sizeof path, r, job->id, NULL);
    if (mkdir(path, 0755) == 0) {
      job->created_at = ms;
      return 0;
    }
    if (errno != EEXIST) return fb_err_set(err, FB_EIO, "%s: %s", path, strerror(errno));
  }
  return fb_err_set(err, FB_EIO, "%s: no free job id", path);
}

/* Insert job in the list, newest first (created_at, then id). */
void jobs_insert(fb_jobs *r, fb_job *job) {
  fb_job **p = &r->jobs;
  while (*p && ((*p)->created_at > job->created_at ||
                ((*p)->created_at == job->created_at && strcmp((*p)->id, job->id) > 0)))
    p = &(*p)->next;
  job->next = *p;
  *p = job;
}

/* The executor of a running job: the one that started it (or followed it after an open). */
static const jobs_executor *exec_of(const fb_job *job) {
  return job->run ? &jobs_slurm_executor : &jobs_local_executor;
}

static int stale(const fb_jobs *r, const fb_job *job) {
  return job->state == FB_JOB_RUNNING && now_ms() - job->heartbeat_ms >= r->stale_after_ms;
}

static void take_over(fb_jobs *r, fb_job *job) {
  char reason[128];
  snprintf(reason, sizeof reason, "stale: no heartbeat for %llu s",
           (unsigned long long)((now_ms() - job->heartbeat_ms) / 1000));
  exec_of(job)->abandon(r, job);
  jobs_set_state(r, job, FB_JOB_FAILED, reason);
}

/* Every so often (a quarter of stale_after, at most a minute): fail the stale jobs. */
static void on_sweep(uv_timer_t *t) {
  fb_jobs *r = t->data;
  for (fb_job *job = r->jobs; job && !r->closed; job = job->next)
    if (stale(r, job)) take_over(r, job);
}

static uint64_t sweep_every_ms(const fb_jobs *r) {
  uint64_t ms = r->stale_after_ms / 4;
  return ms < 10 ? 10 : ms > 60000 ? 60000 : ms;
}

int fb_jobs_start(fb_jobs *r, const char *skill, const char *spec, fb_job **out, fb_err *err) {
  return fb_jobs_start_needing(r, skill, spec, 0, out, err);
}

int fb_jobs_start_needing(fb_jobs *r, const char *skill, const char *spec, int64_t memory_bytes,
                          fb_job **out, fb_err *err) {
  *out = NULL;
  int rc = fb_jobs_check_skill(skill, err);
  if (rc != 0) return rc;
  if (memory_bytes < 0) return fb_err_set(err, FB_EINVALID, "memory_bytes: must be >= 0");
  cJSON *parsed = cJSON_Parse(spec);
  int is_obj = cJSON_IsObject(parsed);
  cJSON_Delete(parsed);
  if (!is_obj) return fb_err_set(err, FB_EINVALID, "spec: not a JSON object");
  fb_job *live = live_job(r, skill);
  if (live && !stale(r, live)) {
    *out = live;
    return 1;
  }
  if (live) take_over(r, live);
  fb_job *job = jobs_new_job();
  if (!job || !(job->spec = strdup(spec))) {
    if (job) jobs_free_job(job);
    return fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  }
  snprintf(job->skill, sizeof job->skill, "%s", skill);
  job->memory_bytes = memory_bytes;
  char path[PATH_MAX];
  rc = make_job_dir(r, job, err);
  if (rc == 0) {
    job_path(path, sizeof path, r, job->id, "spec.json");
    rc = fb_write_file_atomic(path, spec, strlen(spec), err);
  }
  if (rc == 0) rc = jobs_enqueue(r, job, err);
  if (rc != 0) {
    jobs_free_job(job);
    return rc;
  }
  job->created_ms = now_ms();
  jobs_insert(r, job);
  job->state = FB_JOB_QUEUED;
  jobs_save(r, job); /* job.json before progress.jsonl: see remove_unstarted */
  jobs_set_state(r, job, FB_JOB_QUEUED, NULL);
  jobs_pump(r);
  *out = job;
  return 0;
}

int fb_jobs_cancel(fb_jobs *r, fb_job *job, fb_err *err) {
  if (job->state == FB_JOB_QUEUED) {
    dequeue(r, job);
    jobs_set_state(r, job, FB_JOB_CANCELLED, "cancelled before it started");
    return 0;
  }
  if (job->state != FB_JOB_RUNNING || (!job->proc && !job->run))
    return fb_err_set(err, FB_EINVALID, "job %s is %s, not running or queued", job->id,
                      fb_job_state_name(job->state));
  exec_of(job)->cancel(r, job);
  return 0;
}

int fb_jobs_resume(fb_jobs *r, fb_job *job, fb_job **live, fb_err *err) {
  *live = NULL;
  if (job->state == FB_JOB_SUCCEEDED || job->state == FB_JOB_UNREADABLE)
    return fb_err_set(err, FB_EINVALID, "job %s is %s: nothing to resume", job->id,
                      fb_job_state_name(job->state));
  /* An interrupted or cancelled job may start over from step 0; a failed one only goes on. */
  if (job->state == FB_JOB_FAILED && job->checkpoint_step < 0)
    return fb_err_set(err, FB_EINVALID,
                      "job %s failed before its first checkpoint (%s): nothing to resume; start "
                      "a new job",
                      job->id, job->reason);
  fb_job *other = live_job(r, job->skill); /* the job itself, when it is live */
  if (other) {
    *live = other;
    return 1;
  }
  int rc = jobs_enqueue(r, job, err);
  if (rc != 0) return rc;
  jobs_set_str(&job->error_message, NULL);
  jobs_set_str(&job->error_where, NULL);
  job->finished_at = 0;
  job->finished_ms = 0;
  jobs_set_state(r, job, FB_JOB_QUEUED, NULL);
  jobs_pump(r);
  return 0;
}

fb_job *fb_jobs_get(const fb_jobs *r, const char *id) {
  for (fb_job *j = r->jobs; j; j = j->next)
    if (strcmp(j->id, id) == 0) return j;
  return NULL;
}

fb_job *fb_jobs_latest(const fb_jobs *r, const char *skill) {
  fb_job *live = live_job(r, skill);
  if (live) return live;
  for (fb_job *j = r->jobs; j; j = j->next) /* an unreadable job is nobody's current one */
    if (j->state != FB_JOB_UNREADABLE && strcmp(j->skill, skill) == 0) return j;
  return NULL;
}

fb_job *fb_jobs_next(const fb_jobs *r, const fb_job *prev) { return prev ? prev->next : r->jobs; }

/* ---- open and close ------------------------------------------------------------------- */

static char **copy_argv(const char *const *argv) {
  int n = 0;
  while (argv[n]) n++;
  char **out = calloc(n + 1, sizeof *out);
  for (int i = 0; out && i < n; i++) {
    if ((out[i] = strdup(argv[i])) != NULL) continue;
    while (i > 0) free(out[--i]);
    free(out);
    return NULL;
  }
  return out;
}

static void free_registry(uv_handle_t *h) {
  fb_jobs *r = h->data;
  if (--r->open_timers > 0) return;
  while (r->jobs) {
    fb_job *j = r->jobs;
    r->jobs = j->next;
    jobs_free_job(j);
  }
  while (r->subs) {
    fb_jobs_sub *s = r->subs;
    r->subs = s->next;
    free(s);
  }
  for (int i = 0; r->worker && r->worker[i]; i++) free(r->worker[i]);
  free(r->worker);
  for (int i = 0; i < r->nreports; i++) free(r->reports[i]);
  free(r->reports);
  free(r->queue);
  free(r->data_dir);
  jobs_slurm_free(r);
  free(r);
}

static void close_timers(fb_jobs *r) {
  uv_close((uv_handle_t *)&r->flush_timer, free_registry);
  uv_close((uv_handle_t *)&r->sweep_timer, free_registry);
  uv_close((uv_handle_t *)&r->poll_timer, free_registry);
}

static char *copy_opt(const char *s) { return s && *s ? strdup(s) : NULL; }

/* The executor opt names, with its options; FB_EINVALID naming the field. */
static int set_executor(fb_jobs *r, const fb_jobs_options *opt, fb_err *err) {
  r->exec = &jobs_local_executor;
  if (!opt->executor || strcmp(opt->executor, "local") == 0) return 0;
  if (strcmp(opt->executor, "slurm") != 0)
    return fb_err_set(err, FB_EINVALID, "executor: '%s' is not local or slurm", opt->executor);
  if (opt->slurm.mem_mb < 0) return fb_err_set(err, FB_EINVALID, "slurm.mem_mb: must be >= 0");
  r->exec = &jobs_slurm_executor;
  r->slurm.partition = copy_opt(opt->slurm.partition);
  r->slurm.account = copy_opt(opt->slurm.account);
  r->slurm.time_limit = copy_opt(opt->slurm.time_limit);
  r->slurm.mem_mb = opt->slurm.mem_mb;
  r->slurm.poll_ms = opt->slurm.poll_ms ? opt->slurm.poll_ms : 2000;
  return 0;
}

int fb_jobs_open(uv_loop_t *loop, const fb_jobs_options *opt, fb_jobs **out, fb_err *err) {
  *out = NULL;
  if (!opt->data_dir || !opt->data_dir[0])
    return fb_err_set(err, FB_EINVALID, "jobs: data_dir is required");
  int rc = fb_mkdir_p(opt->data_dir, err);
  if (rc != 0) return rc;
  fb_jobs *r = calloc(1, sizeof *r);
  if (!r) return fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  r->loop = loop;
  r->lock_fd = -1;
  r->stale_after_ms = opt->stale_after_ms ? opt->stale_after_ms : DEFAULT_STALE_MS;
  r->kill_grace_ms = opt->kill_grace_ms ? opt->kill_grace_ms : DEFAULT_GRACE_MS;
  r->max_running = opt->max_running > 0 ? opt->max_running : 1;
  r->data_dir = strdup(opt->data_dir);
  if (fb_memcg_self(r->memcg_root, sizeof r->memcg_root) != 0) r->memcg_root[0] = '\0';
  char exe[PATH_MAX];
  size_t exe_len = sizeof exe;
  if (opt->worker) {
    r->worker = copy_argv(opt->worker);
  } else if ((rc = uv_exepath(exe, &exe_len)) == 0) {
    r->worker = copy_argv((const char *const[]){exe, "worker", NULL});
  }
  uv_timer_t *timers[] = {&r->flush_timer, &r->sweep_timer, &r->poll_timer};
  for (int i = 0; i < 3; i++) {
    uv_timer_init(loop, timers[i]);
    uv_unref((uv_handle_t *)timers[i]); /* none keeps the loop alive */
    timers[i]->data = r;
  }
  r->open_timers = 3;
  int erc = set_executor(r, opt, err);
  if (erc != 0)
    rc = erc;
  else if (rc != 0)
    rc = fb_err_set(err, FB_EIO, "jobs: cannot find this executable: %s", uv_strerror(rc));
  else if (!r->data_dir || !r->worker)
    rc = fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  if (rc == 0) rc = jobs_take_lock(r, err);
  if (rc == 0) rc = jobs_load(r, err);
  /* Workers that outlived a closed or crashed registry (the orphans load_jobs killed) are gone. */
  if (rc == 0 && r->memcg_root[0]) fb_memcg_sweep(r->memcg_root, MEMCG_PREFIX);
  if (rc != 0) {
    if (r->lock_fd >= 0) close(r->lock_fd);
    r->closed = 1;
    close_timers(r);
    return rc;
  }
  uv_timer_start(&r->sweep_timer, on_sweep, sweep_every_ms(r), sweep_every_ms(r));
  jobs_pump(r);
  *out = r;
  return 0;
}

void fb_jobs_close(fb_jobs *r) {
  if (r->closed) return;
  r->closed = 1;                /* no listener calls, no new workers from here on */
  jobs_local_executor.close(r); /* a registry that switched executor may have both kinds */
  jobs_slurm_executor.close(r);
  for (fb_job *job = r->jobs; job; job = job->next)
    if (job->dirty) jobs_save(r, job);
  close(r->lock_fd);
  close_timers(r);
}

const char *const *fb_jobs_reports(const fb_jobs *r) {
  static const char *const none[] = {NULL};
  return r->reports ? (const char *const *)r->reports : none;
}
