/* test_jobs.c: the job registry with real worker processes (tests/jobs/worker.lua run by the
 * fastbrain binary) in a temporary data directory: single flight, stale takeover, the queue,
 * cancel, exit reasons, recovery after a crashed registry, the lock and corrupt files. */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs.h"
#include "memcg.h"
#include "test.h"

static const char *const worker_cmd[] = {FB_BIN, "run", "tests/jobs/worker.lua", NULL};

typedef struct env {
  uv_loop_t loop;
  char dir[64];
  fb_jobs *r;
  fb_jobs_options opt;
} env;

/* A loop, a fresh data directory and the options for it; no registry yet. */
static int env_init(env *e, uint64_t stale_ms, int max_running) {
  uv_loop_init(&e->loop);
  e->r = NULL;
  snprintf(e->dir, sizeof e->dir, "/tmp/fb_jobs_XXXXXX");
  if (!mkdtemp(e->dir)) return -1;
  e->opt = (fb_jobs_options){.data_dir = e->dir,
                             .stale_after_ms = stale_ms,
                             .max_running = max_running,
                             .kill_grace_ms = 500,
                             .worker = worker_cmd};
  return 0;
}

static int env_open(env *e, uint64_t stale_ms, int max_running) {
  if (env_init(e, stale_ms, max_running) != 0) return -1;
  fb_err err = {0};
  int rc = fb_jobs_open(&e->loop, &e->opt, &e->r, &err);
  if (rc != 0) fprintf(stderr, "  open: %s\n", err.msg);
  return rc;
}

static void noop_close(uv_handle_t *h) { (void)h; }

static void on_tick(uv_timer_t *t) { (void)t; }

/* Run the loop until *flag is set or ms pass; returns whether it was set. */
static int run_until(env *e, int (*done)(void *), void *ud, int ms) {
  uv_timer_t tick;
  uv_timer_init(&e->loop, &tick);
  uv_timer_start(&tick, on_tick, 5, 5);
  uint64_t end = uv_now(&e->loop) + (uint64_t)ms;
  int ok;
  while (!(ok = done(ud)) && uv_now(&e->loop) < end) uv_run(&e->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, noop_close);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  return ok;
}

static int is_final(void *job) {
  fb_job_state s = ((fb_job *)job)->state;
  return s != FB_JOB_QUEUED && s != FB_JOB_RUNNING;
}

static int never(void *ud) {
  (void)ud;
  return 0;
}

static int has_progress(void *job) { return ((fb_job *)job)->progress != NULL; }

static int no_workers(void *r) { return fb_jobs_live_workers(r) == 0; }

static void env_close(env *e) {
  if (e->r) fb_jobs_close(e->r);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&e->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
  CHECK_INT(system(cmd), 0);
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) n += de->d_name[0] != '.';
  closedir(d);
  return n;
}

static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0;
  for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
  fclose(f);
  return n;
}

static fb_job *start(env *e, const char *skill, const char *spec, int want_rc) {
  fb_job *job = NULL;
  fb_err err = {0};
  int rc = fb_jobs_start(e->r, skill, spec, &job, &err);
  if (rc != want_rc) fprintf(stderr, "  start %s: rc %d (%s)\n", skill, rc, err.msg);
  CHECK_INT(rc, want_rc);
  return job;
}

typedef struct seen {
  int64_t last_seq;
  int n, out_of_order, states;
} seen;

static void count_event(void *ud, const fb_job *job, const fb_job_event *ev) {
  seen *s = ud;
  (void)job;
  if (ev->seq != s->last_seq + 1) s->out_of_order++;
  s->last_seq = ev->seq;
  s->n++;
  s->states += strcmp(ev->type, "state") == 0;
}

