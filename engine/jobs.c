/* jobs.c: the job registry of jobs.h: single flight per skill, a run limit with a FIFO queue,
 * worker processes read as JSON lines, states and reasons, job.json/progress.jsonl on disk,
 * the data directory lock, recovery on open, numbered events to listeners.
 * It does not train or interpret specs (workers do), except to settle on open what a killed
 * worker left of the output it was writing to the spec's `out`. */
#include "jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "memcg.h"
#include "output.h"

#define DEFAULT_STALE_MS (30 * 60 * 1000ull)
#define DEFAULT_GRACE_MS 10000ull
#define SAVE_EVERY_MS 2000
#define DRAIN_MS 2000  /* how long the pipes of an exited worker may stay open */
#define LINE_MAX_BYTES (1 << 20)  /* a longer worker line is dropped */
#define LOSS_HISTORY_MAX 2000     /* thinned by half beyond this */
#define SAMPLES_MAX 8
#define JOB_JSON_MAX (64 << 20)
#define PROGRESS_MAX (512 << 20)
#define EXIT_NOMEM 4              /* docs/protocol.md: the worker ran out of memory */
#define EXIT_DEVICE_FAULT 70      /* docs/protocol.md: the GPU failed (a CUDA fault) */
#define WORKER_RECORD "worker.jsonl" /* the worker's own copy of its stdout lines, this run */
#define ORPHAN_WAIT_MS 2000       /* how long open waits for a killed orphan to go */
/* A worker's memory cgroup is MEMCG_PREFIX "<registry pid>-<worker pid>" (memcg.h): with the
 * registry's pid in the name, another server's sweep leaves this one's cgroups alone. */
#define MEMCG_PREFIX "fastbrain-worker-"

typedef struct linebuf {
  char *buf;
  size_t len, cap;
  int dropping;  /* inside a line over LINE_MAX_BYTES: skip to its end */
} linebuf;

/* A worker process and its handles; freed when the last of its four handles has closed. */
typedef struct job_proc {
  uv_process_t process;
  uv_pipe_t out, err;
  uv_timer_t kill_timer; /* SIGKILL after the grace; once exited, the drain timeout */
  fb_jobs *r;  /* NULL once the registry closed */
  fb_job *job; /* NULL once detached (the job ended without it: stale, registry closed) */
  int open_handles, closing;
  int exited, out_eof, err_eof, done_seen, cancel_requested;
  int64_t exit_status;
  int term_signal;
  int oom_killed; /* the kernel's OOM killer counted a kill in the worker's memory cgroup */
  char memcg[PATH_MAX]; /* the worker's own memory cgroup, "" when none */
  linebuf outl, errl;
  struct job_proc *next; /* the registry's list of live workers */
} job_proc;

struct fb_jobs_sub {
  fb_jobs_sub *next;
  char skill[FB_JOB_SKILL_MAX + 1]; /* "" for every job */
  fb_jobs_listener fn;
  void *ud;
  int dead;
};

struct fb_jobs {
  uv_loop_t *loop;
  char *data_dir;
  char **worker; /* NULL-terminated */
  uint64_t stale_after_ms, kill_grace_ms;
  int max_running;
  int lock_fd;
  fb_job *jobs;         /* newest first */
  fb_job **queue;       /* FIFO */
  int queue_n, queue_cap;
  fb_jobs_sub *subs;
  int dispatching;
  uv_timer_t flush_timer; /* writes job.json of jobs whose progress is behind */
  uv_timer_t sweep_timer; /* fails stale jobs even when no start comes */
  int open_timers;        /* the registry is freed when both timers have closed */
  char **reports;
  int nreports;
  struct job_proc *procs; /* every worker not yet exited, stale ones included */
  char memcg_root[PATH_MAX]; /* where workers get memory cgroups of their own, "" for none */
  int closed;
};

static const char *const state_names[] = {"queued",    "running",     "succeeded", "failed",
                                          "cancelled", "interrupted", "unreadable"};

const char *fb_job_state_name(fb_job_state s) { return state_names[s]; }

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_live(const fb_job *job) {
  return job->state == FB_JOB_QUEUED || job->state == FB_JOB_RUNNING;
}

static void job_path(char *dst, size_t n, const fb_jobs *r, const char *id, const char *file) {
  snprintf(dst, n, "%s/jobs/%s%s%s", r->data_dir, id, file ? "/" : "", file ? file : "");
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

/* ---- the job record ------------------------------------------------------------------- */

static void log_add(fb_job *job, const char *line) {
  free(job->log_tail[job->log_next]);
  job->log_tail[job->log_next] = strdup(line);
  job->log_next = (job->log_next + 1) % FB_JOB_LOG_LINES;
}

static void set_str(char **dst, const char *s) {
  free(*dst);
  *dst = s ? strdup(s) : NULL;
}

static void free_job(fb_job *job) {
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
  if (ms) cJSON_AddNumberToObject(o, name, (double)ms);
  else cJSON_AddNullToObject(o, name);
}

static void add_copy(cJSON *o, const char *name, const cJSON *v) {
  if (v) cJSON_AddItemToObject(o, name, cJSON_Duplicate(v, 1));
  else cJSON_AddNullToObject(o, name);
}

static void add_str(cJSON *o, const char *name, const char *s) {
  if (s) cJSON_AddStringToObject(o, name, s);
  else cJSON_AddNullToObject(o, name);
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
  add_str(o, "skill", job->skill[0] ? job->skill : NULL);  /* "" only for an unreadable job */
  cJSON_AddStringToObject(o, "state", fb_job_state_name(job->state));
  add_str(o, "reason", job->reason[0] ? job->reason : NULL);
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
  add_str(o, "adapter", job->adapter);
  if (job->error_message || job->state == FB_JOB_FAILED) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    add_str(e, "message", job->error_message ? job->error_message : job->reason);
    add_str(e, "where", job->error_where);
    cJSON_AddItemToObject(e, "log", log_json(job));
  } else {
    cJSON_AddNullToObject(o, "error");
  }
  cJSON_AddItemToObject(o, "log_tail", log_json(job));
  if (job->checkpoint_step >= 0) cJSON_AddNumberToObject(o, "checkpoint_step", (double)job->checkpoint_step);
  else cJSON_AddNullToObject(o, "checkpoint_step");
  cJSON_AddNumberToObject(o, "pid", (double)job->pid);
  cJSON_AddNumberToObject(o, "seq", (double)job->seq);
  if (job->state == FB_JOB_UNREADABLE) add_str(o, "set_aside", job->set_aside);
  return o;
}

