#!/usr/bin/env bash
# selfcheck.sh FB_GPU_CHECK: what of the GPU proof can be checked without a GPU: the proof
# scripts parse (bash -n, Python's parser), and the CPU half of every comparison runs and gives
# finite, non-zero references. The GPU half is tests/gpu/run.sh, on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1
for f in tests/gpu/run.sh tests/gpu/prepare.sh tests/gpu/selfcheck.sh; do
  bash -n "$f" || { echo "selfcheck: $f does not parse"; exit 1; }
done
for f in tests/gpu/hf_peft_bench.py tests/gpu/report.py; do
  python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f"
done
python3 tests/gpu/report.py --selftest
cpu=$("$bin" --cpu-only tests/gpu/smollm2-135m.json tests/gpu/qwen2.5-0.5b.json)
echo "$cpu"
# the bench's shapes are the real models' (parameter counts of SmolLM2-135M, Qwen2.5-0.5B)
grep -q "smollm2-135m.json: 134515008 parameters" <<<"$cpu" || { echo "selfcheck: SmolLM2 shape"; exit 1; }
grep -q "qwen2.5-0.5b.json: 494032768 parameters" <<<"$cpu" || { echo "selfcheck: Qwen2.5 shape"; exit 1; }
# without a GPU the check says so and exits 77 (what run.sh would see on a machine without one)
rc=0
out=$(CUDA_VISIBLE_DEVICES=-1 "$bin" check) || rc=$?
[ "$rc" -eq 77 ] || { echo "selfcheck: expected exit 77 with no GPU, got $rc: $out"; exit 1; }
grep -q "no GPU: cuda: " <<<"$out" || { echo "selfcheck: unclear no-GPU message: $out"; exit 1; }
echo "selfcheck: ok ($out)"
