/* cmd_train.c: `fastbrain train` turns its options into a training spec (checked here, so a bad
 * value is exit 2 before anything loads) and `fastbrain worker` reads one from a job directory;
 * both hand it to fastbrain.train.main (lua/fastbrain/train.lua) on a fresh VM. */
#include "cmd_train.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "fsutil.h"
#include "signals.h"
#include "paths.h"
#include "train_spec.h"
#include "vm.h"

#define TRAIN_USAGE                                                                                \
  "usage: fastbrain train --model DIR|ORG/NAME --data FILE --out DIR [options]\n\n"                \
  "Train a LoRA adapter (or the whole model with --full) on a JSONL dataset.\n\n"                  \
  "options (defaults suit 50-500 examples):\n"                                                     \
  "  --spec FILE.json         start from a spec file (docs/protocol.md); options override\n"       \
  "  --data FILE              may be given several times\n"                                        \
  "  --epochs N  --max-steps N  --lr X  --rank R  --alpha A  --dropout P  --seed S\n"              \
  "  --micro-batch N  --grad-accum N  --max-len N  --template NAME  --warmup F\n"                  \
  "  --eval-fraction F  --eval-interval N  --patience N  --checkpoint-interval N\n"                \
  "  --checkpoints DIR  --prompt TEXT (sample prompt, repeatable)  --full  --resume\n"             \
  "  --device D               auto (the GPU when one is usable, else the CPU), cpu or cuda\n"      \
  "  --scenarios FILE.jsonl   publish the checkpoint that passes most of these scenarios' hard\n"  \
  "                           checks (a skill's scenarios.jsonl; implies --select scenarios)\n"    \
  "  --select eval_loss|scenarios  which weights are published (default eval_loss)\n"              \
  "  --json                   print the events as JSON lines on stdout (docs/protocol.md)\n"       \
  "  --estimate               say what the run would cost (tokens, steps, peak memory, time on\n"  \
  "                           this machine's CPU and GPU) and whether it fits; --out not needed\n" \
  "  --no-calibrate           with --estimate: only a calibration measured before (none: no\n"     \
  "                           time or memory), never a new one (which takes minutes)\n"

/* An option and the spec field it sets. */
typedef struct option {
  const char *name, *path;
  char type; /* 's' string, 'i' integer, 'n' number, 'a' appended string, 'f' flag */
} option;

static const option options[] = {
    {"--model", "model", 's'},
    {"--data", "data", 'a'},
    {"--out", "out", 's'},
    {"--epochs", "epochs", 'i'},
    {"--max-steps", "max_steps", 'i'},
    {"--lr", "lr", 'n'},
    {"--rank", "lora.r", 'i'},
    {"--alpha", "lora.alpha", 'n'},
    {"--dropout", "lora.dropout", 'n'},
    {"--seed", "seed", 'i'},
    {"--micro-batch", "micro_batch", 'i'},
    {"--grad-accum", "grad_accum", 'i'},
    {"--max-len", "max_len", 'i'},
    {"--template", "template", 's'},
    {"--warmup", "warmup", 'n'},
    {"--eval-fraction", "eval.fraction", 'n'},
    {"--eval-interval", "eval.interval", 'i'},
    {"--patience", "patience", 'i'},
    {"--checkpoint-interval", "checkpoint_interval", 'i'},
    {"--checkpoints", "checkpoints", 's'},
    {"--prompt", "samples.prompts", 'a'},
    {"--full", "mode", 'f'},
    {"--device", "device", 's'},
    {"--select", "select", 's'},
};

static int usage(const char *fmt, const char *what) {
  fprintf(stderr, "fastbrain train: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n%s", TRAIN_USAGE);
  return 2;
}

/* The object for path's group ("lora.r" -> spec.lora), made when missing; *leaf the key. */
static cJSON *group(cJSON *spec, const char *path, const char **leaf) {
  const char *dot = strchr(path, '.');
  *leaf = dot ? dot + 1 : path;
  if (!dot) return spec;
  char name[32];
  snprintf(name, sizeof name, "%.*s", (int)(dot - path), path);
  cJSON *g = cJSON_GetObjectItemCaseSensitive(spec, name);
  return g ? g : cJSON_AddObjectToObject(spec, name);
}