static const char *get_str(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double get_num(const cJSON *o, const char *name, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static cJSON *take(cJSON *o, const char *name, int want_array) {
  cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(o, name);
  if (v && (want_array ? cJSON_IsArray(v) : cJSON_IsObject(v))) return v;
  cJSON_Delete(v);
  return want_array ? cJSON_CreateArray() : NULL;
}

/* Rebuild a job from job.json; FB_EFORMAT naming the field at fault. */
static int job_from_json(cJSON *o, fb_job *job, fb_err *err) {
  const char *id = get_str(o, "id"), *skill = get_str(o, "skill"), *state = get_str(o, "state");
  if (!id || strlen(id) >= FB_JOB_ID_MAX) return fb_err_set(err, FB_EFORMAT, "field 'id' missing or too long");
  if (!skill || fb_jobs_check_skill(skill, NULL)) return fb_err_set(err, FB_EFORMAT, "field 'skill' missing or invalid");
  int s = -1;
  for (int i = 0; state && i < (int)(sizeof state_names / sizeof *state_names); i++)
    if (strcmp(state, state_names[i]) == 0) s = i;
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
  set_str(&job->adapter, get_str(o, "adapter"));
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
  if (cJSON_IsObject(e) && get_str(e, "where")) set_str(&job->error_where, get_str(e, "where"));
  if (cJSON_IsObject(e) && get_str(e, "message") && strcmp(get_str(e, "message"), job->reason) != 0)
    set_str(&job->error_message, get_str(e, "message"));
  const cJSON *line;
  cJSON_ArrayForEach(line, cJSON_GetObjectItemCaseSensitive(o, "log_tail"))
    if (cJSON_IsString(line)) log_add(job, line->valuestring);
  job->checkpoint_step = (int64_t)get_num(o, "checkpoint_step", -1);
  job->pid = (long)get_num(o, "pid", 0);
  job->seq = (int64_t)get_num(o, "seq", 0);
  return 0;
}

static void save_job(fb_jobs *r, fb_job *job) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, job->id, "job.json");
  cJSON *o = fb_job_to_json(r, job);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  fb_err err = {0};
  if (!text) fb_warn("jobs: %s: out of memory", path);
  else if (fb_write_file_atomic(path, text, strlen(text), &err) != 0) fb_warn("jobs: %s", err.msg);
  free(text);
  job->dirty = 0;
  job->saved_ms = now_ms();
}

static void on_flush(uv_timer_t *t) {
  fb_jobs *r = t->data;
  for (fb_job *job = r->jobs; job; job = job->next)
    if (job->dirty) save_job(r, job);
}

/* job.json after progress: now, or within SAVE_EVERY_MS. */
static void save_soon(fb_jobs *r, fb_job *job) {
  uint64_t since = now_ms() - job->saved_ms;
  if (since >= SAVE_EVERY_MS) {
    save_job(r, job);
    return;
  }
  job->dirty = 1;
  if (!uv_is_active((uv_handle_t *)&r->flush_timer))
    uv_timer_start(&r->flush_timer, on_flush, SAVE_EVERY_MS - since, 0);
}

/* ---- events --------------------------------------------------------------------------- */

static void append_line(const char *path, const char *text) {
  size_t n = strlen(text);
  char *line = malloc(n + 1);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (line) {
    memcpy(line, text, n);
    line[n] = '\n';  /* one write per line, so a reader never sees half of one */
  }
  if (fd < 0 || !line || write(fd, line, n + 1) != (ssize_t)(n + 1))
    fb_warn("jobs: %s: cannot append: %s", path, line ? strerror(errno) : "out of memory");
  free(line);
  if (fd >= 0) close(fd);
}

static void sweep_subs(fb_jobs *r) {
  for (fb_jobs_sub **p = &r->subs; *p;) {
    fb_jobs_sub *s = *p;
    if (s->dead) {
      *p = s->next;
      free(s);
    } else {
      p = &s->next;
    }
  }
}

/* Number ev (an object with "event"; consumed), append it to progress.jsonl, write job.json
 * when `save` (so it holds the event's seq before any listener runs), call listeners. */
static void emit(fb_jobs *r, fb_job *job, cJSON *ev, int save) {
  job->seq++;
  cJSON_AddNumberToObject(ev, "seq", (double)job->seq);
  cJSON_AddStringToObject(ev, "job", job->id);
  cJSON_AddStringToObject(ev, "skill", job->skill);
  char *text = cJSON_PrintUnformatted(ev);
  if (text) {
    char path[PATH_MAX];
    job_path(path, sizeof path, r, job->id, "progress.jsonl");
    append_line(path, text);
    free(text);
  }
  if (save) save_job(r, job);
  fb_job_event e = {job->seq, get_str(ev, "event"), ev};
  r->dispatching++;
  for (fb_jobs_sub *s = r->subs; s && !r->closed; s = s->next)
    if (!s->dead && (!s->skill[0] || strcmp(s->skill, job->skill) == 0)) s->fn(s->ud, job, &e);
  if (--r->dispatching == 0) sweep_subs(r);
  cJSON_Delete(ev);
}

fb_jobs_sub *fb_jobs_subscribe(fb_jobs *r, const char *skill, fb_jobs_listener fn, void *ud) {
  fb_jobs_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  snprintf(s->skill, sizeof s->skill, "%s", skill ? skill : "");
  s->fn = fn;
  s->ud = ud;
  s->next = r->subs;
  r->subs = s;
  return s;
}

void fb_jobs_unsubscribe(fb_jobs *r, fb_jobs_sub *sub) {
  sub->dead = 1;
  if (!r->dispatching) sweep_subs(r);
}

static void pump(fb_jobs *r);

