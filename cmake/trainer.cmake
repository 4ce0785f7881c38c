# trainer.cmake: the trainer (issue 6): the training spec, the training loop with checkpoints
# and resume, `fastbrain train` / `fastbrain worker`, the Lua binding `fastbrain.train`, tests.
target_sources(fb_core PRIVATE engine/train_spec.c engine/train.c engine/train_checkpoint.c
                               engine/train_eval.c engine/train_output.c engine/output.c
                               engine/checkpoint_adapter.c)

fb_add_c_test(train_spec tests/c/test_train_spec.c LIBS fb_core)
fb_add_c_test(train tests/c/test_train.c LIBS fb_core)

# The Lua binding (C half of fastbrain.train) and the train/worker commands.
target_sources(fb_host PRIVATE engine/l_train.c)
target_sources(fastbrain PRIVATE engine/cmd_train.c)

# A tiny random model directory for the Lua and command-line tests.
add_executable(fb_make_tiny_model tests/train/make_tiny_model.c)
target_link_libraries(fb_make_tiny_model PRIVATE fb_core)
fb_test(lua_train $<TARGET_FILE:fastbrain> run tests/lua/test_train.lua $<TARGET_FILE:fb_make_tiny_model>)
fb_test(lua_train_select $<TARGET_FILE:fastbrain> run tests/lua/test_train_select.lua
        $<TARGET_FILE:fb_make_tiny_model>)
fb_test(train_cli ${PROJECT_SOURCE_DIR}/tests/train/train_cli.sh $<TARGET_FILE:fastbrain>
        $<TARGET_FILE:fb_make_tiny_model>)
# The estimate against the run it foretells; its calibration cache is its own.
fb_test(lua_estimate $<TARGET_FILE:fastbrain> run tests/lua/test_estimate.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_estimate PROPERTIES TIMEOUT 600)
