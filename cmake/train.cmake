# train.cmake: the CPU training core (backend ops, model, LoRA, optimizer, generation) added to
# fb_core, its tests, and the bench_train benchmark (built on demand, not part of ctest).
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)

target_sources(fb_core PRIVATE engine/gemm.c engine/cpu_backend.c engine/device.c engine/model.c engine/model_io.c
  engine/layers.c engine/lora.c engine/optim.c engine/generate.c engine/cmd_lora_check.c)
# oneDNN (Debian libdnnl2) is opened at run time by gemm.c when present, and the CUDA plugin by
# device.c when a run asks for a GPU: no link dependency on either.
target_link_libraries(fb_core PUBLIC PkgConfig::OPENBLAS ${CMAKE_DL_LIBS})

fb_add_c_test(ops tests/c/test_ops.c LIBS fb_core)
fb_add_c_test(lora tests/c/test_lora.c LIBS fb_core)
fb_add_c_test(generate tests/c/test_generate.c LIBS fb_core)

# lora-check as its own executable, for the parity tests (the same function is a fastbrain
# subcommand once main.c lists it).
add_executable(fb_lora_check tests/c/lora_check_main.c)
target_link_libraries(fb_lora_check PRIVATE fb_core)
# The PyTorch fixtures come from tests/parity/make_fixtures.py (the formats area).
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/parity/fixtures)
  fb_add_c_test(parity tests/c/test_parity.c LIBS fb_core)
  # the default run takes whichever verified path is faster here; check both paths explicitly
  # (FB_GEMM=dnnl falls back to OpenBLAS, with a warning, where libdnnl is not installed)
  foreach(path openblas dnnl)
    add_test(NAME c_parity_${path} COMMAND test_parity WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(c_parity_${path} PROPERTIES ENVIRONMENT FB_GEMM=${path})
  endforeach()
endif()
add_test(NAME lora_check_help COMMAND fb_lora_check --help)

# The training benchmark: built only on request (`--target bench_train`), never run by ctest.
add_executable(bench_train EXCLUDE_FROM_ALL tests/bench/bench_train.c)
target_link_libraries(bench_train PRIVATE fb_core)
# Attention forward + backward alone, full and windowed (`--target bench_attention`).
add_executable(bench_attention EXCLUDE_FROM_ALL tests/bench/bench_attention.c)
target_link_libraries(bench_attention PRIVATE fb_core)
