# sources.cmake: the CUDA backend's files, for cmake/cuda.cmake and the standalone build of the
# GPU proof (tests/gpu/CMakeLists.txt). FB_ROOT is the source root.
set(FB_CUDA_SOURCES
  ${FB_ROOT}/cuda/context.cu ${FB_ROOT}/cuda/matmul.cu ${FB_ROOT}/cuda/rmsnorm.cu
  ${FB_ROOT}/cuda/elementwise.cu ${FB_ROOT}/cuda/optim.cu ${FB_ROOT}/cuda/crossentropy.cu
  ${FB_ROOT}/cuda/attention.cu ${FB_ROOT}/cuda/profile.cu ${FB_ROOT}/cuda/shadow.cu
  ${FB_ROOT}/cuda/graph.cu
  ${FB_ROOT}/cuda/plugin.c)
# sm_80 (A100), sm_89 (L40S, RTX 40xx), sm_90 (H100, H200); PTX of sm_90 for newer parts.
set(FB_CUDA_ARCHS "80-real;89-real;90" CACHE STRING "CUDA architectures of the backend")