static void set_state(fb_jobs *r, fb_job *job, fb_job_state state, const char *reason) {
  int was_running = job->state == FB_JOB_RUNNING;
  job->state = state;
  snprintf(job->reason, sizeof job->reason, "%s", reason ? reason : "");
  if (state == FB_JOB_RUNNING) {
    job->started_ms = job->heartbeat_ms = now_ms();
    job->started_at = job->heartbeat_at = wall_ms();
  } else if (!is_live(job)) {
    job->finished_ms = now_ms();
    job->finished_at = wall_ms();
    job->pid = 0;
  }
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "event", "state");
  cJSON_AddStringToObject(ev, "state", fb_job_state_name(state));
  add_str(ev, "reason", job->reason[0] ? job->reason : NULL);
  if (state == FB_JOB_QUEUED) cJSON_AddNumberToObject(ev, "place", fb_jobs_queue_place(r, job));
  emit(r, job, ev, 1);
  if (was_running && state != FB_JOB_RUNNING) pump(r);
}

/* ---- worker processes ----------------------------------------------------------------- */

static void on_proc_closed(uv_handle_t *h) {
  job_proc *p = h->data;
  if (--p->open_handles == 0) {
    if (p->memcg[0] && rmdir(p->memcg) != 0)  /* a process the worker started still runs */
      fb_debug("jobs: %s: %s", p->memcg, strerror(errno));
    free(p->outl.buf);
    free(p->errl.buf);
    free(p);
  }
}

static void close_proc(job_proc *p) {
  if (p->closing) return;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->process, on_proc_closed);
  uv_close((uv_handle_t *)&p->out, on_proc_closed);
  uv_close((uv_handle_t *)&p->err, on_proc_closed);
  uv_close((uv_handle_t *)&p->kill_timer, on_proc_closed);
}

static void detach(job_proc *p) {
  if (p->job) p->job->proc = NULL;
  p->job = NULL;
}

static void on_kill_timer(uv_timer_t *t) {
  job_proc *p = t->data;
  if (!p->exited) uv_process_kill(&p->process, SIGKILL);
}

static void terminate(fb_jobs *r, job_proc *p) {
  if (p->exited) return;
  uv_process_kill(&p->process, SIGTERM);
  if (!uv_is_active((uv_handle_t *)&p->kill_timer))
    uv_timer_start(&p->kill_timer, on_kill_timer, r->kill_grace_ms, 0);
}

/* The state and reason an exited worker leaves its job in. */
static fb_job_state exit_state(const job_proc *p, const fb_job *job, char *reason, size_t n) {
  if (!p->term_signal && p->exit_status == 0 && p->done_seen) {
    reason[0] = 0;  /* done wins over a cancel that came too late */
    return FB_JOB_SUCCEEDED;
  }
  if (p->cancel_requested || (!p->term_signal && p->exit_status == 3)) {
    if (!p->term_signal && p->exit_status == 3) snprintf(reason, n, "cancelled");
    else if (p->term_signal) snprintf(reason, n, "cancelled: killed by signal %d", p->term_signal);
    else snprintf(reason, n, "cancelled: exit status %d", (int)p->exit_status);
    return FB_JOB_CANCELLED;
  }
  if (p->term_signal == SIGKILL && p->oom_killed)
    snprintf(reason, n, "out of memory (killed by the kernel)");
  else if (p->term_signal) snprintf(reason, n, "killed by signal %d", p->term_signal);
  else if (p->exit_status == 0) snprintf(reason, n, "exit status 0 without a done event");
  else if (p->exit_status == EXIT_DEVICE_FAULT)
    snprintf(reason, n, "the GPU failed: a CUDA fault ended the worker (its log has the error)");
  else if (p->exit_status == EXIT_NOMEM)
    snprintf(reason, n, "out of memory%s%s%s%s", job->error_message ? ": " : "",
             job->error_message ? job->error_message : "", job->error_where ? " at " : "",
             job->error_where ? job->error_where : "");
  else if (job->error_message)
    snprintf(reason, n, "exit status %d: %s%s%s", (int)p->exit_status, job->error_message,
             job->error_where ? " at " : "", job->error_where ? job->error_where : "");
  else snprintf(reason, n, "exit status %d", (int)p->exit_status);
  return FB_JOB_FAILED;
}

/* Once the worker has exited and both pipes reached their end: the job's final state. */
static void maybe_finish(job_proc *p) {
  if (!p->exited || !p->out_eof || !p->err_eof) return;
  fb_jobs *r = p->r;
  fb_job *job = p->job;
  for (job_proc **l = r ? &r->procs : NULL; l && *l; l = &(*l)->next)
    if (*l == p) {
      *l = p->next;
      break;
    }
  char reason[sizeof job->reason];
  fb_job_state s = job ? exit_state(p, job, reason, sizeof reason) : FB_JOB_FAILED;
  detach(p);
  close_proc(p);
  if (job && job->state == FB_JOB_RUNNING) set_state(r, job, s, reason);
}

/* A worker's pipes still open after it exited (a child of its own holds them): stop waiting. */
static void on_drain_timeout(uv_timer_t *t) {
  job_proc *p = t->data;
  p->out_eof = p->err_eof = 1;
  maybe_finish(p);
}

static void on_worker_exit(uv_process_t *h, int64_t status, int sig) {
  job_proc *p = h->data;
  p->exited = 1;
  p->exit_status = status;
  p->term_signal = sig;
  if (p->memcg[0]) {
    p->oom_killed = sig == SIGKILL && fb_memcg_oom_kills(p->memcg) > 0;
    if (rmdir(p->memcg) == 0) p->memcg[0] = '\0';
  }
  uv_timer_stop(&p->kill_timer);
  if (!p->out_eof || !p->err_eof) uv_timer_start(&p->kill_timer, on_drain_timeout, DRAIN_MS, 0);
  maybe_finish(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void heartbeat(fb_job *job) {
  job->heartbeat_ms = now_ms();
  job->heartbeat_at = wall_ms();
}

static void append_history(cJSON *hist, const cJSON *ev, const char *field) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, field);
  if (!cJSON_IsNumber(v)) return;
  cJSON *pt = cJSON_CreateArray();
  cJSON_AddItemToArray(pt, cJSON_CreateNumber(get_num(ev, "step", 0)));
  cJSON_AddItemToArray(pt, cJSON_CreateNumber(v->valuedouble));
  cJSON_AddItemToArray(hist, pt);
  if (cJSON_GetArraySize(hist) > LOSS_HISTORY_MAX)
    for (int i = cJSON_GetArraySize(hist) - 2; i > 0; i -= 2) cJSON_DeleteItemFromArray(hist, i);
}

