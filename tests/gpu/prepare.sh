#!/usr/bin/env bash
# prepare.sh: run HERE (the development machine), once per checkout, before run.sh is sent to
# the GPU machine, which cannot install packages: copies the two libraries the training core
# needs besides CUDA (cJSON, OpenBLAS), with their headers and their own dependencies, from
# this machine's Debian packages into .gpu-deps/ (in .gitignore), to be
# carried with the call. No symbolic links: a carried link would point at nothing there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu-deps
rm -rf "$out"
mkdir -p "$out/include/cjson" "$out/lib"
cp /usr/include/cjson/cJSON.h "$out/include/cjson/"
blas_inc=$(dirname "$(readlink -f /usr/include/x86_64-linux-gnu/cblas.h)")
cp "$blas_inc"/*.h "$out/include/"
copy_lib() { # the real file under its soname, the one name the linker and the loader need
  cp "$(readlink -f "$1")" "$out/lib/$(basename "$1")"
}
copy_lib /usr/lib/x86_64-linux-gnu/libcjson.so.1
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so)
soname=$(objdump -p "$blas" | awk '/SONAME/ {print $2}')
cp "$blas" "$out/lib/$soname"
# OpenBLAS's own libraries that a bare machine may lack (gfortran, quadmath)
for dep in $(ldd "$blas" | awk '/=> \// {print $3}' | grep -E 'gfortran|quadmath'); do
  copy_lib "$dep"
done
du -sh "$out"
