#!/usr/bin/env bash
# `fastbrain run scripts/serve.lua` as a user meets it: argument errors, the refusal to serve a
# public address without a token, a real request over bash's /dev/tcp, the token (argv, file,
# environment; bearer, the dashboard's link and cookie), and a graceful exit on SIGTERM. Usage: tests/http/serve_cli.sh path/to/fastbrain
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"
starts=0
serve() { run "$fb" run scripts/serve.lua --data-dir "$tmp/data" "$@"; }
clean_err() { ! grep -qE "Sanitizer|runtime error|Segmentation" "$tmp/err"; }

serve --host 0.0.0.0 --port 0
check "a public host without a token is refused" eval 'rc_is 2 && err_has "without a token"'
serve --port 70000
check "a bad port is refused" eval 'rc_is 2 && err_has "port must be an integer"'
serve --bogus
check "an unknown argument is refused" eval 'rc_is 2 && err_has "unknown argument .--bogus."'
HF_HUB_CACHE=$tmp/hf serve --port 0 --model acme/absent
check "a default model that is not there is refused, saying how to get it" eval \
  'rc_is 2 && err_has "--model: model \"acme/absent\" is not in the Hugging Face cache .*fastbrain pull acme/absent"'
serve --port 0 --model ./no/such/dir
check "nor a directory" eval 'rc_is 2 && err_has "no such directory"'
serve --help
check "--help prints usage" eval 'rc_is 0 && out_has "^usage: fastbrain serve"'

start() {  # start ARGS...: background server; sets $pid and $port
  starts=$((starts + 1))  # each server its own data directory: the last may still hold its lock
  "$fb" run scripts/serve.lua --port 0 --data-dir "$tmp/data$starts" "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  pids+=("$pid")
  port=
  for _ in $(seq 100); do
    port=$(sed -nE 's|.*serving on http://[^ ]*:([0-9]+) .*|\1|p' "$tmp/out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  return 1
}
get() {  # get PATH [HEADER]: raw HTTP/1.1 over /dev/tcp; prints the response
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n' "$1" "${2:+$2$'\r\n'}" >&3
  timeout 5 cat <&3
  exec 3<&-
}
stopped_in_time() {  # SIGTERM, then exit 0 within 3 s
  kill -TERM "$pid"
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return $?; }
    sleep 0.05
  done
  return 1
}

start
check "serve listens on a free port and says where" test -n "$port"
get /api/health >"$tmp/resp"
check "GET /api/health" grep -q '{"models":\[\],"status":"ok","version":"[0-9.]*"}' "$tmp/resp"
check "SIGTERM stops it cleanly" stopped_in_time
check "no sanitizer report" clean_err
check "the request was logged" err_has "GET /api/health 200 [0-9.]+ ms"

second_signal_stops_at_once() {  # a half-sent request holds the grace period
  exec 4<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n' >&4
  sleep 0.1
  kill -INT "$pid"; sleep 0.1; kill -INT "$pid"
  local rc=1
  for _ in $(seq 20); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; rc=$?; break; }
    sleep 0.05
  done
  exec 4<&-
  [ "$rc" = 1 ]
}
start
check "a second SIGINT stops it at once with status 1" second_signal_stops_at_once
check "no sanitizer report after the cut-short shutdown" clean_err

