#!/usr/bin/env bash
# tests/slurm/run.sh FASTBRAIN: the slurm executor's test (tests/lua/test_jobs_slurm.lua) on a
# one-node cluster of its own (tests/slurm/cluster.sh), started here and stopped at the end.
set -euo pipefail
bin=${1:?usage: tests/slurm/run.sh PATH-TO-FASTBRAIN}
cd "$(dirname "$0")/../.."
dir=$(mktemp -d /tmp/fbslurm.XXXXXX)
stop() { tests/slurm/cluster.sh stop "$dir" || true; rm -rf "$dir"; }
trap stop EXIT
tests/slurm/cluster.sh start "$dir"
export SLURM_CONF=$dir/slurm.conf
export FASTBRAIN_CACHE=$dir/cache # the estimates' calibrations: none measured before
"$bin" run tests/lua/test_jobs_slurm.lua "$bin" "$PWD/tests/jobs/worker.lua" "$dir"
