#!/usr/bin/env bash
# A real single-node Slurm for the cohort tests (Debian packages slurm-wlm and munge, installed
# by .ci/run): `cluster.sh start DIR` starts munged, slurmctld and slurmd with every file under
# DIR (config, state, logs, munge socket), on free ports, and prints DIR/slurm.conf once the
# node is idle; `cluster.sh stop DIR` stops them. Point Slurm commands at it with
# SLURM_CONF=DIR/slurm.conf. No systemd is needed (none runs in CI containers).
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
conf="$dir/slurm.conf"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$cmd" in
start)
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chmod 700 "$dir/munge"
  # Its own munged, on its own socket: nothing shared with a system munged.
  munged --force --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" 2>>"$dir/munge/munged.err"
  host=$(hostname -s)
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=… RealMemory=… (this machine's own line)
  cat > "$conf" <<CONF
ClusterName=haidef-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=10
SchedulerParameters=sched_interval=1
$node State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 100); do
    if SLURM_CONF="$conf" sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "$conf"
      exit 0
    fi
    sleep 0.2
  done
  echo "Slurm did not come up; logs in $dir" >&2
  tail -5 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/munge/munged.log >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$conf" ]; then SLURM_CONF="$conf" scontrol shutdown >/dev/null 2>&1 || true; fi
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  ;;
*) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