/* Set the option's field from value; 0, or 2 after a usage error. */
static int set_option(cJSON *spec, const option *o, const char *value) {
  const char *leaf;
  cJSON *g = group(spec, o->path, &leaf), *v;
  if (o->type == 'a') {
    cJSON *list = cJSON_GetObjectItemCaseSensitive(g, leaf);
    if (!cJSON_IsArray(list)) {
      cJSON_DeleteItemFromObjectCaseSensitive(g, leaf);
      list = cJSON_AddArrayToObject(g, leaf);
    }
    cJSON_AddItemToArray(list, cJSON_CreateString(value));
    return 0;
  }
  if (o->type == 'f') {
    v = cJSON_CreateString("full");
  } else if (o->type == 's') {
    v = cJSON_CreateString(value);
  } else {
    char *end;
    double x = strtod(value, &end);
    if (end == value || *end) return usage("%s needs a number", o->name);
    v = cJSON_CreateNumber(x);
  }
  cJSON_DeleteItemFromObjectCaseSensitive(g, leaf);
  cJSON_AddItemToObject(g, leaf, v);
  return 0;
}

/* What fastbrain.train.main is asked to do besides the spec. */
typedef struct main_opts {
  int json;           /* print the events as JSON lines */
  int resume;         /* continue from the latest checkpoint */
  int estimate;       /* only say what the run would cost (fastbrain.estimate) */
  int no_calibrate;   /* the estimate uses a cached calibration only */
  const char *record; /* a file that gets a copy of every JSON line first (the worker's), or NULL */
  const char *scenarios;   /* --scenarios: a scenarios.jsonl read into spec.scenarios, or NULL */
  const char *checkpoints; /* where checkpoints go when the spec does not say, or NULL */
} main_opts;

/* Run fastbrain.train.main(spec_json, {json, tty, resume, estimate, calibrate, record,
 * scenarios, checkpoints}) on a fresh VM; its exit status. */
static int run_main(const char *text, const main_opts *o) {
  char root[PATH_MAX];
  if (fb_paths_find_root(root, sizeof root) != 0) {
    fprintf(stderr, "fastbrain: cannot find the bundled Lua modules (tried %s)\n", root);
    return 1;
  }
  uv_loop_t loop;
  int status = 1;
  lua_State *L = uv_loop_init(&loop) == 0 ? fb_vm_new(&loop, root) : NULL;
  if (L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fastbrain.train");
    if (fb_vm_pcall(L, 1, 1, "require fastbrain.train") == LUA_OK) {
      lua_getfield(L, -1, "main");
      lua_pushstring(L, text);
      lua_createtable(L, 0, 8);
      lua_pushboolean(L, o->json);
      lua_setfield(L, -2, "json"); /* opts.json */
      lua_pushboolean(L, isatty(STDOUT_FILENO));
      lua_setfield(L, -2, "tty"); /* opts.tty */
      lua_pushboolean(L, o->resume);
      lua_setfield(L, -2, "resume"); /* opts.resume */
      lua_pushboolean(L, o->estimate);
      lua_setfield(L, -2, "estimate"); /* opts.estimate */
      lua_pushboolean(L, !o->no_calibrate);
      lua_setfield(L, -2, "calibrate"); /* opts.calibrate */
      lua_pushstring(L, o->record);
      lua_setfield(L, -2, "record"); /* opts.record (nil when NULL) */
      lua_pushstring(L, o->scenarios);
      lua_setfield(L, -2, "scenarios"); /* opts.scenarios (nil when NULL) */
      lua_pushstring(L, o->checkpoints);
      lua_setfield(L, -2, "checkpoints"); /* opts.checkpoints (nil when NULL) */
      if (fb_vm_pcall(L, 2, 1, "fastbrain train") == LUA_OK) status = (int)lua_tointeger(L, -1);
    }
    fb_vm_close(L);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  } else {
    fprintf(stderr, "fastbrain: cannot create the Lua state\n");
  }
  return status;
}

/* Check spec as the trainer will; 0, or 2 with the field named. */
static int check_spec(const cJSON *spec) {
  fb_train_spec s;
  fb_err err = {0};
  if (fb_train_spec_from_json(&s, spec, &err) == 0) return 0;
  fprintf(stderr, "fastbrain: %s\n", err.msg);
  return 2;
}

/* --scenarios selects by them; --select scenarios needs them. 0, or 2 after a usage error. */
static int check_select(cJSON *spec, const char *scenarios) {
  const cJSON *select = cJSON_GetObjectItemCaseSensitive(spec, "select");
  if (scenarios && !select) cJSON_AddStringToObject(spec, "select", "scenarios");
  int by_scenarios = cJSON_IsString(select) && strcmp(select->valuestring, "scenarios") == 0;
  if (by_scenarios && !scenarios && !cJSON_GetObjectItemCaseSensitive(spec, "scenarios"))
    return usage("%s needs the scenarios to select by: --scenarios FILE.jsonl",
                 "--select scenarios");
  return 0;
}

