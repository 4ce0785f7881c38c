/* test_parity.c: runs lora-check on every case under tests/parity/fixtures/ (PyTorch reference
 * outputs) and compares tensor by tensor: logits and loss within 1e-5, gradients 1e-4, the
 * first optimizer step 1e-6 (each relative to the tensor's largest expected magnitude), greedy ids
 * exactly (tolerances explained at `kinds`); prints the max difference and the first differing
 * values of anything over. AdamW alone, fed the reference's gradients, is held to 1e-6 over
 * three steps. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_lora_check.h"
#include "error.h"
#include "gemm.h"
#include "optim.h"
#include "safetensors.h"
#include "test.h"

#define FIXTURES "tests/parity/fixtures"

/* The reference computes in float64. Adam's moments and the weights after three steps are
 * functions of the gradients, so end to end they carry the gradients' float32 error: 1e-6 to
 * 4e-6 relative, and tests/parity/f32_floor.py shows that exact arithmetic with float32
 * activations alone already gives up to 1.7e-6 (gradients, m), 3e-6 (v) and 3.2e-6 (weights
 * after three steps) on these fixtures. So end to end they are held to 1e-5 here, and the
 * optimizer itself to the 1e-6 over all three steps by
 * optimizer_matches_pytorch_given_its_gradients below. */
static const struct {
  const char *prefix;
  double tol;
} kinds[] = {{"logits", 1e-5},
             {"loss", 1e-5},
             {"lora_grad.", 1e-4},
             {"lora_step1.", 1e-6},
             {"lora_step3.", 1e-5},
             {"adam_", 1e-5},
             {"", 0} /* integers: exact */};
#define N_KINDS (int)(sizeof kinds / sizeof kinds[0])

static int kind_of(const char *name) {
  int k = 0;
  while (strncmp(name, kinds[k].prefix, strlen(kinds[k].prefix)) != 0) k++;
  return k;
}

/* Compare one tensor; returns 1 when it is within tolerance, else prints why. worst[kind] keeps
 * the largest relative error seen per kind. */
static int compare(const char *c, const fb_st_tensor *e, const fb_st_tensor *a, double *worst) {
  if (e->ndim != a->ndim || e->numel != a->numel || e->dtype != a->dtype) {
    fprintf(stderr, "  %s: %s: ndim/numel/dtype %d/%lld/%s, expected %d/%lld/%s\n", c, e->name,
            a->ndim, (long long)a->numel, fb_dtype_name(a->dtype), e->ndim, (long long)e->numel,
            fb_dtype_name(e->dtype));
    return 0;
  }
  if (e->dtype == FB_DT_I32) {
    const int32_t *x = a->data, *y = e->data; /* safetensors data is 8-byte aligned */
    for (int64_t i = 0; i < e->numel; i++)
      if (x[i] != y[i]) {
        fprintf(stderr, "  %s: %s[%lld] = %d, expected %d\n", c, e->name, (long long)i, x[i], y[i]);
        return 0;
      }
    return 1;
  }
  float *x = malloc(sizeof(float) * a->numel), *y = malloc(sizeof(float) * e->numel);
  fb_err err = {0};
  int ok = fb_st_read_f32(a, x, &err) == 0 && fb_st_read_f32(e, y, &err) == 0;
  int kind = kind_of(e->name);
  double scale = 1e-30, diff = 0, tol = kinds[kind].tol;
  for (int64_t i = 0; ok && i < e->numel; i++) {
    scale = fmax(scale, fabs(y[i]));
    diff = fmax(diff, fabs((double)x[i] - y[i]));
  }
  double rel = diff / scale;
  worst[kind] = fmax(worst[kind], rel);
  if (ok && !(rel <= tol)) {
    fprintf(stderr, "  %s: %s: max abs %.3g, rel %.3g (tol %g); first over:", c, e->name, diff, rel,
            tol);
    for (int64_t i = 0, shown = 0; i < e->numel && shown < 3; i++)
      if (!(fabs((double)x[i] - y[i]) <= tol * scale)) {
        fprintf(stderr, " [%lld] %.9g vs %.9g", (long long)i, x[i], y[i]);
        shown++;
      }
    fputc('\n', stderr);
    ok = 0;
  }
  free(x);
  free(y);
  return ok;
}

