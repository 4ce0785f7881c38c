# jobs.cmake: the job registry (jobs.c, on libuv) and its Lua binding in the host, and their
# tests, which run tests/jobs/worker.lua under the fastbrain binary as real worker processes.
target_sources(fb_host PRIVATE engine/jobs.c engine/jobs_record.c engine/jobs_events.c
                               engine/jobs_worker.c engine/jobs_slurm.c engine/jobs_recover.c engine/memcg.c
                               engine/l_jobs.c)

fb_add_c_test(jobs tests/c/test_jobs.c LIBS fb_host)
target_compile_definitions(test_jobs PRIVATE FB_BIN="$<TARGET_FILE:fastbrain>")
add_dependencies(test_jobs fastbrain)
# The crash-safety loop (registries SIGKILLed at random moments) runs 50 rounds in the suite;
# `make soak` runs more.
set_property(TEST c_jobs APPEND PROPERTY ENVIRONMENT FB_JOBS_ROUNDS=50)
# The Lua test gets the binary's path to build the worker command.
fb_test(lua_jobs $<TARGET_FILE:fastbrain> run tests/lua/test_jobs.lua $<TARGET_FILE:fastbrain>)
set_tests_properties(lua_jobs PROPERTIES TIMEOUT 120)
# The slurm executor on a real one-node cluster (slurm-wlm and munge from `make deps`) that the
# test starts in a temporary directory and stops; about 70 s, so `make test-slurm` runs it apart
# (label slurm), not `make test`.
fb_test(slurm_jobs tests/slurm/run.sh $<TARGET_FILE:fastbrain>)
set_tests_properties(slurm_jobs PROPERTIES TIMEOUT 300 LABELS slurm)
