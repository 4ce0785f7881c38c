# trainer.cmake: the trainer (issue 6): the training spec, the training loop with checkpoints
# and resume, `fastbrain train` / `fastbrain worker`, the Lua binding `fastbrain.train`, tests.
target_sources(fb_core PRIVATE engine/train_spec.c engine/train.c)

fb_add_c_test(train_spec tests/c/test_train_spec.c LIBS fb_core)
fb_add_c_test(train tests/c/test_train.c LIBS fb_core)
