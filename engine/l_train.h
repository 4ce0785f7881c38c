/* l_train.h: what `fastbrain train` and `fastbrain worker` need from l_train.c besides the Lua
 * module. */
#ifndef FB_L_TRAIN_H
#define FB_L_TRAIN_H

/* From now on, for the rest of the process, SIGTERM and SIGINT set the flag fastbrain.trainer's
 * runs watch instead of ending the process: a signal while the data or the model loads cancels
 * the run before its first step (with a checkpoint), one during a run stops it between steps. */
void fb_train_catch_signals(void);

#endif
