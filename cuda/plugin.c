/* plugin.c: the one entry point of libfastbrain_cuda.so, which engine/device.c opens with
 * dlopen when a run asks for a GPU: it opens the device (or says why it cannot) and hands out
 * the CUDA backend's table of backend.h ops. Nothing else of the plugin is visible outside it. */
#include "fb_cuda.h"

/* The loss goes over the vocabulary in chunks: no logits are kept whole. */
static const float *no_logits(const void *work) {
  (void)work;
  return NULL;
}

static const fb_backend cuda = {
    .abi = FB_BACKEND_ABI,
    .name = "cuda",
    .device = FB_DEVICE_CUDA,
    .host_memory = 0,
    .weight_dtype = FB_DT_BF16,
    .trains_base = 0,
    .device_name = fb_cuda_device_name,
    .peak_bytes = fb_cuda_peak_bytes,
    .supports_head_dim = fb_cuda_attention_supports,
    .alloc = fb_cuda_alloc,
    .free = fb_cuda_free,
    .upload = fb_cuda_upload,
    .download = fb_cuda_download,
    .copy = fb_cuda_copy,
    .zero = fb_cuda_zero,
    .matmul_forward = fb_cuda_matmul_forward,
    .matmul_backward = fb_cuda_matmul_backward,
    .addmm = fb_cuda_addmm,
    .gemm = fb_cuda_gemm_f32,
    .embedding_forward = fb_cuda_embedding_forward,
    .embedding_backward = fb_cuda_embedding_backward,
    .rmsnorm_forward = fb_cuda_rmsnorm_forward,
    .residual_rmsnorm_forward = fb_cuda_residual_rmsnorm_forward,
    .rmsnorm_backward = fb_cuda_rmsnorm_backward,
    .rope_forward = fb_cuda_rope_forward,
    .rope_backward = fb_cuda_rope_backward,
    .swiglu_forward = fb_cuda_swiglu_forward,
    .swiglu_backward = fb_cuda_swiglu_backward,
    .add = fb_cuda_add,
    .dropout = fb_cuda_dropout,
    .attention_scratch = fb_cuda_attention_scratch,
    .attention_forward = fb_cuda_attention_forward,
    .attention_backward = fb_cuda_attention_backward,
    .attention_cached_scratch = fb_cuda_attention_cached_scratch,
    .attention_cached = fb_cuda_attention_cached,
    .ce_create = fb_cuda_ce_create,
    .ce_free = fb_cuda_ce_free,
    .lmhead_ce_forward = fb_cuda_lmhead_ce_forward,
    .lmhead_ce_backward = fb_cuda_lmhead_ce_backward,
    .ce_logits = no_logits,
    .adamw = fb_cuda_adamw,
    .sumsq = fb_cuda_sumsq,
    .sum = fb_cuda_sum,
    .scale = fb_cuda_scale,
    .phase = fb_cuda_phase,
    .profile = fb_cuda_profile,
    .replay = fb_cuda_replay,
};

/* abi: the FB_BACKEND_ABI the caller was built with; a plugin of another is refused. */
__attribute__((visibility("default"))) int fb_cuda_plugin_open(int abi, const fb_backend **out,
                                                               fb_err *err) {
  *out = NULL;
  if (abi != FB_BACKEND_ABI)
    return fb_err_set(err, FB_EBACKEND,
                      "the CUDA plugin was built for backend interface %d, this fastbrain has %d: "
                      "rebuild them together",
                      FB_BACKEND_ABI, abi);
  int rc = fb_cuda_init(err);
  if (rc) return rc;
  *out = &cuda;
  return 0;
}
