# The HTTP server: llhttp from Debian's node-llhttp C sources (never vendored, never lenient),
# our server in fb_http (plain C on libuv, no Lua), its tests, fuzzer and benchmark.
set(FB_LLHTTP_DIR /usr/share/llhttp CACHE PATH "llhttp C sources (Debian node-llhttp)")
set(FB_LLHTTP_INCLUDE /usr/share/include/llhttp CACHE PATH "llhttp header")
if(NOT EXISTS ${FB_LLHTTP_DIR}/llhttp.c)
  message(FATAL_ERROR "llhttp sources not found in ${FB_LLHTTP_DIR}: apt-get install node-llhttp")
endif()
add_library(fb_llhttp STATIC ${FB_LLHTTP_DIR}/api.c ${FB_LLHTTP_DIR}/http.c
            ${FB_LLHTTP_DIR}/llhttp.c)
target_include_directories(fb_llhttp SYSTEM PUBLIC ${FB_LLHTTP_INCLUDE})
target_compile_options(fb_llhttp PRIVATE -w)

add_library(fb_http STATIC engine/http_server.c engine/http_conn.c engine/http_response.c engine/http_guard.c
            engine/http_static.c engine/http_sse.c engine/http_route.c)
target_link_libraries(fb_http PUBLIC fb_core PkgConfig::LIBUV PRIVATE fb_llhttp)

fb_add_c_test(http tests/c/test_http.c LIBS fb_http fb_llhttp pthread)
fb_add_fuzzer(http tests/fuzz/fuzz_http.c LIBS fb_http fb_llhttp)
target_compile_options(test_http PRIVATE -Wno-missing-field-initializers)  # table rows

# The Lua binding lives in the host.
target_sources(fb_host PRIVATE engine/l_http.c)
target_link_libraries(fb_host PUBLIC fb_http pthread)
fb_add_lua_test(router tests/lua/test_router.lua)
fb_add_lua_test(serve tests/lua/test_serve.lua)
add_test(NAME http_serve_cli COMMAND ${PROJECT_SOURCE_DIR}/tests/http/serve_cli.sh
         $<TARGET_FILE:fastbrain> WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# `cmake --build <dir> --target bench_http` (make bench-http): wrk, fastbrain vs nginx+lua.
add_custom_target(bench_http
  COMMAND ${PROJECT_SOURCE_DIR}/tests/bench/bench_http.sh $<TARGET_FILE:fastbrain>
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} DEPENDS fastbrain USES_TERMINAL)
