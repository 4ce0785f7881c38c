/* jobs_impl.h: what the job registry's files share, behind the API of jobs.h (libuv's
 * internal.h pattern). The registry is six files, one job each:
 *   jobs.c          the registry: single flight per skill, the run limit and its FIFO queue,
 *                   start/cancel/resume, stale takeover, open and close
 *   jobs_record.c   a job's record: as JSON, job.json, progress.jsonl read back
 *   jobs_events.c   numbered events to progress.jsonl and the listeners; state changes
 *   jobs_worker.c   a worker's lines -> its job; the local executor: spawn, pipes, signals,
 *                   exit -> state
 *   jobs_slurm.c    the slurm executor: sbatch, squeue, scancel, the worker's files tailed
 *   jobs_recover.c  open: the data directory's lock, jobs read back and recovered
 * Where workers run is an executor (jobs_executor): local (jobs_worker.c) or slurm.
 * It does not train or interpret specs (workers do), except to settle on open what a killed
 * worker left of the output it was writing to the spec's `out` (output.h), and to ask Slurm
 * for a GPU when the spec's `device` is cuda. */
#ifndef FB_JOBS_IMPL_H
#define FB_JOBS_IMPL_H

#include <limits.h>
#include <stdio.h>
#include <time.h>

#include "jobs.h"

#define DEFAULT_STALE_MS (30 * 60 * 1000ull)
#define DEFAULT_GRACE_MS 10000ull
#define SAVE_EVERY_MS 2000
#define DRAIN_MS 2000            /* how long the pipes of an exited worker may stay open */
#define LINE_MAX_BYTES (1 << 20) /* a longer worker line is dropped */
#define LOSS_HISTORY_MAX 2000    /* thinned by half beyond this */
#define SAMPLES_MAX 8
#define JOB_JSON_MAX (64 << 20)
#define PROGRESS_MAX (512 << 20)
#define EXIT_NOMEM 4                 /* docs/protocol.md: the worker ran out of memory */
#define EXIT_DEVICE_FAULT 70         /* docs/protocol.md: the GPU failed (a CUDA fault) */
#define WORKER_RECORD "worker.jsonl" /* the worker's own copy of its stdout lines, this run */
#define ORPHAN_WAIT_MS 2000          /* how long open waits for a killed orphan to go */
/* A worker's memory cgroup is MEMCG_PREFIX "<registry pid>-<worker pid>" (memcg.h): with the
 * registry's pid in the name, another server's sweep leaves this one's cgroups alone. */
#define MEMCG_PREFIX "fastbrain-worker-"

typedef struct linebuf {
  char *buf;
  size_t len, cap;
  int dropping; /* inside a line over LINE_MAX_BYTES: skip to its end */
} linebuf;

