/* test_peft_parity.c: a PEFT adapter written by our trainer, loaded by the engine beside its base
 * model, gives the logits PyTorch computes from the same files (tests/parity/peft/, made by
 * tests/parity/make_peft_fixture.sh with peft_logits.py): within 1e-5 of the largest expected
 * logit; prints the max difference and the first value over. So does the model directory
 * `fastbrain export --to merged` writes (the adapter merged into the weights, saved in the base
 * checkpoint's dtypes), which a BF16 checkpoint keeps. */
#include <math.h>
#include <stdlib.h>

#include "fsutil.h"
#include "lora.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

#define FIXTURE "tests/parity/peft"

/* The largest difference between m's logits (with lora, or none) for the fixture's input_ids and
 * PyTorch's logits of the adapted model, relative to the largest of those; a failure names the
 * first value over tol. -1 when the fixture cannot be read. */
static double vs_pytorch(fb_model *m, fb_lora *lora, double tol, const char *label) {
  fb_err err = {0};
  fb_st_file *f = NULL;
  if (fb_st_open(&f, FIXTURE "/expected.safetensors", &err)) {
    FB_FAIL_("%s", err.msg);
    return -1;
  }
  const fb_st_tensor *ids = fb_st_find(f, "input_ids"), *want = fb_st_find(f, "logits");
  double scale = 0, worst = -1;
  float *y = NULL;
  if (!ids || !want || ids->dtype != FB_DT_I32 || ids->ndim != 2 ||
      want->numel != ids->numel * m->V) {
    FB_FAIL_("expected.safetensors: input_ids I32 [B,T] and logits [B,T,%d] expected", m->V);
    goto done;
  }
  fb_batch b = {.B = (int)ids->shape[0], .T = (int)ids->shape[1], .ids = ids->data};
  y = malloc(sizeof(float) * (size_t)want->numel);
  if (!y || fb_model_forward(m, lora, &b, 0, &err) || fb_st_read_f32(want, y, &err)) {
    FB_FAIL_("%s", err.msg);
    goto done;
  }
  const float *x = fb_model_logits(m);
  int64_t first = -1;
  worst = 0;
  for (int64_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(y[i]));
  for (int64_t i = 0; i < want->numel; i++) {
    double d = fabs((double)x[i] - y[i]) / scale;
    if (d > worst) worst = d;
    if (d > tol && first < 0) first = i;
  }
  fprintf(stderr, "  %s: max relative difference %.3g (of max |logit| %.4g)\n", label, worst,
          scale);
  if (first >= 0 && tol > 0)
    FB_FAIL_("%s: logits[%lld] = %.9g, PyTorch %.9g", label, (long long)first, x[first], y[first]);
done:
  free(y);
  fb_st_close(f);
  return worst;
}

TEST(trainer_adapter_logits_match_pytorch) {
  fb_err err = {0};
  fb_model *m = NULL;
  fb_lora *lora = NULL;
  REQUIRE(fb_model_load(&m, FIXTURE "/model", &err) == 0);
  CHECK(fb_lora_load(&lora, m, FIXTURE "/adapter", &err) == 0);
  if (lora) {
    vs_pytorch(m, lora, 1e-5, "with the adapter");
    /* the adapter matters: the base model alone is far from PyTorch's adapted logits */
    CHECK(vs_pytorch(m, NULL, 0, "the base alone") > 1e-3);
  }
  fb_lora_free(lora);
  fb_model_free(m);
}

TEST(merged_export_logits_match_pytorch) {
  fb_err err = {0};
  fb_model *m = NULL, *merged = NULL;
  fb_lora *lora = NULL;
  char dir[] = "/tmp/fb_peft_merged_XXXXXX";
  REQUIRE(mkdtemp(dir));
  REQUIRE(fb_model_load(&m, FIXTURE "/model", &err) == 0);
  CHECK(fb_lora_load(&lora, m, FIXTURE "/adapter", &err) == 0 &&
        fb_lora_merge(lora, m, &err) == 0 &&
        fb_model_save_as_loaded(m, FIXTURE "/model", dir, &err) == 0 &&
        fb_model_load(&merged, dir, &err) == 0);
  if (merged) vs_pytorch(merged, NULL, 1e-5, "merged, no adapter");
  fb_model_free(merged);
  fb_lora_free(lora);
  fb_model_free(m);
  fb_remove_tree(dir, &err);
}

/* A BF16 checkpoint is written back in BF16: unchanged weights bit for bit, merged ones rounded to
 * the nearest BF16 of base + delta. */
TEST(merged_export_keeps_a_bf16_checkpoint_bf16) {
  const char *src = "tests/parity/fixtures/llama_gqa_bf16_weights/model";
  fb_err err = {0};
  fb_model *m = NULL;
  fb_lora *lora = NULL;
  fb_st_file *in = NULL, *out = NULL;
  char dir[] = "/tmp/fb_bf16_merged_XXXXXX", path[64];
  REQUIRE(mkdtemp(dir));
  REQUIRE(fb_model_load(&m, src, &err) == 0);
  fb_adapter_config ac = {.r = 4, .lora_alpha = 8, .targets = FB_TARGET_Q_PROJ};
  REQUIRE(fb_lora_create(&lora, m, &ac, &err) == 0 && fb_lora_init(lora, 7, &err) == 0);
  for (size_t i = 0; i < lora->n_floats; i++) /* B too: A and B in one arena on the CPU */
    lora->params[i] += 0.05f * (float)((i * 2654435761u) % 1000) / 1000.0f;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  REQUIRE(fb_lora_merge(lora, m, &err) == 0 && fb_model_save_as_loaded(m, src, dir, &err) == 0 &&
          fb_st_open_model_dir(&in, src, &err) == 0 && fb_st_open(&out, path, &err) == 0);
  int kept = 0, moved = 0;
  for (int i = 0; i < fb_st_count(in); i++) {
    const fb_st_tensor *a = fb_st_at(in, i), *b = fb_st_find(out, a->name);
    REQUIRE(b);
    CHECK_INT(b->dtype, a->dtype);
    if (memcmp(a->data, b->data, a->nbytes) == 0)
      kept++;
    else
      moved += strstr(a->name, "q_proj") != NULL;
  }
  CHECK_INT(moved, m->cfg.num_hidden_layers); /* every q_proj, and nothing else */
  CHECK_INT(kept + moved, fb_st_count(in));
  fb_st_close(out);
  fb_st_close(in);
  fb_lora_free(lora);
  fb_model_free(m);
  fb_remove_tree(dir, &err);
}
