/* paths.h: where the bundled files (lua/, scripts/, web/, share/) are, wherever the binary runs
 * from: an install (bin/fastbrain with share/fastbrain/ beside bin/) or the build tree. */
#ifndef FB_PATHS_H
#define FB_PATHS_H

#include <stddef.h>

/* Write the root folder into out (n bytes). Tries $FASTBRAIN_ROOT, then <exe>/../share/fastbrain,
 * then the source tree the binary was built from; each must hold lua/fastbrain/init.lua.
 * Returns 0, or -1 when none does (out then names what was tried). */
int fb_paths_find_root(char *out, size_t n);

#endif
