#!/usr/bin/env bash
# make_peft_fixture.sh: regenerate tests/parity/peft/: a tiny random model (fb_make_tiny_model),
# a PEFT adapter our trainer wrote for it (fastbrain train, a few steps at a high learning rate
# so every B is far from zero), two rows of token ids, and the logits PyTorch computes for them
# from those files (peft_logits.py). tests/c/test_peft_parity.c checks the engine against it.
# Usage: tests/parity/make_peft_fixture.sh BUILD_DIR   (needs Debian's python3-torch)
set -euo pipefail
build=$(realpath "$1")
cd "$(dirname "$0")"
out=peft
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"
"$build/fb_make_tiny_model" "$out/model"
for i in $(seq 1 12); do
  echo "{\"messages\":[{\"role\":\"user\",\"content\":\"question $i\"},{\"role\":\"assistant\",\"content\":\"answer number $i\"}]}"
done >"$tmp/data.jsonl"
"$build/fastbrain" --log-level warn train --model "$out/model" --data "$tmp/data.jsonl" --out "$tmp/run" \
  --max-steps 6 --lr 0.05 --rank 4 --alpha 8 --eval-fraction 0 >/dev/null
mkdir -p "$out/adapter"
cp "$tmp/run/adapter_config.json" "$tmp/run/adapter_model.safetensors" "$out/adapter/"
/usr/bin/python3 - "$out/in.safetensors" <<'PY'
import sys, torch, st_io
g = torch.Generator().manual_seed(5)
st_io.write(sys.argv[1], {"input_ids": torch.randint(0, 258, (2, 16), generator=g, dtype=torch.int32)})
PY
/usr/bin/python3 peft_logits.py "$out/model" "$out/adapter" "$out/in.safetensors" "$out/expected.safetensors"
rm "$out/in.safetensors"
