#!/usr/bin/env bash
# A throw-away single-node Slurm cluster on localhost (munged + slurmctld + slurmd) for tests, following
# ../../../shared/docs/slurm-localhost.md. All state (keys, sockets, pid files, logs, spool, jobcomp) lives under
# DIR; nothing goes into /etc, /run or /var. Must run as root (munged --force, SlurmdUser=root).
#
#   cluster.sh start DIR    start the daemons on free ports, wait until the node is idle; prints
#                           "export SLURM_CONF=DIR/slurm.conf" (every client command needs it)
#   cluster.sh stop DIR     cancel any jobs left, then stop slurmd, slurmctld and munged by their pid files
#
# Exit codes: 0 ok, 1 the cluster did not come up (the daemon logs are printed), 77 a Slurm/munge program is
# missing. Environment: SLURMCTLD_PORT / SLURMD_PORT to force ports (default: a free random pair).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
(($# == 2)) || usage
action=$1
D=$2

# True if a TCP port has a listener (IPv4 or IPv6); reads /proc so it needs neither ss nor netstat.
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Picks two consecutive free ports in 20000..59999 (random start, several tries).
pick_ports() {
  local base
  for _ in $(seq 1 50); do
    base=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! port_in_use "$base" && ! port_in_use $((base + 1)); then
      echo "$base $((base + 1))"
      return 0
    fi
  done
  echo "cluster: no free port pair found" >&2
  return 1
}

show_logs() {
  local f
  for f in "$D/slurmctld.log" "$D/slurmd.log" "$D/munge/munged.log"; do
    [ -f "$f" ] && { echo "---- tail of $f" >&2; tail -n 15 "$f" >&2; }
  done
  return 0
}

start() {
  local p
  for p in munged slurmctld slurmd sinfo sbatch scontrol squeue scancel srun; do
    command -v "$p" >/dev/null || { echo "cluster: '$p' not found (Debian: slurmctld slurmd slurm-client munge)" >&2; exit 77; }
  done
  local node ctld_port slurmd_port t0 attempt st pid f
  node=$(hostname -s)
  t0=$(date +%s%N)
  for attempt in 1 2 3; do
    if [ -n "${SLURMCTLD_PORT:-}" ] && [ -n "${SLURMD_PORT:-}" ]; then
      ctld_port=$SLURMCTLD_PORT slurmd_port=$SLURMD_PORT
    else
      read -r ctld_port slurmd_port < <(pick_ports)
    fi
    stop_daemons quiet
    rm -rf "$D"
    mkdir -p "$D"/{ctld,spool,munge}
    chmod 755 "$D/munge"  # 700: munged warns that non-root clients cannot reach the socket
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
    chmod 400 "$D/munge/munge.key"
    munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
      --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
    # cred_expire=10: a requeued job waits cred_expire+1 s (default 120). sched/bf intervals: pending jobs are
    # looked at within 1-2 s. KillWait=5: SIGKILL 5 s after SIGTERM. MinJobAge: keep records for scontrol.
    cat >"$D/slurm.conf" <<CONF
ClusterName=adaptdiff-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock,cred_expire=10
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/jobcomp.txt
JobRequeue=1
SchedulerParameters=sched_interval=2,bf_interval=1
ReturnToService=2
KillWait=5
OverTimeLimit=0
MinJobAge=600
MailProg=/bin/true
$(slurmd -C | head -1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$D/slurm.conf"
    slurmctld -f "$SLURM_CONF"  # daemonizes; pid -> $D/slurmctld.pid
    slurmd -f "$SLURM_CONF"
    st=
    local died=0
    for _ in $(seq 1 120); do
      for f in slurmctld slurmd; do
        pid=$(cat "$D/$f.pid" 2>/dev/null || true)  # the pid file appears just after the fork
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then died=1; fi
      done
      ((died)) && break
      st=$(sinfo --noheader --nodes="$node" --format=%t 2>/dev/null || true)
      [ "$st" = idle ] && break
      sleep 0.25
    done
    if [ "$st" = idle ]; then
      echo "cluster: node $node idle after $((($(date +%s%N) - t0) / 1000000)) ms (ports $ctld_port/$slurmd_port)"
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    echo "cluster: attempt $attempt failed (node state '${st:-?}', a daemon died: $died)" >&2
    show_logs
    # Only a port clash is worth another try on other ports.
    grep -qs "Address already in use" "$D/slurmctld.log" "$D/slurmd.log" || break
    [ -z "${SLURMCTLD_PORT:-}" ] || break
  done
  stop_daemons quiet
  return 1
}

# Stops the daemons of DIR by their pid files (never by name): TERM, then KILL after 10 s.
stop_daemons() {
  local quiet=${1:-} f pid
  for f in slurmd slurmctld munge/munged; do
    pid=$(cat "$D/$f.pid" 2>/dev/null) || continue
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "cluster: $f ($pid) SIGKILLed"
    elif [ -z "$quiet" ]; then
      echo "cluster: $f ($pid) stopped"
    fi
  done
}

stop() {
  [ -d "$D" ] || return 0
  if [ -f "$D/slurm.conf" ] && [ -f "$D/slurmctld.pid" ] && kill -0 "$(cat "$D/slurmctld.pid")" 2>/dev/null; then
    export SLURM_CONF="$D/slurm.conf"
    # Cancel what is left so that no job step (slurmstepd and its tasks) outlives the cluster.
    local ids
    mapfile -t ids < <(squeue --noheader --format=%i 2>/dev/null)
    if ((${#ids[@]})); then
      scancel --full --quiet "${ids[@]}" 2>/dev/null || true
      for _ in $(seq 1 60); do
        [ -z "$(squeue --noheader --format=%i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemons
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
