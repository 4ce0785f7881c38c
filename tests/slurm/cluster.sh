#!/usr/bin/env bash
# A one-node Slurm cluster for tests (slurmctld + slurmd + munge on loopback) in a directory of
# its own, with no systemd or database (docs/slurm.md, "Testing"). Where the machine has a
# writable cgroup v1 memory controller, jobs are held to their --mem by it (task/cgroup), as on
# a real cluster, and DIR/memory_limits says so; elsewhere task/none enforces nothing.
#   cluster.sh start DIR   write DIR/slurm.conf, start munged, slurmctld and slurmd, wait until
#                          the node is idle; clients then need SLURM_CONF=DIR/slurm.conf
#   cluster.sh stop DIR    cancel every job, wait for an empty queue, stop the daemons
#   cluster.sh slurmd DIR  start slurmd again (after a test killed it)
#   cluster.sh forget DIR  restart slurmctld with its state cleared: Slurm forgets every job
# DIR must be short: munge's socket lives there (Unix socket paths are at most 108 bytes).
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop|slurmd|forget DIR}
dir=${2:?usage: cluster.sh start|stop|slurmd|forget DIR}
export SLURM_CONF=$dir/slurm.conf
NODE=fbnode

# A free TCP port on loopback (the kernel picks it; the race with others is small, and start
# fails loudly if it is lost).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: $what did not happen in time; logs in $dir" >&2
      tail -n 20 "$dir"/*.log >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

node_idle() { sinfo -h -N -n "$NODE" -o %T | grep -qx idle; }

start_slurmd() { slurmd -N "$NODE" -f "$SLURM_CONF"; }

start() {
  mkdir -p "$dir"/{munge,state,spool}
  chmod 755 "$dir"
  chmod 755 "$dir/munge"
  local cpus mem user
  cpus=$(nproc)
  mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
  user=$(id -un)
  mungekey -c -f -k "$dir/munge/munge.key"
  munged --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge.log" --seed-file="$dir/munge/seed" \
    --force
  local task=task/none
  if grep -q ' /sys/fs/cgroup/memory cgroup ' /proc/mounts && [ -w /sys/fs/cgroup/memory ]; then
    task=task/cgroup
    printf 'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainRAMSpace=yes\n' \
      >"$dir/cgroup.conf"
    touch "$dir/memory_limits"
  fi
  cat >"$SLURM_CONF" <<EOF
ClusterName=fbtest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=5
SlurmUser=$user
SlurmdUser=$user
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=$task
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MpiDefault=none
SlurmdTimeout=5
ReturnToService=2
JobRequeue=1
MinJobAge=300
SchedulerParameters=sched_interval=1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$SLURM_CONF"
  start_slurmd
  wait_for 20 "the node becoming idle" node_idle
}

stop() {
  [ -f "$SLURM_CONF" ] || return 0
  scancel --full -p debug 2>/dev/null || true
  wait_for 20 "an empty queue" bash -c '[ -z "$(squeue -h -t all -o %T | grep -v -e COMPLETED -e CANCELLED -e FAILED -e TIMEOUT -e NODE_FAIL -e OUT_OF_MEMORY)" ]' || true
  local pidfile pid
  for pidfile in slurmd.pid slurmctld.pid munge/munged.pid; do
    pid=$(cat "$dir/$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pidfile in slurmd.pid slurmctld.pid munge/munged.pid; do
    pid=$(cat "$dir/$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && wait_for 10 "pid $pid to stop" bash -c "! kill -0 $pid" || true
  done
}

forget() {
  local pid
  pid=$(cat "$dir/slurmctld.pid")
  kill "$pid"
  wait_for 10 "slurmctld to stop" bash -c "! kill -0 $pid"
  slurmctld -c -f "$SLURM_CONF"
  wait_for 20 "the node becoming idle" node_idle
}

case $cmd in
  start) start ;;
  stop) stop ;;
  slurmd) start_slurmd && wait_for 20 "the node becoming idle" node_idle ;;
  forget) forget ;;
  *) echo "cluster.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
