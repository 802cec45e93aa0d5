#!/usr/bin/env bash
# A SLURM cluster on localhost for tests and CI: munge + slurmctld + N slurmd + accounting (slurmdbd
# on a private MariaDB, so `sacct` answers as on a real cluster: submitit's job watcher reads job
# states from it), one partition, no GPUs (render CPU job scripts with
# `python -m vat.launch sbatch --gpus-per-node 0 --tasks-per-node 2`). Everything lives under
# $VAT_SLURM_DIR (default /tmp/vat-slurm); the daemons run as the calling user (root in CI).
#   launch/local_slurm/cluster.sh start [--nodes N]   # writes $VAT_SLURM_DIR/slurm.conf, starts all
#   export SLURM_CONF=$VAT_SLURM_DIR/slurm.conf; sbatch ...; squeue
#   launch/local_slurm/cluster.sh stop                 # stops every daemon and job process it started
# Nodes: $NNODES or --nodes (default 1). One node is this host, under its own name. N > 1 nodes are
# n1..nN, each a slurmd in its own UTS + mount namespace (needs root): its own hostname, and a
# private /etc/hosts (this host's plus n1..nN -> 127.0.0.1) so node names resolve inside jobs
# (MASTER_ADDR=n1). The host's hostname and /etc/hosts are never changed. All nodes listen on
# 127.0.0.1 with their own port: with one 127.0.0.x address per node, srun inside a batch job hangs
# (slurmstepd connects back to the source address the kernel picked, 127.0.0.1).
# Every node gets $VAT_SLURM_CPUS CPUs (default: this machine's), so 2 nodes oversubscribe a
# 2-core machine: fine for tests, not for timings.
# Needs: apt-get install slurm-wlm munge slurmdbd mariadb-server (Debian 12: SLURM 22.05).
# Ports: $VAT_SLURM_PORT (default 16817) for slurmctld, +1 slurmd (one node), +2 slurmdbd,
# +3 MariaDB, +4.. the slurmd of n1..nN (127.0.0.1).
set -euo pipefail
DIR="${VAT_SLURM_DIR:-/tmp/vat-slurm}"
CPUS="${VAT_SLURM_CPUS:-$(getconf _NPROCESSORS_ONLN)}"  # not nproc: it obeys OMP_NUM_THREADS
HOST="$(hostname -s)"
PORT="${VAT_SLURM_PORT:-16817}"
USER_NAME="$(id -un)"
NNODES="${NNODES:-1}"

# the nodes' names: this host alone, or n1..nN
node_names() {
  if [ "$NNODES" -eq 1 ]; then echo "$HOST"; else seq -f "n%g" 1 "$NNODES"; fi
}

start() {
  case "$NNODES" in ''|*[!0-9]*|0) echo "NNODES=$NNODES: a number of nodes >= 1" >&2; exit 2 ;; esac
  if [ "$NNODES" -gt 1 ] && [ "$(id -u)" -ne 0 ]; then
    echo "NNODES=$NNODES needs root (each node's slurmd runs in its own namespaces: unshare)" >&2
    exit 2
  fi
  for c in slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db unshare; do
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
# cred_expire=10 (s, default 120) and sched_interval=5: a requeued job may start again after ~15 s
# instead of ~3 min (slurmctld waits for the old job credential to expire).
AuthInfo=socket=$DIR/munge/socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldPort=$PORT
SlurmdPort=$(( PORT + 1 ))
CommunicationParameters=NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
LaunchParameters=use_interactive_step
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
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
SlurmdTimeout=30
InactiveLimit=0
$(node_lines)
PartitionName=local Nodes=$(node_names | paste -sd,) Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$DIR/slurm.conf"
  if ! scontrol ping >/dev/null 2>&1 || ! scontrol ping | grep -q UP; then
    slurmctld -i -f "$SLURM_CONF"
  fi
  start_nodes
  local nodes
  nodes="$(node_names | paste -sd' ')"
  for i in $(seq 60); do
    if [ "$(timeout 10 sinfo -h -N -o %T 2>/dev/null | grep -c '^idle')" -eq "$NNODES" ]; then
      echo "local SLURM up: SLURM_CONF=$SLURM_CONF ($NNODES node(s): $nodes; $CPUS CPUs each)"
      return 0
    fi
    if [ "$i" -gt 3 ] && ! kill -0 "$(cat "$DIR/slurmctld.pid" 2>/dev/null)" 2>/dev/null; then
      break  # slurmctld exited: waiting longer will not help
    fi
    sleep 1
  done
  echo "local SLURM did not come up; logs in $DIR/log" >&2
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log"/slurmd-*.log "$DIR/log/slurmdbd.log" >&2 || true
  exit 1
}

