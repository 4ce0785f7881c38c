/* jobs_recover.c: the registry's open: the data directory's lock, every job read back from
 * its directory (an unreadable job.json set aside and listed as such, a start a crash cut short
 * removed), jobs recorded live caught up with their events and their orphaned workers killed,
 * and what a killed worker left of its output settled. */
#include "jobs_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "output.h"

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

int jobs_take_lock(fb_jobs *r, fb_err *err) {
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

/* Reading progress.jsonl at open, for a job recorded live. */
typedef struct catch_up {
  fb_job *job;
  int run_lines; /* events from the worker's stdout since the job last became running */
  int err_lines; /* and from its stderr */
  int run_done;  /* one of them was `done` */
} catch_up;

/* job.json lags progress.jsonl by up to SAVE_EVERY_MS (and by a state change a crash cut
 * short): events past its seq are applied. Every event counts toward the latest run's lines. */
static void catch_up_event(void *ud, const cJSON *ev) {
  catch_up *c = ud;
  fb_job *job = c->job;
  const char *type = get_str(ev, "event"), *level = get_str(ev, "level");
  if (!type) return;
  int is_state = strcmp(type, "state") == 0;
  fb_job_state s = is_state ? jobs_state_named(get_str(ev, "state")) : FB_JOB_QUEUED;
  int is_stderr = strcmp(type, "log") == 0 && level && strcmp(level, "stderr") == 0;
  if (is_state && s == FB_JOB_RUNNING && !get_str(ev, "reason")) /* not a Slurm state's note */
    c->run_lines = c->err_lines = c->run_done = 0;
  else if (is_stderr)
    c->err_lines++; /* stderr lines are not in the worker's record */
  else if (!is_state)
    c->run_lines++;
  int64_t seq = (int64_t)get_num(ev, "seq", 0);
  if (seq <= job->seq) return;
  job->seq = seq;
  if (!is_state) {
    c->run_done |= jobs_apply_event(job, ev, type);
  } else if ((int)s >= 0) {
    job->state = s;
    snprintf(job->reason, sizeof job->reason, "%s",
             get_str(ev, "reason") ? get_str(ev, "reason") : "");
    if (!is_live(job)) job->pid = 0;
  }
}

/* The lines of the worker's record past the first `seen`: what it printed that the crashed
 * registry never read (a worker dies of its broken pipe at its next line, after recording
 * it). Emitted as if read; returns 1 if one was `done`. */
int jobs_replay_record(fb_jobs *r, fb_job *job, int seen) {
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
    *nl = 0; /* a last line without its newline was cut by a kill: not replayed */
    if (*line && ++n > seen) done |= jobs_worker_line(r, job, line);
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
  if (newest_aside(r, id, aside, sizeof aside)) return 0; /* an unreadable job: listed as such */
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
  int rc = !o ? fb_err_set(err, FB_EFORMAT, "not valid JSON") : jobs_from_json(o, job, err);
  cJSON_Delete(o);
  job_path(path, sizeof path, r, id, "spec.json");
  if (rc == 0 && strcmp(job->id, id) != 0)
    rc = fb_err_set(err, FB_EFORMAT, "id does not match its directory");
  if (rc == 0 && fb_read_file(path, &job->spec, &len, JOB_JSON_MAX, err) != 0)
    rc = fb_err_set(err, FB_EFORMAT, "spec.json: %s", fb_strerror(err->code));
  cJSON *spec = rc == 0 ? cJSON_Parse(job->spec) : NULL;
  if (rc == 0 && !cJSON_IsObject(spec))
    rc = fb_err_set(err, FB_EFORMAT, "spec.json: not a JSON object");
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
  if (skill && fb_jobs_check_skill(skill, NULL) == 0)
    snprintf(job->skill, sizeof job->skill, "%s", skill);
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
  fb_job *job = jobs_new_job();
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
  jobs_insert(r, job);
}

static void load_job(fb_jobs *r, const char *id) {
  char path[PATH_MAX], aside[64];
  fb_err err = {0};
  if (remove_unstarted(r, id)) return;
  fb_job *job = jobs_new_job();
  if (!job) return;
  job_path(path, sizeof path, r, id, "job.json");
  int missing = access(path, F_OK) != 0;
  int rc = read_job(r, id, "job.json", job, &err);
  if (rc == 0) {
    jobs_insert(r, job);
    return;
  }
  jobs_free_job(job);
  if (missing && newest_aside(r, id, aside, sizeof aside)) { /* set aside by an earlier open */
    job = jobs_new_job();
    if (job && read_job(r, id, aside, job, &err) == 0)
      fb_err_set(&err, FB_EFORMAT, "set aside earlier");
    if (job) jobs_free_job(job);
  } else if (err.code == FB_EFORMAT) {
    set_aside(r, path, err.msg, aside, sizeof aside);
  } else { /* missing, or not readable: the path and errno go to the log, not to clients */
    report(r, "%s: %s", path, err.msg);
    fb_err_set(&err, err.code, "%s", err.code == FB_ENOTFOUND ? "missing" : fb_strerror(err.code));
    aside[0] = 0;
  }
  add_unreadable(r, id, err.msg, aside);
}

/* A job recorded live when the last registry stopped: catch up with progress.jsonl; if it
 * ran, its executor settles it (a local worker is gone; a Slurm job is followed again). */
static void recover(fb_jobs *r, fb_job *job) {
  char path[PATH_MAX];
  job_path(path, sizeof path, r, job->id, "progress.jsonl");
  end_partial_line(path);
  catch_up c = {job, 0, 0, 0};
  fb_jobs_events(r, job, 0, catch_up_event, &c, NULL);
  if (job->state != FB_JOB_RUNNING) return;
  const jobs_executor *ex = job->slurm_id[0] ? &jobs_slurm_executor : &jobs_local_executor;
  ex->recover(r, job, c.run_lines, c.err_lines, c.run_done);
}

/* A worker killed while it wrote its output leaves a hidden partial directory beside `out` (or
 * a half-done replacement), and one stopped by a full disk a step-N.tmp checkpoint: remove them
 * (finish a replacement) while no worker runs. */
static void settle_output(fb_jobs *r, const fb_job *job) {
  cJSON *spec = cJSON_Parse(job->spec);
  const char *out = get_str(spec, "out"), *ckdir = get_str(spec, "checkpoints");
  char path[PATH_MAX];
  fb_err err = {0};
  if (out && *out && fb_output_settle(out, &err) != 0) report(r, "job %s: %s", job->id, err.msg);
  if (ckdir && *ckdir)
    snprintf(path, sizeof path, "%s", ckdir);
  else
    job_path(path, sizeof path, r, job->id, "checkpoints"); /* the worker's (fb_cmd_worker) */
  if (fb_output_settle_checkpoints(path) > 0)
    report(r, "job %s: %s", job->id, "a checkpoint cut short (step-N.tmp) removed");
  cJSON_Delete(spec);
}

int jobs_load(fb_jobs *r, fb_err *err) {
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
    if (order[i]->state == FB_JOB_QUEUED && (rc = jobs_enqueue(r, order[i], err)) != 0) return rc;
  return 0;
}
