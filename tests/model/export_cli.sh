#!/usr/bin/env bash
# fastbrain export --to merged: the adapter merged into its base, found from adapter_config.json
# (a directory, or ORG/NAME at the recorded commit in the Hugging Face cache) or --model, written
# whole as a model directory that answers greedily as base + adapter do; an existing --out, a
# missing adapter and bad options are errors that name them and leave nothing behind.
# (The merged logits are held to PyTorch's in tests/c/test_peft_parity.c.)
# Usage: export_cli.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"
# Merges compared byte for byte must add B @ A the same way: each process would otherwise time
# OpenBLAS against oneDNN and may take either (their sums differ in the last bits).
export FB_GEMM=openblas

"$2" "$tmp/model" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
for i in $(seq 1 12); do echo "{\"messages\":[{\"role\":\"user\",\"content\":\"question $i\"},{\"role\":\"assistant\",\"content\":\"the answer is number $i\"}]}"; done >"$tmp/data.jsonl"
"$fb" train --model "$tmp/model" --data "$tmp/data.jsonl" --out "$tmp/adapter" --max-steps 40 --lr 0.01 \
  --eval-fraction 0 >/dev/null 2>&1 || { echo "FAIL train an adapter"; exit 1; }

same_answers() {  # MODEL_ARGS...: greedy answers to three prompts equal the adapter's on the base
  for p in "question 3" "question 11" "what is it"; do
    "$fb" generate --model "$tmp/model" --adapter "$tmp/adapter" --prompt "$p" --max-tokens 32 >"$tmp/want" 2>/dev/null
    "$fb" generate "$@" --prompt "$p" --max-tokens 32 >"$tmp/got" 2>/dev/null
    cmp -s "$tmp/want" "$tmp/got" || return 1
  done
}

run "$fb" export "$tmp/adapter" --to merged --out "$tmp/merged"
check "merged into the base adapter_config.json names, exit 0" eval \
  'rc_is 0 && out_has "^merged .*adapter into .*/model: .*/merged \(0\.1 MB of weights\)$"'
check "... a model directory: weights, config and tokenizer files, nothing left aside" eval \
  '[ "$(ls "$tmp/merged" | tr "\n" " ")" = "config.json model.safetensors tokenizer.json tokenizer_config.json " ] && [ ! -e "$tmp/merged.partial" ]'
check "... that answers as the base with the adapter does, without it" same_answers --model "$tmp/merged"
"$fb" generate --model "$tmp/model" --prompt "question 3" --max-tokens 32 >"$tmp/base" 2>/dev/null
check "... (which is not the base's answer)" bash -c "! cmp -s '$tmp/base' '$tmp/want'"

run "$fb" export "$tmp/adapter" --to merged --out "$tmp/merged"
check "an existing --out is refused, exit 1, and kept" eval \
  'rc_is 1 && err_has "merged: already exists; remove it or choose another --out" && [ -f "$tmp/merged/model.safetensors" ]'

