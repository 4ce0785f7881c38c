#!/usr/bin/env bash
# A model named ORG/NAME[@REVISION] where a model directory goes (train, generate), found offline
# in a Hugging Face cache laid out as huggingface_hub lays it out (files in blobs/, the snapshot
# of relative links, refs/main holding the commit); the adapter records the repository and its
# commit; a model that is not in the cache says how to get it.
# Usage: hf_names.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"

"$2" "$tmp/model" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
export HF_HUB_CACHE=$tmp/hub
commit=5d8c1e30a3f2b4c6d8e0f1a2b3c4d5e6f7a8b9c0
repo=$HF_HUB_CACHE/models--acme--tiny-chat
mkdir -p "$repo/blobs" "$repo/refs" "$repo/snapshots/$commit"
for f in "$tmp"/model/*; do
  blob=$(sha256sum "$f" | cut -d' ' -f1)
  cp "$f" "$repo/blobs/$blob"
  ln -s "../../blobs/$blob" "$repo/snapshots/$commit/$(basename "$f")"
done
printf '%s' "$commit" >"$repo/refs/main"
for i in 1 2 3 4 5 6; do echo "{\"messages\":[{\"role\":\"user\",\"content\":\"q$i\"},{\"role\":\"assistant\",\"content\":\"a$i\"}]}"; done >"$tmp/data.jsonl"

run "$fb" generate --model acme/tiny-chat --prompt hello --max-tokens 6 --device cpu
cp "$tmp/out" "$tmp/by_name"
run "$fb" generate --model "$tmp/model" --prompt hello --max-tokens 6 --device cpu
check "generate --model ORG/NAME answers as the directory does" eval 'rc_is 0 && cmp -s "$tmp/out" "$tmp/by_name"'
run "$fb" train --model acme/tiny-chat --data "$tmp/data.jsonl" --out "$tmp/adapter" --max-steps 2 --eval-fraction 0
check "train --model ORG/NAME" rc_is 0
check "the adapter names the repository and its commit (PEFT's fields)" eval \
  'grep -q "\"base_model_name_or_path\":[[:space:]]*\"acme/tiny-chat\"" "$tmp/adapter/adapter_config.json" &&
   grep -q "\"revision\":[[:space:]]*\"$commit\"" "$tmp/adapter/adapter_config.json" &&
   grep -q "\"base_model_revision\":[[:space:]]*\"$commit\"" "$tmp/adapter/summary.json"'
run "$fb" generate --model "acme/tiny-chat@$commit" --adapter "$tmp/adapter" --prompt hello --max-tokens 6 --device cpu
check "generate with the adapter, the model named by its commit" rc_is 0
run "$fb" models
check "fastbrain models lists the cached repository beside the bundled model" eval \
  'rc_is 0 && grep -Eq "^tiny +bundled +LlamaForCausalLM" "$tmp/out" &&
   grep -Eq "^acme/tiny-chat +cache +LlamaForCausalLM +[0-9.]+M +F32" "$tmp/out"'
run "$fb" models --json
check "fastbrain models --json gives the commit (keys in order)" eval \
  'rc_is 0 && grep -Eq "\"id\":\"acme/tiny-chat\",[^}]*\"revision\":\"$commit\"" "$tmp/out"'
run "$fb" models --nope
check "fastbrain models: a bad option is exit 2 with the usage" eval 'rc_is 2 && err_has "usage: fastbrain models"'
run "$fb" train --model acme/absent --data "$tmp/data.jsonl" --out "$tmp/x" --max-steps 2
check "a model not in the cache: exit 1, how to get it" eval \
  'rc_is 1 && err_has "model \"acme/absent\" is not in the Hugging Face cache \($HF_HUB_CACHE\): fastbrain pull acme/absent"'
run "$fb" generate --model "not a name" --prompt hello
check "neither a directory nor a repository id: exit 1, saying so" eval \
  'rc_is 1 && err_has "no such directory, nor a Hugging Face repository id ORG/NAME\[@REVISION\]"'
finish
