#!/usr/bin/env bash
# scripts/gen-data.lua end to end: a stand-in Groq in another process, a bundled-style skill in
# a temp data dir, the kept examples appended. Usage: tests/gendata_cli.sh path/to/fastbrain
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'kill $standin 2>/dev/null; rm -rf "$tmp"' EXIT
cat >"$tmp/standin.lua" <<'LUA'
local standin = require "tests.lua.standin"
local json = require("fastbrain").json
local srv = standin.start()
local line = function(u, a) return json.encode({messages = {{role = "user", content = u}, {role = "assistant", content = a}}}) end
srv:queue("openai", standin.openai_ok(line("Can you come out on Sunday for a burst pipe?", "Yes, we run a 24/7 emergency line ...")
  .. "\n" .. line("Do you charge for estimates?", "Estimates are free within our service area ...")))
print(srv.port)
io.stdout:flush()
LUA
"$fb" run "$tmp/standin.lua" >"$tmp/port" 2>"$tmp/standin.err" &
standin=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
mkdir -p "$tmp/data/skills/plumber"
echo '{"name":"Plumber","description":"front desk of a plumbing company"}' >"$tmp/data/skills/plumber/skill.json"
echo '{"messages":[{"role":"user","content":"What are your hours?"},{"role":"assistant","content":"8 to 6."}]}' >"$tmp/data/skills/plumber/data.jsonl"
GROQ_BASE_URL="http://127.0.0.1:$(cat "$tmp/port")/openai/v1" GROQ_API_KEY="$GROQ_API_KEY" \
  "$fb" run scripts/gen-data.lua --skill plumber --count 2 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/err"
rc=$?
source "$(dirname "$0")/lib.sh"
check "gen-data exits 0 and reports two kept from groq" eval '[ $rc -eq 0 ] && grep -q "\"kept\":2" "$tmp/out" && grep -q "\"by_provider\":{\"groq\":2}" "$tmp/out"'
check "the data file has the two new lines" eval '[ "$(wc -l <"$tmp/data/skills/plumber/data.jsonl")" -eq 3 ] && grep -q "burst pipe" "$tmp/data/skills/plumber/data.jsonl"'
check "usage persisted for the budget" eval 'grep -q "\"groq\"" "$tmp/data/providers/usage.json"'
"$fb" run scripts/gen-data.lua --skill nosuch --count 1 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "an unknown skill is refused by name" eval '[ $rc -eq 1 ] && grep -q "no skill .nosuch." "$tmp/err"'
finish
