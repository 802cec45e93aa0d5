#!/usr/bin/env bash
# A single-host SLURM cluster on localhost for tests and CI: munge + slurmctld + slurmd, one node
# with this machine's CPUs, one partition, no GPUs (render CPU job scripts with
# `python -m vat.launch sbatch --gpus-per-node 0 --tasks-per-node 2`). Everything lives under $VAT_SLURM_DIR (default
# /tmp/vat-slurm); the daemons run as the calling user (root in CI).
#   launch/local_slurm/cluster.sh start      # writes $VAT_SLURM_DIR/slurm.conf, starts the daemons
#   export SLURM_CONF=$VAT_SLURM_DIR/slurm.conf; sbatch ...; squeue
#   launch/local_slurm/cluster.sh stop
# Needs: apt-get install slurm-wlm munge (Debian 12: SLURM 22.05).
set -euo pipefail
DIR="${VAT_SLURM_DIR:-/tmp/vat-slurm}"
CPUS="${VAT_SLURM_CPUS:-$(getconf _NPROCESSORS_ONLN)}"  # not nproc: it obeys OMP_NUM_THREADS
HOST="$(hostname -s)"
USER_NAME="$(id -un)"

start() {
  command -v slurmctld >/dev/null || { echo "slurmctld not found: apt-get install slurm-wlm munge" >&2; exit 2; }
  mkdir -p "$DIR"/{state,spool,log,munge}
  chmod 700 "$DIR/munge"
  # munge: a private key and socket for this cluster (the system munged is left alone)
  if [ ! -f "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
    chmod 400 "$DIR/munge/munge.key"
  fi
  if ! munge -n -S "$DIR/munge/socket" >/dev/null 2>&1; then
    munged --force -S "$DIR/munge/socket" --key-file="$DIR/munge/munge.key" \
      --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
  fi
  cat > "$DIR/slurm.conf" <<CONF
ClusterName=vatlocal
SlurmctldHost=$HOST
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${VAT_SLURM_PORT:-16817}
SlurmdPort=$(( ${VAT_SLURM_PORT:-16817} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
LaunchParameters=use_interactive_step
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$DIR/slurm.conf"
  if ! scontrol ping >/dev/null 2>&1 || ! scontrol ping | grep -q UP; then
    slurmctld -i -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
  fi
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
      echo "local SLURM up: SLURM_CONF=$SLURM_CONF ($HOST: $CPUS CPUs)"; return 0
    fi
    sleep 1
  done
  echo "local SLURM did not come up; logs in $DIR/log" >&2
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  exit 1
}

stop() {
  export SLURM_CONF="$DIR/slurm.conf"
  for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  sleep 1
  echo "local SLURM stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
