/* hf_cache.h: models named the Hugging Face way, ORG/NAME[@REVISION], found offline in the
 * Hugging Face cache, in its own layout, so the models other tools fetched are found too:
 * $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub (a leading ~ is $HOME); models--ORG--NAME/refs/<rev>
 * holds a commit, snapshots/<commit>/ holds the files. Downloading into it is fastbrain.hub's
 * (`fastbrain pull`); nothing here touches the network or writes. */
#ifndef FB_HF_CACHE_H
#define FB_HF_CACHE_H

#include <stddef.h>

#include "error.h"

#define FB_HF_COMMIT 41    /* 40 hex digits and the NUL */
#define FB_HF_REPO 194     /* ORG/NAME: two names of 96 at most, the slash, the NUL */
#define FB_HF_REVISION 256 /* a branch, tag or commit */

/* The cache's root directory into buf. */
void fb_hf_cache_root(char *buf, size_t n);

/* ORG/NAME[@REVISION] into repo ("ORG/NAME") and revision ("main" when not given): 0, or -1
 * when it is not a repository id as the Hub allows them. */
int fb_hf_parse(const char *name, char repo[FB_HF_REPO], char revision[FB_HF_REVISION]);

/* Where the model `name` lies: an existing directory is itself (commit ""); otherwise name must
 * be ORG/NAME[@REVISION] (REVISION "main" when not given; a full commit hash stands for itself)
 * and that revision's snapshot must be in the cache: dir gets its path, commit its hash.
 * FB_ENOTFOUND says what is missing and how to get it ("fastbrain pull ORG/NAME"); FB_EINVALID
 * is a name that is neither a directory nor a repository id. */
int fb_hf_locate(const char *name, char *dir, size_t n, char commit[FB_HF_COMMIT], fb_err *err);

#endif
