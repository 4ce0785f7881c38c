/* jobs_slurm.c: the slurm executor. A job's worker is a Slurm batch job (`sbatch --wrap 'exec
 * WORKER JOBDIR'`, requeueable), followed by polling squeue; its events come from tailing the
 * worker's record (WORKER_RECORD) and its stderr file as they grow, numbered by the registry as
 * the local executor's are. Cancel is `scancel --signal=TERM --full` (the worker checkpoints),
 * then plain `scancel` after the grace. Closing the registry leaves the Slurm jobs running: the
 * next open follows them again by the Slurm job id job.json holds. Every command runs with
 * uv_spawn, so the loop never waits on the controller. */
#include "jobs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

#define SLURM_STDERR "worker.err" /* the worker's stderr, appended to by every run of the job */
#define CMD_OUT_MAX (1 << 20)
#define GONE_POLLS 3 /* squeue has not listed a job this many polls running: it is over */

typedef struct tail {
  const char *file; /* in the job directory */
  off_t offset;     /* bytes read */
  int skip;         /* complete lines already in progress.jsonl (a run followed again) */
  linebuf lb;
} tail;

struct slurm_run {
  fb_jobs *r;
  fb_job *job;
  tail out, err;
  int done_seen, cancel_requested, submitted, unlisted;
  int asked; /* the records asked about a job squeue forgot: 0 none yet, 1 sacct, 2 its -c too */
  uv_timer_t kill_timer; /* plain scancel after the grace */
  struct slurm_run *next;
};

/* ---- commands ------------------------------------------------------------------------- */

typedef struct slurm_cmd slurm_cmd;
typedef void (*cmd_done)(fb_jobs *r, slurm_run *run, int64_t status, const char *out,
                         const char *err);

struct slurm_cmd {
  uv_process_t proc;
  uv_pipe_t pipes[2]; /* stdout, stderr */
  char *buf[2];
  size_t len[2];
  int open_handles, exited, eofs;
  int64_t status;
  fb_jobs *r;     /* NULL once the registry closed: the result is dropped */
  slurm_run *run; /* NULL when the run was dropped meanwhile */
  cmd_done done;
  slurm_cmd *next; /* in cmds */
};

/* The commands in flight, of every registry (one closed may still have some when the next
 * opens): a registry's close drops its commands' results, a run's drop its own. */
static slurm_cmd *cmds;

static void on_cmd_closed(uv_handle_t *h) {
  slurm_cmd *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->buf[0]);
  free(c->buf[1]);
  free(c);
}

static void cmd_finish(slurm_cmd *c) {
  if (!c->exited || c->eofs < 2) return;
  for (slurm_cmd **l = &cmds; *l; l = &(*l)->next)
    if (*l == c) {
      *l = c->next;
      break;
    }
  if (c->r && c->done)
    c->done(c->r, c->run, c->status, c->buf[0] ? c->buf[0] : "", c->buf[1] ? c->buf[1] : "");
  uv_close((uv_handle_t *)&c->proc, on_cmd_closed);
  uv_close((uv_handle_t *)&c->pipes[0], on_cmd_closed);
  uv_close((uv_handle_t *)&c->pipes[1], on_cmd_closed);
}

static void on_cmd_exit(uv_process_t *h, int64_t status, int sig) {
  slurm_cmd *c = h->data;
  c->exited = 1;
  c->status = sig ? 128 + sig : status;
  cmd_finish(c);
}

static void on_cmd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void on_cmd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  slurm_cmd *c = s->data;
  int i = s == (uv_stream_t *)&c->pipes[1];
  if (nread > 0 && c->len[i] + (size_t)nread < CMD_OUT_MAX) {
    char *b = realloc(c->buf[i], c->len[i] + nread + 1);
    if (b) {
      memcpy(b + c->len[i], buf->base, nread);
      c->len[i] += nread;
      b[c->len[i]] = 0;
      c->buf[i] = b;
    }
  }
  free(buf->base);
  if (nread < 0) {
    uv_read_stop(s);
    c->eofs++;
    cmd_finish(c);
  }
}

