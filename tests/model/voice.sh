#!/usr/bin/env bash
# What LoRA does on the bundled base model, which never saw the bundled skills: an adapter of the
# plumbing receptionist trained with the default settings lowers the held-out loss clearly below
# the base model's and answers the skill's held-out prompts in real words and in its own voice
# (scripts/voice-check.lua; `make voice` checks all three skills, minutes); the base model with
# the skill's system prompt alone does not speak it, nor does a random model. Skipped in
# sanitizer builds (slow training).
# Usage: voice.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"

echo 'print(require("fastbrain").sanitized and "yes" or "no")' >"$tmp/sanitized.lua"
if [ "$("$fb" run "$tmp/sanitized.lua")" = yes ]; then
  echo "skipped: a sanitizer build"
  exit 0
fi
run "$fb" --log-level warn run scripts/voice-check.lua --max-tokens 64 plumbing-receptionist
check "LoRA: the held-out loss falls clearly; the answers are real words in the skill's voice" eval \
  'rc_is 0 && grep -q "^plumbing-receptionist: LoRA .*held-out loss .* lower" "$tmp/out" && grep -q "^plumbing-receptionist: .*pass$" "$tmp/out"'
run "$fb" --log-level warn run scripts/voice-check.lua --base --max-tokens 64 plumbing-receptionist
check "the base model with the skill's system prompt alone does not speak its voice" eval \
  'rc_is 1 && grep -q "plumbing-receptionist: .*FAIL$" "$tmp/out"'
"$2" "$tmp/random" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
# (its context made room for a skill's system prompt in bytes; rotary positions need no table)
sed -i 's/"max_position_embeddings": 256/"max_position_embeddings": 2048/' "$tmp/random/config.json"
run "$fb" --log-level warn run scripts/voice-check.lua --base --max-tokens 16 --model "$tmp/random" plumbing-receptionist
check "a random model fails the check" eval 'rc_is 1 && grep -q "plumbing-receptionist: .*FAIL$" "$tmp/out"'
finish
