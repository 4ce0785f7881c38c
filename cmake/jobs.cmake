# jobs.cmake: the job registry (jobs.c, on libuv) in the host, and its tests, which run
# tests/jobs/worker.lua under the fastbrain binary as real worker processes.
target_sources(fb_host PRIVATE engine/jobs.c)

fb_add_c_test(jobs tests/c/test_jobs.c LIBS fb_host)
target_compile_definitions(test_jobs PRIVATE FB_BIN="$<TARGET_FILE:fastbrain>")
add_dependencies(test_jobs fastbrain)
