#!/usr/bin/env bash
# The trainer and generation on the GPU, proven on the CUDA emulator: `fastbrain train --device
# cuda` on the bundled model (through the emulated plugin, the same dlopen path as a GPU's)
# against `--device cpu`: the same per-step losses within bf16's bound for 20 steps, evaluation
# with the best adapter kept, samples, checkpoints, the PEFT output and a summary that names the
# device; killed and cancelled mid-run and resumed, it ends with the uninterrupted run's adapter
# bit for bit; `fastbrain generate --device cuda` answers (its tokens are checked against the
# CPU's in c_backends); a CUDA fault ends the run with exit 70 and the CUDA error, an
# out-of-memory GPU with exit 4; full-parameter mode refuses cuda and auto takes the CPU for it.
# The GPU proof (tests/gpu/run.sh) runs it on a real GPU with FB_REAL_GPU=1: the device is then
# named by nvidia-smi's name, and the emulator's own faults (a CUDA fault, a small memory, an old
# device) are left out.
# Usage: [FB_REAL_GPU=1] train_cuda_emu.sh path/to/fastbrain path/to/libfastbrain_cuda[_emu].so
set -uo pipefail
fb=$(realpath "$1")
export FB_CUDA_PLUGIN=$(realpath "$2") OPENBLAS_NUM_THREADS=1 # the emulator runs on one thread
real_gpu=${FB_REAL_GPU:-0}
gpu_name="fastbrain CUDA emulator"
[ "$real_gpu" = 1 ] && gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$(dirname "$0")/../.."
source tests/lib.sh
model=share/models/tiny

# 24 short conversations of a receptionist's kind, so a step is a few seconds on the emulator
asks=("Can you fix a leaking tap" "Do you work on Sundays" "How much is a new toilet"
      "My drain is slow" "Is there a call-out fee" "Can someone come today")
answers=("Yes, a plumber can visit this week." "We are open every day but Sunday."
         "A new toilet runs \$300 to \$500 fitted." "We can clear it; it usually takes an hour."
         "The call-out fee is \$80, taken off the job." "Today is full; tomorrow at nine is free.")
for i in $(seq 0 23); do
  printf '{"messages": [{"role": "user", "content": "%s? (%d)"}, {"role": "assistant", "content": "%s"}]}\n' \
    "${asks[$((i % 6))]}" "$i" "${answers[$((i % 6))]}"
done >"$tmp/data.jsonl"
cat >"$tmp/spec.json" <<EOF
{"model": "$model", "data": "$tmp/data.jsonl", "max_steps": 20, "micro_batch": 1, "grad_accum": 2, "lr": 0.001,
 "max_len": 64, "eval": {"fraction": 0.15, "interval": 5}, "patience": 10,
 "checkpoint_interval": 10, "samples": {"prompts": ["Do you work on Sundays?"], "interval": 10,
 "max_tokens": 16}}
EOF
train=("$fb" train --spec "$tmp/spec.json" --json)
losses() { grep -o '"event":"progress".*"loss":[0-9.e+-]*' "$1" | sed 's/.*"loss"://'; }

run "${train[@]}" --out "$tmp/gpu" --device cuda
cp "$tmp/out" "$tmp/gpu.jsonl"
check "on the GPU ($gpu_name): exit 0, events as the protocol says" eval \
  'rc_is 0 && "$fb" run tests/train/check_protocol.lua "$tmp/gpu.jsonl" >/dev/null'
check "the start event and the summary name the device and its memory" eval \
  'grep -q "\"event\":\"start\".*\"device\":\"cuda\",\"device_name\":\"$gpu_name (sm_[0-9]" "$tmp/gpu.jsonl" &&
   python3 -c "import json, sys; s = json.load(open(sys.argv[1]))
