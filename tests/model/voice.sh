#!/usr/bin/env bash
# The bundled base model speaks each bundled skill's voice from its system prompt alone: the
# cheap form of `make voice` (scripts/voice-check.lua --base, no LoRA), and the same check
# failing on a random model, so it can fail. Skipped in sanitizer builds (slow generation).
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
run "$fb" --log-level warn run scripts/voice-check.lua --base --max-tokens 64
check "the bundled model: every skill's answers are real words in its own voice" eval \
  'rc_is 0 && [ "$(grep -c ": pass$" "$tmp/out")" = 3 ]'
"$2" "$tmp/random" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
# (its context made room for a skill's system prompt in bytes; rotary positions need no table)
sed -i 's/"max_position_embeddings": 256/"max_position_embeddings": 2048/' "$tmp/random/config.json"
run "$fb" --log-level warn run scripts/voice-check.lua --base --max-tokens 16 --model "$tmp/random" plumbing-receptionist
check "a random model fails the check" eval 'rc_is 1 && grep -q "plumbing-receptionist: .*FAIL$" "$tmp/out"'
finish