/* Write a copy of IN to out with the greedy settings that expected.safetensors records added
 * to its metadata (lora-check generates only when asked), metadata key set_key (if not NULL)
 * replaced by set_val, and the tensor named drop (if not NULL) left out. Returns 0 on success. */
static int in_variant(const char *in, const char *exp, const char *out, const char *set_key,
                      const char *set_val, const char *drop) {
  static const char *const keys[] = {"rank",
                                     "alpha",
                                     "targets",
                                     "lora_dropout",
                                     "lr",
                                     "beta1",
                                     "beta2",
                                     "eps",
                                     "weight_decay",
                                     "rslora",
                                     "dropout_seed",
                                     "greedy_prompt_len",
                                     "greedy_new_tokens"};
  fb_st_file *fi = NULL, *fe = NULL;
  fb_err err = {0};
  if (fb_st_open(&fi, in, &err) || fb_st_open(&fe, exp, &err)) {
    fprintf(stderr, "  %s\n", err.msg);
    fb_st_close(fi);
    return -1;
  }
  const char *meta[2 * 13 + 1];
  int k = 0;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *v = i < 11 ? fb_st_meta(fi, keys[i]) : fb_st_meta(fe, keys[i]);
    if (set_key && strcmp(set_key, keys[i]) == 0) v = set_val;
    if (!v) continue;
    meta[k++] = keys[i];
    meta[k++] = v;
  }
  meta[k] = NULL;
  int n = 0, rc;
  fb_st_out *t = calloc((size_t)fb_st_count(fi), sizeof *t);
  for (int i = 0; i < fb_st_count(fi); i++) {
    const fb_st_tensor *x = fb_st_at(fi, i);
    if (drop && strcmp(drop, x->name) == 0) continue;
    t[n] = (fb_st_out){x->name, x->dtype, x->ndim, {0}, x->data};
    memcpy(t[n++].shape, x->shape, sizeof x->shape);
  }
  rc = fb_st_write(out, t, n, meta, &err);
  if (rc) fprintf(stderr, "  %s\n", err.msg);
  free(t);
  fb_st_close(fi);
  fb_st_close(fe);
  return rc;
}

static void check_case(const char *c) {
  char model[512], in[512], exp[512], out[512], in2[512];
  snprintf(model, sizeof model, FIXTURES "/%s/model", c);
  snprintf(in, sizeof in, FIXTURES "/%s/in.safetensors", c);
  snprintf(exp, sizeof exp, FIXTURES "/%s/expected.safetensors", c);
  snprintf(out, sizeof out, "/tmp/fb_parity_%d_%s.safetensors", (int)getpid(), c);
  snprintf(in2, sizeof in2, "/tmp/fb_parity_%d_%s_in.safetensors", (int)getpid(), c);
  REQUIRE(in_variant(in, exp, in2, NULL, NULL, NULL) == 0);
  char *argv[] = {"lora-check", model, in2, out, NULL};
  CHECK_INT(fb_cmd_lora_check(4, argv), 0);
  unlink(in2);
  fb_st_file *e = NULL, *a = NULL;
  fb_err err = {0};
  REQUIRE(fb_st_open(&e, exp, &err) == 0);
  if (fb_st_open(&a, out, &err) != 0) {
    FB_FAIL_("%s: %s", c, err.msg);
    fb_st_close(e);
    return;
  }
  int bad = 0;
  double worst[N_KINDS] = {0};
  for (int i = 0; i < fb_st_count(e); i++) {
    const fb_st_tensor *t = fb_st_at(e, i), *got = fb_st_find(a, t->name);
    if (strncmp(t->name, "lora_grad_step", 14) == 0) continue; /* the optimizer check's input */
    if (!got) {
      fprintf(stderr, "  %s: %s missing from lora-check's output\n", c, t->name);
      bad++;
      continue;
    }
    bad += !compare(c, t, got, worst);
  }
  CHECK(fb_st_find(e, "greedy_ids") != NULL); /* the fixtures check generation too */
  printf("  %s (%s): %d tensors; worst relative error:", c, fb_gemm_path(), fb_st_count(e));
  for (int k = 0; k + 1 < N_KINDS; k++) printf(" %s %.2g", kinds[k].prefix, worst[k]);
  printf("\n");
  CHECK_INT(bad, 0);
  fb_st_close(e);
  fb_st_close(a);
  unlink(out);
}