TEST(second_start_conflicts_with_the_live_job) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  seen s = {0};
  fb_jobs_sub *sub = fb_jobs_subscribe(e.r, "elec", count_event, &s);
  fb_job *a = start(&e, "elec", "{\"steps\":5}", 0);
  REQUIRE(a);
  CHECK_INT(a->state, FB_JOB_RUNNING);
  fb_job *b = start(&e, "elec", "{}", 1);
  CHECK(b == a);
  CHECK(start(&e, "plumb", "{\"steps\":1}", 0) != a); /* other skills are free */
  CHECK(run_until(&e, is_final, a, 8000));
  CHECK_INT(a->state, FB_JOB_SUCCEEDED);
  CHECK_INT(cJSON_GetArraySize(a->loss_history), 5);
  CHECK(cJSON_GetObjectItem(a->progress, "event") == NULL); /* fields only */
  CHECK(a->adapter && strstr(a->adapter, a->id));
  CHECK_INT(s.out_of_order, 0);
  CHECK_INT(s.states, 3); /* queued, running, succeeded */
  CHECK_INT(s.last_seq, a->seq);
  fb_jobs_unsubscribe(e.r, sub);
  /* a finished job frees the skill */
  fb_job *c = start(&e, "elec", "{\"steps\":1}", 0);
  CHECK(c && c != a);
  CHECK(fb_jobs_latest(e.r, "elec") == c);
  CHECK(run_until(&e, no_workers, e.r, 8000));
  env_close(&e);
}

TEST(a_thousand_starts_make_one_job_and_one_worker) {
  env e;
  REQUIRE(env_open(&e, 0, 4) == 0);
  fb_job *first = NULL;
  int created = 0, conflicts = 0;
  for (int i = 0; i < 1000; i++) {
    fb_job *job = NULL;
    int rc = fb_jobs_start(e.r, "elec", "{\"steps\":2}", &job, NULL);
    if (rc == 0) {
      created++;
      first = job;
    } else if (rc == 1 && job == first) {
      conflicts++;
    }
  }
  CHECK_INT(created, 1);
  CHECK_INT(conflicts, 999);
  CHECK_INT(fb_jobs_live_workers(e.r), 1);
  char path[128];
  snprintf(path, sizeof path, "%s/jobs", e.dir);
  CHECK_INT(count_entries(path), 1);
  REQUIRE(first);
  CHECK(run_until(&e, is_final, first, 8000));
  CHECK_INT(first->state, FB_JOB_SUCCEEDED);
  snprintf(path, sizeof path, "%s/workers.txt", e.dir);
  CHECK_INT(count_lines(path), 1);
  env_close(&e);
}

TEST(a_silent_worker_goes_stale_and_the_next_start_takes_over) {
  env e;
  REQUIRE(env_open(&e, 300, 1) == 0);
  fb_job *old = start(&e, "elec", "{\"mode\":\"hang\"}", 0);
  REQUIRE(old);
  CHECK(run_until(&e, has_progress, old, 5000));       /* its start line */
  CHECK(start(&e, "elec", "{\"steps\":1}", 1) == old); /* fresh: conflict */
  run_until(&e, never, NULL, 400);
  fb_job *next = start(&e, "elec", "{\"steps\":1}", 0);
  REQUIRE(next && next != old);
  CHECK_INT(old->state, FB_JOB_FAILED);
  CHECK(strncmp(old->reason, "stale", 5) == 0);
  CHECK_INT(next->state, FB_JOB_RUNNING); /* the stale job no longer holds the slot */
  CHECK(run_until(&e, is_final, next, 8000));
  CHECK_INT(next->state, FB_JOB_SUCCEEDED);
  CHECK(run_until(&e, no_workers, e.r, 5000)); /* the stale worker was terminated */
  env_close(&e);
}

TEST(closing_while_a_stale_worker_is_still_exiting) {
  env e;
  REQUIRE(env_open(&e, 200, 1) == 0);
  fb_job *old = start(&e, "elec", "{\"mode\":\"ignore_term\",\"interval_ms\":5000}", 0);
  REQUIRE(old);
  CHECK(run_until(&e, has_progress, old, 5000));
  run_until(&e, never, NULL, 300); /* silent past stale_after; it will ignore SIGTERM */
  REQUIRE(start(&e, "elec", "{\"mode\":\"hang\"}", 0) != old);
  CHECK_INT(old->state, FB_JOB_FAILED);
  CHECK_INT(fb_jobs_live_workers(e.r), 2); /* the stale one waits out its grace */
  env_close(&e); /* closes both workers' handles; nothing is touched after */
}

