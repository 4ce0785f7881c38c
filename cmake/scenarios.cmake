# scenarios.cmake: test scenarios (issue 17): a skill's scenarios.jsonl and its hard checks
# (lua/fastbrain/scenarios.lua), on POSIX regular expressions (engine/l_regex.c).
target_sources(fb_host PRIVATE engine/l_regex.c)
fb_add_lua_test(scenarios tests/lua/test_scenarios.lua)
# The bundled skills' sets: each check passes a good answer and fails a bad one.
fb_add_lua_test(bundled_scenarios tests/lua/test_bundled_scenarios.lua)
# The judge of rubrics, against the provider stand-ins (tests/lua/standin.lua).
fb_add_lua_test(judge tests/lua/test_judge.lua)
# Suggested scenarios from the providers (stand-ins), over real HTTP.
fb_add_lua_test(api_suggest tests/lua/test_api_suggest.lua)