/* Run argv; done(r, run, status, stdout, stderr) when it has exited (127: it did not start). */
static void run_cmd(fb_jobs *r, slurm_run *run, char **argv, cmd_done done) {
  slurm_cmd *c = calloc(1, sizeof *c);
  if (!c) {
    done(r, run, 127, "", "out of memory");
    return;
  }
  c->r = r;
  c->run = run;
  c->done = done;
  c->open_handles = 3;
  c->proc.data = c->pipes[0].data = c->pipes[1].data = c;
  uv_pipe_init(r->loop, &c->pipes[0], 0);
  uv_pipe_init(r->loop, &c->pipes[1], 0);
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->pipes[0]},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->pipes[1]},
  };
  uv_process_options_t opt = {
      .exit_cb = on_cmd_exit, .file = argv[0], .args = argv, .stdio_count = 3, .stdio = stdio};
  fb_cloexec_from(3);
  int rc = uv_spawn(r->loop, &c->proc, &opt);
  if (rc != 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "cannot run %s: %s", argv[0], uv_strerror(rc));
    c->exited = 1;
    c->eofs = 2;
    c->status = 127;
    c->buf[1] = strdup(msg);
    c->next = cmds;
    cmds = c;
    cmd_finish(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->pipes[0], on_cmd_alloc, on_cmd_read);
  uv_read_start((uv_stream_t *)&c->pipes[1], on_cmd_alloc, on_cmd_read);
  c->next = cmds;
  cmds = c;
}

/* The first line of a command's stderr, for a reason. */
static void first_line(char *dst, size_t n, const char *text) {
  snprintf(dst, n, "%.*s", (int)strcspn(text, "\n"), text);
}

/* ---- runs ----------------------------------------------------------------------------- */

static void on_run_closed(uv_handle_t *h) {
  slurm_run *run = h->data;
  free(run->out.lb.buf);
  free(run->err.lb.buf);
  free(run);
}

/* Forget run: its job is no longer followed, commands in flight for it are dropped. */
static void drop_run(fb_jobs *r, slurm_run *run) {
  for (slurm_run **l = &r->runs; *l; l = &(*l)->next)
    if (*l == run) {
      *l = run->next;
      break;
    }
  for (slurm_cmd *c = cmds; c; c = c->next)
    if (c->run == run) c->run = NULL;
  if (run->job) run->job->run = NULL;
  run->job = NULL;
  uv_close((uv_handle_t *)&run->kill_timer, on_run_closed);
}

static slurm_run *new_run(fb_jobs *r, fb_job *job) {
  slurm_run *run = calloc(1, sizeof *run);
  if (!run) return NULL;
  run->r = r;
  run->job = job;
  run->out.file = WORKER_RECORD;
  run->err.file = SLURM_STDERR;
  uv_timer_init(r->loop, &run->kill_timer);
  run->kill_timer.data = run;
  run->next = r->runs;
  r->runs = run;
  job->run = run;
  return run;
}

/* A line of the worker's record; nonzero once the run was dropped (a listener's doing). */
static int on_out_line(void *ud, const char *line) {
  slurm_run *run = ud;
  if (run->out.skip > 0) {
    run->out.skip--;
    return 0;
  }
  jobs_heartbeat(run->job);
  run->done_seen |= jobs_worker_line(run->r, run->job, line);
  return !run->job;
}

static int on_err_line(void *ud, const char *line) {
  slurm_run *run = ud;
  if (run->err.skip > 0) {
    run->err.skip--;
    return 0;
  }
  jobs_stderr_line(run->r, run->job, line);
  return !run->job;
}

