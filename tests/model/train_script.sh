#!/usr/bin/env bash
# scripts/train.lua on a tiny random model: it finds a skill by directory and by id under
# --data-dir, trains an adapter, prints progress and answers every sample prompt with the base
# model and the adapter; a skill that is nowhere exits 1 naming the places tried, a bad option 2.
# Usage: train_script.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"

"$2" "$tmp/model" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
skill="$tmp/home/skills/greeter"
mkdir -p "$skill"
cat >"$skill/skill.json" <<'JSON'
{"name": "Greeter", "template": "chatml", "system": "Greet people.", "sample_prompts": ["hi there", "good morning"]}
JSON
for i in 1 2 3 4 5 6 7 8; do echo "{\"messages\":[{\"role\":\"user\",\"content\":\"hello $i\"},{\"role\":\"assistant\",\"content\":\"welcome $i\"}]}"; done >"$skill/data.jsonl"
script="$root/scripts/train.lua"

run "$fb" --log-level warn run "$script" "$skill" --model "$tmp/model" --out "$tmp/a" --epochs 1 --max-tokens 8
check "a skill directory trains, exit 0" rc_is 0
check "... printing progress" grep -q "^step [0-9]*/[0-9]* epoch" "$tmp/out"
check "... and the summary" grep -q "^done: .* adapter in $tmp/a" "$tmp/out"
check "... writing a PEFT adapter" test -s "$tmp/a/adapter_model.safetensors" -a -s "$tmp/a/adapter_config.json"
check "... answering each sample prompt" test "$(grep -c '^adapter: ' "$tmp/out")" = 2
check "... with the base model beside it" grep -q "^Q: good morning" "$tmp/out"
run "$fb" --log-level warn run "$script" greeter --data-dir "$tmp/home" --model "$tmp/model" --epochs 1 --max-tokens 4
check "a skill id under --data-dir, exit 0" rc_is 0
check "... into data-dir/adapters/ID/" bash -c "ls '$tmp'/home/adapters/greeter/*/adapter_model.safetensors >/dev/null"
run "$fb" run "$script" no-such-skill --data-dir "$tmp/home" --model "$tmp/model"
check "an unknown skill exits 1" rc_is 1
check "... naming where it looked" grep -q "no skill.json in no-such-skill, $tmp/home/skills/no-such-skill" "$tmp/err"
run "$fb" run "$script" greeter --epochs many
check "a bad number exits 2" rc_is 2
check "... naming the option" grep -q -- "--epochs needs a number" "$tmp/err"

finish