TEST(jobs_queue_in_order_and_cancel) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_job *a = start(&e, "a", "{\"steps\":1000,\"interval_ms\":20}", 0);
  fb_job *b = start(&e, "b", "{\"steps\":1}", 0);
  fb_job *c = start(&e, "c", "{\"steps\":1}", 0);
  fb_job *d = start(&e, "d", "{\"steps\":1}", 0);
  REQUIRE(a && b && c && d);
  CHECK_INT(a->state, FB_JOB_RUNNING);
  CHECK_INT(fb_jobs_queue_place(e.r, b), 1);
  CHECK_INT(fb_jobs_queue_place(e.r, c), 2);
  CHECK_INT(fb_jobs_queue_place(e.r, d), 3);
  cJSON *j = fb_job_to_json(e.r, c);
  CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "place")), 2);
  cJSON_Delete(j);
  CHECK_INT(fb_jobs_cancel(e.r, c, NULL), 0); /* queued: removed at once */
  CHECK_INT(c->state, FB_JOB_CANCELLED);
  CHECK_INT(fb_jobs_queue_place(e.r, d), 2);
  CHECK(run_until(&e, has_progress, a, 5000));
  CHECK_INT(fb_jobs_cancel(e.r, a, NULL), 0); /* running: SIGTERM, checkpoint, exit 3 */
  CHECK(run_until(&e, is_final, a, 5000));
  CHECK_INT(a->state, FB_JOB_CANCELLED);
  CHECK_STR(a->reason, "cancelled");
  CHECK(a->checkpoint_step >= 0);
  CHECK(run_until(&e, is_final, d, 8000));
  CHECK_INT(b->state, FB_JOB_SUCCEEDED);
  CHECK_INT(d->state, FB_JOB_SUCCEEDED);
  CHECK(b->started_ms <= d->started_ms);
  fb_err err = {0};
  CHECK_INT(fb_jobs_cancel(e.r, b, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "succeeded");
  env_close(&e);
}

TEST(a_worker_that_ignores_sigterm_is_killed_after_the_grace) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_job *a = start(&e, "a", "{\"mode\":\"ignore_term\",\"interval_ms\":20}", 0);
  REQUIRE(a);
  CHECK(run_until(&e, has_progress, a, 5000));
  CHECK_INT(fb_jobs_cancel(e.r, a, NULL), 0);
  CHECK(run_until(&e, is_final, a, 5000));
  CHECK_INT(a->state, FB_JOB_CANCELLED);
  CHECK_STR(a->reason, "cancelled: killed by signal 9");
  env_close(&e);
}

TEST(exit_codes_and_signals_become_reasons) {
  env e;
  REQUIRE(env_open(&e, 0, 2) == 0);
  fb_job *killed = start(&e, "killed", "{\"mode\":\"hang\",\"stderr\":\"loading model\"}", 0);
  fb_job *crash = start(&e, "crash", "{\"mode\":\"crash\"}", 0);
  REQUIRE(killed && crash);
  CHECK(run_until(&e, has_progress, killed, 5000));
  CHECK_INT(kill((pid_t)killed->pid, SIGKILL), 0);
  CHECK(run_until(&e, is_final, killed, 5000));
  CHECK_INT(killed->state, FB_JOB_FAILED);
  CHECK_STR(killed->reason, "killed by signal 9");
  cJSON *j = fb_job_to_json(e.r, killed);
  char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "error"));
  CHECK_CONTAINS(text, "loading model"); /* stderr is in the job's log */
  free(text);
  cJSON_Delete(j);
  fb_job *live = NULL;
  fb_err err = {0};
  CHECK_INT(fb_jobs_resume(e.r, killed, &live, &err), FB_EINVALID); /* it had no checkpoint */
  CHECK_CONTAINS(err.msg, "failed before its first checkpoint (killed by signal 9)");
  CHECK(run_until(&e, is_final, crash, 5000));
  CHECK_INT(crash->state, FB_JOB_FAILED);
  CHECK_STR(crash->reason, "exit status 1: dataset error at data.jsonl:17");
  env_close(&e);
}

/* The kernel's OOM killer, told from another SIGKILL: with a memory cgroup of its own (we are
 * root on a machine with cgroups), a worker that outgrows a 64 MiB limit set on it is killed
 * by the kernel and its job reads "out of memory (killed by the kernel)"; its cgroup goes. */
