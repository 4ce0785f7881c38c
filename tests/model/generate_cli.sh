#!/usr/bin/env bash
# fastbrain generate on a tiny random model: an answer on stdout, the same twice (greedy and
# seeded sampling), an adapter changes it, bad options exit 2 with the usage, a missing model
# exits 1 naming it.
# Usage: generate_cli.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"

"$2" "$tmp/model" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
for i in 1 2 3 4 5 6; do echo "{\"messages\":[{\"role\":\"user\",\"content\":\"q$i\"},{\"role\":\"assistant\",\"content\":\"a$i\"}]}"; done >"$tmp/data.jsonl"
"$fb" train --model "$tmp/model" --data "$tmp/data.jsonl" --out "$tmp/adapter" --max-steps 2 --lr 0.05 \
  --eval-fraction 0 >/dev/null 2>&1 || { echo "FAIL train an adapter"; exit 1; }

run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10
cp "$tmp/out" "$tmp/greedy"
check "greedy answer, exit 0" rc_is 0
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10
check "greedy is repeatable" cmp -s "$tmp/out" "$tmp/greedy"
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10 --ids
check "--ids prints the new token ids, at most 10" eval \
  'rc_is 0 && grep -qE "^[0-9]+( [0-9]+){0,9}$" "$tmp/out" && [ "$(wc -l <"$tmp/out")" = 1 ]'
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10 --temperature 0.9 --top-k 40 --top-p 0.95 --seed 3
cp "$tmp/out" "$tmp/sampled"
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10 --temperature 0.9 --top-k 40 --top-p 0.95 --seed 3
check "seeded sampling is repeatable" cmp -s "$tmp/out" "$tmp/sampled"
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens 10 --adapter "$tmp/adapter" --system "Be brief." --template chatml
check "with an adapter and a system message, exit 0" rc_is 0
check "the adapter changes the answer" bash -c "! cmp -s '$tmp/out' '$tmp/greedy'"
run "$fb" generate --model "$tmp/model" --prompt "hello" --max-tokens ten
check "a bad number exits 2" rc_is 2
check "... naming the option" grep -q -- "--max-tokens needs an integer" "$tmp/err"
run "$fb" generate --prompt "hello"
check "a missing --model exits 2" rc_is 2
check "... with the usage" grep -q "usage: fastbrain generate" "$tmp/err"
run "$fb" generate --model "$tmp/nowhere" --prompt "hello"
check "a missing model exits 1" rc_is 1
check "... naming it" grep -q "nowhere" "$tmp/err"
run "$fb" generate --help
check "--help prints the options" grep -q -- "--adapter DIR" "$tmp/out"

finish
