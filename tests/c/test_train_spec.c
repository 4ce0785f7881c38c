/* test_train_spec.c: the training spec: defaults, a full object read and written back, and an
 * error naming the field for every kind of mistake. */
#include "test.h"
#include "train_spec.h"

static int parse(fb_train_spec *s, const char *json, fb_err *err) {
  return fb_train_spec_parse(s, json, strlen(json), "spec.json", err);
}

#define MIN "\"model\": \"m\", \"data\": \"d.jsonl\", \"out\": \"o\""

TEST(defaults_suit_small_datasets) {
  fb_train_spec s;
  fb_err err = {0};
  REQUIRE(parse(&s, "{" MIN "}", &err) == 0);
  CHECK_STR(s.model, "m");
  CHECK_INT(s.n_data, 1);
  CHECK_STR(s.data[0], "d.jsonl");
  CHECK_INT(s.lora.r, 16);
  CHECK_NEAR(s.lora.lora_alpha, 32, 0);
  CHECK_INT(s.lora.targets, FB_TARGET_ALL);
  CHECK_INT(s.epochs, 3);
  CHECK_INT(s.micro_batch, 4);
  CHECK_INT(s.small_data, 1);
  CHECK_NEAR(s.lr, 2e-4, 0);
  CHECK_INT(s.schedule, FB_SCHED_COSINE);
  CHECK_NEAR(s.eval_fraction, 0.1, 0);
  CHECK_INT(s.seed, 42);
  CHECK_INT(s.device, FB_DEVICE_AUTO);
  CHECK_INT(s.full, 0);
  CHECK_STR(s.sample_system, "");
  CHECK_NEAR(s.sample_repetition_penalty, 1.2, 0);
  CHECK_INT(s.select, FB_SELECT_EVAL_LOSS);
  CHECK_INT(s.select_tokens, 256);
}

TEST(every_field_reads_and_writes_back) {
  const char *json =
      "{" MIN
      ", \"data\": [\"a.jsonl\", \"b.jsonl\"], \"template\": \"chatml\", \"max_len\": 64,"
      "\"lora\": {\"r\": 8, \"alpha\": 16, \"dropout\": 0, \"targets\": [\"q_proj\", \"v_proj\"], "
      "\"rslora\": true},"
      "\"epochs\": 5, \"max_steps\": 40, \"micro_batch\": 2, \"grad_accum\": 3, \"small_data\": "
      "false,"
      "\"lr\": 0.01, \"warmup\": 0.1, \"schedule\": \"linear\", \"weight_decay\": 0.01, \"clip\": "
      "0,"
      "\"eval\": {\"fraction\": 0.2, \"interval\": 5}, \"patience\": 2, \"seed\": 7,"
      "\"checkpoint_interval\": 10, \"checkpoints\": \"ck\", \"device\": \"cpu\", \"mode\": "
      "\"full\","
      "\"samples\": {\"prompts\": [\"hi\", \"bye\"], \"interval\": 4, \"max_tokens\": 8, "
      "\"system\": \"Be brief.\", \"repetition_penalty\": 1},"
      "\"select\": \"scenarios\", \"select_max_tokens\": 64, \"scenarios\": [{\"id\": \"a\"}]}";
  fb_train_spec s, t;
  fb_err err = {0};
  REQUIRE(parse(&s, json, &err) == 0);
  CHECK_INT(s.n_data, 2);
  CHECK_STR(s.data[1], "b.jsonl");
  CHECK_INT(s.lora.targets, FB_TARGET_Q_PROJ | FB_TARGET_V_PROJ);
  CHECK_INT(s.lora.use_rslora, 1);
  CHECK_INT(s.schedule, FB_SCHED_LINEAR);
  CHECK_INT(s.device, FB_DEVICE_CPU);
  CHECK_INT(s.full, 1);
  CHECK_INT(s.n_prompts, 2);
  CHECK_STR(s.prompts[1], "bye");
  CHECK_INT(s.sample_tokens, 8);
  CHECK_STR(s.sample_system, "Be brief.");
  CHECK_NEAR(s.sample_repetition_penalty, 1, 0);
  CHECK_INT(s.eval_interval, 5);
  CHECK_INT(s.select, FB_SELECT_SCENARIOS);
  CHECK_INT(s.select_tokens, 64);
  cJSON *j = fb_train_spec_to_json(&s);
  REQUIRE(j);
  REQUIRE(fb_train_spec_from_json(&t, j, &err) == 0);
  cJSON_Delete(j);
  CHECK(memcmp(&s, &t, sizeof s) == 0);
}

TEST(targets_as_a_list_string) {
  fb_train_spec s;
  fb_err err = {0};
  REQUIRE(parse(&s, "{" MIN ", \"lora\": {\"targets\": \"q_proj, o_proj\"}}", &err) == 0);
  CHECK_INT(s.lora.targets, FB_TARGET_Q_PROJ | FB_TARGET_O_PROJ);
}