/* What the file of t gained since the last read, as lines. A shorter file was started anew. */
static void read_tail(slurm_run *run, tail *t, int (*fn)(void *, const char *)) {
  char path[PATH_MAX];
  job_path(path, sizeof path, run->r, run->job->id, t->file);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    return;
  }
  if (st.st_size < t->offset) t->offset = t->lb.len = 0;
  char buf[1 << 16];
  ssize_t n;
  while (run->job && (n = pread(fd, buf, sizeof buf, t->offset)) > 0) {
    t->offset += n;
    jobs_feed_lines(run->r, run->job, &t->lb, buf, (size_t)n, fn, run);
  }
  close(fd);
}

static void read_tails(slurm_run *run) {
  read_tail(run, &run->out, on_out_line);
  if (run->job) read_tail(run, &run->err, on_err_line);
}

/* ---- the end of a job ----------------------------------------------------------------- */

/* --mem in MiB: the job's estimate with a quarter more (the process holds more than the
 * estimate counts: code, libraries, allocator slack), or the registry's default when that is
 * more; 0 leaves the cluster's default. */
static int64_t job_mem_mb(const fb_jobs *r, const fb_job *job) {
  int64_t est =
      job->memory_bytes ? (job->memory_bytes + job->memory_bytes / 4 + (1 << 20) - 1) >> 20 : 0;
  return est > r->slurm.mem_mb ? est : r->slurm.mem_mb;
}

/* The state and reason a Slurm job that ended in slurm_state leaves its job in; the reasons of
 * limits say which limit and what to change. */
static fb_job_state end_state(const fb_jobs *r, const slurm_run *run, const char *st, char *reason,
                              size_t n) {
  const fb_job *job = run->job;
  reason[0] = 0;
  if (run->done_seen && strcmp(st, "COMPLETED") == 0) return FB_JOB_SUCCEEDED;
  if (run->cancel_requested) {
    snprintf(reason, n, "cancelled");
    return FB_JOB_CANCELLED;
  }
  if (strcmp(st, "CANCELLED") == 0) {
    snprintf(reason, n, "cancelled in Slurm (scancel of job %s)", job->slurm_id);
    return FB_JOB_CANCELLED;
  }
  int64_t mem_mb = job_mem_mb(r, job);
  if (strcmp(st, "TIMEOUT") == 0)
    snprintf(reason, n,
             "Slurm: TIMEOUT: job %s reached its time limit (%s%s); resume goes on from its last "
             "checkpoint",
             job->slurm_id, r->slurm.time_limit ? "--slurm-time " : "the partition's",
             r->slurm.time_limit ? r->slurm.time_limit : "");
  else if (strcmp(st, "OUT_OF_MEMORY") == 0 && mem_mb)
    snprintf(reason, n,
             "out of memory: job %s needed more than the %lld MiB Slurm gave it (Slurm: "
             "OUT_OF_MEMORY); raise --slurm-mem, or lower micro_batch or max_len",
             job->slurm_id, (long long)mem_mb);
  else if (strcmp(st, "OUT_OF_MEMORY") == 0)
    snprintf(reason, n,
             "out of memory: job %s needed more than the cluster's default memory (Slurm: "
             "OUT_OF_MEMORY); set --slurm-mem, or lower micro_batch or max_len",
             job->slurm_id);
  else if (strcmp(st, "NODE_FAIL") == 0)
    snprintf(reason, n, "Slurm: NODE_FAIL: the node of job %s failed", job->slurm_id);
  else if (strcmp(st, "COMPLETED") == 0)
    snprintf(reason, n, "exit status 0 without a done event");
  else if (strcmp(st, "VANISHED") == 0)
    snprintf(reason, n, "Slurm no longer knows job %s (squeue, sacct): it ended unfollowed",
             job->slurm_id);
  else if (job->error_message)
    snprintf(reason, n, "Slurm: %s: %s%s%s", st, job->error_message, job->error_where ? " at " : "",
             job->error_where ? job->error_where : "");
  else
    snprintf(reason, n, "Slurm: %s (job %s)", st, job->slurm_id);
  return FB_JOB_FAILED;
}