/* A resumed run repeats the steps after its checkpoint: drop the points it will redo. */
static void trim_history(cJSON *hist, double from_step) {
  int n;
  while ((n = cJSON_GetArraySize(hist)) > 0 &&
         cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(hist, n - 1), 0)) > from_step)
    cJSON_DeleteItemFromArray(hist, n - 1);
}

/* Merge ev's fields except the protocol's own into *dst. */
static void merge_fields(cJSON **dst, const cJSON *ev) {
  if (!*dst) *dst = cJSON_CreateObject();
  const cJSON *f;
  cJSON_ArrayForEach(f, ev) {
    if (strcmp(f->string, "event") == 0) continue;
    cJSON_DeleteItemFromObjectCaseSensitive(*dst, f->string);
    cJSON_AddItemToObject(*dst, f->string, cJSON_Duplicate(f, 1));
  }
}

static cJSON *log_event(const char *level, const char *message) {
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "event", "log");
  cJSON_AddStringToObject(ev, "level", level);
  cJSON_AddStringToObject(ev, "message", message);
  return ev;
}

/* What an event of the worker tells about its job: progress, history, samples, checkpoint,
 * log, summary, error. Returns 1 for `done`. Live lines and recovery share it. */
static int apply_event(fb_job *job, const cJSON *ev, const char *type) {
  if (strcmp(type, "start") == 0) {
    merge_fields(&job->progress, ev);
    trim_history(job->loss_history, get_num(ev, "resumed_from_step", 0));
    trim_history(job->eval_history, get_num(ev, "resumed_from_step", 0));
  } else if (strcmp(type, "progress") == 0) {
    merge_fields(&job->progress, ev);
    append_history(job->loss_history, ev, "loss");
  } else if (strcmp(type, "eval") == 0) {
    append_history(job->eval_history, ev, "eval_loss");
  } else if (strcmp(type, "sample") == 0) {
    cJSON *s = NULL;
    merge_fields(&s, ev);
    cJSON_AddItemToArray(job->samples, s);
    if (cJSON_GetArraySize(job->samples) > SAMPLES_MAX) cJSON_DeleteItemFromArray(job->samples, 0);
  } else if (strcmp(type, "checkpoint") == 0) {
    job->checkpoint_step = (int64_t)get_num(ev, "step", (double)job->checkpoint_step);
  } else if (strcmp(type, "log") == 0 && get_str(ev, "message")) {
    log_add(job, get_str(ev, "message"));
  } else if (strcmp(type, "done") == 0) {
    cJSON_Delete(job->summary);
    job->summary = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ev, "summary"), 1);
    set_str(&job->adapter, get_str(ev, "adapter"));
    return 1;
  } else if (strcmp(type, "error") == 0) {
    set_str(&job->error_message, get_str(ev, "message") ? get_str(ev, "message") : "unknown error");
    set_str(&job->error_where, get_str(ev, "where"));
    log_add(job, job->error_message);
  }
  return 0;
}

/* One protocol line of a worker: update the job, then emit it as an event (numbered, on disk,
 * to listeners). A line that is not protocol becomes a warning. Returns 1 for `done`. */
static int worker_line(fb_jobs *r, fb_job *job, const char *line) {
  cJSON *ev = cJSON_Parse(line);
  const char *type = ev ? get_str(ev, "event") : NULL;
  if (!cJSON_IsObject(ev) || !type) {
    cJSON_Delete(ev);
    char msg[300];
    snprintf(msg, sizeof msg, "worker: not a protocol line: %.200s", line);
    ev = log_event("warn", msg);
    type = "log";
  }
  int done = apply_event(job, ev, type);
  save_soon(r, job);
  emit(r, job, ev, 0);
  return done;
}

static void on_out_line(job_proc *p, const char *line) {
  heartbeat(p->job);
  p->done_seen |= worker_line(p->r, p->job, line);
}

static void on_err_line(job_proc *p, const char *line) {
  heartbeat(p->job);
  log_add(p->job, line);
  emit(p->r, p->job, log_event("stderr", line), 0);
}

/* Split data into lines for fn, keeping a partial last line; lines over the cap are dropped
 * with a warning. */
static void feed_lines(job_proc *p, linebuf *lb, const char *data, size_t n,
                       void (*fn)(job_proc *, const char *)) {
  while (n > 0 && p->job) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) : n;
    if (!lb->dropping) {
      if (lb->len + take > LINE_MAX_BYTES) {
        lb->dropping = 1;
        lb->len = 0;
        emit(p->r, p->job, log_event("warn", "worker: a line over 1 MiB was dropped"), 0);
      } else {
        if (lb->len + take + 1 > lb->cap) {
          size_t cap = (lb->len + take + 1) * 2;
          char *b = realloc(lb->buf, cap);
          if (!b) return;
          lb->buf = b;
          lb->cap = cap;
        }
        memcpy(lb->buf + lb->len, data, take);
        lb->len += take;
      }
    }
    if (!nl) return;
    if (!lb->dropping) {
      lb->buf[lb->len] = 0;
      if (lb->len > 0) fn(p, lb->buf);
    }
    lb->len = 0;
    lb->dropping = 0;
    data = nl + 1;
    n -= take + 1;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  job_proc *p = s->data;
  int is_out = s == (uv_stream_t *)&p->out;
  if (nread > 0 && p->job)
    feed_lines(p, is_out ? &p->outl : &p->errl, buf->base, (size_t)nread,
               is_out ? on_out_line : on_err_line);
  free(buf->base);
  if (nread < 0) {
    uv_read_stop(s);
    if (is_out) p->out_eof = 1;
    else p->err_eof = 1;
    maybe_finish(p);
  }
}