TEST(a_kill_by_the_oom_killer_reads_out_of_memory) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_job *job = start(&e, "grow", "{\"mode\":\"grow\",\"interval_ms\":100}", 0);
  REQUIRE(job);
  CHECK(run_until(&e, has_progress, job, 5000));
  char path[128], line[512], cg[PATH_MAX] = "";
  snprintf(path, sizeof path, "/proc/%ld/cgroup", job->pid);
  FILE *f = fopen(path, "r");
  REQUIRE(f);
  while (fgets(line, sizeof line, f)) {
    char *at = strstr(line, ":memory:/");
    int len = at ? (int)strcspn(at + 8, "\n") : 0;
    if (at) snprintf(cg, sizeof cg, "/sys/fs/cgroup/memory%.*s", len, at + 8);
  }
  fclose(f);
  if (!strstr(cg, "/fastbrain-worker-")) { /* no cgroup v1 memory hierarchy we may write */
    fprintf(stderr, "  skipped: the worker has no memory cgroup of its own (%s)\n",
            cg[0] ? cg : "none");
    env_close(&e);
    return;
  }
  char limit[PATH_MAX + 32];
  snprintf(limit, sizeof limit, "%s/memory.limit_in_bytes", cg);
  f = fopen(limit, "w");
  REQUIRE(f);
  fprintf(f, "%d\n", 64 << 20);
  CHECK_INT(fclose(f), 0);
  CHECK(run_until(&e, is_final, job, 20000));
  CHECK_INT(job->state, FB_JOB_FAILED);
  CHECK_STR(job->reason, "out of memory (killed by the kernel)");
  CHECK(access(cg, F_OK) != 0);
  env_close(&e);
}

static void count_warnings(void *ud, const fb_job *job, const fb_job_event *ev) {
  (void)job;
  const char *level = cJSON_GetStringValue(cJSON_GetObjectItem(ev->data, "level"));
  if (strcmp(ev->type, "log") == 0 && level && strcmp(level, "warn") == 0) (*(int *)ud)++;
}

/* A registry's sweep removes the empty worker cgroups of registries that are gone and leaves a
 * live one's alone (another server on the same machine may be about to read its OOM count). */
TEST(the_sweep_leaves_a_live_registrys_worker_cgroups) {
  char root[PATH_MAX], mine[PATH_MAX + 64], gone[PATH_MAX + 64];
  if (fb_memcg_self(root, sizeof root) != 0) {
    fprintf(stderr, "  skipped: no memory cgroup we may make children in\n");
    return;
  }
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  REQUIRE(dead > 0 && waitpid(dead, NULL, 0) == dead); /* a pid no process has now */
  snprintf(mine, sizeof mine, "%s/fastbrain-worker-%ld-1", root, (long)getpid());
  snprintf(gone, sizeof gone, "%s/fastbrain-worker-%ld-2", root, (long)dead);
  REQUIRE(mkdir(mine, 0755) == 0);
  REQUIRE(mkdir(gone, 0755) == 0);
  fb_memcg_sweep(root, "fastbrain-worker-");
  CHECK(access(mine, F_OK) == 0);
  CHECK(access(gone, F_OK) != 0);
  rmdir(mine);
}

TEST(split_lines_are_joined_and_lines_over_the_cap_dropped) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  int warnings = 0;
  fb_jobs_subscribe(e.r, NULL, count_warnings, &warnings);
  fb_job *job = start(&e, "elec", "{\"mode\":\"chunky\"}", 0);
  REQUIRE(job);
  CHECK(run_until(&e, is_final, job, 8000));
  CHECK_INT(job->state, FB_JOB_SUCCEEDED);
  CHECK_INT(cJSON_GetArraySize(job->loss_history), 1);
  CHECK_INT(warnings, 1);
  env_close(&e);
}

TEST(a_worker_whose_child_holds_its_pipes_still_ends) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_job *job = start(&e, "elec", "{\"mode\":\"grandchild\"}", 0);
  REQUIRE(job);
  CHECK(run_until(&e, is_final, job, 4500)); /* the drain timeout, not the child's 5 s */
  CHECK_INT(job->state, FB_JOB_SUCCEEDED);
  env_close(&e);
}

TEST(a_worker_that_cannot_start_fails_its_job_and_the_queue_goes_on) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_jobs_close(e.r);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  const char *const missing[] = {"/nonexistent/fastbrain", "worker", NULL};
  e.opt.worker = missing;
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, NULL) == 0);
  fb_job *a = start(&e, "a", "{}", 0);
  fb_job *b = start(&e, "b", "{}", 0);
  REQUIRE(a && b);
  CHECK_INT(a->state, FB_JOB_FAILED);
  CHECK_STR(a->reason, "cannot start worker /nonexistent/fastbrain: no such file or directory");
  CHECK_INT(b->state, FB_JOB_FAILED);
  CHECK_INT(fb_jobs_live_workers(e.r), 0);
  env_close(&e);
}

