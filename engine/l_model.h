/* l_model.h: what the two C files of module `fastbrain.model.core` share: a loaded model as
 * userdata (l_model.c: load, info, export) and its generation (l_generate.c: adapters cached per
 * model, whole answers and token streams). */
#ifndef FB_L_MODEL_H
#define FB_L_MODEL_H

#include <lua.h>

#include "lora.h"
#include "model.h"

#define MODEL_MT "fastbrain.model.handle"

/* A cached adapter: the directory it was loaded from, as given; streams using it pin it. */
typedef struct cached_adapter {
  char *dir;
  fb_lora *lora;
  int users;
  struct cached_adapter *next; /* most recently used first */
} cached_adapter;

typedef struct lm_stream lm_stream;

typedef struct lm {
  fb_model *m; /* NULL once closed */
  cached_adapter *adapters;
  lm_stream *streams; /* open token streams; closing the model ends them */
} lm;

lm *fb_lm_check_live(lua_State *L);

/* m:generate(ids, opts) and m:stream(ids, opts) (l_generate.c). */
int fb_lm_generate(lua_State *L);
int fb_lm_stream(lua_State *L);
/* Ends the model's streams and frees its adapters, before the model itself is freed. */
void fb_lm_release_generation(lm *s);
/* The stream's metatable; once, when the module opens. */
void fb_lm_register_stream(lua_State *L);

#endif