# The default address, through `fastbrain serve` itself; skipped when something else holds it.
default_port_serves() {
  "$fb" serve --data-dir "$tmp/data-default" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  pids+=("$pid")
  port=
  for _ in $(seq 100); do
    grep -q "serving on http://127.0.0.1:8215 " "$tmp/out" && { port=8215; break; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  [ -n "$port" ] && get /api/health | grep -q '"status":"ok"' && stopped_in_time
}
if (echo >/dev/tcp/127.0.0.1/8215) 2>/dev/null; then
  echo "skip the default port: 127.0.0.1:8215 is in use here"
else
  check "fastbrain serve listens on 127.0.0.1:8215 by default" default_port_serves
fi

# Issue 19 item 3: slow bodies and idle clients past the connection cap do not keep
# /api/health from answering (the server sheds the idle and the slowest for it).
health_answers_when_full() {
  local fds=() fd i rc
  for i in $(seq 12); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    fds+=("$fd")
    (( i % 2 )) && printf 'POST /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\nx' >&"$fd"
  done
  sleep 0.2
  get /api/health | grep -q "^HTTP/1.1 200"
  rc=$?
  for fd in "${fds[@]}"; do exec {fd}<&-; done
  return $rc
}
start --max-connections 8
check "/api/health answers with 12 slow or idle connections held against a cap of 8" \
  health_answers_when_full
check "SIGTERM stops the full one" stopped_in_time

start --host 0.0.0.0 --token s3cret
check "--token works but warns that ps shows it" err_has "WARN --token is visible to every user"
get /api/health >"$tmp/resp"
check "with a token, a request without it is 401" grep -q "^HTTP/1.1 401" "$tmp/resp"
get /api/health "Authorization: Bearer s3cret" >"$tmp/resp"
check "with the token it is 200" grep -q "^HTTP/1.1 200" "$tmp/resp"
check "SIGTERM stops the public one too" stopped_in_time
check "no sanitizer report there either" clean_err

# The token off the command line: from a file only its owner reads, or from FASTBRAIN_TOKEN;
# the dashboard trades the printed link for a cookie.
printf 'file-t0ken\n' >"$tmp/token"
chmod 644 "$tmp/token"
serve --port 0 --token-file "$tmp/token"
check "a token file others can read is refused, saying why" eval \
  'rc_is 2 && err_has "mode 0644 lets other users read it; chmod 600"'
serve --port 0 --token-file "$tmp/none"
check "a missing token file is refused" eval 'rc_is 2 && err_has "--token-file .*none"'
serve --port 0 --token bad\ token
check "a token with a space is refused" eval 'rc_is 2 && err_has "the token may hold only"'
chmod 600 "$tmp/token"
start --token-file "$tmp/token"
check "a token file of mode 0600 serves, with no warning" eval '! err_has "WARN --token"'
check "serve prints the dashboard's one link" out_has "^dashboard: http://127.0.0.1:$port/\?token=file-t0ken$"
get /api/health >"$tmp/resp"
check "no token: 401" grep -q "^HTTP/1.1 401" "$tmp/resp"
get "/?token=file-t0ken" >"$tmp/resp"
check "the link answers 302 to / (the token out of the address bar)" eval \
  'grep -q "^HTTP/1.1 302" "$tmp/resp" && tr -d "\r" <"$tmp/resp" | grep -qx "Location: /"'
check "the link sets an HttpOnly, SameSite=Strict cookie" grep -q \
  "^Set-Cookie: fastbrain-$port=file-t0ken; Path=/; HttpOnly; SameSite=Strict" "$tmp/resp"
get "/?token=wrong" >"$tmp/resp"
check "a link with another token: 401, no cookie" eval \
  'grep -q "^HTTP/1.1 401" "$tmp/resp" && ! grep -q "^Set-Cookie" "$tmp/resp"'
get /api/health "Cookie: theme=dark; fastbrain-$port=file-t0ken" >"$tmp/resp"
check "the cookie: 200" grep -q "^HTTP/1.1 200" "$tmp/resp"
get /api/health "Cookie: fastbrain-$port=file-t0keN" >"$tmp/resp"
check "a wrong cookie: 401" eval 'grep -q "^HTTP/1.1 401" "$tmp/resp" && grep -q "bad token" "$tmp/resp"'
get /api/health "Cookie: fastbrain-1=file-t0ken" >"$tmp/resp"
check "another server's cookie: 401" grep -q "^HTTP/1.1 401" "$tmp/resp"
get /api/pulls/none/events "Cookie: fastbrain-$port=file-t0ken" >"$tmp/resp"
check "the cookie passes for event streams too (404 here, not 401)" grep -q "^HTTP/1.1 404" "$tmp/resp"
check "SIGTERM stops it" stopped_in_time
FASTBRAIN_TOKEN=env-t0ken start
get /api/health "Authorization: Bearer env-t0ken" >"$tmp/resp"
check "FASTBRAIN_TOKEN sets the token, with no warning" eval \
  'grep -q "^HTTP/1.1 200" "$tmp/resp" && ! err_has "WARN --token"'
check "SIGTERM stops that one too" stopped_in_time
check "no sanitizer report with tokens" clean_err

finish