assert s[\"device\"] == \"cuda\" and s[\"device_name\"].startswith(sys.argv[2]) and s[\"peak_memory_bytes\"] > 4e6, s
assert s[\"steps\"] == 20 and s[\"kept_best\"] is True, s" "$tmp/gpu/summary.json" "$gpu_name"'
check "evaluations, samples with text, checkpoints and the PEFT adapter" eval \
  '[ "$(grep -c "\"event\":\"eval\"" "$tmp/gpu.jsonl")" -eq 5 ] &&
   grep "\"event\":\"sample\"" "$tmp/gpu.jsonl" | grep -qv "\"text\":\"\"" &&
   [ -f "$tmp/gpu/adapter_model.safetensors" ] && [ -f "$tmp/gpu/adapter_config.json" ] &&
   [ -f "$tmp/gpu/checkpoints/step-00000020/state.safetensors" ] && [ -f "$tmp/gpu/example_losses.json" ]'

run "${train[@]}" --out "$tmp/cpu" --device cpu
check "on the CPU: exit 0" rc_is 0
# The same files, and the same keys in the summary and each event kind, as the CPU's run.
layout() { # DIR JSONL: what a run wrote, without its values
  (cd "$1" && find . -type f | sort)
  python3 -c "import json, sys
print(sorted(json.load(open(sys.argv[1] + \"/summary.json\"))))
seen = {}
for line in open(sys.argv[2]):
    e = json.loads(line)
    seen.setdefault(e[\"event\"], set()).update(e)
for k in sorted(seen): print(k, sorted(seen[k]))" "$1" "$2"
}
check "the GPU's output is the CPU's in format: files, summary keys, event fields" eval \
  'diff <(layout "$tmp/gpu" "$tmp/gpu.jsonl") <(layout "$tmp/cpu" "$tmp/out")' 
losses "$tmp/gpu.jsonl" >"$tmp/gpu.losses"
losses "$tmp/out" >"$tmp/cpu.losses"
check "20 steps, each loss within 1e-2 of the CPU's (relative)" eval \
  'paste "$tmp/gpu.losses" "$tmp/cpu.losses" | awk "{ r = (\$1 - \$2) / \$2; if (r < 0) r = -r;
     if (r > worst) worst = r; n++; if (r > 1e-2) bad++ }
     END { printf \"  %d steps, worst relative difference %.2e\\n\", n, worst; exit !(n == 20 && !bad) }"'

# CUDA graphs (FB_CUDA_GRAPHS, docs/cuda.md): a repeated batch shape's forward and backward are
# replayed as graphs, batches of other lengths between, each step's dropout masks and loss
# scale read from device memory. The same kernels with the same arguments: the eager run's
# losses and adapter, bit for bit.
graphs=("$fb" train --spec "$tmp/spec.json" --json --max-steps 6 --device cuda)
FASTBRAIN_LOG=debug run "${graphs[@]}" --out "$tmp/graphs"
cp "$tmp/out" "$tmp/graphs.jsonl"
check "with graphs: exit 0, graphs captured and replayed" eval \
  'rc_is 0 && [ "$(grep -c "cuda: captured a graph" "$tmp/err")" -ge 2 ]'
FB_CUDA_GRAPHS=0 run "${graphs[@]}" --out "$tmp/eager"
check "FB_CUDA_GRAPHS=0: the graphs' losses and adapter, bit for bit" eval \
  'rc_is 0 && ! grep -q "captured a graph" "$tmp/err" &&
   diff <(losses "$tmp/graphs.jsonl") <(losses "$tmp/out") &&
   cmp -s "$tmp/graphs/adapter_model.safetensors" "$tmp/eager/adapter_model.safetensors"'

# Killed (SIGKILL) once the checkpoint of step 10 is written, resumed, cancelled (SIGTERM) at
# step 13, resumed again: the uninterrupted run's adapter.
signal_at() { # SIGNAL EVENT-PATTERN [--resume]: start the run, send SIGNAL once EVENT is out
  local sig=$1 event=$2
  shift 2
  "${train[@]}" --out "$tmp/killed" --device cuda "$@" >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  for _ in $(seq 3000); do grep -q "$event" "$tmp/out" && break; sleep 0.1; done
  kill -"$sig" $pid
  wait $pid 2>/dev/null
  echo $? >"$tmp/rc"
}
signal_at KILL '"event":"checkpoint","step":10'
signal_at TERM '"event":"progress","step":13,' --resume
check "killed after step 10, resumed from it, cancelled at step 13: exit 3, a checkpoint" eval \
  'rc_is 3 && grep -q "\"resumed_from_step\":10" "$tmp/out" && tail -1 "$tmp/out" | grep -q "\"event\":\"checkpoint\""'
run "${train[@]}" --out "$tmp/killed" --device cuda --resume
check "... and resumed to the end: the uninterrupted run's adapter, bit for bit" eval \
  'rc_is 0 && grep -q "\"resumed_from_step\":1[3-9]" "$tmp/out" &&
   cmp -s "$tmp/gpu/adapter_model.safetensors" "$tmp/killed/adapter_model.safetensors"'

ask=(generate --model "$model" --adapter "$tmp/gpu" --prompt "Can you fix a leaking tap?" --max-tokens 24)
run "$fb" "${ask[@]}" --device cuda
cp "$tmp/out" "$tmp/gpu.txt"
check "generate --device cuda answers on the GPU" eval \
  'rc_is 0 && [ -s "$tmp/gpu.txt" ] && err_has "cuda: using $gpu_name"'
run "$fb" "${ask[@]}" --device cpu
echo "  GPU: $(cat "$tmp/gpu.txt")"
echo "  CPU: $(cat "$tmp/out")" # the same but where a near tie flips (c_backends checks tokens)
run "$fb" "${ask[@]}"
check "generate with auto takes the GPU when the plugin opens" eval \
  'rc_is 0 && err_has "cuda: using $gpu_name" && cmp -s "$tmp/out" "$tmp/gpu.txt"'
[ "$real_gpu" = 1 ] && finish  # the rest are the emulator's own faults

FB_EMU_FAULT_AT=40 run "${train[@]}" --out "$tmp/fault" --device cuda
check "a CUDA fault: exit 70, the CUDA error on stderr, no output" eval \
  'rc_is 70 && err_has "cuda-emu: fault" && err_has "ERROR cuda: .*(cudaErrorLaunchFailure|unspecified launch failure)" &&
   [ ! -e "$tmp/fault/adapter_model.safetensors" ]'
FB_EMU_MEMORY=18000000 run "${train[@]}" --out "$tmp/oom" --device cuda
check "a GPU out of memory: an error naming what and how much, exit 4" eval \
  'rc_is 4 && out_has "cuda: out of memory for .*activations: asked [0-9.]+ MiB \([0-9]+ bytes\), [0-9.]+ MiB free of 17.2 MiB"'
FB_EMU_SM=75 run "${train[@]}" --out "$tmp/old" --device cuda
check "a device older than sm_80: an error naming it, exit 1" eval \
  'rc_is 1 && out_has "is sm_75; sm_80 or newer is needed" && out_has "\"where\":\"setup\""'
run "$fb" train --spec "$tmp/spec.json" --out "$tmp/full" --device cuda --full
check "full-parameter mode refuses cuda (exit 2, naming the field)" eval \
  'rc_is 2 && err_has "spec.device: \"cuda\" trains adapters only"'
run "${train[@]}" --out "$tmp/full" --device auto --full --max-steps 2
check "... and auto takes the CPU for it, with no fallback to explain" eval \
  'rc_is 0 && out_has "\"event\":\"start\".*\"device\":\"cpu\"" && ! out_has "device: auto"'
finish