TEST(each_mistake_names_its_field) {
  static const struct {
    const char *json, *msg;
  } cases[] = {
      {"{" MIN ", \"lora\": {\"r\": 0}}", "spec.lora.r: must be an integer 1..256 (got 0)"},
      {"{" MIN ", \"lora\": {\"r\": 2.5}}", "spec.lora.r: must be an integer"},
      {"{" MIN ", \"lora\": {\"dropout\": 0.95}}",
       "spec.lora.dropout: must be a number 0..0.9 (got 0.95)"},
      {"{" MIN ", \"lora\": {\"targets\": [\"q_proj\", \"q_proj\"]}}",
       "spec.lora.targets[1]: must be a distinct"},
      {"{" MIN ", \"lora\": {\"targets\": \"nope\"}}", "spec.lora.targets"},
      {"{" MIN ", \"lora\": {\"rank\": 4}}", "spec.lora.rank: unknown field"},
      {"{" MIN ", \"lora\": 4}", "spec.lora: must be an object"},
      {"{" MIN ", \"epochs\": 0}", "spec.epochs: must be an integer 1..10000"},
      {"{" MIN ", \"lr\": -1}", "spec.lr: must be a number 0..10"},
      {"{" MIN ", \"lr\": \"fast\"}", "spec.lr: must be a number"},
      {"{" MIN ", \"schedule\": \"step\"}",
       "spec.schedule: must be one of \"constant\", \"cosine\", \"linear\""},
      {"{" MIN ", \"device\": \"tpu\"}", "spec.device: must be one of \"auto\", \"cpu\", \"cuda\""},
      {"{" MIN ", \"device\": \"cuda\", \"mode\": \"full\"}",
       "spec.device: \"cuda\" trains adapters only (its base weights are bf16); full-parameter "
       "mode runs on the CPU"},
      {"{" MIN ", \"mode\": \"qlora\"}", "spec.mode: must be one of \"lora\", \"full\""},
      {"{" MIN ", \"select\": \"loss\"}",
       "spec.select: must be one of \"eval_loss\", \"scenarios\""},
      {"{" MIN ", \"select_max_tokens\": 0}", "spec.select_max_tokens: must be an integer 1..4096"},
      {"{" MIN ", \"scenarios\": {}}", "spec.scenarios: must be a list"},
      {"{" MIN ", \"samples\": {\"repetition_penalty\": 0.5}}",
       "spec.samples.repetition_penalty: must be a number 1..10"},
      {"{" MIN ", \"samples\": {\"system\": 7}}", "spec.samples.system: must be a string"},
      {"{" MIN ", \"eval\": {\"fraction\": 0.7}}", "spec.eval.fraction: must be a number 0..0.5"},
      {"{" MIN ", \"small_data\": 1}", "spec.small_data: must be true or false"},
      {"{" MIN ", \"seed\": -3}", "spec.seed: must be an integer 0..2^53"},
      {"{" MIN ", \"data\": [1]}", "spec.data[0]: must be a string"},
      {"{" MIN ", \"samples\": {\"prompts\": [\"\"]}}", "spec.samples.prompts[0]: empty"},
      {"{" MIN ", \"epoch\": 3}", "spec.epoch: unknown field"},
      {"{\"data\": \"d\", \"out\": \"o\"}", "spec.model: required"},
      {"{\"model\": \"m\", \"out\": \"o\"}", "spec.data: required"},
      {"{\"model\": \"m\", \"data\": \"d\"}", "spec.out: required"},
      {"[1]", "spec: must be a JSON object"},
      {"{", "spec.json: not valid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fb_train_spec s;
    fb_err err = {0};
    CHECK_INT(parse(&s, cases[i].json, &err), err.code ? err.code : 1);
    CHECK(err.code != 0);
    CHECK_CONTAINS(err.msg, cases[i].msg);
  }
}

TEST(check_catches_a_spec_built_in_code) {
  fb_train_spec s;
  fb_err err = {0};
  fb_train_spec_defaults(&s);
  snprintf(s.model, sizeof s.model, "m");
  snprintf(s.data[0], sizeof s.data[0], "d");
  s.n_data = 1;
  snprintf(s.out, sizeof s.out, "o");
  CHECK_INT(fb_train_spec_check(&s, &err), 0);
  s.micro_batch = 0;
  CHECK_INT(fb_train_spec_check(&s, &err), FB_EINVALID);
  CHECK_CONTAINS(err.msg, "spec.micro_batch: must be an integer 1..4096 (got 0)");
}

TEST(cuda_is_a_device) {
  fb_train_spec s;
  fb_err err = {0};
  REQUIRE(parse(&s, "{" MIN ", \"device\": \"cuda\"}", &err) == 0);
  CHECK_INT(s.device, FB_DEVICE_CUDA);
  cJSON *j = fb_train_spec_to_json(&s);
  CHECK_STR(cJSON_GetObjectItem(j, "device")->valuestring, "cuda");
  cJSON_Delete(j);
}

/* A request's problems as "path=problem;" in the order reported. */
static void collect(void *ctx, const char *path, const char *problem) {
  char *out = ctx;
  snprintf(out + strlen(out), 1024 - strlen(out), "%s=%s;", path, problem);
}

TEST(a_request_hears_every_problem_at_once) {
  char got[1024] = "";
  cJSON *o = cJSON_Parse(
      "{\"epochs\": 0, \"lora\": {\"r\": 2.5, \"targets\": [], \"rank\": 4},"
      " \"hooks\": \"h.lua\", \"out\": \"/tmp/x\", \"lr\": 0.001,"
      " \"schedule\": \"step\", \"eval\": 3}");
  REQUIRE(o);
  CHECK_INT(fb_train_spec_request_problems(o, collect, got), 8);
  CHECK_STR(got,
            "epochs=must be an integer 1..10000 (got 0);"
            "lora.r=must be an integer 1..256;"
            "lora.targets=must name at least one projection;"
            "lora.rank=unknown field;"
            "hooks=set by the server;"
            "out=set by the server;"
            "schedule=must be one of \"constant\", \"cosine\", \"linear\";"
            "eval=must be an object;");
  cJSON_Delete(o);
  got[0] = 0;
  o = cJSON_Parse(
      "{\"lora\": {\"targets\": [\"q_proj\", \"q_proj\"]}, \"samples\": {\"max_tokens\": 9}}");
  CHECK_INT(fb_train_spec_request_problems(o, collect, got), 1);
  CHECK_STR(got,
            "lora.targets=[1]: must be a distinct one of q_proj, k_proj, v_proj, o_proj, "
            "gate_proj, up_proj, down_proj;");
  cJSON_Delete(o);
  got[0] = 0;
  o = cJSON_Parse("[1]");
  CHECK_INT(fb_train_spec_request_problems(o, collect, got), 1);
  CHECK_STR(got, "body=must be an object;");
  cJSON_Delete(o);
  got[0] = 0;
  o = cJSON_Parse("{\"lr\": 0.001, \"lora\": {\"r\": 8}, \"device\": \"cpu\"}");
  CHECK_INT(fb_train_spec_request_problems(o, collect, got), 0);
  CHECK_STR(got, "");
  cJSON_Delete(o);
}

/* The description of field name in the list. */
static const cJSON *described(const cJSON *list, const char *name) {
  const cJSON *f;
  cJSON_ArrayForEach(f, list) {
    if (strcmp(cJSON_GetObjectItem(f, "name")->valuestring, name) == 0) return f;
  }
  return NULL;
}

TEST(fields_describe_what_the_reader_checks) {
  cJSON *list = fb_train_spec_fields();
  REQUIRE(list);
  const cJSON *r = described(list, "lora.r"), *dev = described(list, "device"),
              *model = described(list, "model"), *targets = described(list, "lora.targets");
  REQUIRE(r && dev && model && targets);
  CHECK_STR(cJSON_GetObjectItem(r, "type")->valuestring, "integer");
  CHECK_NEAR(cJSON_GetObjectItem(r, "min")->valuedouble, 1, 0);
  CHECK_NEAR(cJSON_GetObjectItem(r, "max")->valuedouble, FB_SPEC_MAX_RANK, 0);
  CHECK_NEAR(cJSON_GetObjectItem(r, "default")->valuedouble, 16, 0);
  CHECK_STR(cJSON_GetObjectItem(r, "set_by")->valuestring, "request");
  CHECK(strlen(cJSON_GetObjectItem(r, "doc")->valuestring) > 0);
  CHECK_STR(cJSON_GetObjectItem(dev, "type")->valuestring, "enum");
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(dev, "choices")), 3);
  CHECK_STR(cJSON_GetObjectItem(dev, "default")->valuestring, "auto");
  CHECK_STR(cJSON_GetObjectItem(model, "set_by")->valuestring, "server");
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(targets, "choices")), FB_TARGET_COUNT);
  /* Every number field's range is the one reading enforces: max accepted, max + 1 refused. */
  const cJSON *f;
  cJSON_ArrayForEach(f, list) {
    const char *type = cJSON_GetObjectItem(f, "type")->valuestring,
               *name = cJSON_GetObjectItem(f, "name")->valuestring;
    if (strcmp(type, "integer") != 0 && strcmp(type, "number") != 0) continue;
    double max = cJSON_GetObjectItem(f, "max")->valuedouble,
           min = cJSON_GetObjectItem(f, "min")->valuedouble;
    for (int over = 0; over < 2; over++) {
      char json[512];
      const char *dot = strchr(name, '.');
      double x = over ? (max < 1e9 ? max + 1 : max * 2) : min;
      if (dot)
        snprintf(json, sizeof json, "{\"%.*s\": {\"%s\": %.17g}}", (int)(dot - name), name, dot + 1,
                 x);
      else
        snprintf(json, sizeof json, "{\"%s\": %.17g}", name, x);
      char got[1024] = "";
      cJSON *o = cJSON_Parse(json);
      int n = fb_train_spec_request_problems(o, collect, got);
      cJSON_Delete(o);
      if (n != over) printf("  %s = %.17g: %d problems (%s)\n", name, x, n, got);
      CHECK_INT(n, over);
    }
  }
  cJSON_Delete(list);
}
