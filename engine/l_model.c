/* l_model.c: the C half of fastbrain.model (module `fastbrain.model.core`): a loaded base model as
 * userdata, on the device it was asked for, its shape (info), and init(dir): random weights for
 * a config.json, the start of a pretraining run; and base + adapter exported (merge, gguf,
 * gguf_lora). Its generation is l_generate.c's; chat templates and tokenizers are the Lua
 * half's (lua/fastbrain/model.lua). */
#include <dirent.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "device.h"
#include "gemm.h"
#include "gguf_export.h"
#include "hf_cache.h"
#include "l_model.h"
#include "log.h"
#include "lora.h"
#include "model.h"
#include "modules.h"
#include "safetensors.h"

lm *fb_lm_check_live(lua_State *L) {
  lm *s = luaL_checkudata(L, 1, MODEL_MT);
  luaL_argcheck(L, s->m != NULL, 1, "model is closed");
  return s;
}

static int push_fail(lua_State *L, const fb_err *err) {
  luaL_pushfail(L);
  lua_pushstring(L, err->msg);
  return 2;
}

/* lm.load(dir [, device]) -> model | nil, err: device "auto" (the default: the GPU when there is
 * a usable one, else the CPU with a log line saying why), "cpu" or "cuda" */
static int load(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  int want = fb_device_parse(luaL_optstring(L, 2, "auto"));
  luaL_argcheck(L, want >= 0, 2, "device must be \"auto\", \"cpu\" or \"cuda\"");
  lm *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, MODEL_MT); /* __gc frees whatever load leaves */
  fb_err err = {0};
  const fb_backend *be;
  char why[320];
  if (fb_model_load(&s->m, dir, &err) || fb_device_open(want, &be, why, sizeof why, &err) ||
      fb_model_place(s->m, be, &err))
    return push_fail(L, &err);
  if (want == FB_DEVICE_AUTO && be->device == FB_DEVICE_CPU)
    fb_info("device: auto: using the CPU: %s", why);
  return 1;
}

/* lm.cache_root() -> the Hugging Face cache's directory (HF_HUB_CACHE, HF_HOME/hub, ~/.cache) */
static int cache_root(lua_State *L) {
  char root[4096];
  fb_hf_cache_root(root, sizeof root);
  lua_pushstring(L, root);
  return 1;
}

/* lm.check_config(path) -> architecture | nil, err: whether the engine runs the model of this
 * config.json (its own parser: the architecture and every field it reads) */
static int check_config(lua_State *L) {
  fb_model_config c;
  fb_err err = {0};
  if (fb_model_config_load(&c, luaL_checkstring(L, 1), &err)) return push_fail(L, &err);
  lua_pushstring(L, c.architecture);
  return 1;
}

/* lm.parse_ref(name) -> repo, revision | nil: ORG/NAME[@REVISION] as the Hub allows it
 * (revision "main" when not given) */
static int parse_ref(lua_State *L) {
  char repo[FB_HF_REPO], rev[FB_HF_REVISION];
  if (fb_hf_parse(luaL_checkstring(L, 1), repo, rev)) {
    luaL_pushfail(L);
    return 1;
  }
  lua_pushstring(L, repo);
  lua_pushstring(L, rev);
  return 2;
}

/* lm.locate(name) -> dir, commit | nil, err: a model directory, or ORG/NAME[@REVISION] in the
 * Hugging Face cache (hf_cache.h; commit "" for a plain directory) */
static int locate(lua_State *L) {
  char dir[4096], commit[FB_HF_COMMIT];
  fb_err err = {0};
  if (fb_hf_locate(luaL_checkstring(L, 1), dir, sizeof dir, commit, &err))
    return push_fail(L, &err);
  lua_pushstring(L, dir);
  lua_pushstring(L, commit);
  return 2;
}

/* lm.device([want = "auto"]) -> "cpu" | "cuda", what it is | nil, err: the backend a run asking
 * for want gets (the GPU's name, the CPU's, or why "auto" took the CPU) */
static int device(lua_State *L) {
  int want = fb_device_parse(luaL_optstring(L, 1, "auto"));
  luaL_argcheck(L, want >= 0, 1, "device must be \"auto\", \"cpu\" or \"cuda\"");
  const fb_backend *be;
  char why[320];
  fb_err err = {0};
  if (fb_device_open(want, &be, why, sizeof why, &err)) return push_fail(L, &err);
  lua_pushstring(L, be->name);
  lua_pushstring(L,
                 want == FB_DEVICE_AUTO && be->device == FB_DEVICE_CPU ? why : be->device_name());
  return 2;
}

static void set_int(lua_State *L, const char *key, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, key);
}

/* The bytes of the files in dir (links followed: a cache's snapshot links into blobs/). */
static double dir_bytes(const char *dir) {
  double total = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  struct stat st;
  char path[4400];
  while (d && (e = readdir(d))) {
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
  }
  if (d) closedir(d);
  return total;
}

