#!/usr/bin/env bash
# A single-host SLURM cluster on localhost for tests and CI: munge + slurmctld + slurmd + accounting
# (slurmdbd on a private MariaDB, so `sacct` answers as on a real cluster: submitit's job watcher
# reads job states from it), one node with this machine's CPUs, one partition, no GPUs (render CPU job scripts with
# `python -m vat.launch sbatch --gpus-per-node 0 --tasks-per-node 2`). Everything lives under $VAT_SLURM_DIR (default
# /tmp/vat-slurm); the daemons run as the calling user (root in CI).
#   launch/local_slurm/cluster.sh start      # writes $VAT_SLURM_DIR/slurm.conf, starts the daemons
#   export SLURM_CONF=$VAT_SLURM_DIR/slurm.conf; sbatch ...; squeue
#   launch/local_slurm/cluster.sh stop
# Needs: apt-get install slurm-wlm munge slurmdbd mariadb-server (Debian 12: SLURM 22.05).
# Ports: $VAT_SLURM_PORT (default 16817) for slurmctld, +1 slurmd, +2 slurmdbd, +3 MariaDB (127.0.0.1).
set -euo pipefail
DIR="${VAT_SLURM_DIR:-/tmp/vat-slurm}"
CPUS="${VAT_SLURM_CPUS:-$(getconf _NPROCESSORS_ONLN)}"  # not nproc: it obeys OMP_NUM_THREADS
HOST="$(hostname -s)"
PORT="${VAT_SLURM_PORT:-16817}"
USER_NAME="$(id -un)"

start() {
  for c in slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db; do
    command -v "$c" >/dev/null || { echo "$c not found: apt-get install slurm-wlm munge slurmdbd mariadb-server" >&2; exit 2; }
  done
  mkdir -p "$DIR"/{state,spool,log,munge,db}
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
  start_accounting
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
SlurmctldPort=$PORT
SlurmdPort=$(( PORT + 1 ))
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$(( PORT + 2 ))
AccountingStoragePass=$DIR/munge/socket
JobAcctGatherType=jobacct_gather/none
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
  for i in $(seq 60); do
    if timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
      echo "local SLURM up: SLURM_CONF=$SLURM_CONF ($HOST: $CPUS CPUs)"; return 0
    fi
    if [ "$i" -gt 3 ] && ! kill -0 "$(cat "$DIR/slurmctld.pid" 2>/dev/null)" 2>/dev/null; then
      break  # slurmctld exited: waiting longer will not help
    fi
    sleep 1
  done
  echo "local SLURM did not come up; logs in $DIR/log" >&2
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$DIR/log/slurmdbd.log" >&2 || true
  exit 1
}

# MariaDB on 127.0.0.1:$PORT+3 with its data in $DIR/db, and slurmdbd on $PORT+2 in front of it.
start_accounting() {
  local dbport=$(( PORT + 3 ))
  if [ ! -d "$DIR/db/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$DIR/db/data" --user="$USER_NAME" \
      --auth-root-authentication-method=normal --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
  fi
  if ! mariadb --no-defaults -h 127.0.0.1 -P "$dbport" -u root -e "SELECT 1" >/dev/null 2>&1; then
    mariadbd --no-defaults --datadir="$DIR/db/data" --user="$USER_NAME" --bind-address=127.0.0.1 \
      --port="$dbport" --socket="$DIR/db/mysqld.sock" --pid-file="$DIR/db/mariadbd.pid" \
      --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    for _ in $(seq 60); do
      mariadb --no-defaults -h 127.0.0.1 -P "$dbport" -u root -e "SELECT 1" >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  mariadb --no-defaults -h 127.0.0.1 -P "$dbport" -u root -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'vatlocal';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'vatlocal';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" \
    || { echo "MariaDB did not come up; log in $DIR/log/mariadb.log" >&2; tail -n 20 "$DIR/log/mariadb.log" >&2; exit 1; }
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be private to SlurmUser
  cat > "$DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
DbdHost=localhost
DbdPort=$(( PORT + 2 ))
SlurmUser=$USER_NAME
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$dbport
StorageUser=slurm
StoragePass=vatlocal
StorageLoc=slurm_acct_db
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
CONF
  chmod 600 "$DIR/slurmdbd.conf"
  if ! [ -f "$DIR/slurmdbd.pid" ] || ! kill -0 "$(cat "$DIR/slurmdbd.pid")" 2>/dev/null; then
    SLURM_CONF="$DIR/slurm.conf" slurmdbd
  fi
  for _ in $(seq 60); do  # slurmctld registers the cluster when it can reach slurmdbd
    (exec 3<>"/dev/tcp/127.0.0.1/$(( PORT + 2 ))") 2>/dev/null && return 0
    sleep 1
  done
  echo "slurmdbd did not come up; log in $DIR/log/slurmdbd.log" >&2
  tail -n 20 "$DIR/log/slurmdbd.log" >&2 || true
  exit 1
}

stop() {
  export SLURM_CONF="$DIR/slurm.conf"
  for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/slurmdbd.pid" "$DIR/db/mariadbd.pid" \
      "$DIR/munge/munged.pid"; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  sleep 2
  echo "local SLURM stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
