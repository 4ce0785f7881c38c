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
passed=0 failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; echo "$out" | sed 's/^/  /'; fi; }
check "root is the install's share/fastbrain" '[ "$(sed -n 1p <<<"$out")" = "$expect_root" ]'
check "fastbrain module loads from the install" '[ "$(sed -n 2p <<<"$out")" = "$expect_root/lua/fastbrain/init.lua" ]'
check "LuaSocket loads" 'grep -q "^LuaSocket" <<<"$out"'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