/* The dtype most of the weights' bytes are stored in. */
static const char *main_dtype(const fb_st_file *f) {
  double by[4] = {0};
  for (int i = 0; i < fb_st_count(f); i++) {
    const fb_st_tensor *t = fb_st_at(f, i);
    if ((int)t->dtype >= 0 && (int)t->dtype < 4) by[t->dtype] += (double)t->nbytes;
  }
  int best = 0;
  for (int d = 1; d < 4; d++)
    if (by[d] > by[best]) best = d;
  return fb_dtype_name((fb_dtype)best);
}

/* lm.inspect(name) -> {dir, revision, bytes, supported, reason, architecture, parameters, dtype,
 *   context, vocab_size, hidden_size, layers, heads, kv_heads, head_dim} | nil, err
 * without loading the weights: what a model is and whether this engine runs it (reason says why
 * not; the shape fields are there when config.json parses). err only when name is neither a
 * directory nor a cached repository. */
static int inspect(lua_State *L) {
  char dir[4096], commit[FB_HF_COMMIT], path[4200];
  fb_err err = {0};
  if (fb_hf_locate(luaL_checkstring(L, 1), dir, sizeof dir, commit, &err))
    return push_fail(L, &err);
  lua_createtable(L, 0, 16);
  lua_pushstring(L, dir);
  lua_setfield(L, -2, "dir");
  lua_pushstring(L, commit);
  lua_setfield(L, -2, "revision");
  lua_pushinteger(L, (lua_Integer)dir_bytes(dir));
  lua_setfield(L, -2, "bytes");
  fb_model_config c;
  fb_st_file *f = NULL;
  snprintf(path, sizeof path, "%s/config.json", dir);
  int rc = fb_model_config_load(&c, path, &err);
  if (!rc) {
    lua_pushstring(L, c.architecture);
    lua_setfield(L, -2, "architecture");
    set_int(L, "parameters", (lua_Integer)fb_model_config_param_count(&c));
    set_int(L, "context", c.max_position_embeddings);
    set_int(L, "vocab_size", c.vocab_size);
    set_int(L, "hidden_size", c.hidden_size);
    set_int(L, "layers", c.num_hidden_layers);
    set_int(L, "heads", c.num_attention_heads);
    set_int(L, "kv_heads", c.num_key_value_heads);
    set_int(L, "head_dim", c.head_dim);
    rc = fb_st_open_model_dir(&f, dir, &err);
  }
  if (f) {
    lua_pushstring(L, main_dtype(f));
    lua_setfield(L, -2, "dtype");
    fb_st_close(f);
  }
  lua_pushboolean(L, rc == 0);
  lua_setfield(L, -2, "supported");
  if (rc) {
    lua_pushstring(L, err.msg);
    lua_setfield(L, -2, "reason");
  }
  return 1;
}

/* lm.init(dir, seed, std) -> true | nil, err: dir/model.safetensors filled with N(0, std)
 * weights (norms 1) for dir/config.json; the directory's other files are left as they are. */
