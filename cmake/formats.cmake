# formats: safetensors, HF model config, PEFT adapter config, file helpers; their tests and fuzzer.
target_sources(fb_core PRIVATE
  engine/fsutil.c engine/safetensors.c engine/model_config.c engine/adapter_config.c
  engine/hf_cache.c)

fb_add_c_test(fsutil tests/c/test_fsutil.c LIBS fb_core)
fb_add_c_test(hf_cache tests/c/test_hf_cache.c LIBS fb_core)
fb_add_c_test(safetensors tests/c/test_safetensors.c LIBS fb_core)
fb_add_c_test(model_config tests/c/test_model_config.c LIBS fb_core)
fb_add_c_test(fixture_files tests/c/test_fixture_files.c LIBS fb_core)
fb_add_fuzzer(safetensors tests/fuzz/fuzz_safetensors.c LIBS fb_core)

# The PyTorch side of the LoRA training benchmark (Debian python3-torch; not a test):
# `cmake --build <dir> --target bench_torch_lora`. FB_BENCH_TORCH_ARGS picks BLAS and core.
set(FB_BENCH_TORCH_ARGS "--shape;all;--blas;openblas" CACHE STRING
    "arguments to tests/bench/torch_lora_step.py (e.g. add --coretype;SkylakeX)")
add_custom_target(bench_torch_lora
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/bench/torch_lora_step.py ${FB_BENCH_TORCH_ARGS}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} USES_TERMINAL VERBATIM)