TEST(lora_check_matches_pytorch_on_every_fixture) {
  DIR *d = opendir(FIXTURES);
  REQUIRE(d);
  int cases = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    check_case(ent->d_name);
    cases++;
  }
  closedir(d);
  CHECK(cases >= 4);
}

/* Largest |got - want| relative to max |want| over n floats. */
static double rel_error(const float *got, const float *want, size_t n) {
  double scale = 1e-30, diff = 0;
  for (size_t j = 0; j < n; j++) {
    scale = fmax(scale, fabs(want[j]));
    diff = fmax(diff, fabs((double)got[j] - want[j]));
  }
  return diff / scale;
}

/* AdamW alone: from the reference's initial weights, three fb_optim_steps fed the reference's
 * gradient of each step must give its adam_m, adam_v and lora_step1 after step 1 and its
 * lora_step3 after step 3, all within 1e-6. */
static void check_optimizer(const char *c) {
  char in[512], exp[512];
  snprintf(in, sizeof in, FIXTURES "/%s/in.safetensors", c);
  snprintf(exp, sizeof exp, FIXTURES "/%s/expected.safetensors", c);
  fb_st_file *fi = NULL, *fe = NULL;
  fb_err err = {0};
  REQUIRE(fb_st_open(&fi, in, &err) == 0);
  if (fb_st_open(&fe, exp, &err) != 0) {
    FB_FAIL_("%s", err.msg);
    fb_st_close(fi);
    return;
  }
  fb_optim_config oc = fb_optim_defaults();
  const char *keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  double *vals[] = {&oc.lr, &oc.beta1, &oc.beta2, &oc.eps, &oc.weight_decay};
  for (int k = 0; k < 5; k++) {
    const char *v = fb_st_meta(fi, keys[k]);
    REQUIRE(v);
    *vals[k] = strtod(v, NULL);
  }
  /* per step: the gradient it takes, then what is compared after it */
  static const char *const grad_of_step[3] = {"lora_grad.", "lora_grad_step2.", "lora_grad_step3."};
  static const char *const after[3][3] = {
      {"lora_step1.", "adam_m.", "adam_v."}, {NULL}, {"lora_step3.", NULL, NULL}};
  double worst = 0;
  int n_keys = 0;
  for (int i = 0; i < fb_st_count(fi); i++) {
    const fb_st_tensor *init = fb_st_at(fi, i);
    if (strncmp(init->name, "lora_init.", 10) != 0) continue;
    const char *key = init->name + 10;
    size_t n = (size_t)init->numel;
    float *p = malloc(sizeof(float) * n * 3), *g = p + n, *ref = p + 2 * n;
    fb_optim *o = NULL;
    REQUIRE(fb_optim_create(&o, fb_backend_cpu(), n, &oc, &err) == 0);
    REQUIRE(fb_st_read_f32(init, p, &err) == 0);
    for (int step = 0; step < 3; step++) {
      char name[256];
      snprintf(name, sizeof name, "%s%s", grad_of_step[step], key);
      const fb_st_tensor *gt = fb_st_find(fe, name);
      REQUIRE(gt && gt->numel == init->numel && fb_st_read_f32(gt, g, &err) == 0);
      REQUIRE(fb_optim_step(o, p, g, oc.lr, &err) == 0);
      for (int k = 0; k < 3; k++) {
        const char *pre = after[step][k];
        if (!pre) continue;
        snprintf(name, sizeof name, "%s%s", pre, key);
        const fb_st_tensor *want = fb_st_find(fe, name);
        REQUIRE(want && want->numel == init->numel && fb_st_read_f32(want, ref, &err) == 0);
        const float *got = k == 0 ? p : k == 1 ? o->m : o->v;
        double rel = rel_error(got, ref, n);
        worst = fmax(worst, rel);
        if (!(rel <= 1e-6)) FB_FAIL_("%s: %s: relative error %.3g (tol 1e-6)", c, name, rel);
      }
    }
    fb_optim_free(o);
    free(p);
    n_keys++;
  }
  printf(
      "  %s: AdamW over three steps on the reference gradients, %d matrices: worst relative "
      "error %.2g\n",
      c, n_keys, worst);
  CHECK(n_keys > 0);
  fb_st_close(fi);
  fb_st_close(fe);
}

