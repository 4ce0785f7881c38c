# hub.cmake: models from the Hugging Face Hub (lua/fastbrain/hub.lua, hf_cache.lua), the sha256
# binding downloads are verified with (engine/l_digest.c, on libcrypto, which LuaSec already
# loads), and their tests against a local stand-in of the Hub (tests/lua/hub_standin.lua).
pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
target_sources(fb_host PRIVATE engine/l_digest.c)
target_link_libraries(fb_host PUBLIC PkgConfig::LIBCRYPTO)

fb_add_lua_test(digest tests/lua/test_digest.lua)
fb_add_lua_test(hub tests/lua/test_hub.lua)
