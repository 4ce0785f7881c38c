#!/usr/bin/env bash
# run.sh: the GPU proof, run ON the GPU machine from the repository root, with .gpu-deps carried
# (tests/gpu/prepare.sh makes it here). One call, within 8 minutes; each phase has its own
# timeout (seconds, overridable as T_<PHASE>=N) and prints its time and exit status:
#   machine   the GPU, driver, CUDA, and the torch / transformers / peft versions;
#   binaries  the binaries built here (fb-gpu.tar.xz) unpacked and run; when they do not run,
#             the fallback builds the core, the plugin and the two test programs there
#             (tests/gpu/CMakeLists.txt; no fastbrain binary then, so no `train` phase);
#   check     every op, whole LoRA training steps and decoding against the CPU backend
#             (test_backends: what the CUDA emulator checks in `make test`, on the GPU);
#   memcheck  the same under compute-sanitizer's memcheck (out-of-bounds and misaligned
#             accesses in the kernels); SANITIZE=0 leaves it out;
#   train     `fastbrain train --device cuda` on the bundled model against --device cpu: losses,
#             output files and event fields alike, killed and cancelled and resumed to the
#             uninterrupted run's adapter, generation (tests/train/train_cuda_emu.sh, FB_REAL_GPU=1);
#   bench     LoRA training tokens/s and peak memory of fastbrain and of transformers + peft, and
#             one layer's attention beside torch's SDPA, on the SmolLM2-135M and Qwen2.5-0.5B
#             shapes (random weights, seq 1024, batch 8, rank 16, seven targets); the tables
#             (report.py): MFU against the card's bf16 peak, the floors, and where a step's time
#             goes (gpu_bench --profile: CUDA events per phase).
# Logs go to $OUT (the device tool brings them back). Exit 0 only when every phase passed and
# the floors were met.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/fb-gpu-out}
BATCH=${BATCH:-8}
SEQ=${SEQ:-1024}
STEPS=${STEPS:-10}
mkdir -p "$OUT"
deps=$PWD/.gpu-deps
if [ ! -f "$deps/fb-gpu.tar.xz" ]; then
  echo "run.sh: $deps/fb-gpu.tar.xz is missing: run tests/gpu/prepare.sh here and carry .gpu-deps"
  exit 2
fi
bin=/tmp/fb-gpu
export OUT BATCH SEQ STEPS deps bin PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1 FASTBRAIN_ROOT=$PWD
failed=()

# phase NAME DEFAULT_TIMEOUT COMMAND...: run it with its timeout, its output in $OUT/NAME.txt
# and on the terminal; a line with its time and status.
phase() {
  local name=$1 limit_var="T_${1^^}" t0=$SECONDS rc
  local limit=${!limit_var:-$2}
  shift 2
  timeout --kill-after=10 "$limit" bash -c '"$@"' phase "$@" 2>&1 | tee "$OUT/$name.txt"
  rc=${PIPESTATUS[0]}
  local verdict="ok"
  [ "$rc" -eq 124 ] && verdict="TIMED OUT after $limit s"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && verdict="FAILED (exit $rc)"
  [ "$rc" -ne 0 ] && failed+=("$name")
  echo "== phase $name: $verdict in $((SECONDS - t0)) s" | tee -a "$OUT/phases.txt"
  return "$rc"
}

machine() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  nvcc --version | tail -1
  python3 -c "import torch, transformers, peft
print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__,
      '| peft', peft.__version__)"
}

binaries() {
  rm -rf "$bin" && tar -C /tmp -xJf "$deps/fb-gpu.tar.xz" || return 1
  if (cd "$bin" && ldd fastbrain libfastbrain_cuda.so test_backends gpu_bench) | grep "not found"; then
    return 1
  fi
  "$bin/fastbrain" --version && "$bin/gpu_bench" --params tests/gpu/smollm2-135m.json
}

fallback_build() { # with the carried headers and the libraries binaries unpacked
  local build=/tmp/fb-gpu-build fb_deps=/tmp/fb-gpu-deps
  [ -d "$bin/lib" ] || tar -C /tmp -xJf "$deps/fb-gpu.tar.xz" || return 1
  rm -rf "$fb_deps" && mkdir -p "$fb_deps" && cp -r "$deps/include" "$bin/lib" "$fb_deps/" || return 1
  cmake -S tests/gpu -B "$build" -DCMAKE_BUILD_TYPE=Release -DFB_DEPS="$fb_deps" \
    -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build "$build" -j "$(nproc)" &&
    mkdir -p "$bin" && cp "$build"/{libfastbrain_cuda.so,test_backends,gpu_bench} "$bin/"
}

bench() {
  : >"$OUT/bench.jsonl"
  for shape in smollm2-135m qwen2.5-0.5b; do
    local cfg=tests/gpu/$shape.json
    "$bin/gpu_bench" "$cfg" "$BATCH" "$SEQ" "$STEPS" | tee -a "$OUT/bench.jsonl"
    FB_CUDA_GRAPHS=0 "$bin/gpu_bench" "$cfg" "$BATCH" "$SEQ" "$STEPS" | tee -a "$OUT/bench.jsonl"
    python3 tests/gpu/hf_peft_bench.py "$cfg" "$BATCH" "$SEQ" "$STEPS" | tee -a "$OUT/bench.jsonl"
    "$bin/gpu_bench" --profile "$cfg" "$BATCH" "$SEQ" 3 | tee -a "$OUT/bench.jsonl"
    "$bin/gpu_bench" --attention "$cfg" "$BATCH" "$SEQ" "$STEPS" | tee -a "$OUT/bench.jsonl"
    python3 tests/gpu/sdpa_bench.py "$cfg" "$BATCH" "$SEQ" "$STEPS" | tee -a "$OUT/bench.jsonl"
  done
  python3 tests/gpu/report.py "$OUT/bench.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" |
    tee "$OUT/report.txt"
  grep -q "floors .*: met" "$OUT/report.txt"
}

export -f machine binaries fallback_build bench
# The carried libraries, then the CUDA libraries the plugin links
# (libcublas.so.13): the toolkit's, else the pip wheels'.
cublas=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /opt /usr/local/lib -name 'libcublas.so.13' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$bin/lib${cublas:+:$(dirname "$cublas")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
: >"$OUT/phases.txt"
phase machine 30 machine
if ! phase binaries 30 binaries; then
  phase fallback 240 fallback_build || { cat "$OUT/phases.txt"; exit 1; }
fi
export FB_CUDA_PLUGIN=$bin/libfastbrain_cuda.so FB_TEST_REQUIRE_GPU=1
phase check 90 "$bin/test_backends"
if [ "${SANITIZE:-1}" = 1 ]; then
  phase memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_backends"
fi
if [ -x "$bin/fastbrain" ]; then
  FB_REAL_GPU=1 phase train 90 tests/train/train_cuda_emu.sh "$bin/fastbrain" "$FB_CUDA_PLUGIN"
else
  echo "== phase train: skipped (the fallback builds no fastbrain)" | tee -a "$OUT/phases.txt"
fi
phase bench 200 bench
cat "$OUT/phases.txt"
echo "run.sh: ${#failed[@]} phase(s) failed${failed[*]:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