/* Start job's worker; on failure the job is left as it was. */
static int spawn_worker(fb_jobs *r, fb_job *job, fb_err *err) {
  job_proc *p = calloc(1, sizeof *p);
  if (!p) return fb_err_set(err, FB_ENOMEM, "worker: out of memory");
  p->r = r;
  p->open_handles = 4;
  p->process.data = p->out.data = p->err.data = p->kill_timer.data = p;
  uv_pipe_init(r->loop, &p->out, 0);
  uv_pipe_init(r->loop, &p->err, 0);
  uv_timer_init(r->loop, &p->kill_timer);
  int nw = 0;
  while (r->worker[nw]) nw++;
  char dir[PATH_MAX];
  job_path(dir, sizeof dir, r, job->id, NULL);
  char record[PATH_MAX];
  job_path(record, sizeof record, r, job->id, WORKER_RECORD);
  unlink(record);  /* this run's record starts empty: recovery counts its lines from the top */
  char *args[nw + 2];
  memcpy(args, r->worker, nw * sizeof *args);
  args[nw] = dir;
  args[nw + 1] = NULL;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->err},
  };
  uv_process_options_t opt = {.exit_cb = on_worker_exit, .file = args[0], .args = args,
                              .stdio_count = 3, .stdio = stdio};
  fb_cloexec_from(3);
  int rc = uv_spawn(r->loop, &p->process, &opt);
  if (rc != 0) {
    close_proc(p);  /* the handles are initialized even when spawn fails */
    return fb_err_set(err, FB_EIO, "cannot start worker %s: %s", args[0], uv_strerror(rc));
  }
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
  if (r->memcg_root[0]) {  /* it has just exec'd: its loading is yet to come */
    char name[64];
    snprintf(name, sizeof name, MEMCG_PREFIX "%ld-%d", (long)getpid(), p->process.pid);
    fb_memcg_enter(r->memcg_root, name, p->process.pid, p->memcg, sizeof p->memcg);
  }
  p->job = job;
  job->proc = p;
  job->pid = p->process.pid;
  p->next = r->procs;
  r->procs = p;
  return 0;
}

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

static int enqueue(fb_jobs *r, fb_job *job, fb_err *err) {
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
static void pump(fb_jobs *r) {
  while (!r->closed && r->queue_n > 0 && count_running(r) < r->max_running) {
    fb_job *job = r->queue[0];
    dequeue(r, job);
    fb_err err = {0};
    if (spawn_worker(r, job, &err) == 0) {
      set_state(r, job, FB_JOB_RUNNING, NULL);
    } else {
      log_add(job, err.msg);
      set_state(r, job, FB_JOB_FAILED, err.msg);
    }
  }
}

int fb_jobs_queue_place(const fb_jobs *r, const fb_job *job) {
  for (int i = 0; i < r->queue_n; i++)
    if (r->queue[i] == job) return i + 1;
  return 0;
}

int fb_jobs_live_workers(const fb_jobs *r) {
  int n = 0;
  for (const job_proc *p = r->procs; p; p = p->next) n++;
  return n;
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
    if (n == 1) snprintf(job->id, sizeof job->id, "%s-%03d", base, (int)(ms % 1000));
    else snprintf(job->id, sizeof job->id, "%s-%03d-%d", base, (int)(ms % 1000), n);
    job_path(path, sizeof path, r, job->id, NULL);
    if (mkdir(path, 0755) == 0) {
      job->created_at = ms;
      return 0;
    }
    if (errno != EEXIST) return fb_err_set(err, FB_EIO, "%s: %s", path, strerror(errno));
  }
  return fb_err_set(err, FB_EIO, "%s: no free job id", path);
}

static fb_job *new_job(void) {
  fb_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->checkpoint_step = -1;
  job->loss_history = cJSON_CreateArray();
  job->eval_history = cJSON_CreateArray();
  job->samples = cJSON_CreateArray();
  return job;
}

/* Insert job in the list, newest first (created_at, then id). */
static void insert_job(fb_jobs *r, fb_job *job) {
  fb_job **p = &r->jobs;
  while (*p && ((*p)->created_at > job->created_at ||
                ((*p)->created_at == job->created_at && strcmp((*p)->id, job->id) > 0)))
    p = &(*p)->next;
  job->next = *p;
  *p = job;
}

static int stale(const fb_jobs *r, const fb_job *job) {
  return job->state == FB_JOB_RUNNING && now_ms() - job->heartbeat_ms >= r->stale_after_ms;
}

static void take_over(fb_jobs *r, fb_job *job) {
  char reason[128];
  snprintf(reason, sizeof reason, "stale: no heartbeat for %llu s",
           (unsigned long long)((now_ms() - job->heartbeat_ms) / 1000));
  job_proc *p = job->proc;
  if (p) {
    terminate(r, p);
    detach(p);
  }
  set_state(r, job, FB_JOB_FAILED, reason);
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
  *out = NULL;
  int rc = fb_jobs_check_skill(skill, err);
  if (rc != 0) return rc;
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
  fb_job *job = new_job();
  if (!job || !(job->spec = strdup(spec))) {
    if (job) free_job(job);
    return fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  }
  snprintf(job->skill, sizeof job->skill, "%s", skill);
  char path[PATH_MAX];
  rc = make_job_dir(r, job, err);
  if (rc == 0) {
    job_path(path, sizeof path, r, job->id, "spec.json");
    rc = fb_write_file_atomic(path, spec, strlen(spec), err);
  }
  if (rc == 0) rc = enqueue(r, job, err);
  if (rc != 0) {
    free_job(job);
    return rc;
  }
  job->created_ms = now_ms();
  insert_job(r, job);
  job->state = FB_JOB_QUEUED;
  save_job(r, job);  /* job.json before progress.jsonl: see remove_unstarted */
  set_state(r, job, FB_JOB_QUEUED, NULL);
  pump(r);
  *out = job;
  return 0;
}

int fb_jobs_cancel(fb_jobs *r, fb_job *job, fb_err *err) {
  if (job->state == FB_JOB_QUEUED) {
    dequeue(r, job);
    set_state(r, job, FB_JOB_CANCELLED, "cancelled before it started");
    return 0;
  }
  if (job->state != FB_JOB_RUNNING || !job->proc)
    return fb_err_set(err, FB_EINVALID, "job %s is %s, not running or queued", job->id,
                      fb_job_state_name(job->state));
  job->proc->cancel_requested = 1;
  terminate(r, job->proc);
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
  int rc = enqueue(r, job, err);
  if (rc != 0) return rc;
  set_str(&job->error_message, NULL);
  set_str(&job->error_where, NULL);
  job->finished_at = 0;
  job->finished_ms = 0;
  set_state(r, job, FB_JOB_QUEUED, NULL);
  pump(r);
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
  for (fb_job *j = r->jobs; j; j = j->next)  /* an unreadable job is nobody's current one */
    if (j->state != FB_JOB_UNREADABLE && strcmp(j->skill, skill) == 0) return j;
  return NULL;
}

