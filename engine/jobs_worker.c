/* jobs_worker.c: what a worker's lines do to its job (either executor), and the local executor:
 * a job's worker process spawned with its output on two pipes read as lines (stdout: protocol
 * events that update the job; stderr: log lines), in a memory cgroup of its own when there is
 * one, stopped with SIGTERM then SIGKILL, and its exit turned into the job's final state. */
#include "jobs_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "memcg.h"

static void on_proc_closed(uv_handle_t *h) {
  job_proc *p = h->data;
  if (--p->open_handles == 0) {
    if (p->memcg[0] && rmdir(p->memcg) != 0) /* a process the worker started still runs */
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
    reason[0] = 0; /* done wins over a cancel that came too late */
    return FB_JOB_SUCCEEDED;
  }
  if (p->cancel_requested || (!p->term_signal && p->exit_status == 3)) {
    if (!p->term_signal && p->exit_status == 3)
      snprintf(reason, n, "cancelled");
    else if (p->term_signal)
      snprintf(reason, n, "cancelled: killed by signal %d", p->term_signal);
    else
      snprintf(reason, n, "cancelled: exit status %d", (int)p->exit_status);
    return FB_JOB_CANCELLED;
  }
  if (p->term_signal == SIGKILL && p->oom_killed)
    snprintf(reason, n, "out of memory (killed by the kernel)");
  else if (p->term_signal)
    snprintf(reason, n, "killed by signal %d", p->term_signal);
  else if (p->exit_status == 0)
    snprintf(reason, n, "exit status 0 without a done event");
  else if (p->exit_status == EXIT_DEVICE_FAULT)
    snprintf(reason, n, "the GPU failed: a CUDA fault ended the worker (its log has the error)");
  else if (p->exit_status == EXIT_NOMEM)
    snprintf(reason, n, "out of memory%s%s%s%s", job->error_message ? ": " : "",
             job->error_message ? job->error_message : "", job->error_where ? " at " : "",
             job->error_where ? job->error_where : "");
  else if (job->error_message)
    snprintf(reason, n, "exit status %d: %s%s%s", (int)p->exit_status, job->error_message,
             job->error_where ? " at " : "", job->error_where ? job->error_where : "");
  else
    snprintf(reason, n, "exit status %d", (int)p->exit_status);
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
  if (job && job->state == FB_JOB_RUNNING) jobs_set_state(r, job, s, reason);
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

void jobs_heartbeat(fb_job *job) {
  job->heartbeat_ms = now_ms();
  job->heartbeat_at = wall_ms();
}

/* [step, ev[field]] (and ev[also] when given and there) onto hist, thinned past its cap. */
static void append_history(cJSON *hist, const cJSON *ev, const char *field, const char *also) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, field);
  if (!cJSON_IsNumber(v)) return;
  cJSON *pt = cJSON_CreateArray();
  cJSON_AddItemToArray(pt, cJSON_CreateNumber(get_num(ev, "step", 0)));
  cJSON_AddItemToArray(pt, cJSON_CreateNumber(v->valuedouble));
  const cJSON *w = also ? cJSON_GetObjectItemCaseSensitive(ev, also) : NULL;
  if (cJSON_IsNumber(w)) cJSON_AddItemToArray(pt, cJSON_CreateNumber(w->valuedouble));
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

/* What an event of the worker tells about its job: progress, history, samples, checkpoint,
 * log, summary, error. Returns 1 for `done`. Live lines and recovery share it. */
int jobs_apply_event(fb_job *job, const cJSON *ev, const char *type) {
  if (strcmp(type, "start") == 0) {
    merge_fields(&job->progress, ev);
    trim_history(job->loss_history, get_num(ev, "resumed_from_step", 0));
    trim_history(job->eval_history, get_num(ev, "resumed_from_step", 0));
  } else if (strcmp(type, "progress") == 0) {
    merge_fields(&job->progress, ev);
    append_history(job->loss_history, ev, "loss", "loss_smoothed"); /* the trainer's smoothing */
  } else if (strcmp(type, "eval") == 0) {
    append_history(job->eval_history, ev, "eval_loss", NULL);
  } else if (strcmp(type, "sample") == 0) {
    cJSON *s = NULL;
    merge_fields(&s, ev);
    cJSON_AddItemToArray(job->samples, s);
    if (cJSON_GetArraySize(job->samples) > SAMPLES_MAX) cJSON_DeleteItemFromArray(job->samples, 0);
  } else if (strcmp(type, "checkpoint") == 0) {
    job->checkpoint_step = (int64_t)get_num(ev, "step", (double)job->checkpoint_step);
  } else if (strcmp(type, "log") == 0 && get_str(ev, "message")) {
    jobs_log_add(job, get_str(ev, "message"));
  } else if (strcmp(type, "done") == 0) {
    cJSON_Delete(job->summary);
    job->summary = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ev, "summary"), 1);
    jobs_set_str(&job->adapter, get_str(ev, "adapter"));
    return 1;
  } else if (strcmp(type, "error") == 0) {
    jobs_set_str(&job->error_message,
                 get_str(ev, "message") ? get_str(ev, "message") : "unknown error");
    jobs_set_str(&job->error_where, get_str(ev, "where"));
    jobs_log_add(job, job->error_message);
  }
  return 0;
}

/* One protocol line of a worker: update the job, then emit it as an event (numbered, on disk,
 * to listeners). A line that is not protocol becomes a warning. Returns 1 for `done`. */