static void finish(fb_jobs *r, slurm_run *run, const char *st) {
  fb_job *job = run->job;
  read_tails(run);
  if (!run->job) return; /* a listener ended it meanwhile */
  char reason[sizeof job->reason];
  fb_job_state s = end_state(r, run, st, reason, sizeof reason);
  drop_run(r, run);
  if (job->state == FB_JOB_RUNNING) jobs_set_state(r, job, s, reason);
}

/* ---- following: squeue ---------------------------------------------------------------- */

static int is_final(const char *st) {
  static const char *const finals[] = {"COMPLETED", "FAILED",        "CANCELLED",    "TIMEOUT",
                                       "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",    "BOOT_FAIL",
                                       "DEADLINE",  "REVOKED",       "SPECIAL_EXIT", NULL};
  for (int i = 0; finals[i]; i++)
    if (strcmp(st, finals[i]) == 0) return 1;
  return 0;
}

/* What Slurm says of a running job's batch job: its state and reason (a running job's nodes)
 * go to the job's record and, when they change, to the job's reason and a state event. */
static void slurm_says(fb_jobs *r, slurm_run *run, const char *st, const char *why) {
  fb_job *job = run->job;
  run->unlisted = 0;
  if (is_final(st)) {
    snprintf(job->slurm_state, sizeof job->slurm_state, "%s", st);
    finish(r, run, st);
    return;
  }
  if (strcmp(st, "PENDING") == 0) jobs_heartbeat(job); /* Slurm holds it: not stale */
  if (strcmp(job->slurm_state, st) == 0 && strcmp(job->slurm_reason, why) == 0) return;
  if (strcmp(st, "PENDING") == 0 && strcmp(job->slurm_state, "RUNNING") == 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "slurm: job %s requeued (%s): it resumes from its checkpoint",
             job->slurm_id, why);
    jobs_log_add(job, msg);
    jobs_emit(r, job, jobs_log_event("warn", msg), 0);
  }
  snprintf(job->slurm_state, sizeof job->slurm_state, "%s", st);
  snprintf(job->slurm_reason, sizeof job->slurm_reason, "%s", why);
  /* A note, not a new run: a running state event with a reason (jobs_recover.c tells them apart). */
  snprintf(job->reason, sizeof job->reason, "Slurm: %s (%s)", st, why);
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "event", "state");
  cJSON_AddStringToObject(ev, "state", fb_job_state_name(job->state));
  cJSON_AddStringToObject(ev, "reason", job->reason);
  jobs_emit(r, job, ev, 1);
}

/* ---- a job squeue forgot: sacct ------------------------------------------------------- */

/* Slurm forgets an ended job MinJobAge after it ends (and all of them when slurmctld starts with
 * its state cleared); its final state is then in the accounting database (sacct), or in the job
 * completion log (sacct -c) where the cluster keeps one instead. Asked in that order; neither
 * knowing it, the job ended unfollowed (VANISHED). */
static void ask_records(fb_jobs *r, slurm_run *run);

/* The state in sacct's last line "ID|STATE" ("CANCELLED by 0" is CANCELLED), or "". */
static void recorded_state(char *st, size_t n, const char *out) {
  const char *line = out, *last = "";
  for (; *line; line += strcspn(line, "\n"), line += *line == '\n')
    if (*line != '\n') last = line;
  const char *bar = strchr(last, '|');
  st[0] = 0;
  if (bar && bar < last + strcspn(last, "\n"))
    snprintf(st, n, "%.*s", (int)strcspn(bar + 1, " |\n"), bar + 1);
}

static void on_sacct(fb_jobs *r, slurm_run *run, int64_t status, const char *out, const char *err) {
  (void)err;
  if (!run || !run->job) return;
  char st[32];
  recorded_state(st, sizeof st, status == 0 ? out : "");
  if (is_final(st)) {
    snprintf(run->job->slurm_state, sizeof run->job->slurm_state, "%s", st);
    finish(r, run, st);
  } else if (run->asked < 2) {
    ask_records(r, run);
  } else {
    finish(r, run, "VANISHED");
  }
}

