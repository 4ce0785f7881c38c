# cuda.cmake: the CUDA backend (cuda/) as the library fb_cuda when a CUDA toolkit is found
# (FB_CUDA, default ON then; OFF under the sanitizers and fuzzers), and the device selection
# (engine/device.c, library fb_device) either way, with their tests. Without a toolkit the CPU
# engine builds alone. CI compiles and links everything here; nothing here needs a GPU to pass.
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

if(FB_CUDA)
  set(FB_ROOT ${PROJECT_SOURCE_DIR})
  include(${PROJECT_SOURCE_DIR}/cuda/sources.cmake)
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

  add_library(fb_cuda STATIC ${FB_CUDA_SOURCES})
  set_target_properties(fb_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_compile_options(fb_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  target_include_directories(fb_cuda PUBLIC ${PROJECT_SOURCE_DIR}/cuda)
  target_link_libraries(fb_cuda PUBLIC fb_core CUDA::cudart_static CUDA::cublas)
  add_library(fb_device STATIC engine/device.c)
  target_link_libraries(fb_device PUBLIC fb_core PRIVATE fb_cuda)
  target_compile_definitions(fb_device PRIVATE FB_HAVE_CUDA)

  # The GPU proof's binary: built and linked here; its CPU half runs as a test (selfcheck.sh
  # also checks the proof script's syntax). The GPU half runs on a GPU: tests/gpu/run.sh.
  add_executable(fb_gpu_check tests/gpu/gpu_check.c)
  target_link_libraries(fb_gpu_check PRIVATE fb_cuda)
  fb_test(gpu_selfcheck ${PROJECT_SOURCE_DIR}/tests/gpu/selfcheck.sh $<TARGET_FILE:fb_gpu_check>)
  message(STATUS "CUDA backend: ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
else()
  add_library(fb_device STATIC engine/device.c)
  target_link_libraries(fb_device PUBLIC fb_core)
  message(STATUS "CUDA backend: OFF (no CUDA toolkit found, or a sanitizer/fuzz build)")
endif()

fb_add_c_test(device tests/c/test_device.c LIBS fb_device)
set_tests_properties(c_device PROPERTIES ENVIRONMENT CUDA_VISIBLE_DEVICES=-1)
