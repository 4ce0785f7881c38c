# api.cmake: the HTTP API's tests (lua/fastbrain/api/*.lua behind scripts/serve.lua), run
# in-process over real HTTP with tests/api/worker.lua as the job worker (run by the binary).
foreach(name skills training)
  fb_test(lua_api_${name} $<TARGET_FILE:fastbrain> run tests/lua/test_api_${name}.lua
          $<TARGET_FILE:fastbrain>)
  set_tests_properties(lua_api_${name} PROPERTIES TIMEOUT 120)
endforeach()
# The adapters API trains a real adapter on a tiny random model first.
fb_test(lua_api_adapters $<TARGET_FILE:fastbrain> run tests/lua/test_api_adapters.lua
        $<TARGET_FILE:fastbrain> $<TARGET_FILE:fb_make_tiny_model>)
set_tests_properties(lua_api_adapters PROPERTIES TIMEOUT 120)
