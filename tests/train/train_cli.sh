#!/usr/bin/env bash
# fastbrain train and fastbrain worker as the job registry and a user meet them, on a tiny random
# model: --json lines follow docs/protocol.md and nothing else is on stdout, plain lines when not
# a terminal, bad options exit 2 naming the field, SIGTERM (and SIGINT) checkpoint and exit 3,
# and a worker resumes a job from its checkpoints.
# Usage: train_cli.sh path/to/fastbrain path/to/fb_make_tiny_model
set -uo pipefail
fb=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib.sh"
# signal_run SIG COMMAND...: run it, send SIG once its first progress line is out, wait.
signal_run() {
  local sig=$1; shift
  "$@" >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  for _ in $(seq 100); do grep -q '"event":"progress"' "$tmp/out" && break; sleep 0.05; done
  kill -"$sig" $pid
  wait $pid
  echo $? >"$tmp/rc"
}

"$2" "$tmp/model" 2>/dev/null || { echo "FAIL fb_make_tiny_model"; exit 1; }
words=(red blue green gold gray pink teal navy rose jade)
for i in $(seq 0 19); do
  printf '{"messages": [{"role": "user", "content": "item %d"}, {"role": "assistant", "content": "%s %s"}]}\n' \
    "$i" "${words[$((i % 10))]}" "${words[$((i / 10))]}"
done >"$tmp/data.jsonl"
common=(--model "$tmp/model" --data "$tmp/data.jsonl" --lr 0.01)

run "$fb" train "${common[@]}" --out "$tmp/a" --epochs 3 --prompt "item 3" --json
check "--json: exit 0" rc_is 0
check "--json: every stdout line follows the protocol" eval '"$fb" run tests/train/check_protocol.lua "$tmp/out" >/dev/null 2>"$tmp/err"'
check "--json: start, >= 50 progress, eval, sample, checkpoint, done" eval \
  'grep -c "\"event\":\"progress\"" "$tmp/out" | grep -qE "^(5[0-9]|[6-9][0-9])$" && grep -q "\"event\":\"start\"" "$tmp/out" &&
   grep -q "\"event\":\"eval\"" "$tmp/out" && grep -q "\"event\":\"sample\"" "$tmp/out" &&
   grep -q "\"event\":\"checkpoint\"" "$tmp/out" && tail -1 "$tmp/out" | grep -q "\"event\":\"done\""'
check "--json: adapter and summary written" eval '[ -f "$tmp/a/adapter_model.safetensors" ] && [ -f "$tmp/a/adapter_config.json" ] && grep -q "\"dataset_hash\"" "$tmp/a/summary.json"'

run "$fb" train "${common[@]}" --out "$tmp/b" --max-steps 5
check "plain lines when stdout is not a terminal" eval 'rc_is 0 && grep -q "^step 5/5 epoch" "$tmp/out" && grep -q "^done: 5 steps in [0-9]* s, training loss [0-9.]*, held-out loss [0-9.]* (base model [0-9.]*), adapter in" "$tmp/out"'
# One training loss: the last step's line and the done line name the same (smoothed) number,
# and the adapter's writing is announced between them.
check "... the done line's training loss is the last step's, after \"saving the adapter\"" eval \
  'last=$(grep "^step 5/5 " "$tmp/out" | sed -E "s/.*training loss ([0-9.]+).*/\1/") &&
   [ -n "$last" ] && grep -q "^done: .*, training loss $last," "$tmp/out" &&
   [ "$(grep -A1 "^saving the adapter\.\.\.$" "$tmp/out" | tail -1 | cut -c1-5)" = "done:" ]'
check "... time left as a duration (\"1 min 20 s\", not seconds or minutes alone)" eval \
  'grep "^step " "$tmp/out" | grep -qE " tok/s ([0-9]+ min )?[0-9]+ s left$" && ! grep -qE "eta [0-9]+s" "$tmp/out"'
check "the durations read as people say them" eval \
  '[ "$("$fb" run tests/train/duration_words.lua)" = "0 s|45 s|1 min|1 min 20 s|59 min 59 s|1 h|2 h 5 min|—|—" ]'

# A reader that goes away (a worker's registry killed) ends the run, SIGPIPE ignored or not.
run timeout 60 bash -c 'set -o pipefail; "$0" train "${@}" --max-steps 100000 --json | head -n 1' "$fb" "${common[@]}" --out "$tmp/gone"
check "--json: a closed stdout ends the run at once (exit 141)" eval 'rc_is 141 && [ ! -e "$tmp/gone/adapter_model.safetensors" ]'

