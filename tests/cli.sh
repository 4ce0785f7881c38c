#!/usr/bin/env bash
# The fastbrain command line as a user meets it: help, version, usage errors, script errors,
# callback errors, signals and log lines. Usage: tests/cli.sh path/to/fastbrain
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

run "$fb" version
check "version prints the version" eval 'rc_is 0 && out_has "^fastbrain [0-9]+\.[0-9]+\.[0-9]+$"'
run "$fb" --version
check "--version too" eval 'rc_is 0 && out_has "^fastbrain [0-9]"'
run "$fb" help
check "help lists the commands" eval 'rc_is 0 && out_has "^usage: fastbrain" && out_has "^  run " && out_has "^  version "'
run "$fb" --help
check "--help too" eval 'rc_is 0 && out_has "^usage: fastbrain"'
for cmd in run serve lora-check version help; do
  run "$fb" $cmd --help
  check "$cmd --help" eval "rc_is 0 && out_has '^usage: fastbrain $cmd'"
done
run "$fb" help run
check "help COMMAND" eval 'rc_is 0 && out_has "^usage: fastbrain run"'
run "$fb" frobnicate
check "unknown command: one line and usage, exit 2" eval 'rc_is 2 && err_has "^fastbrain: unknown command .frobnicate.$" && err_has "^usage: fastbrain"'
run "$fb" --frob
check "unknown option: exit 2" eval 'rc_is 2 && err_has "^fastbrain: unknown option .--frob.$"'
run "$fb" run --frob x.lua
check "unknown run option: exit 2" eval 'rc_is 2 && err_has "unknown option .--frob." && err_has "^usage: fastbrain run"'
run "$fb"
check "no command: exit 2" eval 'rc_is 2 && err_has "no command given"'
run "$fb" run
check "run without a script: exit 2" eval 'rc_is 2 && err_has "no script given"'
run "$fb" --log-level loud version
check "bad log level: exit 2" eval 'rc_is 2 && err_has "invalid log level .loud."'
run "$fb" version extra
check "version takes no arguments" eval 'rc_is 2 && err_has "unexpected argument .extra."'

cat >"$tmp/args.lua" <<'LUA'
print(select("#", ...), ...)
print(arg[0], arg[1], arg[2])
LUA
run "$fb" run "$tmp/args.lua" one "two words"
check "script gets ... and arg" eval 'rc_is 0 && out_has "^2	one	two words$" && out_has "args.lua	one	two words$"'

cat >"$tmp/fail.lua" <<'LUA'
local function inner() error("main chunk failure") end
inner()
LUA
run "$fb" run "$tmp/fail.lua"
check "main chunk error: file:line and traceback, exit 1" eval 'rc_is 1 && err_has "fail.lua:1: main chunk failure" && err_has "stack traceback:" && err_has "in (local|upvalue|function) .inner."'

run "$fb" run "$tmp/missing.lua"
check "missing script: exit 1" eval 'rc_is 1 && err_has "cannot open .*missing.lua"'

printf 'local x = = 1\n' >"$tmp/syntax.lua"
run "$fb" run "$tmp/syntax.lua"
check "syntax error: exit 1 with file:line" eval 'rc_is 1 && err_has "syntax.lua:1:"'

cat >"$tmp/cb.lua" <<'LUA'
local fb = require "fastbrain"
fb.timer.after(1, function() error("callback failure") end)
fb.timer.after(30, function() print("still running") end)
LUA
run "$fb" run "$tmp/cb.lua"
check "callback error: logged with traceback, loop goes on, exit 0" eval 'rc_is 0 && out_has "^still running$" && err_has "ERROR timer callback: .*cb.lua:2: callback failure" && err_has "stack traceback:"'

