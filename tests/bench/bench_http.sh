#!/usr/bin/env bash
# bench_http.sh: wrk against GET /api/training/status/:skill served by a fastbrain Lua route and,
# in the same run, by nginx (one worker) + libnginx-mod-http-lua serving the same JSON from
# content_by_lua_block. Both handlers do the same work per request: take the skill from the
# path, encode the same job-status table (fb.json / lua-cjson). Rounds alternate between the
# two servers; each pair of rounds gives a ratio, and the median ratio counts, so load from
# elsewhere skews both alike. Each round also prints the server's CPU time per request (user
# + system, from /proc), which load on other cores barely moves.
# Prints req/s, the ratios and p99 for both, then the floors: fastbrain >= 1.0x nginx+lua
# req/s (median of the pairs), p99 <= 5 ms at 64 connections (median of fastbrain's rounds).
# A benchmark, not a test.
# Usage: tests/bench/bench_http.sh [path/to/fastbrain]
#   BENCH_SECONDS (per round, 3), BENCH_ROUNDS (pairs, 9), BENCH_CONNS (64), BENCH_THREADS (1)
set -euo pipefail
fb=$(realpath "${1:-build/fastbrain}")
secs=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-9}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in wrk nginx; do
  command -v $tool >/dev/null || { echo "bench_http: $tool not found (apt-get install wrk nginx libnginx-mod-http-lua)"; exit 2; }
done
lua_mod=/usr/lib/nginx/modules/ngx_http_lua_module.so
[ -f $lua_mod ] || { echo "bench_http: $lua_mod not found (apt-get install libnginx-mod-http-lua)"; exit 2; }
cjson_dir=/usr/lib/x86_64-linux-gnu/lua/5.1
[ -f $cjson_dir/cjson.so ] || { echo "bench_http: lua-cjson for Lua 5.1 not found (apt-get install lua-cjson)"; exit 2; }

tmp=$(mktemp -d)
fb_pid= ng_pid=
cleanup() {
  [ -n "$fb_pid" ] && kill "$fb_pid" 2>/dev/null
  [ -n "$ng_pid" ] && kill "$ng_pid" 2>/dev/null
  wait 2>/dev/null
  [ -n "${BENCH_KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo $p; return; }
  done
  return 1
}

# fastbrain
(cd "$root" && exec "$fb" run tests/http/bench_app.lua 0 >"$tmp/fb.out" 2>"$tmp/fb.err") &
fb_pid=$!
for _ in $(seq 100); do
  fb_port=$(sed -n 's/^port //p' "$tmp/fb.out")
  [ -n "$fb_port" ] && break
  sleep 0.05
done
[ -n "${fb_port:-}" ] || { echo "fastbrain did not start:"; cat "$tmp/fb.err"; exit 1; }

# nginx + lua, one worker, same JSON
ng_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module $lua_mod;
worker_processes 1;
daemon off;
master_process off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  lua_package_cpath "$cjson_dir/?.so;;";
  init_by_lua_block { cjson = require "cjson" }
  server {
    listen 127.0.0.1:$ng_port;
    location ~ ^/api/training/status/([^/]+)$ {
      default_type application/json;
      content_by_lua_block {
        local body = cjson.encode({skill = ngx.var[1], status = "running", step = 120,
                                   total_steps = 300, epoch = 2, total_epochs = 3, loss = 1.2345,
                                   eta_s = 95})
        ngx.header.content_length = #body
        ngx.print(body)
      }
    }
  }
}
CONF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" 2>"$tmp/ng.err" &
ng_pid=$!
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$ng_port") 2>/dev/null && break
  sleep 0.05
done
(echo >"/dev/tcp/127.0.0.1/$ng_port") 2>/dev/null || { echo "nginx did not start:"; cat "$tmp/ng.err" "$tmp/nginx/logs/error.log"; exit 1; }