run "$fb" train "${common[@]}" --out "$tmp/full" --max-steps 3 --full
check "--full writes a whole model" eval 'rc_is 0 && [ -f "$tmp/full/model.safetensors" ] && [ -f "$tmp/full/config.json" ] && [ -f "$tmp/full/tokenizer.json" ]'

run bash -c 'cd "$1" && "$2" train --model model --data data.jsonl --out rel --max-steps 2' _ "$tmp" "$fb"
check "a relative --model is recorded by its full path (summary, adapter_config)" eval \
  'rc_is 0 && grep -q "\"base_model\":[[:space:]]*\"$(realpath "$tmp/model")\"" "$tmp/rel/summary.json" &&
   grep -q "\"base_model_name_or_path\":[[:space:]]*\"$(realpath "$tmp/model")\"" "$tmp/rel/adapter_config.json"'

run "$fb" train "${common[@]}" --out "$tmp/c" --rank 0
check "a bad value exits 2 naming the field" eval 'rc_is 2 && grep -q "spec.lora.r: must be an integer 1..256 (got 0)" "$tmp/err" && [ ! -s "$tmp/out" ]'
run "$fb" train "${common[@]}" --out "$tmp/c" --ranks 4
check "an unknown option exits 2" eval 'rc_is 2 && grep -q "unknown option .--ranks." "$tmp/err"'
run "$fb" train --model "$tmp/model" --data "$tmp/missing.jsonl" --out "$tmp/c" --json
check "a missing data file: an error event, exit 1" eval 'rc_is 1 && grep -q "\"event\":\"error\"" "$tmp/out" && grep -q "missing.jsonl" "$tmp/out"'

# --scenarios: the data teaches "zebra N" after "item N", a scenario forbids "zebra": an early
# step passes it and the last one does not, so the published weights are not the last step's.
printf '{"messages": [{"role": "user", "content": "item %d"}, {"role": "assistant", "content": "zebra %d"}]}\n' $(seq 0 19 | sed 'p') >"$tmp/zebra.jsonl"
echo '{"id": "no-zebra", "messages": [{"role": "user", "content": "item 3"}], "checks": {"must_not_include": ["zebra"]}}' >"$tmp/scenarios.jsonl"
zebra=(--model "$tmp/model" --data "$tmp/zebra.jsonl" --lr 0.01 --max-steps 40 --eval-interval 4)
run "$fb" train "${zebra[@]}" --out "$tmp/sel" --scenarios "$tmp/scenarios.jsonl"
check "--scenarios publishes the step that passes most, not the last" eval \
  'rc_is 0 && grep -q "^done: 40 steps .*, step [0-9]*.s weights (1 of 1 scenarios pass)" "$tmp/out" &&
   grep -q "\"select\":[[:space:]]*\"scenarios\"" "$tmp/sel/summary.json" && ! grep -q "\"selected_step\":[[:space:]]*40" "$tmp/sel/summary.json"'
echo '{"id": "x", "messages": []}' >"$tmp/bad-scenarios.jsonl"
run "$fb" train "${zebra[@]}" --out "$tmp/sel2" --scenarios "$tmp/bad-scenarios.jsonl"
check "--scenarios with a bad line exits 2 naming file, line and field" eval \
  'rc_is 2 && grep -q "bad-scenarios.jsonl: line 1: messages: " "$tmp/err" && [ ! -e "$tmp/sel2" ]'
run "$fb" train "${zebra[@]}" --out "$tmp/sel2" --select scenarios
check "--select scenarios without scenarios exits 2 saying what to add" eval \
  'rc_is 2 && grep -q "needs the scenarios to select by: --scenarios FILE.jsonl" "$tmp/err"'

run "$fb" train "${common[@]}" --out "$tmp/c" --template nope --json
check "an unknown template: an error event naming it, exit 1" eval 'rc_is 1 && grep -q "\"where\":\"spec.template\"" "$tmp/out" && grep -q "unknown template" "$tmp/out"'
run script -qec "$fb train ${common[*]} --out $tmp/tty --max-steps 60" /dev/null
check "a progress bar on a terminal" eval 'rc_is 0 && grep -q "\[#\{30\}\] 60/60 training loss [0-9.]*  [0-9]* tok/s  [0-9]* s left" "$tmp/out" && grep -q "^saving the adapter" "$tmp/out"'

# A job: SIGTERM after the first steps leaves a checkpoint and exit 3; the worker run again
# resumes from it and finishes.
mkdir -p "$tmp/job"
printf '{"model": "%s", "data": "%s", "out": "%s", "max_steps": 1000, "micro_batch": 1, "lr": 0.001}\n' \
  "$tmp/model" "$tmp/data.jsonl" "$tmp/job/adapter" >"$tmp/job/spec.json"
