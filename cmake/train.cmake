# train.cmake: the CPU training core (backend ops, model, LoRA, optimizer, generation) added to
# fb_core, its tests, and the bench_train benchmark (built on demand, not part of ctest).
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_package(OpenMP REQUIRED COMPONENTS C)
find_library(FB_DNNL_LIB dnnl)
find_path(FB_DNNL_INCLUDE oneapi/dnnl/dnnl.h)

target_sources(fb_core PRIVATE engine/gemm.c engine/cpu_backend.c engine/model.c engine/lora.c
  engine/optim.c engine/generate.c engine/cmd_lora_check.c)
target_link_libraries(fb_core PUBLIC PkgConfig::OPENBLAS OpenMP::OpenMP_C)
if(FB_DNNL_LIB AND FB_DNNL_INCLUDE)
  target_compile_definitions(fb_core PRIVATE FB_HAVE_DNNL=1)
  target_link_libraries(fb_core PUBLIC ${FB_DNNL_LIB})
else()
  message(STATUS "oneDNN (libdnnl-dev) not found: matrix products use OpenBLAS only")
endif()

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
endif()
add_test(NAME lora_check_help COMMAND fb_lora_check --help)