/* The child: a registry that starts one job, reports its id once the job reached ready_step
 * (0: at once), and runs until it is SIGKILLed. */
static void crashing_registry(const char *dir, int ready_fd, int ready_step) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  fb_jobs_options opt = {.data_dir = dir, .worker = worker_cmd};
  fb_jobs *r;
  fb_job *job;
  if (fb_jobs_open(&loop, &opt, &r, NULL) != 0 ||
      fb_jobs_start(r, "elec", "{\"steps\":20,\"interval_ms\":15}", &job, NULL) != 0)
    _exit(1);
  while (ready_step > 0 && (!job->progress || cJSON_GetNumberValue(cJSON_GetObjectItem(
                                                  job->progress, "step")) < ready_step))
    uv_run(&loop, UV_RUN_ONCE);
  if (write(ready_fd, job->id, sizeof job->id) != (ssize_t)sizeof job->id) _exit(1);
  for (;;) uv_run(&loop, UV_RUN_ONCE);
}

/* Fork a crashing_registry on dir, SIGKILL it delay_us after it is ready; its job's id. */
/* Whether a process whose command line names `id` (the job's worker) is still running. */
static int worker_running(const char *id) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(d));) {
    char path[300], cmd[4096];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
      if (!cmd[i]) cmd[i] = ' ';
    cmd[n] = 0;
    found = strstr(cmd, id) != NULL;
  }
  closedir(d);
  return found;
}

/* Fork a registry that starts a job, SIGKILL it once the job reached ready_step (plus delay),
 * and write the job's id. With stopped_us, SIGSTOP it first for that long: the worker's lines
 * pile up unread in its pipe and die with the registry. With orphan_exits, wait (up to 5 s)
 * for the orphaned worker to die of its broken pipe. */
static int crash_registry(const char *dir, int ready_step, useconds_t delay_us,
                          useconds_t stopped_us, int orphan_exits, char id[FB_JOB_ID_MAX]) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) crashing_registry(dir, fds[1], ready_step);
  ssize_t n = read(fds[0], id, FB_JOB_ID_MAX);
  close(fds[0]);
  close(fds[1]);
  usleep(delay_us);
  if (stopped_us) {
    kill(child, SIGSTOP);
    usleep(stopped_us);
  }
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  for (int i = 0; orphan_exits && n == FB_JOB_ID_MAX && i < 500 && worker_running(id); i++)
    usleep(10000);
  return n == FB_JOB_ID_MAX ? 0 : -1;
}

static void check_seq(void *ud, const cJSON *ev) {
  seen *s = ud;
  int64_t seq = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(ev, "seq"));
  if (seq != s->last_seq + 1) s->out_of_order++;
  s->last_seq = seq;
  s->n++;
}

TEST(a_crashed_registry_leaves_interrupted_jobs_that_resume) {
  env e;
  REQUIRE(env_init(&e, 0, 1) == 0);
  char id[FB_JOB_ID_MAX] = "";
  REQUIRE(crash_registry(e.dir, 3, 0, 0, 1, id) == 0);
  char path[128];
  snprintf(path, sizeof path, "%s/jobs/%s/progress.jsonl", e.dir, id);
  FILE *f = fopen(path, "a");
  REQUIRE(f);
  fputs("{\"seq\":99999,\"event\":\"progr", f); /* as if cut by the crash */
  fclose(f);

  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  fb_job *job = fb_jobs_get(e.r, id);
  REQUIRE(job);
  CHECK_INT(job->state, FB_JOB_INTERRUPTED);
  CHECK_CONTAINS(job->reason, "the registry stopped while it ran");
  fb_job *live = NULL;
  CHECK_INT(fb_jobs_resume(e.r, job, &live, &err), 0);
  CHECK_INT(job->state, FB_JOB_RUNNING);
  CHECK(run_until(&e, is_final, job, 8000));
  CHECK_INT(job->state, FB_JOB_SUCCEEDED);
  CHECK_INT(fb_jobs_resume(e.r, job, &live, &err), FB_EINVALID);
  int steps = cJSON_GetArraySize(job->loss_history), ascending = 1;
  for (int i = 1; i < steps; i++)
    ascending &=
        cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(job->loss_history, i), 0)) >
        cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(job->loss_history, i - 1), 0));
  CHECK(ascending); /* the steps redone after the checkpoint replaced their first run */
  CHECK_INT(steps, 20);
  seen s = {0};
  CHECK(fb_jobs_events(e.r, job, 0, check_seq, &s, &err) > 20);
  CHECK_INT(s.out_of_order, 0); /* no gap, no duplicate across the crash */
  CHECK_INT(s.last_seq, job->seq);
  seen tail = {.last_seq = job->seq - 2};
  CHECK_INT(fb_jobs_events(e.r, job, job->seq - 2, check_seq, &tail, &err), 2);
  env_close(&e);
}