signal_run TERM "$fb" worker "$tmp/job"
cp "$tmp/err" "$tmp/first_err"
check "SIGTERM: checkpoint, exit 3" eval 'rc_is 3 && [ -f "$tmp/job/checkpoints/latest" ] && grep -q "\"event\":\"checkpoint\"" "$tmp/out"'
run "$fb" worker "$tmp/job"
check "the worker resumes the job and finishes" eval 'rc_is 0 && grep -q "\"resumed_from_step\":[1-9]" "$tmp/out" && tail -1 "$tmp/out" | grep -q "\"event\":\"done\""'
check "... keeping the base's eval loss from before its first step" eval \
  'grep -q "\"base_eval_loss\":[[:space:]]*[0-9]" "$tmp/job/adapter/summary.json" && ! grep -q "\"step\":0," "$tmp/out"'
# With oneDNN installed the first worker timed it against OpenBLAS; the second takes the path
# the checkpoint names (the two sum differently: a switch would move the weights by ulps).
check "... on the checkpoint's matrix path, without timing the paths again" eval \
  '! grep -q "gemm: a training step.s mix" "$tmp/first_err" || ! err_has "gemm: a training step.s mix"'

check "the resumed run's lines follow the protocol" eval '"$fb" run tests/train/check_protocol.lua "$tmp/out" >/dev/null 2>"$tmp/err"'
signal_run INT "$fb" train "${common[@]}" --out "$tmp/int" --max-steps 1000 --micro-batch 1 --json
check "SIGINT too: checkpoint, exit 3" eval 'rc_is 3 && [ -f "$tmp/int/checkpoints/latest" ]'
# SIGTERM at any moment of a worker's life, from the instant it catches the signal (start-up, data,
# model load, steps): the worker is never killed by it but ends cancelled (exit 3) with a
# checkpoint, and the next worker finishes the job.
catches_term() {  # SigCgt has bit 15 - 1 set
  local mask
  mask=$(awk '/^SigCgt/ {print $2}' "/proc/$1/status" 2>/dev/null) && (((16#$mask >> 14) & 1))
}
for delay in 0 0.005 0.02 0.05 0.1; do
  rm -rf "$tmp/early" && mkdir -p "$tmp/early"
  printf '{"model": "%s", "data": "%s", "out": "%s", "max_steps": %d, "micro_batch": 1}\n' \
    "$tmp/model" "$tmp/data.jsonl" "$tmp/early/adapter" "$([ $delay = 0 ] && echo 60 || echo 5000)" >"$tmp/early/spec.json"
  "$fb" worker "$tmp/early" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 2000); do catches_term $pid && break; sleep 0.001; done
  sleep $delay
  kill -TERM $pid
  wait $pid
  echo $? >"$tmp/rc"
  check "SIGTERM ${delay}s after the worker starts catching it: cancelled with a checkpoint" eval \
    'rc_is 3 && [ -f "$tmp/early/checkpoints/latest" ] && tail -1 "$tmp/out" | grep -q "\"event\":\"checkpoint\""'
  if [ $delay = 0 ]; then
    run "$fb" worker "$tmp/early"
    check "... and the next worker finishes that job" eval 'rc_is 0 && tail -1 "$tmp/out" | grep -q "\"event\":\"done\""'
  fi
done
run "$fb" worker
check "worker without a job directory exits 2" rc_is 2
# The worker hands spec.json to the trainer as written: its one check names the field in an
# error event, and a file that is not a JSON object is exit 2.
mkdir -p "$tmp/badjob" "$tmp/notjson"
printf '{"model": "%s", "data": "%s", "out": "%s", "lora": {"r": 0}}\n' \
  "$tmp/model" "$tmp/data.jsonl" "$tmp/badjob/adapter" >"$tmp/badjob/spec.json"
run "$fb" worker "$tmp/badjob"
check "worker: a bad field is an error event naming it, exit 1, nothing written" eval \
  'rc_is 1 && grep -q "\"event\":\"error\".*spec.lora.r: must be an integer 1..256 (got 0)" "$tmp/out" && [ ! -e "$tmp/badjob/adapter" ]'
printf '[1]' >"$tmp/notjson/spec.json"
run "$fb" worker "$tmp/notjson"
check "worker: a spec that is not a JSON object is an error event, exit 2" eval \
  'rc_is 2 && grep -q "\"where\":\"spec\"" "$tmp/out" && grep -q "must be a JSON object" "$tmp/out"'

finish