static void ask_records(fb_jobs *r, slurm_run *run) {
  char *accounting[] = {"sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", run->job->slurm_id,
                        NULL};
  char *completions[] = {"sacct", "-c", "-n", "-P", "-o", "JobID,State", "-j", run->job->slurm_id,
                         NULL};
  run_cmd(r, run, run->asked++ == 0 ? accounting : completions, on_sacct);
}

/* squeue's lines "ID|STATE|REASON" for the runs asked about. A run squeue no longer lists
 * (Slurm purged it) has ended: the worker's done, or Slurm's records, say how. */
static void on_squeue(fb_jobs *r, slurm_run *unused, int64_t status, const char *out,
                      const char *err) {
  (void)unused;
  r->polling = 0;
  /* Asked about one job, squeue fails when it forgot it; about several, it leaves it out. */
  if (status != 0 && strstr(err, "Invalid job id specified")) {
    status = 0;
    out = "";
  }
  if (status != 0) {
    char msg[300];
    first_line(msg, sizeof msg, err);
    fb_warn("jobs: squeue: exit status %d: %s", (int)status, msg);
    return;
  }
  for (slurm_run *run = r->runs, *next; run; run = next) {
    next = run->next;
    if (!run->submitted || !run->job) continue;
    size_t idlen = strlen(run->job->slurm_id);
    const char *line = out, *found = NULL;
    for (; *line; line += strcspn(line, "\n"), line += *line == '\n')
      if (strncmp(line, run->job->slurm_id, idlen) == 0 && line[idlen] == '|')
        found = line + idlen + 1;
    if (!found) {
      if (++run->unlisted < GONE_POLLS || run->asked) continue;
      if (run->done_seen)
        finish(r, run, "COMPLETED");
      else
        ask_records(r, run);
      continue;
    }
    char st[32], why[128];
    size_t n = strcspn(found, "|\n");
    snprintf(st, sizeof st, "%.*s", (int)n, found);
    found += n + (found[n] == '|');
    size_t wn = strcspn(found, "\n");
    if (wn >= 2 && found[0] == '(' && found[wn - 1] == ')') { /* a pending reason */
      found++;
      wn -= 2;
    }
    snprintf(why, sizeof why, "%.*s", (int)wn, found);
    slurm_says(r, run, st, why);
  }
}

static void on_poll(uv_timer_t *t) {
  fb_jobs *r = t->data;
  size_t cap = 1, len = 0;
  for (slurm_run *run = r->runs; run; run = run->next) cap += sizeof run->job->slurm_id + 1;
  char *ids = malloc(cap);
  if (!ids) return;
  ids[0] = 0;
  for (slurm_run *run = r->runs, *next; run; run = next) {
    next = run->next;
    if (!run->submitted) continue;
    read_tails(run);
    if (run->job) len += snprintf(ids + len, cap - len, "%s%s", len ? "," : "", run->job->slurm_id);
  }
  if (len > 0 && !r->polling) {
    r->polling = 1;
    char *argv[] = {"squeue", "-h", "-t", "all", "-o", "%i|%T|%R", "-j", ids, NULL};
    run_cmd(r, NULL, argv, on_squeue);
  }
  free(ids);
}

static void follow(fb_jobs *r) {
  if (!uv_is_active((uv_handle_t *)&r->poll_timer))
    uv_timer_start(&r->poll_timer, on_poll, r->slurm.poll_ms, r->slurm.poll_ms);
}

/* ---- start, cancel ---------------------------------------------------------------------- */

