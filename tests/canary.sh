#!/usr/bin/env bash
# Runs last (a ctest fixture cleanup): every test ran with canary API keys in its environment;
# none of them may appear in anything the suite printed (logs, responses, SSE streams), as kept
# by tests/logged.sh in BUILD_DIR/test-output/, and the logs tests keep below it (web/serve.log,
# web/traffic.log). Usage: tests/canary.sh BUILD_DIR
set -uo pipefail
dir="$1/test-output"
shopt -s globstar
logs=("$dir"/**/*.log)
[ -e "${logs[0]}" ] || { echo "no test output in $dir"; echo "0 passed, 1 failed"; exit 1; }
leaks=0
for key in "$GROQ_API_KEY" "$ANTHROPIC_API_KEY" "$OPENAI_API_KEY"; do
  if grep -qF -- "$key" "${logs[@]}"; then
    echo "FAIL canary key ${key:0:8}... appears in the test output:"
    grep -nF -- "$key" "${logs[@]}" | head -5 | sed "s/$key/<canary>/g"
    leaks=$((leaks + 1))
  fi
done
echo "checked ${#logs[@]} logs of the suite"
[ "$leaks" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
[ "$leaks" -eq 0 ]
