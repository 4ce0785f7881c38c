/* output.h: how a run's output (an adapter, or a whole model) appears at its `out` directory in
 * one step, so a directory at out is always whole: it is built in the hidden sibling
 * ".<name>.partial" and renamed into place. When out exists already (the CLI keeps its
 * checkpoints in out/checkpoints; a resumed job had published before it was killed) it steps
 * aside as ".<name>.replaced" for the rename, and what it held that the new output lacks (the
 * checkpoints) moves into the new one. The trainer publishes; the job registry and the trainer
 * settle what a killed run left. */
#ifndef FB_OUTPUT_H
#define FB_OUTPUT_H

#include <dirent.h>
#include <stddef.h>

#include "error.h"

/* The directory to build out's output in: ".<name>.partial" beside it. */
int fb_output_partial_path(char *dst, size_t n, const char *out, fb_err *err);
/* Rename the finished partial directory to out (out's old contents as above). */
int fb_output_publish(const char *partial, const char *out, fb_err *err);
/* Settle what a run killed in between left: remove a partial directory, and finish or undo a
 * replacement. */
int fb_output_settle(const char *out, fb_err *err);

/* A checkpoint's entry in a checkpoints directory: step-N (and its step-N.old, step-N.tmp). */
int fb_output_is_step_entry(const struct dirent *d);
/* Remove the step-N.tmp directories a checkpoint cut short (a full disk, a kill) left in ckdir
 * (never step-N.old: a load falls back to it). Returns how many went. */
int fb_output_settle_checkpoints(const char *ckdir);

#endif
