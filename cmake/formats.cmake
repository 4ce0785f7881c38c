# formats: safetensors, HF model config, PEFT adapter config, file helpers; their tests and fuzzer.
target_sources(fb_core PRIVATE
  engine/fsutil.c engine/safetensors.c engine/model_config.c engine/adapter_config.c)

fb_add_c_test(fsutil tests/c/test_fsutil.c LIBS fb_core)
fb_add_c_test(safetensors tests/c/test_safetensors.c LIBS fb_core)
fb_add_c_test(model_config tests/c/test_model_config.c LIBS fb_core)
fb_add_c_test(fixture_files tests/c/test_fixture_files.c LIBS fb_core)
fb_add_fuzzer(safetensors tests/fuzz/fuzz_safetensors.c LIBS fb_core)
