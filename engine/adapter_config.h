/* adapter_config.h: PEFT adapter_config.json for LoRA on causal LMs: read (checked, with errors
 * naming the field), write (atomically), the target-module set as a bitmask, the LoRA scale.
 * Does not read or write adapter weights (that is safetensors.h). */
#ifndef FB_ADAPTER_CONFIG_H
#define FB_ADAPTER_CONFIG_H

#include <stddef.h>

#include "error.h"

/* The projections LoRA may target, as bits; the order is the order names are written in. */
typedef enum {
  FB_TARGET_Q_PROJ = 1 << 0,
  FB_TARGET_K_PROJ = 1 << 1,
  FB_TARGET_V_PROJ = 1 << 2,
  FB_TARGET_O_PROJ = 1 << 3,
  FB_TARGET_GATE_PROJ = 1 << 4,
  FB_TARGET_UP_PROJ = 1 << 5,
  FB_TARGET_DOWN_PROJ = 1 << 6,
} fb_target;
#define FB_TARGET_COUNT 7
#define FB_TARGET_ALL ((1u << FB_TARGET_COUNT) - 1)

/* "q_proj" ... "down_proj" for bit index 0..6; NULL out of range. */
const char *fb_target_name(int index);
/* The bit for one module name; 0 if the name is not one of the seven. */
unsigned fb_target_parse(const char *name);
/* A comma-separated list ("q_proj,v_proj", spaces allowed) or "all-linear" to a mask; an unknown,
 * repeated or empty name is FB_EINVALID naming it. */
int fb_targets_parse_list(const char *list, unsigned *mask, fb_err *err);

#define FB_ADAPTER_MAX_RANK 4096

/* Plain value; nothing to free. */
typedef struct fb_adapter_config {
  int r;                             /* 1..FB_ADAPTER_MAX_RANK */
  double lora_alpha;                 /* > 0 */
  double lora_dropout;               /* [0, 1) */
  unsigned targets;                  /* non-empty subset of FB_TARGET_ALL */
  int use_rslora;                    /* scale alpha / sqrt(r) instead of alpha / r */
  char base_model_name_or_path[512]; /* may be "" */
  char revision[64];                 /* the base model's commit (or branch, tag); may be "" */
} fb_adapter_config;

/* s in y = W x + s B A x. */
double fb_adapter_config_scale(const fb_adapter_config *c);

/* Parse adapter_config.json text. Refused: peft_type other than "LORA", task_type other than
 * "CAUSAL_LM", bias other than "none", target_modules outside the seven (or a regex string),
 * and PEFT options this engine does not implement (fan_in_fan_out, rank_pattern, alpha_pattern,
 * layers_to_transform, modules_to_save, use_dora). label names the source in errors. */
int fb_adapter_config_parse(fb_adapter_config *c, const char *json, size_t len, const char *label,
                            fb_err *err);
int fb_adapter_config_load(fb_adapter_config *c, const char *path, fb_err *err);
/* Check c and write it as PEFT's adapter_config.json to path, atomically. */
int fb_adapter_config_write(const fb_adapter_config *c, const char *path, fb_err *err);

#endif