/* A failed scancel is logged; the poll still sees the job and its state. */
static void on_scancel(fb_jobs *r, slurm_run *run, int64_t status, const char *out,
                       const char *err) {
  (void)r, (void)run, (void)out;
  if (status != 0) {
    char msg[300];
    first_line(msg, sizeof msg, err);
    fb_warn("jobs: scancel: exit status %d: %s", (int)status, msg);
  }
}

static void scancel(slurm_run *run, int term) {
  char *term_argv[] = {"scancel", "--signal=TERM", "--full", run->job->slurm_id, NULL};
  char *kill_argv[] = {"scancel", run->job->slurm_id, NULL};
  run_cmd(run->r, run, term ? term_argv : kill_argv, on_scancel);
}

static void on_kill_timer(uv_timer_t *t) { scancel(t->data, 0); }

/* TERM to the worker (it checkpoints and exits) while it runs, then scancel after the grace; a
 * job Slurm has not started yet is cancelled at once. */
static void stop(slurm_run *run) {
  if (!run->submitted) return; /* on_sbatch stops it once it has its id */
  int running = strcmp(run->job->slurm_state, "RUNNING") == 0;
  if (running) scancel(run, 1);
  uv_timer_start(&run->kill_timer, on_kill_timer, running ? run->r->kill_grace_ms : 0, 0);
}

static void on_sbatch(fb_jobs *r, slurm_run *run, int64_t status, const char *out,
                      const char *err) {
  if (!run) return; /* abandoned meanwhile; an id it printed runs unfollowed until its end */
  fb_job *job = run->job;
  long id = status == 0 ? strtol(out, NULL, 10) : 0; /* --parsable: "ID" or "ID;CLUSTER" */
  if (id <= 0) {
    char msg[400], why[300];
    first_line(why, sizeof why, err[0] ? err : out);
    snprintf(msg, sizeof msg, "sbatch failed (exit status %d): %s", (int)status, why);
    jobs_log_add(job, msg);
    drop_run(r, run);
    if (job->state == FB_JOB_RUNNING) jobs_set_state(r, job, FB_JOB_FAILED, msg);
    return;
  }
  snprintf(job->slurm_id, sizeof job->slurm_id, "%ld", id);
  run->submitted = 1;
  jobs_save(r, job); /* the id on disk before anything else: a restarted registry follows it */
  if (run->cancel_requested) stop(run);
  follow(r);
}

/* " 's'" onto the command line in dst (n bytes), every ' in s made safe for the shell; -1
 * when it does not fit. */
static int append_quoted(char *dst, size_t n, const char *s) {
  size_t start = strlen(dst), k = start;
  if (k + 3 >= n) return -1;
  dst[k++] = ' ';
  dst[k++] = '\'';
  for (; *s; s++) {
    char one[2] = {*s, 0};
    const char *piece = *s == '\'' ? "'\\''" : one;
    size_t m = strlen(piece);
    if (k + m + 2 > n) {
      dst[start] = 0;
      return -1;
    }
    memcpy(dst + k, piece, m);
    k += m;
  }
  dst[k++] = '\'';
  dst[k] = 0;
  return 0;
}

/* GPUs for --gres: 1 when the spec's device is cuda (a job stays on one GPU), else none. */
static int spec_gpus(const fb_job *job) {
  cJSON *spec = cJSON_Parse(job->spec);
  const char *dev = get_str(spec, "device");
  int gpus = dev && strcmp(dev, "cuda") == 0;
  cJSON_Delete(spec);
  return gpus;
}