static cJSON *read_spec(const char *path) {
  char *text = NULL;
  size_t len;
  fb_err err = {0};
  if (fb_read_file(path, &text, &len, 1 << 20, &err)) {
    fprintf(stderr, "fastbrain: %s\n", err.msg);
    return NULL;
  }
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(j)) fprintf(stderr, "fastbrain: %s: not a JSON object\n", path);
  if (j && !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    j = NULL;
  }
  return j;
}

int fb_cmd_train(int argc, char **argv) {
  fb_signals_catch_term_for_process(); /* from here on a SIGTERM ends in a cancel, never in a kill */
  int json = 0, resume = 0, estimate = 0, no_calibrate = 0, rc = 0;
  const char *scenarios = NULL;
  cJSON *spec = cJSON_CreateObject();
  for (int i = 1; i < argc && !rc; i++) {
    const char *a = argv[i];
    const option *o = NULL;
    for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
      if (strcmp(a, options[k].name) == 0) o = &options[k];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(TRAIN_USAGE, stdout);
      cJSON_Delete(spec);
      return 0;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--resume") == 0) {
      resume = 1;
    } else if (strcmp(a, "--estimate") == 0) {
      estimate = 1;
    } else if (strcmp(a, "--no-calibrate") == 0) {
      no_calibrate = 1;
    } else if (strcmp(a, "--scenarios") == 0 && i + 1 < argc) {
      scenarios = argv[++i];
    } else if (strcmp(a, "--spec") == 0 && i + 1 < argc) {
      cJSON *base = read_spec(argv[++i]);
      if (!base)
        rc = 2;
      else
        cJSON_Delete(spec), spec = base;
    } else if (o && o->type == 'f') {
      rc = set_option(spec, o, NULL);
    } else if (o && i + 1 < argc) {
      rc = set_option(spec, o, argv[++i]);
    } else {
      rc = usage(o || strcmp(a, "--spec") == 0 || strcmp(a, "--scenarios") == 0
                     ? "%s needs a value"
                     : "unknown option '%s'",
                 a);
    }
  }
  if (!rc && no_calibrate && !estimate) rc = usage("%s needs --estimate", "--no-calibrate");
  if (!rc) rc = check_select(spec, scenarios);
  if (estimate && !cJSON_GetObjectItemCaseSensitive(spec, "out"))
    cJSON_AddStringToObject(spec, "out", "-"); /* an estimate writes nothing */
  if (!rc) rc = check_spec(spec);
  char *text = rc ? NULL : cJSON_PrintUnformatted(spec);
  if (text)
    rc = run_main(text, &(main_opts){.json = json,
                                     .resume = resume,
                                     .estimate = estimate,
                                     .no_calibrate = no_calibrate,
                                     .scenarios = scenarios});
  else if (!rc)
    rc = 1; /* out of memory */
  free(text);
  cJSON_Delete(spec);
  return rc;
}

int fb_cmd_worker(int argc, char **argv) {
  fb_signals_catch_term_for_process();
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf(
        "usage: fastbrain worker JOBDIR\n\nRun JOBDIR/spec.json as `fastbrain train --json` does, "
        "resuming from JOBDIR/checkpoints when it holds one.\n");
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr,
            "fastbrain worker: expected one argument, the job directory\nusage: fastbrain "
            "worker JOBDIR\n");
    return 2;
  }
  /* The spec goes to fastbrain.train as the registry wrote it: the trainer parses and checks it
   * once there (an error event names the field). */
  char spec_path[PATH_MAX], checkpoints[PATH_MAX], record[PATH_MAX], *text = NULL;
  size_t len;
  fb_err err = {0};
  snprintf(spec_path, sizeof spec_path, "%s/spec.json", argv[1]);
  if (fb_read_file(spec_path, &text, &len, 1 << 20, &err)) {
    fprintf(stderr, "fastbrain: %s\n", err.msg);
    return 2;
  }
  snprintf(checkpoints, sizeof checkpoints, "%s/checkpoints", argv[1]);
  snprintf(record, sizeof record, "%s/worker.jsonl", argv[1]);
  int rc = run_main(
      text, &(main_opts){.json = 1, .resume = 1, .record = record, .checkpoints = checkpoints});
  free(text);
  return rc;
}