static int init(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_Integer seed = luaL_checkinteger(L, 2);
  double std = luaL_checknumber(L, 3);
  luaL_argcheck(L, std > 0, 3, "std must be > 0");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  fb_model_config c;
  fb_model *m = NULL;
  fb_err err = {0};
  int rc = fb_model_config_load(&c, path, &err) || fb_model_create(&m, &c, &err);
  if (!rc) {
    fb_model_init_random(m, (uint64_t)seed, (float)std);
    rc = fb_model_save(m, dir, dir, &err);
  }
  fb_model_free(m);
  if (rc) return push_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* One export of base model m (on the CPU, from dir) and adapter l (NULL when none was given). */
typedef int (*export_fn)(fb_model *m, fb_lora *l, const char *dir, const char *out, int type,
                         fb_err *err);

/* Load the base (arg 1: a directory or ORG/NAME[@REVISION]) and the adapter (adapter_dir, may be
 * NULL), run fn to write out, free both -> true | nil, err. */
static int run_export(lua_State *L, const char *adapter_dir, const char *out, int type,
                      export_fn fn) {
  char dir[4096], commit[FB_HF_COMMIT];
  fb_model *m = NULL;
  fb_lora *l = NULL;
  fb_err err = {0};
  int rc = fb_hf_locate(luaL_checkstring(L, 1), dir, sizeof dir, commit, &err) ||
           fb_model_load(&m, dir, &err) ||
           (adapter_dir && fb_lora_load(&l, m, adapter_dir, &err)) ||
           fn(m, l, dir, out, type, &err);
  fb_lora_free(l);
  fb_model_free(m);
  if (rc) return push_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int merged_dir(fb_model *m, fb_lora *l, const char *dir, const char *out, int type,
                      fb_err *err) {
  (void)type;
  return fb_lora_merge(l, m, err) || fb_model_save_as_loaded(m, dir, out, err) ? err->code : 0;
}

static int merged_gguf(fb_model *m, fb_lora *l, const char *dir, const char *out, int type,
                       fb_err *err) {
  return (l && fb_lora_merge(l, m, err)) ||
                 fb_gguf_export_model(m, dir, (fb_ggml_type)type, out, err)
             ? err->code
             : 0;
}

static int lora_gguf(fb_model *m, fb_lora *l, const char *dir, const char *out, int type,
                     fb_err *err) {
  (void)dir, (void)type;
  return fb_gguf_export_lora(l, m, out, err);
}

/* lm.merge(base, adapter_dir, out_dir) -> true | nil, err: the base model with the PEFT adapter
 * added into its weights (W += scale * B @ A), written to out_dir as a model directory: weights
 * in the base checkpoint's dtypes, its config.json and tokenizer files. */
static int merge(lua_State *L) {
  return run_export(L, luaL_checkstring(L, 2), luaL_checkstring(L, 3), 0, merged_dir);
}

/* lm.gguf(base, adapter_dir|nil, out_file [, type]) -> true | nil, err: the base model (with the
 * adapter merged when given) as one GGUF for llama.cpp, its 2-D weights as type ("f32", the
 * default, "f16" or "q8_0"), with its tokenizer, chat template and rope settings
 * (gguf_export.h). Written atomically. */
static int gguf(lua_State *L) {
  static const char *const types[] = {"f32", "f16", "q8_0", NULL};
  static const fb_ggml_type ggml[] = {FB_GGML_F32, FB_GGML_F16, FB_GGML_Q8_0};
  int t = luaL_checkoption(L, 4, "f32", types);
  return run_export(L, luaL_optstring(L, 2, NULL), luaL_checkstring(L, 3), ggml[t], merged_gguf);
}

/* lm.gguf_lora(base, adapter_dir, out_file) -> true | nil, err: the PEFT adapter as a GGUF LoRA
 * that llama.cpp applies to the base's GGUF (lm.gguf without an adapter). Written atomically. */
static int gguf_lora(lua_State *L) {
  return run_export(L, luaL_checkstring(L, 2), luaL_checkstring(L, 3), 0, lora_gguf);
}

/* m:info() -> {architecture, vocab_size, hidden_size, ..., parameters, device, device_name,
 *   cpu_gemm (on the CPU: "openblas" or "dnnl", gemm.h's choice), adapters = {dir, ...}} */
static int info(lua_State *L) {
  lm *s = fb_lm_check_live(L);
  const fb_model_config *c = &s->m->cfg;
  lua_createtable(L, 0, 12);
  lua_pushstring(L, c->architecture);
  lua_setfield(L, -2, "architecture");
  set_int(L, "vocab_size", c->vocab_size);
  set_int(L, "hidden_size", c->hidden_size);
  set_int(L, "intermediate_size", c->intermediate_size);
  set_int(L, "num_hidden_layers", c->num_hidden_layers);
  set_int(L, "num_attention_heads", c->num_attention_heads);
  set_int(L, "num_key_value_heads", c->num_key_value_heads);
  set_int(L, "max_position_embeddings", c->max_position_embeddings);
  set_int(L, "parameters", (lua_Integer)s->m->n_floats);
  lua_pushstring(L, s->m->be->name);
  lua_setfield(L, -2, "device");
  lua_pushstring(L, s->m->be->device_name());
  lua_setfield(L, -2, "device_name");
  if (s->m->be == fb_backend_cpu()) {
    lua_pushstring(L, fb_gemm_path());
    lua_setfield(L, -2, "cpu_gemm");
  }
  lua_newtable(L);
  int i = 0;
  for (cached_adapter *a = s->adapters; a; a = a->next) {
    lua_pushstring(L, a->dir);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "adapters"); /* info.adapters = dirs loaded so far, latest first */
  return 1;
}

static int close_model(lua_State *L) {
  lm *s = luaL_checkudata(L, 1, MODEL_MT);
  fb_lm_release_generation(s);
  fb_model_free(s->m);
  s->m = NULL;
  return 0;
}

static int tostring_model(lua_State *L) {
  lm *s = luaL_checkudata(L, 1, MODEL_MT);
  if (s->m)
    lua_pushfstring(L, "fastbrain.model (%s, %d layers, hidden %d)", s->m->cfg.architecture,
                    s->m->L, s->m->C);
  else
    lua_pushliteral(L, "fastbrain.model (closed)");
  return 1;
}

int luaopen_fastbrain_model_core(lua_State *L) {
  static const luaL_Reg methods[] = {{"generate", fb_lm_generate},
                                     {"stream", fb_lm_stream},
                                     {"info", info},
                                     {"close", close_model},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", close_model},
                                  {"__close", close_model},
                                  {"__tostring", tostring_model},
                                  {NULL, NULL}};
  fb_lm_register_stream(L);
  luaL_newmetatable(L, MODEL_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index"); /* metatable.__index = methods */
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"load", load},           {"init", init},
                                   {"merge", merge},         {"gguf", gguf},
                                   {"gguf_lora", gguf_lora}, {"locate", locate},
                                   {"inspect", inspect},     {"cache_root", cache_root},
                                   {"parse_ref", parse_ref}, {"check_config", check_config},
                                   {"device", device},       {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
