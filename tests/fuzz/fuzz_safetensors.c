/* fuzz_safetensors.c: libFuzzer target for the loaders that take untrusted files: the
 * safetensors header and data layout, config.json and adapter_config.json. Each input is fed to
 * all three; a crash, sanitizer report or leak is a finding. */
#include <stdint.h>
#include <stdlib.h>

#include "adapter_config.h"
#include "model_config.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fb_err err;
  fb_st_file *f = NULL;
  if (fb_st_open_memory(&f, data, size, "fuzz", &err) == 0) {
    for (int i = 0; i < fb_st_count(f); i++) {
      const fb_st_tensor *t = fb_st_at(f, i);
      if (fb_st_find(f, t->name) != t) abort(); /* names are unique and indexed */
      if (t->dtype == FB_DT_I32) continue;
      float *dst = malloc((size_t)t->numel * sizeof(float) + 1);
      if (dst && fb_st_read_f32(t, dst, &err) != 0) abort();
      free(dst);
    }
    fb_st_meta(f, "format");
    fb_st_close(f);
  }
  fb_model_config c;
  if (fb_model_config_parse(&c, (const char *)data, size, "fuzz", &err) == 0 &&
      fb_model_config_param_count(&c) <= 0)
    abort();
  fb_adapter_config a;
  if (fb_adapter_config_parse(&a, (const char *)data, size, "fuzz", &err) == 0 &&
      !(fb_adapter_config_scale(&a) > 0))
    abort();
  return 0;
}
