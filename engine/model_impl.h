/* model_impl.h: what model.c and layers.c share and no one else sees. */
#ifndef FB_MODEL_IMPL_H
#define FB_MODEL_IMPL_H

#include "model.h"

/* Free the activations layers.c keeps on the model's backend (m->acts); NULL after. */
void fb_model_free_acts(fb_model *m);

#endif