# slurm.conf's NodeName lines: this host on SlurmdPort, or n1..nN on 127.0.0.1:$PORT+3+i
node_lines() {
  if [ "$NNODES" -eq 1 ]; then
    echo "NodeName=$HOST CPUs=$CPUS State=UNKNOWN"
    return
  fi
  local i
  for i in $(seq "$NNODES"); do
    echo "NodeName=n$i NodeHostname=n$i NodeAddr=127.0.0.1 Port=$(( PORT + 3 + i )) CPUs=$CPUS State=UNKNOWN"
  done
}

# One slurmd per node. n1..nN: in its own UTS + mount namespace with its hostname and a private
# /etc/hosts; the namespaces (and every job process in them) end with the node's processes.
start_nodes() {
  local n pid
  if [ "$NNODES" -gt 1 ]; then
    { cat /etc/hosts; echo "127.0.0.1 $(node_names | paste -sd' ')"; } > "$DIR/hosts"
  fi
  for n in $(node_names); do
    mkdir -p "$DIR/spool/$n"
    pid="$DIR/slurmd-$n.pid"
    [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null && continue
    if [ "$NNODES" -eq 1 ]; then
      slurmd -f "$SLURM_CONF"
    else
      unshare --uts --mount --propagation private sh -c \
        'hostname "$1" && mount --bind "$2" /etc/hosts && exec slurmd -N "$1" -f "$3"' \
        sh "$n" "$DIR/hosts" "$SLURM_CONF"
    fi
  done
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

# The daemons, then whatever is left in the nodes' namespaces (job steps, their tasks); processes
# of the host namespace other than the daemons are never touched. Returns once all have exited.
stop() {
  export SLURM_CONF="$DIR/slurm.conf"
  local f pid ns p namespaces=() pids=()
  for f in "$DIR"/slurmd-*.pid; do
    [ -f "$f" ] || continue
    ns="$(readlink "/proc/$(cat "$f")/ns/uts" 2>/dev/null)" || continue
    [ "$ns" != "$(readlink /proc/self/ns/uts)" ] && namespaces+=("$ns")
  done
  for f in "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid" "$DIR/slurmdbd.pid" "$DIR/db/mariadbd.pid" \
      "$DIR/munge/munged.pid"; do
    if [ -f "$f" ] && pid="$(cat "$f")" && kill "$pid" 2>/dev/null; then pids+=("$pid"); fi
  done
  for ns in "${namespaces[@]}"; do  # job processes on n1..nN: slurmstepd, batch scripts, tasks
    for p in /proc/[0-9]*; do
      if [ "$(readlink "$p/ns/uts" 2>/dev/null)" = "$ns" ]; then
        kill -9 "${p#/proc/}" 2>/dev/null && pids+=("${p#/proc/}")
      fi
    done
  done
  for _ in $(seq 100); do  # up to 20 s; a zombie (state Z) has exited
    local alive=0
    for pid in "${pids[@]}"; do
      [ -r "/proc/$pid/stat" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] \
        && alive=1 && break
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
  done
  rm -f "$DIR"/slurmd-*.pid
  echo "local SLURM stopped"
}

cmd="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NNODES="$2"; shift 2 ;;
    --nodes=*) NNODES="${1#--nodes=}"; shift ;;
    *) echo "usage: $0 start|stop [--nodes N]" >&2; exit 2 ;;
  esac
done
case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [--nodes N]" >&2; exit 2 ;;
esac
