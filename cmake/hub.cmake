# hub.cmake: models from the Hugging Face Hub (`fastbrain pull`: lua/fastbrain/hub.lua,
# hf_cache.lua, pull.lua), the sha256 binding downloads are verified with (engine/l_digest.c, on
# libcrypto, which LuaSec already loads), and their tests against a local stand-in of the Hub
# (tests/lua/hub_standin.lua; tests/hub/ runs it as a process for the CLI test).
pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
target_sources(fb_host PRIVATE engine/l_digest.c)
target_link_libraries(fb_host PUBLIC PkgConfig::LIBCRYPTO)

fb_add_lua_test(digest tests/lua/test_digest.lua)
fb_add_lua_test(hub tests/lua/test_hub.lua)
fb_test(pull_cli ${PROJECT_SOURCE_DIR}/tests/hub/pull_cli.sh $<TARGET_FILE:fastbrain>)
set_tests_properties(pull_cli PROPERTIES TIMEOUT 120)
# The server's pulls (lua/fastbrain/api/pulls.lua): `fastbrain serve` against the stand-in.
fb_test(lua_api_pulls $<TARGET_FILE:fastbrain> run tests/lua/test_api_pulls.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_api_pulls PROPERTIES TIMEOUT 300)
