#!/usr/bin/env bash
# fastbrain pull as a user meets it, against the Hub stand-in (tests/hub/standin_server.lua) in
# processes of its own through HF_ENDPOINT, with the cache under HF_HOME: usage errors exit 2;
# SIGINT (and SIGTERM) in the middle of a shard leave a resumable .incomplete and nothing half
# in snapshots/; the next pull resumes it with Range; --json lines; plain lines; a progress bar
# on a terminal; a second pull fetches nothing; gated, unsupported and offline refusals exit 1.
# Usage: pull_cli.sh path/to/fastbrain
set -uo pipefail
fb=$(realpath "$1")
cd "$(dirname "$0")/../.." || exit 1
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
source tests/lib.sh

# standin NAME [slow]: start a stand-in; its endpoint in $tmp/NAME.ep.
standin() {
  "$fb" run tests/hub/standin_server.lua "$tmp/$1.ep" "${2:-}" >"$tmp/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$tmp/$1.ep" ] && return 0; sleep 0.05; done
  echo "FAIL the stand-in $1 did not start"; cat "$tmp/$1.log"; exit 1
}
# signal_pull SIG: pull org/llama --json from the slow stand-in, send SIG once shard 2 is moving.
signal_pull() {
  : >"$tmp/out"  # not the last run's lines: the child truncates it only once it has started
  HF_ENDPOINT=$(cat "$tmp/slow.ep") "$fb" pull org/llama --json >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  for _ in $(seq 200); do
    grep -q '"event":"progress".*"file":"model-00002-of-00002.safetensors"' "$tmp/out" && break
    sleep 0.05
  done
  kill -"$1" $pid
  wait $pid
  echo $? >"$tmp/rc"
}
# Every stdout line is a JSON object with an event (checked by the engine's own JSON parser).
json_lines_ok() {
  cat >"$tmp/check.lua" <<'EOF'
local json = require "fastbrain.json"
local n = 0
for line in io.lines(arg[1]) do
  local ok, v = pcall(json.decode, line)
  if not ok or type(v) ~= "table" or type(v.event) ~= "string" then print("bad line: " .. line); os.exit(1) end
  n = n + 1
end
os.exit(n > 0 and 0 or 1)
EOF
  "$fb" run "$tmp/check.lua" "$tmp/out" >/dev/null
}

export HF_HOME="$tmp/hf" HF_TOKEN= HF_HUB_OFFLINE=
repo="$tmp/hf/hub/models--org--llama"
commit=1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a
shard2=model-00002-of-00002.safetensors
standin slow slow
standin fast

run "$fb" pull --help
check "--help: usage, exit 0" eval 'rc_is 0 && out_has "usage: fastbrain pull ORG/NAME\[@REVISION\]"'
run "$fb" pull
check "no model: exit 2" eval 'rc_is 2 && err_has "which model"'
run "$fb" pull llama
check "a bad name: exit 2" eval 'rc_is 2 && err_has "expected ORG/NAME\[@REVISION\]"'
run "$fb" pull org/llama --nope
check "an unknown option: exit 2" eval 'rc_is 2 && err_has "unknown option --nope"'
run "$fb" help pull
check "help pull" eval 'rc_is 0 && out_has "pull ORG/NAME"'

signal_pull INT
check "SIGINT mid-shard: exit 130, says how to resume" eval 'rc_is 130 && err_has "run the same command to resume"'
check "SIGINT: --json lines, the last an error event (cancelled)" eval 'json_lines_ok && tail -1 "$tmp/out" | grep -q "\"code\":\"cancelled\""'
check "SIGINT: a part-way .incomplete, nothing half in snapshots/, no ref" eval \
  'ls "$repo/blobs/"*.incomplete >/dev/null 2>&1 && [ ! -e "$repo/snapshots/$commit/$shard2" ] && [ ! -e "$repo/refs/main" ]'
part=$(stat -c %s "$repo"/blobs/*.incomplete 2>/dev/null | head -1)

signal_pull TERM
check "SIGTERM: exit 143, the .incomplete grew" eval \
  'rc_is 143 && [ "$(stat -c %s "$repo"/blobs/*.incomplete | head -1)" -gt "${part:-0}" ]'
part=$(stat -c %s "$repo"/blobs/*.incomplete 2>/dev/null | head -1)

HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/llama --json
check "the next pull resumes the .incomplete from its size and finishes" eval \
  'rc_is 0 && json_lines_ok && grep -q "\"event\":\"file_start\",\"file\":\"$shard2\",\"resume_from\":$part," "$tmp/out" &&
   tail -1 "$tmp/out" | grep -q "\"event\":\"done\".*\"snapshot\":\"$repo/snapshots/$commit\""'
check "--json: start first, with the files and total_bytes" eval \
  'head -1 "$tmp/out" | grep -q "\"event\":\"start\".*\"files\":\[" && head -1 "$tmp/out" | grep -q "\"total_bytes\":4719281"'
check "the layout: refs/main, relative links, blobs named by their sha256" eval \
  '[ "$(cat "$repo/refs/main")" = "$commit" ] && [ "$(readlink "$repo/snapshots/$commit/$shard2")" = "../../blobs/$(sha256sum <"$repo/snapshots/$commit/$shard2" | cut -c1-64)" ] &&
   [ -z "$(ls "$repo/blobs" | grep incomplete)" ] && [ "$(ls "$repo/snapshots/$commit" | wc -l)" = 8 ]'

HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/llama
check "a second pull: plain lines, nothing downloaded" eval \
  'rc_is 0 && out_has "^cached +$shard2 3.1 MB$" && out_has "^done: 0 B downloaded; snapshot $repo/snapshots/$commit$"'

HF_ENDPOINT=$(cat "$tmp/fast.ep") run script -qec "$fb pull org/bar" /dev/null
check "a progress bar with bytes/s and ETA on a terminal" eval 'rc_is 0 && grep -q "\[#\{30\}\] 100.0%.*/s  ETA " "$tmp/out"'

HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/gated
check "gated: exit 1, the model's page and HF_TOKEN" eval \
  'rc_is 1 && err_has "https://huggingface.co/org/gated" && err_has "HF_TOKEN"'
HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/gated --token hf_cli_token
check "gated with --token: exit 0" rc_is 0
HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/gpt2
check "an unsupported architecture: exit 1, named" eval 'rc_is 1 && err_has "field .architectures.: .GPT2LMHeadModel. is not one of"'
HF_ENDPOINT=$(cat "$tmp/fast.ep") run "$fb" pull org/nope@v1
check "an unknown repo: exit 1, named" eval 'rc_is 1 && err_has "repository org/nope not found"'

HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 run "$fb" pull org/llama
check "offline: a cached model succeeds without the network" eval 'rc_is 0 && out_has "^done: 0 B downloaded"'
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 run "$fb" pull org/gpt2
check "offline: an incomplete one is refused" eval 'rc_is 1 && err_has "HF_HUB_OFFLINE=1"'

finish
