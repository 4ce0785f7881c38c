/* cmd_train.h: `fastbrain train` (a run from command-line options, as text or --json lines) and
 * `fastbrain worker JOBDIR` (JOBDIR/spec.json as JSON lines, resuming from its checkpoints). */
#ifndef FB_CMD_TRAIN_H
#define FB_CMD_TRAIN_H

/* argv[0] is the command's name. Exit status as docs/protocol.md: 0 done, 1 error, 2 bad
 * arguments (one line + usage on stderr), 3 cancelled by SIGTERM after a checkpoint. */
int fb_cmd_train(int argc, char **argv);
int fb_cmd_worker(int argc, char **argv);

#endif