fb_job *fb_jobs_next(const fb_jobs *r, const fb_job *prev) { return prev ? prev->next : r->jobs; }

/* ---- events on disk ------------------------------------------------------------------- */

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
    cJSON *ev = cJSON_Parse(line);  /* a line cut by a crash does not parse: skipped */
    if (ev && get_num(ev, "seq", 0) > (double)after) {
      fn(ud, ev);
      n++;
    }
    cJSON_Delete(ev);
  }
  free(buf);
  return n;
}

/* A line cut by a crash would swallow the next event appended to it: end it. */
static void end_partial_line(const char *path) {
  int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  char last;
  if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
      last != '\n' && write(fd, "\n", 1) != 1)
    fb_warn("jobs: %s: cannot end its last line: %s", path, strerror(errno));
  close(fd);
}

/* ---- open and close ------------------------------------------------------------------- */

static void report(fb_jobs *r, const char *fmt, const char *a, const char *b) {
  char msg[PATH_MAX + 600];
  snprintf(msg, sizeof msg, fmt, a, b);
  fb_warn("jobs: %s", msg);
  char **reps = realloc(r->reports, (r->nreports + 2) * sizeof *reps);
  if (!reps) return;
  r->reports = reps;
  reps[r->nreports++] = strdup(msg);
  reps[r->nreports] = NULL;
}

static int take_lock(fb_jobs *r, fb_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/lock", r->data_dir);
  r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (r->lock_fd < 0) return fb_err_set(err, FB_EIO, "%s: %s", path, strerror(errno));
  if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(r->lock_fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    return fb_err_set(err, FB_EIO, "data directory %s is in use by pid %s (lock %s)", r->data_dir,
                      pid[0] ? pid : "?", path);
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(r->lock_fd, 0) != 0 || pwrite(r->lock_fd, pid, n, 0) != n)
    return fb_err_set(err, FB_EIO, "%s: %s", path, strerror(errno));
  return 0;
}

/* Whether pid is alive and its command line names the job (not a reused pid). */
static int worker_alive(long pid, const char *id) {
  if (pid <= 0 || kill((pid_t)pid, 0) != 0) return 0;
  char path[64], cmd[4096];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(cmd, 1, sizeof cmd - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++)
    if (!cmd[i]) cmd[i] = ' ';
  cmd[n] = 0;
  return strstr(cmd, id) != NULL;
}

/* Reading progress.jsonl at open, for a job recorded live. */
typedef struct catch_up {
  fb_job *job;
  int run_lines; /* events from the worker's stdout since the job last became running */
  int run_done;  /* one of them was `done` */
} catch_up;

static fb_job_state state_named(const char *name) {
  for (int i = 0; name && i < (int)(sizeof state_names / sizeof *state_names); i++)
    if (strcmp(name, state_names[i]) == 0) return (fb_job_state)i;
  return (fb_job_state)-1;
}

/* job.json lags progress.jsonl by up to SAVE_EVERY_MS (and by a state change a crash cut
 * short): events past its seq are applied. Every event counts toward the latest run's lines. */
static void catch_up_event(void *ud, const cJSON *ev) {
  catch_up *c = ud;
  fb_job *job = c->job;
  const char *type = get_str(ev, "event"), *level = get_str(ev, "level");
  if (!type) return;
  int is_state = strcmp(type, "state") == 0;
  fb_job_state s = is_state ? state_named(get_str(ev, "state")) : FB_JOB_QUEUED;
  if (is_state && s == FB_JOB_RUNNING) c->run_lines = c->run_done = 0;
  else if (!is_state && !(strcmp(type, "log") == 0 && level && strcmp(level, "stderr") == 0))
    c->run_lines++;  /* stderr lines are not in the worker's record */
  int64_t seq = (int64_t)get_num(ev, "seq", 0);
  if (seq <= job->seq) return;
  job->seq = seq;
  if (!is_state) {
    c->run_done |= apply_event(job, ev, type);
  } else if ((int)s >= 0) {
    job->state = s;
    snprintf(job->reason, sizeof job->reason, "%s", get_str(ev, "reason") ? get_str(ev, "reason") : "");
    if (!is_live(job)) job->pid = 0;
  }
}

/* The lines of the worker's record past the first `seen`: what it printed that the crashed
 * registry never read (a worker dies of its broken pipe at its next line, after recording
 * it). Emitted as if read; returns 1 if one was `done`. */
static int replay_record(fb_jobs *r, fb_job *job, int seen) {
  char path[PATH_MAX], *buf;
  size_t len;
  fb_err err = {0};
  job_path(path, sizeof path, r, job->id, WORKER_RECORD);
  if (access(path, F_OK) != 0) return 0;
  if (fb_read_file(path, &buf, &len, PROGRESS_MAX, &err) != 0) {
    report(r, "%s: %s", path, err.msg);
    return 0;
  }
  int done = 0, n = 0;
  for (char *line = buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    *nl = 0;  /* a last line without its newline was cut by a kill: not replayed */
    if (*line && ++n > seen) done |= worker_line(r, job, line);
  }
  free(buf);
  return done;
}

/* Set a corrupt job.json aside as job.json.corrupt-N; the name it got goes in `name` ("" when
 * it could not be moved). */
static void set_aside(fb_jobs *r, const char *path, const char *why, char *name, size_t n) {
  char dst[PATH_MAX + 32];
  for (int k = 1; k < 1000; k++) {
    snprintf(dst, sizeof dst, "%s.corrupt-%d", path, k);
    if (access(dst, F_OK) != 0) break;
  }
  name[0] = 0;
  if (rename(path, dst) != 0) {
    report(r, "%s: corrupt, and cannot be set aside: %s", path, strerror(errno));
    return;
  }
  snprintf(name, n, "%s", strrchr(dst, '/') + 1);
  char msg[600];
  snprintf(msg, sizeof msg, "%s; set aside as %s", why, name);
  report(r, "%s: %s", path, msg);
}

