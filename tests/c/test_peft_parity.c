/* test_peft_parity.c: a PEFT adapter written by our trainer, loaded by the engine beside its base
 * model, gives the logits PyTorch computes from the same files (tests/parity/peft/, made by
 * tests/parity/make_peft_fixture.sh with peft_logits.py): within 1e-5 of the largest expected
 * logit; prints the max difference and the first value over. */
#include <math.h>
#include <stdlib.h>

#include "lora.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

#define FIXTURE "tests/parity/peft"

TEST(trainer_adapter_logits_match_pytorch) {
  fb_err err = {0};
  fb_model *m = NULL;
  fb_lora *lora = NULL;
  fb_st_file *f = NULL;
  REQUIRE(fb_model_load(&m, FIXTURE "/model", &err) == 0);
  if (fb_lora_load(&lora, m, FIXTURE "/adapter", &err) || fb_st_open(&f, FIXTURE "/expected.safetensors", &err)) {
    FB_FAIL_("%s", err.msg);
    goto done;
  }
  const fb_st_tensor *ids = fb_st_find(f, "input_ids"), *want = fb_st_find(f, "logits");
  if (!ids || !want || ids->dtype != FB_DT_I32 || ids->ndim != 2 || want->numel != ids->numel * m->V) {
    FB_FAIL_("expected.safetensors: input_ids I32 [B,T] and logits [B,T,%d] expected", m->V);
    goto done;
  }
  fb_batch b = {.B = (int)ids->shape[0], .T = (int)ids->shape[1], .ids = ids->data};
  CHECK(fb_model_forward(m, lora, &b, 0, &err) == 0);
  float *y = malloc(sizeof(float) * (size_t)want->numel);
  CHECK(fb_st_read_f32(want, y, &err) == 0);
  const float *x = fb_model_logits(m);
  double scale = 0, worst = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(y[i]));
  for (int64_t i = 0; i < want->numel; i++) {
    double d = fabs((double)x[i] - y[i]) / scale;
    if (d > worst) worst = d;
    if (d > 1e-5 && first < 0) first = i;
  }
  fprintf(stderr, "  logits: max relative difference %.3g (of max |logit| %.4g)\n", worst, scale);
  if (first >= 0)
    FB_FAIL_("logits[%lld] = %.9g, PyTorch %.9g", (long long)first, x[first], y[first]);
  /* the adapter matters: the base model alone is far from PyTorch's adapted logits */
  CHECK(fb_model_forward(m, NULL, &b, 0, &err) == 0);
  double moved = 0;
  for (int64_t i = 0; i < want->numel; i++) moved = fmax(moved, fabs(fb_model_logits(m)[i] - y[i]) / scale);
  CHECK(moved > 1e-3);
  free(y);
done:
  fb_st_close(f);
  fb_lora_free(lora);
  fb_model_free(m);
}
