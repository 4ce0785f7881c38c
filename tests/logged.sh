#!/usr/bin/env bash
# Run a test command, keeping a copy of everything it prints in LOG (for tests/canary.sh).
# Usage: tests/logged.sh LOG COMMAND [ARGS...]; exits with the command's status.
set -uo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
"$@" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
