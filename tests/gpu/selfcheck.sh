#!/usr/bin/env bash
# selfcheck.sh GPU_BENCH: what of the GPU proof can be checked without a GPU: the proof scripts
# parse (bash -n, Python's parser), the report's arithmetic, the bench's shapes are the real
# models', and the bench (training and attention) runs end to end on the CUDA emulator
# (FB_CUDA_PLUGIN, set by ctest) and prints the lines run.sh collects; its --profile's phases
# (CUDA events on the emulated GPU, the clock on the CPU) add up to the step. run.sh's train phase is
# tests/train/train_cuda_emu.sh, which runs on the emulator as train_cuda_emu. The checks themselves run here as c_backends; on a GPU machine
# tests/gpu/run.sh runs both on the real device.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=$1
for f in tests/gpu/run.sh tests/gpu/prepare.sh tests/gpu/selfcheck.sh; do
  bash -n "$f" || { echo "selfcheck: $f does not parse"; exit 1; }
done
for f in tests/gpu/hf_peft_bench.py tests/gpu/sdpa_bench.py tests/gpu/report.py; do
  python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f"
done
python3 tests/gpu/report.py --selftest
params=$("$bench" --params tests/gpu/smollm2-135m.json tests/gpu/qwen2.5-0.5b.json)
echo "$params"
grep -q "smollm2-135m.json: 134515008 parameters" <<<"$params" || { echo "selfcheck: SmolLM2 shape"; exit 1; }
grep -q "qwen2.5-0.5b.json: 494032768 parameters" <<<"$params" || { echo "selfcheck: Qwen2.5 shape"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/tiny.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 300,
 "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
 "num_key_value_heads": 1, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
 "max_position_embeddings": 256, "tie_word_embeddings": true}
JSON
line=$("$bench" "$tmp/tiny.json" 2 32 2 cuda)
echo "$line"
python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["engine"] == "fastbrain" and r["device"].startswith("fastbrain CUDA emulator"), r
assert r["batch"] == 2 and r["seq"] == 32 and r["steps"] == 2, r
assert r["tokens_per_s"] > 0 and r["peak_bytes"] > 0 and 4 < r["loss"] < 7, r  # ln 300 = 5.7
PY
eager=$(FB_CUDA_GRAPHS=0 "$bench" "$tmp/tiny.json" 2 32 2 cuda) # graphs off: the same loss
echo "$eager"
python3 - "$line" "$eager" <<'PY'
import json, sys
r, e = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert "what" not in r and e["what"] == "no graphs" and e["loss"] == r["loss"], (r, e)
PY
for device in cuda cpu; do
  line=$("$bench" --profile "$tmp/tiny.json" 2 32 2 $device)
  echo "$line"
  python3 - "$line" "$device" <<'PY'
import json, sys
r, device = json.loads(sys.argv[1]), sys.argv[2]
ph = r["phase_ms"]
assert r["what"] == "profile" and len(ph) == 8, r
# every phase of a LoRA step takes time (the CPU has no dk/dv kernel of its own), and together
# they are the step
assert all(ms > 0 for k, ms in ph.items() if not (k == "attention_dkdv" and device == "cpu")), ph
assert abs(sum(ph.values()) - r["step_ms"]) < 0.1 * r["step_ms"], (sum(ph.values()), r["step_ms"])
PY
done
line=$("$bench" --attention "$tmp/tiny.json" 2 32 2 cuda)
echo "$line"
python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["what"] == "attention" and r["device"].startswith("fastbrain CUDA emulator"), r
assert (r["batch"], r["seq"], r["heads"], r["kv_heads"], r["head_dim"]) == (2, 32, 2, 1, 64), r
assert r["fwd_bwd_ms"] > 0, r
PY
echo "selfcheck: ok"
