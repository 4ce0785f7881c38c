# api.cmake: the HTTP API's tests (lua/fastbrain/api/*.lua behind scripts/serve.lua), over real
# HTTP. Jobs run the real `fastbrain worker` training the bundled model (share/models/tiny) on
# fast skills (tests/api/server.lua). skills and training run the server in-process; serve and
# crash run `fastbrain serve` as processes of their own (1,000 concurrent starts, the stale
# sweep, out of memory; SIGKILLs at random moments); disk fills a small tmpfs (root only).
foreach(name skills training serve disk data)
  fb_test(lua_api_${name} $<TARGET_FILE:fastbrain> run tests/lua/test_api_${name}.lua
          $<TARGET_FILE:fastbrain>)
  set_tests_properties(lua_api_${name} PROPERTIES TIMEOUT 300)
endforeach()
# The crash loop: 50 rounds in the suite; `make soak` runs more (FB_CRASH_ROUNDS).
fb_test(lua_api_crash $<TARGET_FILE:fastbrain> run tests/lua/test_api_crash.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_api_crash PROPERTIES TIMEOUT 600 ENVIRONMENT FB_CRASH_ROUNDS=50)
# The adapters API trains a real adapter on a tiny random model first.
fb_test(lua_api_adapters $<TARGET_FILE:fastbrain> run tests/lua/test_api_adapters.lua
        $<TARGET_FILE:fastbrain> $<TARGET_FILE:fb_make_tiny_model>)
set_tests_properties(lua_api_adapters PROPERTIES TIMEOUT 120)
# The exports API runs `fastbrain export` on an adapter of the bundled model: GGUF (checked in
# llama.cpp where node-llama-cpp is installed) and merged, downloaded over HTTP.
fb_test(lua_api_exports $<TARGET_FILE:fastbrain> run tests/lua/test_api_exports.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_api_exports PROPERTIES TIMEOUT 300)
# The models API reads the Hugging Face cache it lays out itself, never the user's, and
# calibrates estimates afresh.
fb_test(lua_api_models $<TARGET_FILE:fastbrain> run tests/lua/test_api_models.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_api_models PROPERTIES TIMEOUT 300 ENVIRONMENT
  "HF_HUB_CACHE=${CMAKE_BINARY_DIR}/test-output/api-models/hf;FASTBRAIN_CACHE=${CMAKE_BINARY_DIR}/test-output/api-models/cache")
# /v1/chat/completions through the official openai npm client (make deps) against `fastbrain
# serve`, an adapter trained for a bundled skill first (~10 s).
find_program(FB_NODE node)
if(FB_NODE)
  fb_test(api_openai ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/api/openai.test.mjs)
  set_tests_properties(api_openai PROPERTIES TIMEOUT 300 ENVIRONMENT "FASTBRAIN_BIN=$<TARGET_FILE:fastbrain>")
endif()
# The scenarios API (issue 17).
fb_test(lua_api_scenarios $<TARGET_FILE:fastbrain> run tests/lua/test_api_scenarios.lua)
set_tests_properties(lua_api_scenarios PROPERTIES TIMEOUT 120)
# Scenario runs (issue 17) on the bundled model: trains a small adapter first (~20 s).
fb_test(lua_api_scenario_runs $<TARGET_FILE:fastbrain> run tests/lua/test_api_scenario_runs.lua)
set_tests_properties(lua_api_scenario_runs PROPERTIES TIMEOUT 300 RESOURCE_LOCK busy_cores)
