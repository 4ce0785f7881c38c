# gguf.cmake: GGUF export (issue 16): the writer (gguf.c) and fastbrain's models and adapters as
# llama.cpp names them (gguf_export.c); the writer's unit test, the check that the real
# llama.cpp (npm's node-llama-cpp, `make deps`) decodes the exports as `fastbrain generate` does,
# and the export for Ollama (a Modelfile beside those GGUFs).
target_sources(fb_core PRIVATE engine/gguf.c engine/gguf_export.c)
fb_add_c_test(gguf tests/c/test_gguf.c LIBS fb_core)
# --to ollama: the Modelfile's Go templates rendered as fastbrain's chat templates
fb_add_lua_test(ollama tests/lua/test_ollama.lua)
find_program(FB_NODE node)
if(FB_NODE)
  # ~40 s on a loaded 2-core machine, most of it training the adapter; a sanitizer build trains
  # ~5x slower. RESOURCE_LOCK: not beside the other long CPU-bound runs (web.cmake).
  if(FB_SANITIZE)
    set(fb_gguf_timeout 900)
  else()
    set(fb_gguf_timeout 300)
  endif()
  # Not under AddressSanitizer (~120 s there, of CI's 30 minutes): the writer runs there in
  # c_gguf, export_cli and export_ollama, which also has llama.cpp read an export.
  if(NOT FB_SANITIZE)
    fb_test(export_llama_cpp ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/export/llama_cpp.test.mjs)
    set_tests_properties(export_llama_cpp PROPERTIES TIMEOUT ${fb_gguf_timeout} RESOURCE_LOCK busy_cores
                         ENVIRONMENT "FASTBRAIN_BIN=$<TARGET_FILE:fastbrain>")
  endif()
  # ~10 s: a 40-step adapter on the bundled model, exported for Ollama and checked in llama.cpp
  fb_test(export_ollama ${PROJECT_SOURCE_DIR}/tests/export/ollama_cli.sh $<TARGET_FILE:fastbrain>)
  set_tests_properties(export_ollama PROPERTIES TIMEOUT ${fb_gguf_timeout} RESOURCE_LOCK busy_cores)
endif()