# an adapter trained on ORG/NAME: the base is found in the cache at the commit it recorded
export HF_HUB_CACHE=$tmp/hub
commit=5d8c1e30a3f2b4c6d8e0f1a2b3c4d5e6f7a8b9c0
repo=$HF_HUB_CACHE/models--acme--tiny-chat
mkdir -p "$repo/refs" "$repo/snapshots/$commit"
cp "$tmp"/model/* "$repo/snapshots/$commit/"
printf '%s' "$commit" >"$repo/refs/main"
cp -r "$tmp/adapter" "$tmp/named"
sed -i "s|\"base_model_name_or_path\":[^,]*|\"base_model_name_or_path\": \"acme/tiny-chat\"|; s|\"revision\":[^,]*|\"revision\": \"$commit\"|" \
  "$tmp/named/adapter_config.json"
run "$fb" export "$tmp/named" --to merged --out "$tmp/merged2"
check "a base named ORG/NAME is merged at the adapter's commit" eval \
  "rc_is 0 && out_has 'into acme/tiny-chat@$commit: ' && cmp -s '$tmp/merged/model.safetensors' '$tmp/merged2/model.safetensors'"
run "$fb" export "$tmp/adapter" --to merged --out "$tmp/merged3" --model acme/tiny-chat
check "--model chooses the base" eval 'rc_is 0 && out_has "into acme/tiny-chat: "'

run "$fb" export "$tmp/nowhere" --to merged --out "$tmp/m4"
check "a missing adapter: exit 1 naming its adapter_config.json, nothing written" eval \
  'rc_is 1 && err_has "nowhere/adapter_config.json" && [ ! -e "$tmp/m4" ] && [ ! -e "$tmp/m4.partial" ]'
run "$fb" export "$tmp/adapter" --to merged --out "$tmp/m5" --model "$tmp/data.jsonl"
check "a base that is not a model: exit 1, nothing written" eval \
  'rc_is 1 && err_has "data.jsonl" && [ ! -e "$tmp/m5" ] && [ ! -e "$tmp/m5.partial" ]'
run "$fb" export "$tmp/adapter" --to onnx --out "$tmp/m6"
check "an unknown --to exits 2 naming it" eval 'rc_is 2 && err_has "--to onnx: unknown target"'
run "$fb" export "$tmp/adapter" --to merged
check "a missing --out exits 2 with the usage" eval 'rc_is 2 && err_has "--out is required" && err_has "usage: fastbrain export"'
run "$fb" export --help
check "--help prints the usage" eval 'rc_is 0 && out_has "^usage: fastbrain export ADAPTER_DIR --to merged"'

# GGUF (llama.cpp itself loads them in tests/export/llama_cpp.test.mjs; here what needs no node)
run env PATH=/nonexistent "$fb" export "$tmp/adapter" --to gguf --out "$tmp/m.gguf"
check "--to gguf without node: the GGUF is written, exit 0, and not checked" eval \
  'rc_is 0 && out_has "^wrote .*/m.gguf: .*/model \+ .*/adapter as GGUF f32" && out_has "^not checked: node" && [ "$(head -c 4 "$tmp/m.gguf")" = GGUF ]'
run "$fb" export "$tmp/adapter" --to gguf-lora --out "$tmp/m.gguf" --no-check
check "an existing GGUF --out is refused, exit 1" eval 'rc_is 1 && err_has "m.gguf: already exists"'
run "$fb" export "$tmp/adapter" --to gguf-lora --out "$tmp/l.gguf" --no-check
check "--to gguf-lora --no-check: the LoRA is written, nothing checked" eval \
  'rc_is 0 && out_has "^wrote .*/l.gguf: .*adapter as a GGUF LoRA for" && ! out_has "checked|verified" && [ "$(head -c 4 "$tmp/l.gguf")" = GGUF ]'
run "$fb" export --to gguf --out "$tmp/b.gguf"
check "--to gguf with neither an adapter nor --model exits 2" eval 'rc_is 2 && err_has "ADAPTER_DIR is required"'
run "$fb" export "$tmp/adapter" --to gguf --type q4 --out "$tmp/b.gguf"
check "an unknown --type exits 2 naming it" eval 'rc_is 2 && err_has "--type q4: not one of f32, f16, q8_0"'
run "$fb" export "$tmp/adapter" --to gguf-lora --type f16 --out "$tmp/b.gguf"
check "--type with another --to exits 2" eval 'rc_is 2 && err_has "--type is for --to gguf and ollama only"'
cp -r "$tmp/model" "$tmp/seq"
sed -i 's|"pre_tokenizer": *{[^}]*}|"pre_tokenizer": {"type": "Sequence", "pretokenizers": []}|' "$tmp/seq/tokenizer.json"
run "$fb" export --model "$tmp/seq" --to gguf --out "$tmp/b.gguf" --no-check
check "a pre-tokenizer GGUF cannot name is refused naming it, nothing written" eval \
  'rc_is 1 && err_has "seq/tokenizer.json: pre_tokenizer Sequence is not written to GGUF yet" && [ ! -e "$tmp/b.gguf" ]'
cp -r "$tmp/model" "$tmp/mistral"
sed -i 's|"LlamaForCausalLM"|"MistralForCausalLM"|; s|"tie_word_embeddings": false|&, "sliding_window": 64|' "$tmp/mistral/config.json"
run "$fb" export --model "$tmp/mistral" --to gguf --out "$tmp/b.gguf" --no-check
check "a sliding window in use is refused naming the config's field, nothing written" eval \
  'rc_is 1 && err_has "config.json.s sliding_window 64 is shorter than max_position_embeddings 256 \(layer 0" && [ ! -e "$tmp/b.gguf" ]'
sed -i 's|"sliding_window": 64|"sliding_window": 256|' "$tmp/mistral/config.json"
run "$fb" export --model "$tmp/mistral" --to gguf --out "$tmp/b.gguf" --no-check
check "... one as long as the context is no window: written" eval 'rc_is 0 && [ -e "$tmp/b.gguf" ]'
finish