TEST(optimizer_matches_pytorch_given_its_gradients) {
  DIR *d = opendir(FIXTURES);
  REQUIRE(d);
  struct dirent *ent;
  while ((ent = readdir(d)))
    if (ent->d_name[0] != '.') check_optimizer(ent->d_name);
  closedir(d);
}

TEST(lora_check_arguments) {
  char *help[] = {"lora-check", "--help", NULL};
  CHECK_INT(fb_cmd_lora_check(2, help), 0);
  char *few[] = {"lora-check", "a", NULL};
  CHECK_INT(fb_cmd_lora_check(2, few), 2);
  char *missing[] = {"lora-check", FIXTURES "/llama_gqa_tied/model", "/nonexistent/in.safetensors",
                     "/tmp/fb_parity_never.safetensors", NULL};
  CHECK_INT(fb_cmd_lora_check(4, missing), 1);
  CHECK(access("/tmp/fb_parity_never.safetensors", F_OK) != 0);
}

/* Malformed IN files: each refused (exit status 1 from the command), no output file, and an
 * error naming the field or tensor. */
TEST(lora_check_refuses_malformed_inputs) {
  static const struct {
    const char *key, *val, *drop, *msg;
  } bad[] = {
      {"rank", "four", NULL, "__metadata__ 'rank' = \"four\" is not a number"},
      {"dropout_seed", "-1", NULL, "'dropout_seed' = -1 is not an integer"},
      {"targets", "q_proj,wq", NULL, "__metadata__: targets: q_proj,wq: 'wq'"},
      {"greedy_prompt_len", "99", NULL, "greedy_prompt_len 99"},
      {"lr", NULL, NULL, "'lr' is missing"},
      {NULL, NULL, "labels", "tensor 'labels' is missing"},
      {NULL, NULL, "lora_init.base_model.model.model.layers.1.mlp.up_proj.lora_B.weight",
       "'lora_init.base_model.model.model.layers.1.mlp.up_proj.lora_B.weight' [48, 4] is missing"},
  };
  const char *c = FIXTURES "/llama_gqa_tied";
  char in[512], exp[512], model[512], var[128], out[128];
  snprintf(in, sizeof in, "%s/in.safetensors", c);
  snprintf(exp, sizeof exp, "%s/expected.safetensors", c);
  snprintf(model, sizeof model, "%s/model", c);
  snprintf(var, sizeof var, "/tmp/fb_parity_%d_bad_in.safetensors", (int)getpid());
  snprintf(out, sizeof out, "/tmp/fb_parity_%d_bad_out.safetensors", (int)getpid());
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    REQUIRE(in_variant(in, exp, var, bad[i].key, bad[i].val, bad[i].drop) == 0);
    fb_err err = {0};
    CHECK(fb_lora_check_run(model, var, out, &err) != 0);
    CHECK_CONTAINS(err.msg, bad[i].msg);
    CHECK(access(out, F_OK) != 0);
    if (i == 0) {
      char *argv[] = {"lora-check", model, var, out, NULL};
      CHECK_INT(fb_cmd_lora_check(4, argv), 1);
    }
  }
  unlink(var);
}
