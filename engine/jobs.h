/* jobs.h: the job registry. Training jobs run as worker processes (uv_spawn, or Slurm batch
 * jobs under the slurm executor) that speak the JSON-lines protocol of docs/protocol.md; the registry keeps at most one live
 * (queued or running) job per skill, runs at most max_running at once with a FIFO queue
 * behind, persists every job under data_dir/jobs/<id>/ and calls listeners with numbered
 * events. It does not know Lua, HTTP or what a spec means: the spec is JSON text it hands to
 * the worker in jobs/<id>/spec.json. Only the loop thread may call anything here. */
#ifndef FB_JOBS_H
#define FB_JOBS_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

typedef enum {
  FB_JOB_QUEUED,
  FB_JOB_RUNNING,
  FB_JOB_SUCCEEDED,
  FB_JOB_FAILED,
  FB_JOB_CANCELLED,
  FB_JOB_INTERRUPTED, /* the registry stopped (crash, restart) while the job ran: resumable */
  FB_JOB_UNREADABLE,  /* its job.json did not load at open: listed with why, never run again */
} fb_job_state;

#define FB_JOB_ID_MAX 40
#define FB_JOB_SKILL_MAX 64 /* skills are [a-z0-9_-]{1,64} */
#define FB_JOB_LOG_LINES 20

/* A job. Owned by its registry, freed by fb_jobs_close; read it, never write it. Pointers
 * into it stay valid until the registry closes. */
typedef struct fb_job {
  char id[FB_JOB_ID_MAX];
  char skill[FB_JOB_SKILL_MAX + 1];
  char *spec; /* JSON text */
  fb_job_state state;
  char reason[512]; /* why it ended or was interrupted: "killed by signal 9" */
  uint64_t created_ms, started_ms, finished_ms, heartbeat_ms; /* monotonic; 0 = not yet */
  int64_t created_at, started_at, finished_at, heartbeat_at;  /* wall clock, Unix ms */
  cJSON *progress;                   /* the latest progress event's fields, or NULL */
  cJSON *loss_history;               /* [[step, loss], ...], thinned by half when long */
  cJSON *eval_history;               /* [[step, eval_loss], ...] */
  cJSON *samples;                    /* the latest sample events, newest last */
  cJSON *summary;                    /* from done, or NULL */
  char *adapter;                     /* from done, or NULL */
  char *error_message, *error_where; /* from the worker's error event, or NULL */
  char *log_tail[FB_JOB_LOG_LINES];  /* ring of the last stderr and log lines */
  int log_next;
  int64_t checkpoint_step; /* the latest checkpoint event's step, -1 if none */
  long pid;                /* the worker's, 0 when none */
  char *set_aside; /* unreadable: "jobs/<id>/job.json.corrupt-N" (data_dir-relative) or NULL */
  int64_t seq;     /* the last event's sequence number */
  /* Under the slurm executor: the Slurm job id ("" when none) and what Slurm last said of it
   * (state "PENDING", reason "Resources"; "" before the first poll). */
  char slurm_id[32], slurm_state[32], slurm_reason[128];
  int64_t memory_bytes;  /* host memory its worker needs at its peak (its estimate); 0 unknown */
  struct job_proc *proc; /* private: the running worker */
  struct slurm_run *run; /* private: the Slurm job followed */
  int dirty;             /* private: job.json is behind */
  uint64_t saved_ms;     /* private: when job.json was last written */
  struct fb_job *next;   /* private: the registry's list, newest first */
} fb_job;

typedef struct fb_jobs fb_jobs;

typedef struct fb_jobs_options {
  const char *data_dir;    /* required; jobs/ and lock live here */
  uint64_t stale_after_ms; /* no worker line for this long: stale; 0: 30 minutes */
  int max_running;         /* 0: 1 */
  uint64_t kill_grace_ms;  /* SIGTERM -> SIGKILL; 0: 10 s */
  /* The worker command before the job directory, NULL-terminated; NULL: this executable
   * (uv_exepath) followed by "worker". Copied. */
  const char *const *worker;
  /* Where workers run: NULL or "local" (child processes of the registry), or "slurm" (batch
   * jobs submitted with sbatch; the data directory must be on storage the nodes see too). */
  const char *executor;
  struct {
    const char *partition, *account, *time_limit; /* NULL: the cluster's defaults */
    int mem_mb;                                   /* --mem of each job; 0: the cluster's default */
    uint64_t poll_ms;                             /* squeue every; 0: 2 s */
  } slurm;
} fb_jobs_options;

/* An event: `data` is the whole object ({"seq":, "event":, "job":, "skill":, ...}), borrowed
 * for the duration of the call. Types: the worker's (start, progress, eval, sample, checkpoint,
 * log, done, error), log for each stderr line (level "stderr"), and state for every change of
 * state ({"state":, "reason":}). */
typedef struct fb_job_event {
  int64_t seq;
  const char *type;
  const cJSON *data;
} fb_job_event;

typedef void (*fb_jobs_listener)(void *ud, const fb_job *job, const fb_job_event *ev);
typedef struct fb_jobs_sub fb_jobs_sub;