/* The newest job.json.corrupt-N of job id (a set-aside an earlier open made) into name; 0 when
 * there is none. */
static int newest_aside(const fb_jobs *r, const char *id, char *name, size_t n) {
  char path[PATH_MAX];
  int found = 0;
  for (int k = 1; k < 1000; k++) {
    snprintf(name, n, "job.json.corrupt-%d", k);
    job_path(path, sizeof path, r, id, name);
    if (access(path, F_OK) != 0) break;
    found = k;
  }
  snprintf(name, n, "job.json.corrupt-%d", found);
  return found;
}

/* A job directory with no job.json and no progress.jsonl is a start a crash cut short
 * (start writes job.json before the job's first event, and answers after it): no one heard
 * of it, so it goes, with what it holds (spec.json, a temporary file of an atomic write). */
static int remove_unstarted(fb_jobs *r, const char *id) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, id, "job.json");
  if (access(path, F_OK) == 0) return 0;
  job_path(path, sizeof path, r, id, "progress.jsonl");
  if (access(path, F_OK) == 0) return 0;
  char aside[64];
  if (newest_aside(r, id, aside, sizeof aside)) return 0;  /* an unreadable job: listed as such */
  job_path(path, sizeof path, r, id, NULL);
  DIR *d = opendir(path);
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    char file[PATH_MAX];
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    job_path(file, sizeof file, r, id, e->d_name);
    unlink(file);
  }
  if (d) closedir(d);
  if (rmdir(path) != 0) return 0;
  report(r, "%s: %s", path, "a start cut short by a crash (no job.json); removed");
  return 1;
}

/* Read jobs/<id>/<file> (job.json, or one set aside) and the job's spec into job; FB_EFORMAT
 * (or the read's error) naming what is wrong. */
static int read_job(fb_jobs *r, const char *id, const char *file, fb_job *job, fb_err *err) {
  char path[PATH_MAX], *text;
  size_t len;
  job_path(path, sizeof path, r, id, file);
  if (fb_read_file(path, &text, &len, JOB_JSON_MAX, err) != 0) return err->code;
  cJSON *o = cJSON_Parse(text);
  free(text);
  int rc = !o ? fb_err_set(err, FB_EFORMAT, "not valid JSON") : job_from_json(o, job, err);
  cJSON_Delete(o);
  job_path(path, sizeof path, r, id, "spec.json");
  if (rc == 0 && strcmp(job->id, id) != 0) rc = fb_err_set(err, FB_EFORMAT, "id does not match its directory");
  if (rc == 0 && fb_read_file(path, &job->spec, &len, JOB_JSON_MAX, err) != 0)
    rc = fb_err_set(err, FB_EFORMAT, "spec.json: %s", fb_strerror(err->code));
  cJSON *spec = rc == 0 ? cJSON_Parse(job->spec) : NULL;
  if (rc == 0 && !cJSON_IsObject(spec)) rc = fb_err_set(err, FB_EFORMAT, "spec.json: not a JSON object");
  cJSON_Delete(spec);
  return rc;
}

/* The skill an unreadable job was for, from its first event ("" when none says). */
static void skill_from_events(fb_jobs *r, fb_job *job) {
  char path[PATH_MAX], *buf;
  size_t len;
  job_path(path, sizeof path, r, job->id, "progress.jsonl");
  if (access(path, F_OK) != 0 || fb_read_file(path, &buf, &len, PROGRESS_MAX, NULL) != 0) return;
  char *nl = strchr(buf, '\n');
  if (nl) *nl = 0;
  cJSON *ev = cJSON_Parse(buf);
  const char *skill = get_str(ev, "skill");
  if (skill && fb_jobs_check_skill(skill, NULL) == 0) snprintf(job->skill, sizeof job->skill, "%s", skill);
  cJSON_Delete(ev);
  free(buf);
}