/* The last progress step in the worker's record (jobs/<id>/worker.jsonl). */
static int recorded_step(const char *dir, const char *id) {
  char path[256], line[4096];
  snprintf(path, sizeof path, "%s/jobs/%s/worker.jsonl", dir, id);
  FILE *f = fopen(path, "r");
  int step = -1;
  while (f && fgets(line, sizeof line, f)) {
    cJSON *ev = cJSON_Parse(line);
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event")) ?: "", "progress") == 0)
      step = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(ev, "step"));
    cJSON_Delete(ev);
  }
  if (f) fclose(f);
  return step;
}

TEST(what_an_orphaned_worker_printed_unread_is_replayed_from_its_record) {
  env e;
  REQUIRE(env_init(&e, 0, 1) == 0);
  char id[FB_JOB_ID_MAX] = "";
  /* Stopped at step 3 for 150 ms: about ten steps wait in the pipe when the registry dies. */
  REQUIRE(crash_registry(e.dir, 3, 0, 150000, 1, id) == 0);
  int last = recorded_step(e.dir, id);
  CHECK(last >= 6);
  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  fb_job *job = fb_jobs_get(e.r, id);
  REQUIRE(job);
  CHECK_INT(job->state, FB_JOB_INTERRUPTED);
  int n = cJSON_GetArraySize(job->loss_history), whole = 1;
  for (int i = 0; i < n; i++)
    whole &= (int)cJSON_GetNumberValue(
                 cJSON_GetArrayItem(cJSON_GetArrayItem(job->loss_history, i), 0)) == i + 1;
  CHECK(whole);
  CHECK_INT(n, last); /* every step the worker did, though the registry read only three */
  seen s = {0};
  fb_jobs_events(e.r, job, 0, check_seq, &s, &err);
  CHECK_INT(s.out_of_order, 0);
  CHECK_INT(s.last_seq, job->seq);
  env_close(&e);
}

TEST(a_second_registry_on_the_data_dir_is_refused_with_the_pid) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_jobs *other = NULL;
  fb_err err = {0};
  CHECK_INT(fb_jobs_open(&e.loop, &e.opt, &other, &err), FB_EIO);
  CHECK(other == NULL);
  char want[64];
  snprintf(want, sizeof want, "in use by pid %ld", (long)getpid());
  CHECK_CONTAINS(err.msg, want);
  env_close(&e);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Run one job of skill with spec to its end, then close the registry (its id into id). */
static void run_one_then_close(env *e, const char *skill, const char *spec,
                               char id[FB_JOB_ID_MAX]) {
  fb_job *job = start(e, skill, spec, 0);
  REQUIRE(job);
  CHECK(run_until(e, is_final, job, 8000));
  snprintf(id, FB_JOB_ID_MAX, "%s", job->id);
  fb_jobs_close(e->r);
  uv_run(&e->loop, UV_RUN_DEFAULT);
}

/* Make each of dirs under the data directory. */
static void make_dirs(const env *e, const char *const *dirs, size_t n) {
  char path[300];
  for (size_t i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", e->dir, dirs[i]);
    CHECK_INT(mkdir(path, 0755), 0);
  }
}