/* Open the registry on `loop`: takes data_dir/lock (refused with FB_EIO "... is in use by pid
 * N" while another registry holds it), loads every job (a corrupt job.json is renamed to
 * job.json.corrupt-N and listed by fb_jobs_reports; its job stays listed as unreadable, with
 * the reason and set_aside, at this open and the next ones), brings jobs recorded as running up to
 * date from progress.jsonl and their worker's record (jobs/<id>/worker.jsonl: the lines the
 * crashed registry never read), marks them interrupted (or succeeded, if the worker printed
 * done), SIGKILLing an orphaned worker that still runs (a job with a Slurm id is followed
 * again instead), and restarts the queue. A sweep on the
 * loop fails stale jobs every stale_after / 4 (at most a minute). */
int fb_jobs_open(uv_loop_t *loop, const fb_jobs_options *opt, fb_jobs **out, fb_err *err);

/* Close: running workers get SIGTERM (they checkpoint and exit; nobody waits for them) and
 * their jobs become interrupted, resumable after the next open, except Slurm jobs, which run on
 * and are followed again by the next open (docs/slurm.md); queued jobs stay queued in
 * job.json; listeners are dropped; the lock is released. Memory is freed once the loop has run
 * the close callbacks. No listener is called from here on. */
void fb_jobs_close(fb_jobs *r);

/* Problems found by open (corrupt files set aside), NULL-terminated; owned by r. */
const char *const *fb_jobs_reports(const fb_jobs *r);

/* Start a job for skill with spec (JSON object text). Single flight: when the skill has a live
 * job the return is 1 ("conflict") with *job the live job, unless that job is stale (no heartbeat for stale_after), in which case it is failed
 * with reason "stale", its worker terminated, and the new job started. Returns 0 with *job
 * the new job (running, queued, or failed if the worker could not be spawned), 1 on
 * conflict, or a negative code (bad skill, spec not an object, I/O). */
int fb_jobs_start(fb_jobs *r, const char *skill, const char *spec, fb_job **job, fb_err *err);
/* fb_jobs_start for a job whose estimate says its worker needs memory_bytes of host memory at
 * its peak (0: unknown): the slurm executor asks for that much (--mem, docs/slurm.md). */
int fb_jobs_start_needing(fb_jobs *r, const char *skill, const char *spec, int64_t memory_bytes,
                          fb_job **job, fb_err *err);

/* Cancel: a running job's worker gets SIGTERM (SIGKILL after the grace) and the job becomes
 * cancelled when it exits; a queued job is cancelled at once. FB_EINVALID when it is not live. */
int fb_jobs_cancel(fb_jobs *r, fb_job *job, fb_err *err);

/* Resume an interrupted or cancelled job, or a failed one with a checkpoint: the same job (id,
 * directory, events) queued again, its worker continuing from the checkpoint (an interrupted
 * or cancelled job without one starts over). Returns 1 with *live when the skill has a live
 * job (the job itself, if it is live); FB_EINVALID for a succeeded job or a failed one without
 * a checkpoint. */
int fb_jobs_resume(fb_jobs *r, fb_job *job, fb_job **live, fb_err *err);

fb_job *fb_jobs_get(const fb_jobs *r, const char *id);
/* The skill's current job: its live one (an older job resumed is the current one), else its
 * newest; NULL when it has none. */
fb_job *fb_jobs_latest(const fb_jobs *r, const char *skill);
/* Iterate newest first: pass NULL for the first. */
fb_job *fb_jobs_next(const fb_jobs *r, const fb_job *prev);
/* 1-based place in the queue of a queued job, else 0. */
int fb_jobs_queue_place(const fb_jobs *r, const fb_job *job);
/* Processes started by this registry that have not yet exited (a test's count of workers). */
int fb_jobs_live_workers(const fb_jobs *r);

/* The job as the JSON object job.json holds (plus "place" when queued); the caller frees it
 * with cJSON_Delete. NULL when out of memory. */
cJSON *fb_job_to_json(const fb_jobs *r, const fb_job *job);
const char *fb_job_state_name(fb_job_state s);
/* Check a skill name ([a-z0-9_-]{1,64}); 0 or FB_EINVALID with the reason. */
int fb_jobs_check_skill(const char *skill, fb_err *err);

/* Events of a job with seq > after, read from its progress.jsonl: fn is called for each in
 * order. Returns the number delivered or a negative code. */
int fb_jobs_events(fb_jobs *r, const fb_job *job, int64_t after,
                   void (*fn)(void *ud, const cJSON *ev), void *ud, fb_err *err);

/* Listen to the events of one skill's jobs (skill NULL: every job). The listener may
 * subscribe, unsubscribe (itself too), start or cancel. Returns NULL when out of memory. */
fb_jobs_sub *fb_jobs_subscribe(fb_jobs *r, const char *skill, fb_jobs_listener fn, void *ud);
void fb_jobs_unsubscribe(fb_jobs *r, fb_jobs_sub *sub);

#endif
