# gguf.cmake: GGUF export (issue 16): the writer (gguf.c) and fastbrain's models and adapters as
# llama.cpp names them (gguf_export.c), and the writer's unit test.
target_sources(fb_core PRIVATE engine/gguf.c engine/gguf_export.c)
fb_add_c_test(gguf tests/c/test_gguf.c LIBS fb_core)