/* The unreadable job's fields, as the API lists them. */
static void check_unreadable(const fb_jobs *r, const char *id) {
  fb_job *bad = fb_jobs_get(r, id);
  REQUIRE(bad);
  CHECK_INT(bad->state, FB_JOB_UNREADABLE);
  CHECK_STR(bad->reason, "job.json: not valid JSON");
  CHECK_STR(bad->skill, "elec"); /* from its first event */
  cJSON *o = fb_job_to_json(r, bad);
  CHECK_STR(cJSON_GetObjectItem(o, "state")->valuestring, "unreadable");
  CHECK_STR(cJSON_GetObjectItem(o, "set_aside")->valuestring,
            "jobs/20200101-000000-000/job.json.corrupt-1");
  CHECK_INT((long long)cJSON_GetObjectItem(o, "created_at")->valuedouble, 1577836800000LL);
  cJSON_Delete(o);
  fb_job *live = NULL;
  fb_err err = {0};
  CHECK_INT(fb_jobs_resume((fb_jobs *)r, bad, &live, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "is unreadable: nothing to resume");
}

TEST(a_corrupt_job_json_is_set_aside_and_its_job_listed_as_unreadable) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  char good_id[FB_JOB_ID_MAX], path[256];
  run_one_then_close(&e, "elec", "{\"steps\":1}", good_id);
  const char *dirs[] = {"jobs/20200101-000000-000"};
  make_dirs(&e, dirs, 1);
  snprintf(path, sizeof path, "%s/jobs/20200101-000000-000/progress.jsonl", e.dir);
  write_text(
      path, "{\"seq\":1,\"event\":\"state\",\"job\":\"20200101-000000-000\",\"skill\":\"elec\"}\n");
  snprintf(path, sizeof path, "%s/jobs/20200101-000000-000/job.json", e.dir);
  write_text(path, "{\"id\": \"20200101-0"); /* cut by a crash */
  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  const char *const *reports = fb_jobs_reports(e.r);
  REQUIRE(reports[0]);
  CHECK_CONTAINS(reports[0], "20200101-000000-000/job.json");
  CHECK_CONTAINS(reports[0], "set aside as job.json.corrupt-1");
  CHECK(reports[1] == NULL);
  strcat(path, ".corrupt-1");
  CHECK_INT(access(path, F_OK), 0);
  fb_job *again = fb_jobs_get(e.r, good_id); /* the good job is still there */
  REQUIRE(again);
  CHECK_INT(again->state, FB_JOB_SUCCEEDED);
  CHECK_INT(cJSON_GetArraySize(again->loss_history), 1);
  check_unreadable(e.r, "20200101-000000-000");
  CHECK(fb_jobs_latest(e.r, "elec") == again); /* an unreadable job is nobody's current one */
  CHECK(fb_jobs_next(e.r, again) == fb_jobs_get(e.r, "20200101-000000-000")); /* oldest last */

  fb_jobs_close(e.r); /* and at the next open, from the file set aside */
  uv_run(&e.loop, UV_RUN_DEFAULT);
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  CHECK(fb_jobs_reports(e.r)[0] == NULL);
  check_unreadable(e.r, "20200101-000000-000");
  env_close(&e);
}

TEST(a_start_cut_short_by_a_crash_leaves_nothing) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  fb_jobs_close(e.r);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  char dir[256], path[300];
  snprintf(dir, sizeof dir, "%s/jobs/20200101-000000-000", e.dir);
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/spec.json", dir);
  write_text(path, "{\"steps\":1}");
  snprintf(path, sizeof path, "%s/.job.json.tmp123", dir); /* an atomic write cut short */
  write_text(path, "{\"id\":");
  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  const char *const *reports = fb_jobs_reports(e.r);
  REQUIRE(reports[0]);
  CHECK_CONTAINS(reports[0],
                 "20200101-000000-000: a start cut short by a crash (no job.json); removed");
  CHECK(access(dir, F_OK) != 0);
  CHECK(fb_jobs_next(e.r, NULL) == NULL);
  env_close(&e);
}

/* A worker killed while it wrote its output leaves the hidden partial directory beside the
 * spec's out, or out stepped aside mid-replacement: open settles both. */
TEST(open_settles_the_output_a_killed_worker_left) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  char spec[300], out[200], path[300], id[FB_JOB_ID_MAX];
  snprintf(out, sizeof out, "%s/adapters/s/v1", e.dir);
  snprintf(spec, sizeof spec, "{\"steps\":1,\"out\":\"%s\"}", out);
  run_one_then_close(&e, "s", spec, id);
  const char *dirs[] = {"adapters", "adapters/s", "adapters/s/.v1.partial",
                        "adapters/s/.v1.replaced", "adapters/s/.v1.replaced/checkpoints"};
  make_dirs(&e, dirs, sizeof dirs / sizeof dirs[0]);
  snprintf(path, sizeof path, "%s/adapters/s/.v1.partial/summary.json", e.dir);
  write_text(path, "{}");
  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  CHECK(fb_jobs_reports(e.r)[0] == NULL);
  snprintf(path, sizeof path, "%s/adapters/s", e.dir);
  CHECK_INT(count_entries(path), 1); /* v1, and nothing hidden */
  DIR *d = opendir(path);
  REQUIRE(d);
  int hidden = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;)
    hidden += de->d_name[0] == '.' && strlen(de->d_name) > 2;
  closedir(d);
  CHECK_INT(hidden, 0);
  snprintf(path, sizeof path, "%s/checkpoints", out); /* the replacement was undone */
  CHECK_INT(access(path, F_OK), 0);
  env_close(&e);
}