int jobs_worker_line(fb_jobs *r, fb_job *job, const char *line) {
  cJSON *ev = cJSON_Parse(line);
  const char *type = ev ? get_str(ev, "event") : NULL;
  if (!cJSON_IsObject(ev) || !type) {
    cJSON_Delete(ev);
    char msg[300];
    snprintf(msg, sizeof msg, "worker: not a protocol line: %.200s", line);
    ev = jobs_log_event("warn", msg);
    type = "log";
  }
  int done = jobs_apply_event(job, ev, type);
  jobs_save_soon(r, job);
  jobs_emit(r, job, ev, 0);
  return done;
}

void jobs_stderr_line(fb_jobs *r, fb_job *job, const char *line) {
  jobs_heartbeat(job);
  jobs_log_add(job, line);
  jobs_emit(r, job, jobs_log_event("stderr", line), 0);
}

static int on_out_line(void *ud, const char *line) {
  job_proc *p = ud;
  jobs_heartbeat(p->job);
  p->done_seen |= jobs_worker_line(p->r, p->job, line);
  return !p->job;
}

static int on_err_line(void *ud, const char *line) {
  job_proc *p = ud;
  jobs_stderr_line(p->r, p->job, line);
  return !p->job;
}

/* Split data into lines for fn, keeping a partial last line; lines over the cap are dropped
 * with a warning. fn returns nonzero when the job is no longer fed (detached). */
void jobs_feed_lines(fb_jobs *r, fb_job *job, linebuf *lb, const char *data, size_t n,
                     int (*fn)(void *ud, const char *line), void *ud) {
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) : n;
    if (!lb->dropping) {
      if (lb->len + take > LINE_MAX_BYTES) {
        lb->dropping = 1;
        lb->len = 0;
        jobs_emit(r, job, jobs_log_event("warn", "worker: a line over 1 MiB was dropped"), 0);
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
    int stop = 0;
    if (!lb->dropping) {
      lb->buf[lb->len] = 0;
      if (lb->len > 0) stop = fn(ud, lb->buf);
    }
    lb->len = 0;
    lb->dropping = 0;
    if (stop) return;
    data = nl + 1;
    n -= take + 1;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  job_proc *p = s->data;
  int is_out = s == (uv_stream_t *)&p->out;
  if (nread > 0 && p->job)
    jobs_feed_lines(p->r, p->job, is_out ? &p->outl : &p->errl, buf->base, (size_t)nread,
                    is_out ? on_out_line : on_err_line, p);
  free(buf->base);
  if (nread < 0) {
    uv_read_stop(s);
    if (is_out)
      p->out_eof = 1;
    else
      p->err_eof = 1;
    maybe_finish(p);
  }
}

/* Start job's worker; on failure the job is left as it was. */
static int local_start(fb_jobs *r, fb_job *job, fb_err *err) {
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
  unlink(record); /* this run's record starts empty: recovery counts its lines from the top */
  char *args[nw + 2];
  memcpy(args, r->worker, nw * sizeof *args);
  args[nw] = dir;
  args[nw + 1] = NULL;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->err},
  };
  uv_process_options_t opt = {
      .exit_cb = on_worker_exit, .file = args[0], .args = args, .stdio_count = 3, .stdio = stdio};
  fb_cloexec_from(3);
  int rc = uv_spawn(r->loop, &p->process, &opt);
  if (rc != 0) {
    close_proc(p); /* the handles are initialized even when spawn fails */
    return fb_err_set(err, FB_EIO, "cannot start worker %s: %s", args[0], uv_strerror(rc));
  }
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
  if (r->memcg_root[0]) { /* it has just exec'd: its loading is yet to come */
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

int fb_jobs_live_workers(const fb_jobs *r) {
  int n = 0;
  for (const job_proc *p = r->procs; p; p = p->next) n++;
  return n;
}

static void local_cancel(fb_jobs *r, fb_job *job) {
  job->proc->cancel_requested = 1;
  terminate(r, job->proc);
}

static void local_abandon(fb_jobs *r, fb_job *job) {
  job_proc *p = job->proc;
  if (!p) return;
  terminate(r, p);
  detach(p);
}

/* Running workers get SIGTERM (they checkpoint; resume goes on) and their jobs are interrupted. */
static void local_close(fb_jobs *r) {
  while (r->procs) {
    job_proc *p = r->procs;
    fb_job *job = p->job;
    r->procs = p->next;
    if (!p->exited) uv_process_kill(&p->process, SIGTERM);
    detach(p);
    p->r = NULL;
    close_proc(p);
    if (job) jobs_set_state(r, job, FB_JOB_INTERRUPTED, "the registry closed while it ran");
  }
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

/* A job that ran under the last registry: kill its orphaned worker (which would die at its next
 * line anyway, its pipe gone), replay the worker's record, and leave the job succeeded (it
 * printed `done`) or interrupted, resumable from its checkpoint. */
static void local_recover(fb_jobs *r, fb_job *job, int lines, int err_lines, int done) {
  (void)err_lines; /* the pipe's stderr lines are not recorded anywhere */
  long pid = job->pid;
  int alive = worker_alive(pid, job->id);
  if (alive) kill((pid_t)pid, SIGKILL);
  for (int ms = 0; alive && ms < ORPHAN_WAIT_MS && worker_alive(pid, job->id); ms += 10)
    usleep(10000);
  if (jobs_replay_record(r, job, lines) || done) {
    jobs_set_state(r, job, FB_JOB_SUCCEEDED, NULL);
    return;
  }
  char reason[128];
  snprintf(reason, sizeof reason, "the registry stopped while it ran (worker pid %ld %s)", pid,
           alive ? "killed" : "gone");
  jobs_set_state(r, job, FB_JOB_INTERRUPTED, reason);
}

const jobs_executor jobs_local_executor = {local_start, local_cancel, local_abandon, local_close,
                                           local_recover};
