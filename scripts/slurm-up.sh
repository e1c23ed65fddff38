#!/usr/bin/env bash
# Brings up a one-node Slurm cluster on this machine, so sweeps can run with hydra/launcher=slurm:
#   sudo bash scripts/slurm-up.sh && python main.py -m hydra/launcher=slurm problem=fizz-buzz,gcd
# Idempotent: installs slurm-wlm and munge only when missing, keeps an existing munge key, starts
# only the daemons that are not running, and restarts the Slurm daemons only when slurm.conf changed.
# It starts daemons by hand, so it works where there is no systemd (containers, CI runners).
set -euo pipefail
# the daemons live in sbin, which a non-login root shell may not have on its PATH
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts munged, slurmctld and slurmd)"

conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
state_dir=/var/spool/slurmctld
spool_dir=/var/spool/slurmd
log_dir=/var/log/slurm
ctld_pid=/run/slurmctld.pid
slurmd_pid=/run/slurmd.pid

# --- packages ---------------------------------------------------------------------------------
missing=()
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
[ -x /usr/sbin/munged ] || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  # the packages' postinst may try to start services; with no init system that fails harmlessly
  apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
for tool in slurmctld slurmd sinfo scontrol munge unmunge; do
  command -v "$tool" >/dev/null || die "$tool is missing after installing slurm-wlm and munge"
done

# --- munge: the cluster's authentication ------------------------------------------------------
id munge >/dev/null 2>&1 || die "the munge package did not create the munge user"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating a munge key"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
  # a munged killed uncleanly leaves its pid file and socket behind, and a new one refuses to start
  if [ -s /run/munge/munged.pid ] && ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  fi
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 50); do munge_works && break; sleep 0.2; done
  munge_works || die "munged is running but munge -n | unmunge fails (see /var/log/munge/munged.log)"
fi

# --- slurm.conf: this machine as the only node ------------------------------------------------
node=$(hostname -s)
# slurmctld, slurmd and srun find each other by this name
getent hosts "$node" >/dev/null || die "this machine's name $node does not resolve; add it to /etc/hosts (e.g. 127.0.1.1 $node)"
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
# Slurm drains a node that has less memory than slurm.conf claims; leave room for the OS
real_mb=$(( mem_mb > 2048 ? mem_mb - 1024 : mem_mb * 9 / 10 ))

install -d -m 0755 "$conf_dir" "$state_dir" "$spool_dir" "$log_dir"
wanted=$(cat <<EOF
# Written by seidr's scripts/slurm-up.sh: a one-node cluster on $node.
ClusterName=seidr
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups: containers often lack a writable cgroup tree, and one node needs no fencing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Preempted or timed-out submitit jobs requeue themselves with scontrol requeue
JobRequeue=1
ReturnToService=2
StateSaveLocation=$state_dir
SlurmdSpoolDir=$spool_dir
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=30
# No accounting database here: finished jobs stay visible to scontrol show job for an hour
MinJobAge=3600
NodeName=$node CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  say "writing $conf ($node: $cpus CPUs, ${real_mb} MB)"
  printf '%s\n' "$wanted" > "$conf"
  changed=1
fi

# --- daemons ----------------------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # $1: pid file of a daemon this script started
  local pid
  running "$1" || return 0
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "daemon $pid (from $1) did not stop"
}
if [ "$changed" = 1 ]; then
  # node and partition changes need the daemons restarted, not just reconfigured
  stop "$slurmd_pid"
  stop "$ctld_pid"
fi
if ! running "$ctld_pid"; then
  say "starting slurmctld"
  slurmctld || die "slurmctld did not start (see $log_dir/slurmctld.log)"
fi
for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer (see $log_dir/slurmctld.log)"
if ! running "$slurmd_pid"; then
  say "starting slurmd"
  slurmd || die "slurmd did not start (see $log_dir/slurmd.log)"
fi

# --- wait for the node --------------------------------------------------------------------------
state=""
for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n1)
  case "$state" in
    idle|mixed|allocated|completing) say "node $node is $state; partition debug is up"; exit 0 ;;
    down*|drain*|fail*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
reason=$(sinfo -h -n "$node" -o %E 2>/dev/null | head -n1)
die "node $node is not up after 60 s (state '${state:-none}'${reason:+, reason: $reason}; see $log_dir/slurmd.log and $log_dir/slurmctld.log)"