static int slurm_start(fb_jobs *r, fb_job *job, fb_err *err) {
  char dir[PATH_MAX], path[PATH_MAX], wrap[8192] = "exec";
  job_path(dir, sizeof dir, r, job->id, NULL);
  job_path(path, sizeof path, r, job->id, WORKER_RECORD);
  unlink(path); /* this run's record starts empty (requeued runs append to it) */
  job_path(path, sizeof path, r, job->id, SLURM_STDERR);
  unlink(path);
  int too_long = 0;
  for (int i = 0; r->worker[i]; i++) too_long |= append_quoted(wrap, sizeof wrap, r->worker[i]);
  too_long |= append_quoted(wrap, sizeof wrap, dir);
  if (too_long)
    return fb_err_set(err, FB_EINVALID, "worker: the command is too long for sbatch --wrap");
  char mem[32] = "";
  int64_t mem_mb = job_mem_mb(r, job);
  if (mem_mb) snprintf(mem, sizeof mem, "%lld", (long long)mem_mb);
  /* sbatch's options that take a value; an empty value leaves the cluster's default. */
  const char *valued[][2] = {{"--job-name=fastbrain-", job->skill},
                             {"--error=", path},
                             {"--chdir=", dir},
                             {"--partition=", r->slurm.partition},
                             {"--account=", r->slurm.account},
                             {"--time=", r->slurm.time_limit},
                             {"--mem=", mem}};
  enum { NVALUED = sizeof valued / sizeof *valued };
  char opts[NVALUED][PATH_MAX + 32];
  char *argv[NVALUED + 10] = {"sbatch", "--parsable", "--requeue", "--open-mode=append",
                              "--output=/dev/null"};
  int n = 5;
  for (int i = 0; i < NVALUED; i++)
    if (valued[i][1] && valued[i][1][0]) {
      snprintf(opts[i], sizeof opts[i], "%s%s", valued[i][0], valued[i][1]);
      argv[n++] = opts[i];
    }
  if (spec_gpus(job)) argv[n++] = "--gres=gpu:1";
  argv[n++] = "--wrap";
  argv[n++] = wrap;
  argv[n] = NULL;
  slurm_run *run = new_run(r, job);
  if (!run) return fb_err_set(err, FB_ENOMEM, "jobs: out of memory");
  run_cmd(r, run, argv, on_sbatch);
  return 0;
}

static void slurm_cancel(fb_jobs *r, fb_job *job) {
  (void)r;
  job->run->cancel_requested = 1;
  stop(job->run);
}

static void slurm_abandon(fb_jobs *r, fb_job *job) {
  if (!job->run) return;
  if (job->run->submitted) scancel(job->run, 0);
  drop_run(r, job->run);
}

/* The registry closes: the Slurm jobs run on, their jobs stay running in job.json. */
static void slurm_close(fb_jobs *r) {
  for (slurm_cmd *c = cmds; c; c = c->next)
    if (c->r == r) c->r = NULL;
  while (r->runs) {
    fb_job *job = r->runs->job;
    drop_run(r, r->runs);
    if (job && !job->slurm_id[0]) /* sbatch had not answered: the job cannot be followed */
      jobs_set_state(r, job, FB_JOB_INTERRUPTED, "the registry closed while sbatch ran");
  }
  uv_timer_stop(&r->poll_timer);
}

/* Open: follow a job's Slurm job again, its files read on past what progress.jsonl has. */
static void slurm_recover(fb_jobs *r, fb_job *job, int lines, int err_lines, int done) {
  if (done) { /* the worker printed done: Slurm has nothing more to say that matters */
    jobs_set_state(r, job, FB_JOB_SUCCEEDED, NULL);
    return;
  }
  slurm_run *run = new_run(r, job);
  if (!run) {
    jobs_set_state(r, job, FB_JOB_INTERRUPTED, "out of memory following its Slurm job");
    return;
  }
  run->submitted = 1;
  run->out.skip = lines;
  run->err.skip = err_lines;
  job->heartbeat_ms = now_ms();
  if (!r->slurm.poll_ms) r->slurm.poll_ms = 2000; /* a local registry follows what Slurm runs */
  follow(r);
}

void jobs_slurm_free(fb_jobs *r) {
  free(r->slurm.partition);
  free(r->slurm.account);
  free(r->slurm.time_limit);
}

const jobs_executor jobs_slurm_executor = {slurm_start, slurm_cancel, slurm_abandon, slurm_close,
                                           slurm_recover};
