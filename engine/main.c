/* main.c: the `fastbrain` command line: global options, then one subcommand from the table.
 * Each subcommand parses its own arguments; none of them exits the process but through here. */
#include <limits.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cmd_lua.h"
#include "cmd_lora_check.h"
#include "cmd_train.h"
#include "log.h"
#include "paths.h"
#include "signals.h"
#include "vm.h"

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command's name */
  const char *args;                  /* the synopsis after the name */
  const char *summary;
} command;

/* The whole command line, for the script's `arg` table. */
static int command_index;
static char **full_argv;

static int cmd_run(int argc, char **argv);
static int cmd_serve(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_generate(int argc, char **argv) {
  return fb_cmd_lua_main("fastbrain.model", argc, argv);
}
static int cmd_models(int argc, char **argv) {
  return fb_cmd_lua_main("fastbrain.models", argc, argv);
}
static int cmd_pull(int argc, char **argv) { return fb_cmd_lua_main("fastbrain.pull", argc, argv); }
static int cmd_export(int argc, char **argv) {
  return fb_cmd_lua_main("fastbrain.export", argc, argv);
}
static int cmd_model_server(int argc, char **argv) {
  return fb_cmd_lua_main("fastbrain.model_server", argc, argv);
}

static const command commands[] = {
    {"run", cmd_run, "[--log-level LEVEL] FILE.lua [ARGS...]",
     "run a Lua script with `require \"fastbrain\"` on the event loop"},
    {"serve", cmd_serve,
     "[--host H] [--port P] [--data-dir D] [--token-file PATH] [--model DIR|ORG/NAME] [--worker CMD]",
     "serve the dashboard and its API (default http://127.0.0.1:8215)"},
    {"lora-check", fb_cmd_lora_check, "MODEL_DIR IN.safetensors OUT.safetensors",
     "run one LoRA step on given weights and write logits, loss, gradients and AdamW state"},
    {"train", fb_cmd_train,
     "--model DIR|ORG/NAME --data FILE --out DIR [--epochs N --lr X --rank R --json ...]",
     "train a LoRA adapter on a JSONL dataset (--help for every option)"},
    {"worker", fb_cmd_worker, "JOBDIR",
     "run JOBDIR/spec.json, printing docs/protocol.md JSON lines"},
    {"generate", cmd_generate,
     "--model DIR|ORG/NAME --prompt TEXT [--adapter DIR --template T --max-tokens N ...]",
     "answer a prompt with a model and an adapter (--help for every option)"},
    {"pull", cmd_pull, "ORG/NAME[@REVISION] [--token T] [--json]",
     "download a model from the Hugging Face Hub into its cache (--help for more)"},
    {"models", cmd_models, "[--json] [--data-dir D]",
     "list the base models to train on: bundled, the data directory's, the Hugging Face cache's"},
    {"export", cmd_export,
     "ADAPTER_DIR --to merged|gguf|gguf-lora|ollama --out PATH [--type T --model M]",
     "take an adapter away: merged into its base, as GGUF, as a GGUF LoRA, for Ollama (--help for more)"},
    {"model-server", cmd_model_server, "--model DIR --port P [--device D]",
     "keep a model loaded and answer for `fastbrain serve` (started by it; token on stdin)"},
    {"version", cmd_version, "", "print the version"},
    {"help", cmd_help, "[COMMAND]", "show this help, or a command's"},
    {NULL, NULL, NULL, NULL},
};

static void print_usage(FILE *out) {
  fprintf(
      out,
      "usage: fastbrain [--log-level LEVEL] COMMAND [ARGS...]\n\n"
      "fastbrain trains LoRA adapters for Llama-family models and runs Lua scripts that drive it.\n\n"
      "commands:\n");
  for (const command *c = commands; c->name; c++) fprintf(out, "  %-11s %s\n", c->name, c->summary);
  fprintf(out,
          "\noptions:\n"
          "  --log-level LEVEL  debug, info, warn, error or off (default: $FASTBRAIN_LOG or info)\n"
          "  -h, --help         show this help\n"
          "  --version          print the version\n");
}

static const command *find_command(const char *name) {
  for (const command *c = commands; c->name; c++)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

static void print_command_help(const command *c, FILE *out) {
  fprintf(out, "usage: fastbrain %s %s\n\n%s\n", c->name, c->args, c->summary);
}

/* A one-line complaint plus the usage, exit status 2. */
static int usage_error(const command *c, const char *fmt, const char *what) {
  fprintf(stderr, "fastbrain: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n");
  if (c)
    print_command_help(c, stderr);
  else
    print_usage(stderr);
  return 2;
}

static int set_log_level(const command *c, const char *name) {
  int level = fb_log_parse_level(name);
  if (level < 0)
    return usage_error(c, "invalid log level '%s' (debug, info, warn, error, off)",
                       name ? name : "");
  fb_log_set_level(level);
  return 0;
}

/* `--log-level LEVEL` at argv[*i]; consumes the value. 0, or 2 after a usage error. */
static int log_level_option(const command *c, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) return usage_error(c, "%s", "--log-level needs a value");
  return set_log_level(c, argv[++*i]);
}

static int wants_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* Set the global `arg` as the standalone interpreter does: the script at 0, its arguments
 * from 1, our own words (program, options, command) at negative indices. */
static void set_arg_table(lua_State *L, const char *script, int nargs, char **args) {
  lua_createtable(L, nargs, command_index + 2);
  for (int i = 0; i <= command_index; i++) {
    lua_pushstring(L, full_argv[i]);
    lua_rawseti(L, -2, i - command_index - 1);
  }
  lua_pushstring(L, script);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < nargs; i++) {
    lua_pushstring(L, args[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
}

/* Run one script on a fresh loop and VM; the process's exit status. `script` is a path, or,
 * when `bundled`, a path inside the bundle root (scripts/serve.lua). */
static int run_script(const char *script, int bundled, int nargs, char **args) {
  char root[PATH_MAX], bundled_path[PATH_MAX + 64];
  if (fb_paths_find_root(root, sizeof root) != 0) {
    fprintf(stderr, "fastbrain: cannot find the bundled Lua modules (tried %s)\n", root);
    return 1;
  }
  if (bundled) {
    snprintf(bundled_path, sizeof bundled_path, "%s/%s", root, script);
    script = bundled_path;
  }
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) {
    fprintf(stderr, "fastbrain: event loop: %s\n", uv_strerror(rc));
    return 1;
  }
  lua_State *L = fb_vm_new(&loop, root);
  if (!L) {
    fprintf(stderr, "fastbrain: cannot create the Lua state\n");
    uv_loop_close(&loop);
    return 1;
  }
  int status = 1;
  rc = fb_signals_start(L);
  if (rc != 0) {
    fprintf(stderr, "fastbrain: signals: %s\n", uv_strerror(rc));
  } else {
    set_arg_table(L, script, nargs, args);
    status = fb_vm_run_file(L, script, nargs, args);
    if (status == 0 && fb_vm_exit_code(L) < 0) uv_run(&loop, UV_RUN_DEFAULT);
    if (status == 0 && fb_vm_exit_code(L) >= 0) status = fb_vm_exit_code(L);
  }
  fb_signals_stop();
  fb_vm_close(L);
  uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks of whatever remains */
  if (uv_loop_close(&loop) != 0) fb_warn("event loop closed with handles still open");
  return status;
}

static int cmd_run(int argc, char **argv) {
  const command *self = find_command("run");
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (wants_help(argv[i])) {
      print_command_help(self, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--log-level") == 0) {
      if (log_level_option(self, argc, argv, &i)) return 2;
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else {
      return usage_error(self, "unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc) return usage_error(self, "%s", "run: no script given");
  return run_script(argv[i], 0, argc - i - 1, argv + i + 1);
}

/* serve: the bundled scripts/serve.lua parses its own options (and --help). */
static int cmd_serve(int argc, char **argv) {
  return run_script("scripts/serve.lua", 1, argc - 1, argv + 1);
}

static int cmd_version(int argc, char **argv) {
  if (argc > 1 && wants_help(argv[1])) {
    print_command_help(find_command("version"), stdout);
    return 0;
  }
  if (argc > 1) return usage_error(find_command("version"), "unexpected argument '%s'", argv[1]);
  printf("fastbrain %s\n", FB_VERSION);
  return 0;
}

static int cmd_help(int argc, char **argv) {
  if (argc > 1 && wants_help(argv[1])) {
    print_command_help(find_command("help"), stdout);
    return 0;
  }
  if (argc > 1) {
    const command *c = find_command(argv[1]);
    if (!c) return usage_error(NULL, "unknown command '%s'", argv[1]);
    print_command_help(c, stdout);
    return 0;
  }
  print_usage(stdout);
  return 0;
}

int main(int argc, char **argv) {
  const char *env_level = getenv("FASTBRAIN_LOG");
  if (env_level && *env_level && set_log_level(NULL, env_level)) return 2;

  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (wants_help(argv[i])) {
      print_usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) return cmd_version(1, argv);
    if (strcmp(argv[i], "--log-level") == 0) {
      if (log_level_option(NULL, argc, argv, &i)) return 2;
    } else {
      return usage_error(NULL, "unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc) return usage_error(NULL, "%s", "no command given");
  const command *c = find_command(argv[i]);
  if (!c) return usage_error(NULL, "unknown command '%s'", argv[i]);
  full_argv = argv, command_index = i;
  return c->run(argc - i, argv + i);
}
