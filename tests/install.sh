#!/usr/bin/env bash
# An install made by `cmake --install` finds its bundled modules under share/fastbrain, not in
# the source tree. Usage: tests/install.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cat >"$prefix/probe.lua" <<'LUA'
local fb = require "fastbrain"
print(fb.root)
print(package.searchpath("fastbrain", package.path))
print(require("socket")._VERSION)
LUA
out=$(cd / && "$prefix/bin/fastbrain" run "$prefix/probe.lua")
expect_root=$(realpath "$prefix/share/fastbrain")
tmp=$prefix
echo "$out" >"$tmp/out"
source "$(dirname "$0")/lib.sh"
check "root is the install's share/fastbrain" eval '[ "$(sed -n 1p <<<"$out")" = "$expect_root" ]'
check "fastbrain module loads from the install" eval '[ "$(sed -n 2p <<<"$out")" = "$expect_root/lua/fastbrain/init.lua" ]'
check "LuaSocket loads" eval 'grep -q "^LuaSocket" <<<"$out"'
# The binary links no CUDA library; a build with the CUDA toolkit installs the plugin beside it,
# where a run that asks for a GPU opens it.
check "fastbrain links no CUDA library" eval '! ldd "$prefix/bin/fastbrain" | grep -qiE "cublas|cudart|libcuda"'
if grep -q "^FB_CUDA:BOOL=ON" "$build/CMakeCache.txt"; then
  check "the CUDA plugin is installed beside the binary" eval \
    '[ -f "$prefix/bin/libfastbrain_cuda.so" ] && ldd "$prefix/bin/libfastbrain_cuda.so" | grep -q "libcublas.so"'
  check "... and the installed binary opens it (here: no driver to answer)" eval \
    'out=$(FB_CUDA_PLUGIN="$prefix/bin/libfastbrain_cuda.so" "$prefix/bin/fastbrain" generate --model "$(dirname "$0")/../share/models/tiny" --prompt hi --device cuda 2>&1); grep -q "no CUDA driver\|no CUDA device" <<<"$out"'
fi
finish
