# cuda.cmake: the CUDA backend (cuda/) as the plugin libfastbrain_cuda.so, which fastbrain opens
# with dlopen when a run asks for a GPU (engine/device.c): built when a CUDA toolkit is found
# (FB_CUDA, default ON then; OFF under the sanitizers and fuzzers) and installed beside the
# binary. fastbrain itself links no CUDA library. CI compiles and links it here; nothing here
# needs a GPU: the emulated plugin of cuda_emu.cmake runs the same sources in the tests.
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)  # the toolkit's usual home, off PATH
endif()
check_language(CUDA)
set(fb_cuda_default OFF)
if(CMAKE_CUDA_COMPILER AND NOT FB_SANITIZE AND NOT FB_FUZZ)
  set(fb_cuda_default ON)
endif()
option(FB_CUDA "Build the CUDA backend (needs the CUDA toolkit)" ${fb_cuda_default})
set(FB_ROOT ${PROJECT_SOURCE_DIR})
include(${PROJECT_SOURCE_DIR}/cuda/sources.cmake)

if(FB_CUDA)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES ${FB_CUDA_ARCHS})
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # The engine's warning flags are gcc's: hand them to nvcc's host compiler instead.
  get_property(fb_opts DIRECTORY PROPERTY COMPILE_OPTIONS)
  set(fb_wrapped)
  foreach(o IN LISTS fb_opts)
    list(APPEND fb_wrapped "$<$<NOT:$<COMPILE_LANGUAGE:CUDA>>:${o}>")
  endforeach()
  set_property(DIRECTORY PROPERTY COMPILE_OPTIONS ${fb_wrapped})

  # The plugin resolves fb_err_set and the log functions from the executable that opens it.
  add_library(fastbrain_cuda MODULE ${FB_CUDA_SOURCES})
  set_target_properties(fastbrain_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    C_VISIBILITY_PRESET hidden CUDA_VISIBILITY_PRESET hidden
    INSTALL_RPATH "$ORIGIN;${CUDAToolkit_LIBRARY_DIR}")
  target_compile_options(fastbrain_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  target_include_directories(fastbrain_cuda PRIVATE ${PROJECT_SOURCE_DIR}/cuda
    ${PROJECT_SOURCE_DIR}/engine)
  target_link_libraries(fastbrain_cuda PRIVATE CUDA::cudart_static CUDA::cublas CUDA::cublasLt)
  add_dependencies(fastbrain fastbrain_cuda)
  install(TARGETS fastbrain_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_BINDIR})
  message(STATUS "CUDA backend: ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "CUDA backend: OFF (no CUDA toolkit found, or a sanitizer/fuzz build)")
endif()

fb_add_c_test(device tests/c/test_device.c LIBS fb_core)
set_tests_properties(c_device PROPERTIES ENVIRONMENT CUDA_VISIBLE_DEVICES=-1)