/* Ids are the UTC creation time, YYYYmmdd-HHMMSS-mmm: Unix ms, or 0 for another name. */
static int64_t id_time(const char *id) {
  struct tm tm = {0};
  int ms = 0;
  if (sscanf(id, "%4d%2d%2d-%2d%2d%2d-%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* A job whose job.json could not be read stays listed, as `unreadable`, with the reason and
 * where its job.json went (aside: a file name in its directory, or ""), rather than vanish. */
static void add_unreadable(fb_jobs *r, const char *id, const char *why, const char *aside) {
  fb_job *job = new_job();
  if (!job) return;
  snprintf(job->id, sizeof job->id, "%s", id);
  job->state = FB_JOB_UNREADABLE;
  snprintf(job->reason, sizeof job->reason, "job.json: %.480s", why);
  if (aside[0]) {
    char rel[FB_JOB_ID_MAX + 80];
    snprintf(rel, sizeof rel, "jobs/%s/%s", id, aside);
    job->set_aside = strdup(rel);
  }
  job->spec = strdup("{}");
  job->created_at = id_time(id);
  skill_from_events(r, job);
  insert_job(r, job);
}

static void load_job(fb_jobs *r, const char *id) {
  char path[PATH_MAX], aside[64];
  fb_err err = {0};
  if (remove_unstarted(r, id)) return;
  fb_job *job = new_job();
  if (!job) return;
  job_path(path, sizeof path, r, id, "job.json");
  int missing = access(path, F_OK) != 0;
  int rc = read_job(r, id, "job.json", job, &err);
  if (rc == 0) {
    insert_job(r, job);
    return;
  }
  free_job(job);
  if (missing && newest_aside(r, id, aside, sizeof aside)) {  /* set aside by an earlier open */
    job = new_job();
    if (job && read_job(r, id, aside, job, &err) == 0) fb_err_set(&err, FB_EFORMAT, "set aside earlier");
    if (job) free_job(job);
  } else if (err.code == FB_EFORMAT) {
    set_aside(r, path, err.msg, aside, sizeof aside);
  } else {  /* missing, or not readable: the path and errno go to the log, not to clients */
    report(r, "%s: %s", path, err.msg);
    fb_err_set(&err, err.code, "%s", err.code == FB_ENOTFOUND ? "missing" : fb_strerror(err.code));
    aside[0] = 0;
  }
  add_unreadable(r, id, err.msg, aside);
}

/* A job recorded live when the last registry stopped: catch up with progress.jsonl; if it
 * ran, kill its orphaned worker (which would die at its next line anyway, its pipe gone),
 * replay the worker's record, and leave the job succeeded (it printed `done`) or
 * interrupted, resumable from its checkpoint. */
static void recover(fb_jobs *r, fb_job *job) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, job->id, "progress.jsonl");
  end_partial_line(path);
  catch_up c = {job, 0, 0};
  fb_jobs_events(r, job, 0, catch_up_event, &c, NULL);
  if (job->state != FB_JOB_RUNNING) return;
  long pid = job->pid;
  int alive = worker_alive(pid, job->id);
  if (alive) kill((pid_t)pid, SIGKILL);
  for (int ms = 0; alive && ms < ORPHAN_WAIT_MS && worker_alive(pid, job->id); ms += 10) usleep(10000);
  if (replay_record(r, job, c.run_lines) || c.run_done) {
    set_state(r, job, FB_JOB_SUCCEEDED, NULL);
    return;
  }
  char reason[128];
  snprintf(reason, sizeof reason, "the registry stopped while it ran (worker pid %ld %s)", pid,
           alive ? "killed" : "gone");
  set_state(r, job, FB_JOB_INTERRUPTED, reason);
}

/* A worker killed while it wrote its output leaves a hidden partial directory beside `out` (or
 * a half-done replacement), and one stopped by a full disk a step-N.tmp checkpoint: remove them
 * (finish a replacement) while no worker runs. */
static void settle_output(fb_jobs *r, const fb_job *job) {
  cJSON *spec = cJSON_Parse(job->spec);
  const char *out = get_str(spec, "out"), *ckdir = get_str(spec, "checkpoints");
  char path[PATH_MAX];
  fb_err err = {0};
  if (out && *out && fb_output_settle(out, &err) != 0)
    report(r, "job %s: %s", job->id, err.msg);
  if (ckdir && *ckdir) snprintf(path, sizeof path, "%s", ckdir);
  else job_path(path, sizeof path, r, job->id, "checkpoints"); /* the worker's (fb_cmd_worker) */
  if (fb_output_settle_checkpoints(path) > 0)
    report(r, "job %s: %s", job->id, "a checkpoint cut short (step-N.tmp) removed");
  cJSON_Delete(spec);
}

static int load_jobs(fb_jobs *r, fb_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/jobs", r->data_dir);
  int rc = fb_mkdir_p(path, err);
  if (rc != 0) return rc;
  DIR *d = opendir(path);
  if (!d) return fb_err_set(err, FB_EIO, "%s: %s", path, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && strlen(e->d_name) < FB_JOB_ID_MAX) load_job(r, e->d_name);
  closedir(d);
  /* Jobs that ran become interrupted before anything is queued (a state change may pump the
   * queue); then queued jobs queue again, oldest first, for open's own pump. */
  int n = 0;
  for (fb_job *job = r->jobs; job; job = job->next, n++) {
    if (is_live(job)) recover(r, job);
    settle_output(r, job);
  }
  fb_job *order[n > 0 ? n : 1];
  n = 0;
  for (fb_job *job = r->jobs; job; job = job->next) order[n++] = job;
  for (int i = n - 1; i >= 0; i--)
    if (order[i]->state == FB_JOB_QUEUED && (rc = enqueue(r, order[i], err)) != 0) return rc;
  return 0;
}

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
    free_job(j);
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
  free(r);
}

static void close_timers(fb_jobs *r) {
  uv_close((uv_handle_t *)&r->flush_timer, free_registry);
  uv_close((uv_handle_t *)&r->sweep_timer, free_registry);
}

int fb_jobs_open(uv_loop_t *loop, const fb_jobs_options *opt, fb_jobs **out, fb_err *err) {
  *out = NULL;
  if (!opt->data_dir || !opt->data_dir[0]) return fb_err_set(err, FB_EINVALID, "jobs: data_dir is required");
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
  uv_timer_t *timers[] = {&r->flush_timer, &r->sweep_timer};
  for (int i = 0; i < 2; i++) {
    uv_timer_init(loop, timers[i]);
    uv_unref((uv_handle_t *)timers[i]);  /* neither keeps the loop alive */
    timers[i]->data = r;
  }
  r->open_timers = 2;
  if (rc != 0) rc = fb_err_set(err, FB_EIO, "jobs: cannot find this executable: %s", uv_strerror(rc));
  else if (!r->data_dir || !r->worker) rc = fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  if (rc == 0) rc = take_lock(r, err);
  if (rc == 0) rc = load_jobs(r, err);
  /* Workers that outlived a closed or crashed registry (the orphans load_jobs killed) are gone. */
  if (rc == 0 && r->memcg_root[0]) fb_memcg_sweep(r->memcg_root, MEMCG_PREFIX);
  if (rc != 0) {
    if (r->lock_fd >= 0) close(r->lock_fd);
    r->closed = 1;
    close_timers(r);
    return rc;
  }
  uv_timer_start(&r->sweep_timer, on_sweep, sweep_every_ms(r), sweep_every_ms(r));
  pump(r);
  *out = r;
  return 0;
}

void fb_jobs_close(fb_jobs *r) {
  if (r->closed) return;
  r->closed = 1;  /* no listener calls, no new workers from here on */
  while (r->procs) {
    job_proc *p = r->procs;
    fb_job *job = p->job;
    r->procs = p->next;
    if (!p->exited) uv_process_kill(&p->process, SIGTERM); /* it checkpoints; resume goes on */
    detach(p);
    p->r = NULL;
    close_proc(p);
    if (job) set_state(r, job, FB_JOB_INTERRUPTED, "the registry closed while it ran");
  }
  for (fb_job *job = r->jobs; job; job = job->next)
    if (job->dirty) save_job(r, job);
  close(r->lock_fd);
  close_timers(r);
}

const char *const *fb_jobs_reports(const fb_jobs *r) {
  static const char *const none[] = {NULL};
  return r->reports ? (const char *const *)r->reports : none;
}
