/* gguf_export.h: fastbrain models and adapters as llama.cpp reads them: a loaded fb_model (an
 * adapter already merged, or none) with its tokenizer, chat template and rope settings as one
 * GGUF, and a LoRA adapter as a GGUF LoRA for that base. Tensor names, shapes, the Q/K row
 * permutation of llama.cpp's converter and the metadata keys are llama.cpp's. Written: Llama
 * (llama3 rope scaling too), Mistral, Qwen2 and Qwen3 without sliding windows, with a byte-level
 * BPE tokenizer splitting with GPT-2's, Qwen2's or Llama 3's regex; anything else is refused with
 * FB_EUNSUPPORTED naming what. */
#ifndef FB_GGUF_EXPORT_H
#define FB_GGUF_EXPORT_H

#include "error.h"
#include "gguf.h"
#include "lora.h"
#include "model.h"

/* Write m's weights (2-D ones as type; norms and biases always F32; Q8_0 rows that are not
 * whole blocks of 32 as F16, as llama.cpp's converter does) with the metadata of
 * src_dir/config.json's model and src_dir's tokenizer.json and tokenizer_config.json, to path
 * atomically. */
int fb_gguf_export_model(const fb_model *m, const char *src_dir, fb_ggml_type type,
                         const char *path, fb_err *err);

/* Write adapter l (loaded for m, on the CPU) as a GGUF LoRA for m's GGUF: F32 tensors
 * `<base tensor>.lora_a` [in, r] and `.lora_b` [r, out], and adapter.lora.alpha such that
 * llama.cpp's alpha / r equals l's scale. */
int fb_gguf_export_lora(const fb_lora *l, const fb_model *m, const char *path, fb_err *err);

#endif