/* A checkpoint a full disk cut short leaves step-N.tmp: open removes it, never step-N.old. */
TEST(open_removes_a_checkpoint_cut_short) {
  env e;
  REQUIRE(env_open(&e, 0, 1) == 0);
  char spec[300], ck[200], path[300], id[FB_JOB_ID_MAX];
  snprintf(ck, sizeof ck, "%s/ck", e.dir);
  snprintf(spec, sizeof spec, "{\"steps\":1,\"checkpoints\":\"%s\"}", ck);
  run_one_then_close(&e, "s", spec, id);
  const char *dirs[] = {"ck", "ck/step-00000004.tmp", "ck/step-00000002.old"};
  make_dirs(&e, dirs, sizeof dirs / sizeof dirs[0]);
  snprintf(path, sizeof path, "%s/ck/step-00000004.tmp/state.safetensors", e.dir);
  write_text(path, "half");
  fb_err err = {0};
  REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
  REQUIRE(fb_jobs_reports(e.r)[0]);
  CHECK_CONTAINS(fb_jobs_reports(e.r)[0], "a checkpoint cut short (step-N.tmp) removed");
  snprintf(path, sizeof path, "%s/ck/step-00000004.tmp", e.dir);
  CHECK(access(path, F_OK) != 0);
  snprintf(path, sizeof path, "%s/ck/step-00000002.old", e.dir);
  CHECK_INT(access(path, F_OK), 0);
  env_close(&e);
}

/* Rounds of: a registry SIGKILLed at a random moment of its job, reopened, the job resumed to
 * the end. No job is lost or duplicated, every job.json parses, events stay gapless.
 * FB_JOBS_ROUNDS sets the number of rounds (a soak). */
TEST(registries_killed_at_random_moments_lose_nothing) {
  const char *rounds_env = getenv("FB_JOBS_ROUNDS");
  int rounds = rounds_env ? atoi(rounds_env) : 6;
  unsigned seed = (unsigned)getpid();
  srand(seed);
  env e;
  REQUIRE(env_init(&e, 0, 1) == 0);
  for (int round = 0; round < rounds; round++) {
    char id[FB_JOB_ID_MAX] = "";
    REQUIRE(crash_registry(e.dir, 0, (useconds_t)(rand() % 300000), 0, 0, id) == 0);
    fb_err err = {0};
    REQUIRE(fb_jobs_open(&e.loop, &e.opt, &e.r, &err) == 0);
    if (fb_jobs_reports(e.r)[0])
      fprintf(stderr, "  seed %u round %d: %s\n", seed, round, fb_jobs_reports(e.r)[0]);
    CHECK(fb_jobs_reports(e.r)[0] == NULL);
    int n = 0;
    for (fb_job *j = fb_jobs_next(e.r, NULL); j; j = fb_jobs_next(e.r, j), n++)
      CHECK(j->state == FB_JOB_SUCCEEDED || j == fb_jobs_get(e.r, id));
    CHECK_INT(n, round + 1);
    fb_job *job = fb_jobs_get(e.r, id);
    REQUIRE(job);
    if (job->state != FB_JOB_SUCCEEDED) {
      fb_job *live = NULL;
      if (job->state != FB_JOB_INTERRUPTED)
        fprintf(stderr, "  seed %u round %d: %s\n", seed, round, job->reason);
      CHECK_INT(job->state, FB_JOB_INTERRUPTED);
      CHECK_INT(fb_jobs_resume(e.r, job, &live, &err), 0);
      CHECK(run_until(&e, is_final, job, 8000));
      CHECK_INT(job->state, FB_JOB_SUCCEEDED);
    }
    seen s = {0};
    fb_jobs_events(e.r, job, 0, check_seq, &s, &err);
    CHECK_INT(s.out_of_order, 0);
    CHECK_INT(s.last_seq, job->seq);
    fb_jobs_close(e.r);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    e.r = NULL;
  }
  env_close(&e);
}
