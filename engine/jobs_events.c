/* jobs_events.c: a job's numbered events: appended to progress.jsonl, then given to the
 * listeners of its skill (or of every job); state changes are events too. */
#include "jobs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void append_line(const char *path, const char *text) {
  size_t n = strlen(text);
  char *line = malloc(n + 1);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (line) {
    memcpy(line, text, n);
    line[n] = '\n'; /* one write per line, so a reader never sees half of one */
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
void jobs_emit(fb_jobs *r, fb_job *job, cJSON *ev, int save) {
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
  if (save) jobs_save(r, job);
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

void jobs_set_state(fb_jobs *r, fb_job *job, fb_job_state state, const char *reason) {
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
  jobs_add_str(ev, "reason", job->reason[0] ? job->reason : NULL);
  if (state == FB_JOB_QUEUED) cJSON_AddNumberToObject(ev, "place", fb_jobs_queue_place(r, job));
  jobs_emit(r, job, ev, 1);
  if (was_running && state != FB_JOB_RUNNING) jobs_pump(r);
}

cJSON *jobs_log_event(const char *level, const char *message) {
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "event", "log");
  cJSON_AddStringToObject(ev, "level", level);
  cJSON_AddStringToObject(ev, "message", message);
  return ev;
}
