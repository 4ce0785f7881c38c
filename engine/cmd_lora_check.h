/* cmd_lora_check.h: `fastbrain lora-check MODEL_DIR IN.safetensors OUT.safetensors`, the
 * command any reference implementation can check the training core with (layout in the .c). */
#ifndef FB_CMD_LORA_CHECK_H
#define FB_CMD_LORA_CHECK_H

/* argv[0] = "lora-check". Returns 0 on success, 1 on a failure (message on stderr), 2 on wrong
 * arguments (one-line error + usage on stderr); --help prints usage to stdout and returns 0. */
int fb_cmd_lora_check(int argc, char **argv);

/* The command's work without the argument handling: 0, or an engine error code with err naming
 * the file and the field or tensor at fault. OUT is written (atomically) only on success. */
struct fb_err;
int fb_lora_check_run(const char *model_dir, const char *in_path, const char *out_path,
                      struct fb_err *err);

#endif
