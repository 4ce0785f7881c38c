# Tokenizers, chat templates and datasets (issue 5).
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)

target_sources(fb_core PRIVATE engine/text.c engine/utf8.c engine/normalize.c engine/bpe.c engine/pretokenize.c
  engine/tokenizer.c engine/tokenizer_load.c engine/tokenizer_json.c
  engine/dataset.c)
target_link_libraries(fb_core PUBLIC PkgConfig::PCRE2 PkgConfig::UTF8PROC)
target_sources(fb_host PRIVATE engine/l_tokenizer.c engine/l_dataset.c)

fb_add_c_test(tokenizer tests/c/test_tokenizer.c LIBS fb_core)
fb_add_c_test(dataset tests/c/test_dataset.c LIBS fb_core)

# Encode speed on English prose (not in ctest): build and run `bench_tokenizer`.
add_executable(bench_tokenizer EXCLUDE_FROM_ALL tests/bench/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE fb_core)

fb_add_fuzzer(tokenizer tests/fuzz/fuzz_tokenizer.c LIBS fb_core)

fb_add_lua_test(templates tests/lua/test_templates.lua)
fb_add_lua_test(reply tests/lua/test_reply.lua)
fb_add_lua_test(tokenizer tests/lua/test_tokenizer.lua)
fb_add_lua_test(dataset tests/lua/test_dataset.lua)
