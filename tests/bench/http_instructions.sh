#!/usr/bin/env bash
# http_instructions.sh: user-space instructions per request of the bench-http route, counted by
# valgrind's callgrind: a number that load from other work on the machine does not move, for
# telling whether a change made the server cheaper. Two runs (N1 and N2 requests from wrk, one
# connection set of 64) and the difference divided by N2 - N1, so start-up cancels out.
# Usage: tests/bench/http_instructions.sh [path/to/fastbrain]   (N1=2000 N2=12000)
set -euo pipefail
fb=$(realpath "${1:-build/fastbrain}")
n1=${N1:-2000} n2=${N2:-12000}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "http_instructions: valgrind not found (make deps-bench)"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/count.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("NREQ"))
function response() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA

count() {  # count N -> instructions of a whole server run that answered N requests
  (cd "$root" && exec valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1" "$fb" run \
    tests/http/bench_app.lua 0 >"$tmp/out.$1" 2>"$tmp/err.$1") &
  local pid=$! port=
  for _ in $(seq 200); do
    port=$(sed -n 's/^port //p' "$tmp/out.$1")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "fastbrain did not start:" >&2; cat "$tmp/err.$1" >&2; exit 1; }
  # wrk stops counting at N but runs out its duration: 20 s is ~5x what N2 takes here
  NREQ=$1 wrk -t1 -c64 -d20s -s "$tmp/count.lua" \
    "http://127.0.0.1:$port/api/training/status/electrician" >"$tmp/wrk.$1"
  kill "$pid"
  wait "$pid" || true
  local done_n
  done_n=$(awk '/requests in/ {print $1}' "$tmp/wrk.$1")
  [ "$done_n" = "$1" ] || { echo "wrk answered $done_n requests, not $1" >&2; exit 1; }
  awk '/^summary:/ {print $2}' "$tmp/cg.$1"
}
a=$(count "$n1")
b=$(count "$n2")
echo "instructions per request (user space, callgrind): $(( (b - a) / (n2 - n1) ))"
