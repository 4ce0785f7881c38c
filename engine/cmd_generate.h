/* cmd_generate.h: `fastbrain generate --model DIR --prompt TEXT [...]`: one answer from a base
 * model (and a LoRA adapter) through fastbrain.model (lua/fastbrain/model.lua). */
#ifndef FB_CMD_GENERATE_H
#define FB_CMD_GENERATE_H

/* argv[0] is the command's name. Exit status: 0, 1 on a failure, 2 on bad arguments. */
int fb_cmd_generate(int argc, char **argv);

#endif
