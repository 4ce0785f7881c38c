# model.cmake: models for scripts (issue 6): fastbrain.model (l_model.c + lua/fastbrain/model.lua),
# `fastbrain generate`, their tests on the tiny random model of trainer.cmake.
target_sources(fb_host PRIVATE engine/l_model.c engine/l_generate.c)
target_sources(fastbrain PRIVATE engine/cmd_lua.c)

fb_test(lua_model $<TARGET_FILE:fastbrain> run tests/lua/test_model.lua $<TARGET_FILE:fb_make_tiny_model>)
# fastbrain.model_pool with real `fastbrain model-server` processes.
fb_test(lua_model_pool $<TARGET_FILE:fastbrain> run tests/lua/test_model_pool.lua $<TARGET_FILE:fb_make_tiny_model>)
set_tests_properties(lua_model_pool PROPERTIES TIMEOUT 120)
fb_test(generate_cli ${PROJECT_SOURCE_DIR}/tests/model/generate_cli.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
fb_test(train_script ${PROJECT_SOURCE_DIR}/tests/model/train_script.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
# A PEFT adapter our trainer wrote, checked against PyTorch (tests/parity/make_peft_fixture.sh).
fb_add_c_test(peft_parity tests/c/test_peft_parity.c LIBS fb_core)
# LoRA on the bundled model: held-out loss and voice, against the base (the short form of `make voice`).
fb_test(model_voice ${PROJECT_SOURCE_DIR}/tests/model/voice.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
# (a LoRA run of minutes: not beside the other long CPU-bound runs)
set_tests_properties(model_voice PROPERTIES TIMEOUT 900 RESOURCE_LOCK busy_cores)
# Models named ORG/NAME in a Hugging Face cache, offline (engine/hf_cache.c).
fb_test(hf_names ${PROJECT_SOURCE_DIR}/tests/model/hf_names.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
# fastbrain export --to merged (lua/fastbrain/export.lua, lm.merge in l_model.c).
fb_test(export_cli ${PROJECT_SOURCE_DIR}/tests/model/export_cli.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
