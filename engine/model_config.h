/* model_config.h: a Hugging Face config.json for LlamaForCausalLM, Qwen2ForCausalLM,
 * MistralForCausalLM or Qwen3ForCausalLM, parsed and checked (types, caps, consistency) into a
 * plain struct; the parameter count and bytes the weights will take. Does not touch weights or
 * tokenizers. */
#ifndef FB_MODEL_CONFIG_H
#define FB_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum { FB_ARCH_LLAMA, FB_ARCH_QWEN2, FB_ARCH_MISTRAL, FB_ARCH_QWEN3 } fb_arch;
typedef enum { FB_ROPE_NONE, FB_ROPE_LINEAR, FB_ROPE_LLAMA3 } fb_rope_type;

/* Caps on sizes, well above any model this engine trains; past them config.json is refused.
 * The vocab cap is tokenizer.json's (FB_TOK_MAX_VOCAB): twice the largest real vocabularies. */
#define FB_CFG_MAX_VOCAB (1 << 19)
#define FB_CFG_MAX_HIDDEN 65536
#define FB_CFG_MAX_FFN 262144
#define FB_CFG_MAX_LAYERS 1024
#define FB_CFG_MAX_HEADS 1024
#define FB_CFG_MAX_HEAD_DIM 1024
#define FB_CFG_MAX_POSITIONS (1 << 24)
#define FB_CFG_MAX_EOS 8

typedef struct fb_rope_scaling {
  fb_rope_type type;                        /* FB_ROPE_NONE when absent, null or "default" */
  double factor;                            /* linear and llama3 */
  double low_freq_factor, high_freq_factor; /* llama3 */
  int original_max_position_embeddings;     /* llama3 */
} fb_rope_scaling;

/* Plain value; no pointers, nothing to free. */
typedef struct fb_model_config {
  fb_arch arch;
  char architecture[32]; /* "LlamaForCausalLM", ... */
  int vocab_size, hidden_size, intermediate_size, num_hidden_layers;
  int num_attention_heads, num_key_value_heads; /* kv defaults to heads */
  int head_dim;                                 /* defaults to hidden_size / num_attention_heads
                                                 * (Qwen3: to 128, as Qwen3Config does) */
  double rms_norm_eps, rope_theta;              /* rope_theta defaults to 10000 */
  fb_rope_scaling rope_scaling;
  int max_position_embeddings;
  int tie_word_embeddings; /* 0/1, default 0 */
  int attention_bias;      /* q/k/v projections have a bias: Qwen2 always, Llama/Qwen3 if set */
  int o_bias;              /* o_proj has a bias: Llama and Qwen3 with attention_bias only */
  int qk_norm;             /* q_norm/k_norm: RMSNorm over each head of q and k before rotary
                            * (Qwen3), weights [head_dim], eps rms_norm_eps */
  int sliding_window;      /* the window of windowed layers (Mistral, Qwen2/3); 0 = none */
  int layer_window[FB_CFG_MAX_LAYERS]; /* each layer's window, 0 = full attention */
  char torch_dtype[16];                /* "float32", "float16", "bfloat16", or "" when absent */
  int bos_token_id;                    /* -1 when absent */
  int n_eos;                           /* eos_token_id: an integer or an array of them */
  int eos_token_ids[FB_CFG_MAX_EOS];
} fb_model_config;

/* Parse config.json text (len bytes). label names the source in errors ("dir/config.json:
 * field 'num_key_value_heads': 5 does not divide num_attention_heads 8"). On failure *c is
 * zeroed. */
int fb_model_config_parse(fb_model_config *c, const char *json, size_t len, const char *label,
                          fb_err *err);
/* Read and parse a config.json file (at most 1 MB). */
int fb_model_config_load(fb_model_config *c, const char *path, fb_err *err);

/* The architectures entry ("LlamaForCausalLM") and the model_type transformers pairs with it
 * ("llama") of arch; a config.json whose model_type differs is refused. */
const char *fb_arch_name(fb_arch arch);
const char *fb_arch_model_type(fb_arch arch);

/* Give layers first_layer.. the sliding window `window` (0 = none) and the layers before them
 * full attention: Mistral's layout with first_layer 0, Qwen2's and Qwen3's with
 * max_window_layers. */
void fb_model_config_set_window(fb_model_config *c, int window, int first_layer);

/* The weight shape [out, in] of projection `index` in a layer, index being the bit index of an
 * fb_target (adapter_config.h): 0 q_proj, 1 k_proj, 2 v_proj, 3 o_proj, 4 gate_proj, 5 up_proj,
 * 6 down_proj. Returns 0, or FB_EINVALID for another index. */
int fb_model_config_proj_shape(const fb_model_config *c, int index, int *out, int *in);

/* Parameters of the whole base model (embeddings, every layer with Qwen3's q/k norms, final
 * norm, lm_head unless tied) and the bytes they take as f32 on the CPU. */
int64_t fb_model_config_param_count(const fb_model_config *c);
int64_t fb_model_config_param_bytes(const fb_model_config *c);

#endif