path=/api/training/status/electrician
fetch() {  # fetch PORT: the body, over bash's /dev/tcp
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
echo "fastbrain: $(fetch "$fb_port")"
echo "nginx+lua: $(fetch "$ng_port")"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system, in clock ticks

run_wrk() {  # run_wrk NAME PORT PID -> "req/s p99_ms cpu_us_per_request"
  local t0 t1
  t0=$(cpu_ticks "$3")
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$2$path" >"$tmp/$1.wrk"
  t1=$(cpu_ticks "$3")
  local rps p99 n
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/$1.wrk")
  n=$(awk '/requests in/ {print $1}' "$tmp/$1.wrk")
  p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}' "$tmp/$1.wrk")
  local errors
  errors=$(grep -E "Non-2xx|Socket errors" "$tmp/$1.wrk" || true)
  [ -n "$errors" ] && echo "  $1: $errors" >&2
  echo "$rps $p99 $(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')"
}

median() { printf '%s\n' $1 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

wrk -t1 -c8 -d1s "http://127.0.0.1:$fb_port$path" >/dev/null  # warm both up
wrk -t1 -c8 -d1s "http://127.0.0.1:$ng_port$path" >/dev/null
fb_all= ng_all= ratios= fb_p99s= ng_p99s= fb_cpus= ng_cpus=
printf "%-6s %12s %8s %8s   %12s %8s %8s   %6s\n" round "fastbrain/s" "p99 ms" "cpu us" \
  "nginx+lua/s" "p99 ms" "cpu us" ratio
for r in $(seq "$rounds"); do
  read -r fb_rps fb_p99 fb_cpu < <(run_wrk fastbrain "$fb_port" "$fb_pid")
  read -r ng_rps ng_p99 ng_cpu < <(run_wrk nginx "$ng_port" "$ng_pid")
  ratio=$(awk -v a="$fb_rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a / b}')
  printf "%-6s %12.0f %8.2f %8.2f   %12.0f %8.2f %8.2f   %5sx\n" "$r" "$fb_rps" "$fb_p99" "$fb_cpu" \
    "$ng_rps" "$ng_p99" "$ng_cpu" "$ratio"
  fb_all="$fb_all $fb_rps" ng_all="$ng_all $ng_rps" ratios="$ratios $ratio"
  fb_p99s="$fb_p99s $fb_p99" ng_p99s="$ng_p99s $ng_p99" fb_cpus="$fb_cpus $fb_cpu" ng_cpus="$ng_cpus $ng_cpu"
done
ratio=$(median "$ratios")
fb_p99=$(median "$fb_p99s")
printf "wrk -t%s -c%s -d%ss GET %s, %s alternating pairs; medians:\n" "$threads" "$conns" "$secs" "$path" "$rounds"
printf "%-12s %12s %10s %14s\n" server "req/s" "p99 ms" "cpu us/req"
printf "%-12s %12.0f %10.2f %14.2f\n" fastbrain "$(median "$fb_all")" "$fb_p99" "$(median "$fb_cpus")"
printf "%-12s %12.0f %10.2f %14.2f\n" nginx+lua "$(median "$ng_all")" "$(median "$ng_p99s")" "$(median "$ng_cpus")"
printf "ratio fastbrain/nginx+lua: median %sx of pairs:%s\n" "$ratio" "$ratios"
printf "CPU per request, nginx+lua / fastbrain: %.2fx\n" \
  "$(awk -v a="$(median "$ng_cpus")" -v b="$(median "$fb_cpus")" 'BEGIN {print a / b}')"
ok=1
awk -v r="$ratio" 'BEGIN {exit !(r >= 1.0)}' || { echo "FLOOR MISSED: req/s ratio $ratio < 1.0"; ok=0; }
awk -v p="$fb_p99" 'BEGIN {exit !(p <= 5.0)}' || { echo "FLOOR MISSED: p99 $fb_p99 ms > 5 ms"; ok=0; }
[ $ok = 1 ] && echo "floors met"
[ $ok = 1 ]