cat >"$tmp/log.lua" <<'LUA'
local log = require("fastbrain").log
log.debug("debug %d", 1)
log.info("info %s", "two")
log.warn("warn")
log.error("error %.1f", 4)
LUA
run env FASTBRAIN_LOG=debug "$fb" run "$tmp/log.lua"
check "FASTBRAIN_LOG=debug: ISO time and level" eval 'rc_is 0 && err_has "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z DEBUG debug 1$" && err_has "Z INFO info two$" && err_has "Z ERROR error 4.0$"'
run env FASTBRAIN_LOG=debug "$fb" --log-level warn run "$tmp/log.lua"
check "--log-level overrides FASTBRAIN_LOG" eval 'rc_is 0 && ! err_has "INFO" && err_has "Z WARN warn$"'
run "$fb" run --log-level error "$tmp/log.lua"
check "run --log-level" eval 'rc_is 0 && ! err_has "WARN" && err_has "Z ERROR error"'

# Signals: a script that would run forever, with a __gc and a <close> to prove clean-up.
cat >"$tmp/forever.lua" <<'LUA'
local fb = require "fastbrain"
local keep = setmetatable({}, {__gc = function() print("gc ran") end})
fb.spawn(function()
  local guard <close> = setmetatable({}, {__close = function() print("close ran") end})
  while true do fb.sleep(1000) end
end)
fb.timer.every(1000, function() end)
print("ready")
io.stdout:flush()
LUA
signal_exit() {  # signal_exit SIG EXPECTED
  "$fb" run "$tmp/forever.lua" >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  for _ in $(seq 100); do grep -q ready "$tmp/out" 2>/dev/null && break; sleep 0.05; done
  kill -"$1" $pid
  wait $pid
  echo $? >"$tmp/rc"
}
signal_exit INT
check "SIGINT: clean stop, __close and __gc run, exit 130" eval 'rc_is 130 && out_has "^close ran$" && out_has "^gc ran$"'
signal_exit TERM
check "SIGTERM: clean stop, exit 143" eval 'rc_is 143 && out_has "^gc ran$"'

cat >"$tmp/handler.lua" <<'LUA'
local fb = require "fastbrain"
local t = fb.timer.every(1000, function() end)
fb.on_signal("term", function(name)
  print("got " .. name)
  t:stop()  -- nothing keeps the loop alive now: it ends by itself
end)
print("ready")
io.stdout:flush()
LUA
"$fb" run "$tmp/handler.lua" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid; wait $pid; echo $? >"$tmp/rc"
check "on_signal replaces the default" eval 'rc_is 0 && out_has "^got term$"'

cat >"$tmp/exit.lua" <<'LUA'
local fb = require "fastbrain"
fb.timer.every(1000, function() end)
fb.timer.after(5, function() fb.exit(7) end)
LUA
run "$fb" run "$tmp/exit.lua"
check "fastbrain.exit(code) ends the loop with that code" eval 'rc_is 7'

# serve: the bundled dashboard server answers /api/health and stops cleanly on SIGINT.
run "$fb" serve --help
check "serve --help" eval 'rc_is 0 && out_has "^usage: fastbrain serve"'
run "$fb" serve --frob
check "serve: unknown option, exit 2" eval 'rc_is 2 && err_has "unknown argument .--frob."'
GROQ_API_KEY=${GROQ_API_KEY:-gsk_cli_test_key} ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY:-sk-ant-cli-test} \
  "$fb" serve --port 0 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "serving on" "$tmp/out" 2>/dev/null && break; sleep 0.05; done
port=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/out" | grep -o '[0-9]*$')
health=$(curl -s "http://127.0.0.1:$port/api/health")
providers=$(curl -s "http://127.0.0.1:$port/api/providers")
kill -INT $pid; wait $pid; echo $? >"$tmp/rc"
check "serve answers /api/health and stops on SIGINT" eval '[ "$health" = "{\"models\":[],\"status\":\"ok\",\"version\":\"$("$fb" version | cut -d" " -f2)\"}" ] && rc_is 0'

check "GET /api/providers lists the default chain without keys" eval 'grep -q "\"name\":\"groq\"" <<<"$providers" && grep -q "\"name\":\"anthropic\"" <<<"$providers" && grep -q "\"state\":\"ok\"" <<<"$providers" && ! grep -q "canary\|cli_test\|cli-test" <<<"$providers"'

finish
