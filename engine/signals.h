/* signals.h: every process-wide signal disposition of fastbrain, in one place.
 * - On the loop (the server, scripts): SIGINT and SIGTERM each stop the loop so the process ends
 *   cleanly with 128 + signal (130, 143), unless a Lua handler set with fastbrain.on_signal
 *   replaces that default. The watchers do not keep the loop alive.
 * - In a training process (`fastbrain train`, `fastbrain worker`, a script's fastbrain.train.run):
 *   SIGTERM and SIGINT set the run's cancel flag, which the trainer reads between steps.
 * - SIGPIPE is ignored once a child process is started: a write to a pipe whose reader has gone
 *   fails with EPIPE instead of ending the server.
 * - The runaway guard (runaway.c) interrupts the loop thread with a real-time signal. */
#ifndef FB_SIGNALS_H
#define FB_SIGNALS_H

#include <lua.h>
#include <signal.h>

/* Start watching (once per process, after fb_vm_new); 0 or a negative libuv code. */
int fb_signals_start(lua_State *L);
/* Close the watchers (before fb_vm_close). */
void fb_signals_stop(void);
/* Lua: fastbrain.on_signal("int"|"term", fn|nil) */
int fb_signals_lua_on_signal(lua_State *L);

/* The training cancel flag: set by SIGTERM or SIGINT while they are caught for training. */
extern volatile sig_atomic_t fb_signals_cancel;
/* For the whole process, from now on (call before any other thread starts): SIGTERM and SIGINT
 * set fb_signals_cancel, never kill. A signal handler that interrupts a thread inside oneDNN's
 * generated code corrupts its heap now and then (seen in the gemm self-test), so no thread of
 * the process takes them: they are blocked, and one thread waits for them. */
void fb_signals_catch_term_for_process(void);
/* Whether the above ran (the flag then outlives single runs). */
int fb_signals_catching_for_process(void);
/* For one run: point SIGTERM and SIGINT at the flag; old (two) gets the previous actions, which
 * fb_signals_restore_term puts back. */
void fb_signals_catch_term(struct sigaction old[2]);
void fb_signals_restore_term(const struct sigaction old[2]);

/* Ignore SIGPIPE (children get the default back: uv_spawn resets dispositions). */
void fb_signals_ignore_sigpipe(void);

/* Install handler for the runaway guard's signal (a real-time one) -> its number, or -1. */
int fb_signals_runaway(void (*handler)(int));

#endif
