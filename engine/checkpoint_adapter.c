/* checkpoint_adapter.c: a training checkpoint's LoRA weights as a PEFT adapter directory, so a
 * run's checkpoints can be answered with (scenario runs) before, or without, its end. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "lora.h"
#include "safetensors.h"
#include "train.h"

int fb_checkpoint_adapter(const fb_model *m, const fb_train_spec *s, const char *step_dir,
                          const char *out, fb_err *err) {
  if (s->full)
    return fb_err_set(err, FB_EINVALID, "%s: a whole-model run's checkpoint is not an adapter",
                      step_dir);
  fb_lora *l = NULL;
  fb_st_file *f = NULL;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/state.safetensors", step_dir) >= (int)sizeof path)
    return fb_err_set(err, FB_EINVALID, "%s: path too long", step_dir);
  int rc = fb_lora_create(&l, m, &s->lora, err);
  if (!rc && !l->be->host_memory) /* the caller loads the model on the CPU */
    rc = fb_err_set(err, FB_EINVALID, "the model is not in host memory");
  if (!rc) rc = fb_st_open(&f, path, err);
  const fb_st_tensor *t = NULL;
  if (!rc) /* the shape check also catches a checkpoint of another rank or other targets */
    rc = fb_st_expect(f, "params", 1, (int64_t[]){(int64_t)l->n_floats}, &t, err);
  float *file = rc ? NULL : malloc(l->n_floats * sizeof(float) + 1); /* the file's order */
  if (!rc && !file) rc = fb_err_set(err, FB_ENOMEM, "out of memory for %s", path);
  if (!rc) rc = fb_st_read_f32(t, file, err);
  if (!rc) fb_lora_from_file_order(l, l->params, file);
  if (!rc) rc = fb_lora_save(l, out, err);
  free(file);
  fb_st_close(f);
  fb_lora_free(l);
  return rc;
}