/* A worker process and its handles; freed when the last of its four handles has closed. */
typedef struct job_proc {
  uv_process_t process;
  uv_pipe_t out, err;
  uv_timer_t kill_timer; /* SIGKILL after the grace; once exited, the drain timeout */
  fb_jobs *r;            /* NULL once the registry closed */
  fb_job *job;           /* NULL once detached (the job ended without it: stale, registry closed) */
  int open_handles, closing;
  int exited, out_eof, err_eof, done_seen, cancel_requested;
  int64_t exit_status;
  int term_signal;
  int oom_killed;       /* the kernel's OOM killer counted a kill in the worker's memory cgroup */
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

typedef struct slurm_run slurm_run; /* a Slurm job followed (jobs_slurm.c) */

/* Where a job's worker runs. The registry numbers and emits every event either way: the local
 * executor reads the worker's stdout, the slurm one tails its record (WORKER_RECORD). */
typedef struct jobs_executor {
  int (*start)(fb_jobs *r, fb_job *job, fb_err *err); /* 0: it runs (or waits in Slurm) */
  /* Stop a running job's worker: cancel (its end reads as cancelled) or abandon (a stale
   * takeover: the caller fails the job, the executor forgets it). */
  void (*cancel)(fb_jobs *r, fb_job *job);
  void (*abandon)(fb_jobs *r, fb_job *job);
  void (*close)(fb_jobs *r); /* the registry closes: what becomes of the running jobs */
  /* Open: a job recorded running whose events are caught up; `lines` and `err_lines` are the
   * worker's stdout and stderr lines this run already in progress.jsonl, `done` whether one of
   * them was done. */
  void (*recover)(fb_jobs *r, fb_job *job, int lines, int err_lines, int done);
} jobs_executor;

extern const jobs_executor jobs_local_executor, jobs_slurm_executor;

typedef struct jobs_slurm_options {
  char *partition, *account, *time_limit; /* NULL: the cluster's */
  int mem_mb;
  uint64_t poll_ms;
} jobs_slurm_options;

struct fb_jobs {
  uv_loop_t *loop;
  const jobs_executor *exec;
  jobs_slurm_options slurm;
  slurm_run *runs;       /* the Slurm jobs followed */
  uv_timer_t poll_timer; /* squeue and the tails of the runs, every slurm.poll_ms */
  int polling;           /* a squeue is in flight */
  char *data_dir;
  char **worker; /* NULL-terminated */
  uint64_t stale_after_ms, kill_grace_ms;
  int max_running;
  int lock_fd;
  fb_job *jobs;   /* newest first */
  fb_job **queue; /* FIFO */
  int queue_n, queue_cap;
  fb_jobs_sub *subs;
  int dispatching;
  uv_timer_t flush_timer; /* writes job.json of jobs whose progress is behind */
  uv_timer_t sweep_timer; /* fails stale jobs even when no start comes */
  int open_timers;        /* the registry is freed when its three timers have closed */
  char **reports;
  int nreports;
  struct job_proc *procs;    /* every worker not yet exited, stale ones included */
  char memcg_root[PATH_MAX]; /* where workers get memory cgroups of their own, "" for none */
  int closed;
};

static inline uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static inline int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int is_live(const fb_job *job) {
  return job->state == FB_JOB_QUEUED || job->state == FB_JOB_RUNNING;
}

/* jobs/<id>[/<file>] under the data directory. */
static inline void job_path(char *dst, size_t n, const fb_jobs *r, const char *id,
                            const char *file) {
  snprintf(dst, n, "%s/jobs/%s%s%s", r->data_dir, id, file ? "/" : "", file ? file : "");
}

static inline const char *get_str(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline double get_num(const cJSON *o, const char *name, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* jobs.c */
fb_job_state jobs_state_named(const char *name); /* (fb_job_state)-1 for an unknown name */
void jobs_pump(fb_jobs *r);                      /* start queued jobs while there is room */
int jobs_enqueue(fb_jobs *r, fb_job *job, fb_err *err);
void jobs_insert(fb_jobs *r, fb_job *job); /* into the list, newest first */

/* jobs_record.c */
fb_job *jobs_new_job(void);
void jobs_free_job(fb_job *job);
void jobs_log_add(fb_job *job, const char *line);
void jobs_set_str(char **dst, const char *s);
void jobs_add_str(cJSON *o, const char *name, const char *s); /* null for NULL */
int jobs_from_json(cJSON *o, fb_job *job, fb_err *err);
void jobs_save(fb_jobs *r, fb_job *job);      /* job.json now */
void jobs_save_soon(fb_jobs *r, fb_job *job); /* job.json now, or within SAVE_EVERY_MS */

/* jobs_events.c */
void jobs_emit(fb_jobs *r, fb_job *job, cJSON *ev, int save);
void jobs_set_state(fb_jobs *r, fb_job *job, fb_job_state state, const char *reason);
cJSON *jobs_log_event(const char *level, const char *message);

/* jobs_worker.c */
int jobs_apply_event(fb_job *job, const cJSON *ev, const char *type);
int jobs_worker_line(fb_jobs *r, fb_job *job, const char *line);
void jobs_stderr_line(fb_jobs *r, fb_job *job, const char *line);
void jobs_heartbeat(fb_job *job);
void jobs_feed_lines(fb_jobs *r, fb_job *job, linebuf *lb, const char *data, size_t n,
                     int (*fn)(void *ud, const char *line), void *ud);

/* jobs_slurm.c */
void jobs_slurm_free(fb_jobs *r); /* the options and runs, once the registry is closed */

/* jobs_recover.c */
int jobs_take_lock(fb_jobs *r, fb_err *err);
int jobs_load(fb_jobs *r, fb_err *err);
/* The worker's record past its first `seen` lines, emitted as if read; 1 if one was done. */
int jobs_replay_record(fb_jobs *r, fb_job *job, int seen);

#endif
