#!/usr/bin/env bash
# prepare.sh: run HERE (the development machine), once per checkout, before run.sh is sent to
# the GPU machine, which cannot install packages. It fills .gpu-deps/ (in .gitignore), to be
# carried with the call:
#   fb-gpu.tar.xz  the binaries run.sh runs, built here with the same CUDA toolkit as the GPU
#                  machine's (13.0) for sm_90: fastbrain, its CUDA plugin, test_backends and
#                  gpu_bench, with the shared libraries they need that are neither glibc's nor
#                  CUDA's (Lua, libuv, cJSON, OpenBLAS...), compressed;
#   include/       cJSON's, OpenBLAS's, PCRE2's and utf8proc's headers, for the fallback: run.sh builds the training
#                  core, the plugin and the two test programs there (tests/gpu/CMakeLists.txt),
#                  with the libraries of fb-gpu.tar.xz, when the carried binaries do not run.
# About 9 MB in all: the call's working tree may be 64 MiB. No symbolic links: a carried link
# would point at nothing there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu-deps
build=${FB_GPU_BUILD:-build-gpu}
rm -rf "$out"
mkdir -p "$out/include/cjson"
cp /usr/include/cjson/cJSON.h /usr/include/pcre2.h /usr/include/utf8proc.h "$out/include/"
mv "$out/include/cJSON.h" "$out/include/cjson/"
blas_inc=$(dirname "$(readlink -f /usr/include/x86_64-linux-gnu/cblas.h)")
cp "$blas_inc"/*.h "$out/include/"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$build" -j "$(nproc)" --target fastbrain fastbrain_cuda test_backends gpu_bench
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/fb-gpu/lib"
programs=(fastbrain libfastbrain_cuda.so test_backends gpu_bench)
for p in "${programs[@]}"; do cp "$build/$p" "$stage/fb-gpu/"; done
# Each library under the name the loader asks for (cJSON's and OpenBLAS's are the fallback's too)
for lib in $(cd "$stage/fb-gpu" && ldd "${programs[@]}" | awk '/=> \// {print $3}' | sort -u); do
  case $(basename "$lib") in
  libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++* | libgcc_s*) ;;
  libcublas* | libcudart* | libcuda.so*) ;; # the GPU machine's own toolkit and driver
  *) cp "$(readlink -f "$lib")" "$stage/fb-gpu/lib/$(basename "$lib")" ;;
  esac
done
tar -C "$stage" -cJf "$out/fb-gpu.tar.xz" fb-gpu
ls -la "$out/fb-gpu.tar.xz"
du -sh "$out"
