#!/usr/bin/env bash
# run.sh: the GPU proof, run ON the GPU machine from the repository root, with .gpu-deps carried
# (tests/gpu/prepare.sh makes it here). In one call, well under 8 minutes on an H200:
#   1. builds the training core, the CUDA plugin (sm_90), test_backends and gpu_bench
#      (tests/gpu/CMakeLists.txt);
#   2. checks every op, whole LoRA training steps and decoding against the CPU backend
#      (test_backends: what the CUDA emulator checks in `make test`, now on the GPU);
#   3. times LoRA training (rank 16, seven targets, seq 1024, random weights) for the
#      SmolLM2-135M and Qwen2.5-0.5B shapes beside HF transformers + peft, and prints the table.
# Logs go to $OUT (the device tool brings them back). Exit 0 only if every check passed and the
# floors were met. SANITIZE=1 first runs the checks under compute-sanitizer's memcheck (slower;
# out-of-bounds and misaligned accesses in the kernels, into $OUT/memcheck.txt).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/fb-gpu-out}
BATCH=${BATCH:-8}
STEPS=${STEPS:-10}
mkdir -p "$OUT"
deps=$PWD/.gpu-deps
if [ ! -d "$deps/lib" ]; then
  echo "run.sh: $deps is missing: run tests/gpu/prepare.sh on the development machine and carry .gpu-deps"
  exit 2
fi
export LD_LIBRARY_PATH=$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
build=/tmp/fb-gpu-build
t0=$SECONDS
cmake -S tests/gpu -B "$build" -DCMAKE_BUILD_TYPE=Release -DFB_DEPS="$deps" \
  -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.log" 2>&1 &&
  cmake --build "$build" -j "$(nproc)" >>"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; echo "run.sh: build failed"; exit 1; }
echo "build: $((SECONDS - t0)) s"
export FB_TEST_REQUIRE_GPU=1
if [ "${SANITIZE:-0}" = 1 ]; then
  compute-sanitizer --tool memcheck --error-exitcode 9 "$build/test_backends" \
    >"$OUT/memcheck.txt" 2>&1
  mc=$?
  echo "memcheck: exit $mc; $(grep "ERROR SUMMARY" "$OUT/memcheck.txt")"
fi
"$build/test_backends" 2>&1 | tee "$OUT/check.txt"
check=${PIPESTATUS[0]}
: >"$OUT/bench.jsonl"
for shape in smollm2-135m qwen2.5-0.5b; do
  "$build/gpu_bench" "tests/gpu/$shape.json" "$BATCH" 1024 "$STEPS" 2>>"$OUT/bench.log" |
    tee -a "$OUT/bench.jsonl"
  python3 tests/gpu/hf_peft_bench.py "tests/gpu/$shape.json" "$BATCH" 1024 "$STEPS" \
    2>>"$OUT/bench.log" | tee -a "$OUT/bench.jsonl"
done
python3 tests/gpu/report.py "$OUT/bench.jsonl" | tee "$OUT/report.txt"
grep -q "floors .*: met" "$OUT/report.txt"
floors=$?
echo "parity checks: $([ "$check" -eq 0 ] && echo passed || echo "FAILED ($check)");" \
  "floors: $([ "$floors" -eq 0 ] && echo met || echo "not met")"
[ "$check" -eq 0 ] && [ "$floors" -eq 0 ]
