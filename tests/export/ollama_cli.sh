#!/usr/bin/env bash
# fastbrain export --to ollama on the bundled model (share/models/tiny) and a small adapter
# trained on it, placed as the server keeps them (DATA/adapters/SKILL/VERSION beside
# DATA/skills/SKILL/skill.json): the directory holds the base's GGUF and the adapter's GGUF LoRA,
# which export's own check loads in the real llama.cpp (node-llama-cpp, `make deps`) and holds to
# fastbrain's greedy tokens; a Modelfile with FROM/ADAPTER naming them, the chat template in Go's
# syntax (rendered as fastbrain renders it by tests/lua/test_ollama.lua), a stop per end token and
# the skill's system prompt (or --system's); and a README. An existing --out is refused and a
# failed export leaves nothing behind. Ollama itself is not run (it is not installed here).
# Usage: ollama_cli.sh path/to/fastbrain
set -uo pipefail
fb=$(realpath "$1")
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source tests/lib.sh
export FASTBRAIN_CACHE=$tmp/cache

data=$tmp/data adapter=$tmp/data/adapters/front-desk/20260101-120000
system='You are the front desk of "Pipes & Co". Be brief.'
mkdir -p "$data/skills/front-desk" "$(dirname "$adapter")"
printf '{"name": "Front desk", "system": %s}\n' "$(printf '%s' "$system" | sed 's/"/\\"/g; s/^/"/; s/$/"/')" \
  >"$data/skills/front-desk/skill.json"
for i in $(seq 1 12); do echo "{\"messages\":[{\"role\":\"user\",\"content\":\"question $i\"},{\"role\":\"assistant\",\"content\":\"the answer is number $i\"}]}"; done >"$tmp/data.jsonl"
"$fb" train --model "$PWD/share/models/tiny" --data "$tmp/data.jsonl" --out "$adapter" --max-steps 40 --lr 0.01 \
  --eval-fraction 0 --device cpu >/dev/null 2>&1 || { echo "FAIL train an adapter"; exit 1; }

out=$tmp/front-desk
run "$fb" export "$adapter" --to ollama --out "$out"
check "--to ollama writes the directory, exit 0, and says how to create the model" eval \
  'rc_is 0 && out_has "^wrote .*/front-desk: .*share/models/tiny as GGUF f32, .* as a GGUF LoRA, a Modelfile with the chatml template and a system prompt" && out_has "^then: ollama create NAME -f .*/front-desk/Modelfile$"'
check "... checked in llama.cpp: the base GGUF + the LoRA GGUF give fastbrain's tokens" eval \
  'out_has "^verified with llama\.cpp \S+ \(node-llama-cpp 3\.21\.1\): 3 prompts x 32 tokens as fastbrain"'
check "... base.gguf, adapter.gguf, Modelfile, README.md, nothing left aside" eval \
  '[ "$(ls "$out" | tr "\n" " ")" = "Modelfile README.md adapter.gguf base.gguf " ] && [ ! -e "$out.partial" ] && [ "$(head -c 4 "$out/base.gguf")$(head -c 4 "$out/adapter.gguf")" = GGUFGGUF ]'
check "... FROM and ADAPTER name the two files, one stop for <|im_end|>, the skill's SYSTEM" eval \
  'grep -qx "FROM ./base.gguf" "$out/Modelfile" && grep -qx "ADAPTER ./adapter.gguf" "$out/Modelfile" &&
   [ "$(grep "^PARAMETER" "$out/Modelfile")" = "PARAMETER stop \"<|im_end|>\"" ] &&
   grep -qxF "SYSTEM \"\"\"$system\"\"\"" "$out/Modelfile"'
"$fb" run tests/lua/test_ollama.lua "$out/Modelfile" chatml "<|im_end|>" >"$tmp/lua_out" 2>&1
check "... its TEMPLATE renders chats as fastbrain's chatml does (tests/lua/test_ollama.lua)" \
  grep -q "^ok   the Modelfile .* renders as fastbrain's chatml template" "$tmp/lua_out"
check "... and the README says ollama create and ollama run" eval \
  'grep -qx "ollama create front-desk -f Modelfile" "$out/README.md" && grep -qx "ollama run front-desk" "$out/README.md"'

run "$fb" export "$adapter" --to ollama --out "$out"
check "an existing --out is refused, exit 1, and kept" eval \
  'rc_is 1 && err_has "front-desk: already exists" && [ -f "$out/Modelfile" ]'

run "$fb" export "$adapter" --to ollama --out "$tmp/f16" --type f16 --system "Answer in French."
check "--type f16 --system: an f16 base, that SYSTEM, loaded by llama.cpp to the end token" eval \
  'rc_is 0 && grep -qxF "SYSTEM \"\"\"Answer in French.\"\"\"" "$tmp/f16/Modelfile" && out_has "^loaded by llama\.cpp .*: 3 of 3 answers end at the end token" &&
   [ "$(stat -c %s "$tmp/f16/base.gguf")" -lt "$(stat -c %s "$out/base.gguf")" ]'
run bash -c 'cd "$1" && "$2" export "adapters/front-desk/20260101-120000/" --to ollama --out "$3" --no-check' _ "$data" "$fb" "$tmp/rel"
check "an adapter named from inside the data directory still finds the skill's SYSTEM" eval \
  'rc_is 0 && grep -qxF "SYSTEM \"\"\"$system\"\"\"" "$tmp/rel/Modelfile"'
cp -r "$adapter" "$tmp/loose"
run "$fb" export "$tmp/loose" --to ollama --out "$tmp/loose-out" --no-check
check "an adapter outside a data directory: no SYSTEM line, nothing checked" eval \
  'rc_is 0 && ! grep -q "^SYSTEM" "$tmp/loose-out/Modelfile" && ! out_has "verified|loaded by|not checked"'
run "$fb" export "$adapter" --to ollama --out "$tmp/quotes" --system 'say """hi"""'
check "a system prompt a Modelfile cannot quote: exit 1 saying so, nothing written" eval \
  'rc_is 1 && err_has "the system prompt holds \"\"\"" && [ ! -e "$tmp/quotes" ] && [ ! -e "$tmp/quotes.partial" ]'
run "$fb" export "$adapter" --to ollama --out "$tmp/t" --template vicuna
check "an unknown --template: exit 1 naming it, nothing written" eval \
  'rc_is 1 && err_has "unknown template \"vicuna\"" && [ ! -e "$tmp/t" ] && [ ! -e "$tmp/t.partial" ]'
run "$fb" export "$adapter" --to gguf --out "$tmp/x.gguf" --system hi
check "--system with another --to exits 2" eval 'rc_is 2 && err_has "--system is for --to ollama only"'
run "$fb" export --help
check "--help names the target" eval 'rc_is 0 && out_has "--to merged\|gguf\|gguf-lora\|ollama" && out_has "--to ollama"'
finish
