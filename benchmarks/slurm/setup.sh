#!/usr/bin/env bash
# Install Debian's Slurm (slurm-wlm 22.05) with munge, slurmdbd and MariaDB, write a one-node
# loopback configuration for this machine, and start the daemons directly (no systemd).
#
#   benchmarks/slurm/setup.sh [default|tuned]      (root; idempotent)
#
# Everything lives under $SPUR_SLURM_BASE (default /var/tmp/spur-bench-slurm):
#   etc/slurm.conf, etc/slurmdbd.conf, etc/cgroup.conf   the configuration (SLURM_CONF=etc/slurm.conf)
#   env.sh                                               `source` it to use sbatch/squeue/... by hand
#   pids/<daemon>.pid                                    the pid of every daemon this script started
#   log/<daemon>.log, state/, spool/, mysql/, run/       logs, StateSaveLocation, SlurmdSpoolDir, ...
#
# The argument picks SchedulerParameters: "default" (Slurm's defaults: no parameter line) or
# "tuned" (the set from Slurm's high_throughput guide). Re-running with the other variant
# rewrites slurm.conf and runs `scontrol reconfigure` on the running controller.
# benchmarks/slurm/stop.sh stops exactly the daemons whose pids are recorded in pids/.

set -euo pipefail
set +m  # no job control: a background job is then no group leader, so setsid execs (no fork) and $! is the daemon

VARIANT="${1:-default}"
case "$VARIANT" in
    default|tuned) ;;
    *) echo "usage: $0 [default|tuned]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: must run as root (it installs packages and starts slurmd)" >&2
    exit 1
fi

BASE="${SPUR_SLURM_BASE:-/var/tmp/spur-bench-slurm}"
CLUSTER=spurbench
DB_PORT="${SPUR_SLURM_DB_PORT:-3316}"
DB_PASS=spurbench
MUNGE_SOCKET=/run/munge/munge.socket.2   # Slurm's compiled-in default socket path
HOST="$(hostname -s)"
NPROC="$(nproc)"
KILL_WAIT=30        # Slurm's default, written out explicitly
MIN_JOB_AGE=300     # Slurm's default
MAX_JOB_COUNT=200000  # default 10000; raised for the 100,000-queued-jobs workload
MAX_ARRAY_SIZE=10001  # default 1001; raised for the 10,000-task array (Spur runs with the same)
TUNED_PARAMS="batch_sched_delay=20,bf_continue,bf_interval=300,bf_min_age_reserve=10800,bf_resolution=600,bf_yield_interval=1000000,partition_job_depth=500,sched_max_job_start=200,sched_min_interval=2000000"

ETC="$BASE/etc"; PIDS="$BASE/pids"; LOG="$BASE/log"; RUN="$BASE/run"
STATE="$BASE/state"; SPOOL="$BASE/spool/slurmd"; MYSQL_DATA="$BASE/mysql"
MYSQL_RUN="$RUN/mysqld"; MYSQL_SOCK="$MYSQL_RUN/mysqld.sock"
export SLURM_CONF="$ETC/slurm.conf"

log() { echo "setup.sh: $*" >&2; }

# wait_until DEADLINE_SECONDS DESCRIPTION DAEMON COMMAND...: retry COMMAND every 0.2 s until it
# succeeds; give up at the deadline or as soon as DAEMON (a name in pids/, or "-") has died.
wait_until() {
    local limit=$1 what=$2 daemon=$3; shift 3
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$daemon" != - ] && ! alive "$daemon"; then
            log "$daemon died while waiting for $what; the end of its log:"
            tail -n 5 "$LOG/$daemon.out" >&2 || true
            return 1
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            log "timed out after ${limit}s waiting for $what (logs: $LOG)"
            return 1
        fi
        sleep 0.2
    done
}

alive() {  # alive NAME: the recorded pid of NAME is running (and not a zombie)
    local f="$PIDS/$1.pid" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f")"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

# start NAME COMMAND...: start COMMAND in the background (it must stay in the foreground
# itself, or exec into the daemon) in a new session, and record its pid.
start() {
    local name=$1; shift
    if alive "$name"; then
        log "$name already running (pid $(cat "$PIDS/$name.pid"))"
        return 0
    fi
    setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
    echo $! >"$PIDS/$name.pid"
    log "started $name (pid $!)"
}

# --- 1. packages ------------------------------------------------------------------------------
PKGS=(slurm-wlm munge slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q
    # (without systemd as PID 1 the maintainer scripts start no daemon; this script does)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
SLURM_VERSION="$(dpkg-query -W -f='${Version}' slurm-wlm)"

# --- 2. directories ---------------------------------------------------------------------------
mkdir -p "$ETC" "$PIDS" "$LOG" "$LOG/munge" "$RUN" "$RUN/slurm" "$MYSQL_RUN" "$STATE" "$SPOOL" "$MYSQL_DATA" /run/munge
chmod 0755 "$BASE" "$RUN" "$LOG"
chown slurm:slurm "$STATE" "$RUN/slurm"
chown munge:munge /run/munge "$LOG/munge"
chmod 0755 /run/munge
chmod 0700 "$LOG/munge"
chown mysql:mysql "$MYSQL_DATA" "$MYSQL_RUN"
touch "$LOG/slurmctld.log" "$LOG/slurmdbd.log" "$LOG/slurmd.log" "$LOG/mariadb.log"
chown slurm:slurm "$LOG/slurmctld.log" "$LOG/slurmdbd.log"
chown mysql:mysql "$LOG/mariadb.log"

# --- 3. configuration -------------------------------------------------------------------------
# proctrack/cgroup when this kernel gives us a writable cgroup v1 freezer hierarchy (Slurm 22.05's
# cgroup/v2 plugin needs systemd to create its scope, and PID 1 here may not be systemd);
# otherwise proctrack/linuxproc. SPUR_SLURM_PROCTRACK=cgroup|linuxproc forces a choice.
cgroup_v1_freezer_ok() {
    local d=/sys/fs/cgroup/freezer/spur-bench-probe.$$
    [ "$(stat -f -c %T /sys/fs/cgroup/freezer 2>/dev/null)" = cgroupfs ] || return 1
    mkdir "$d" 2>/dev/null || return 1
    rmdir "$d"
}
PROCTRACK="${SPUR_SLURM_PROCTRACK:-}"
if [ -z "$PROCTRACK" ]; then
    if cgroup_v1_freezer_ok; then PROCTRACK=cgroup; else PROCTRACK=linuxproc; fi
fi
case "$PROCTRACK" in
    cgroup|linuxproc) ;;
    *) echo "setup.sh: SPUR_SLURM_PROCTRACK must be cgroup or linuxproc" >&2; exit 2 ;;
esac

# slurmd -C prints this machine's topology; use it so slurmd never finds fewer resources
# than configured (which would drain the node).
read -r SOCKETS CORES THREADS MEM < <(slurmd -C | head -1 | tr ' ' '\n' | awk -F= '
    $1=="SocketsPerBoard"{s=$2} $1=="CoresPerSocket"{c=$2} $1=="ThreadsPerCore"{t=$2}
    $1=="RealMemory"{m=$2} END{print s, c, t, m}')
FREE_MB="$(free -m | awk '/^Mem:/{print $2}')"
MARGIN_MB=$(( FREE_MB / 20 > 512 ? FREE_MB / 20 : 512 ))   # 5%, at least 512 MB
REAL_MEMORY=$(( FREE_MB - MARGIN_MB ))

if [ "$VARIANT" = tuned ]; then
    SCHED_LINE="SchedulerParameters=$TUNED_PARAMS"
else
    SCHED_LINE="#SchedulerParameters=   (Slurm defaults: batch_sched_delay=3, default_queue_depth=100, ...)"
fi

new_conf="$(mktemp)"
cat >"$new_conf" <<EOF
# Written by benchmarks/slurm/setup.sh ($VARIANT scheduler parameters). One node, loopback only.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=$RUN/slurm/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
# proctrack/cgroup if a cgroup v1 freezer is usable here, else linuxproc (docs/performance.md)
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
KillWait=$KILL_WAIT
MinJobAge=$MIN_JOB_AGE
MaxJobCount=$MAX_JOB_COUNT
MaxArraySize=$MAX_ARRAY_SIZE
$SCHED_LINE
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NPROC Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# changed=1: only SchedulerParameters differ (scontrol reconfigure is enough);
# changed=2: anything else (ProctrackType, the node line, ...): slurmctld and slurmd restart.
changed=0
if ! cmp -s "$new_conf" "$ETC/slurm.conf"; then
    if [ -f "$ETC/slurm.conf" ] && cmp -s <(grep -v SchedulerParameters "$new_conf" | sed 1d) \
                                          <(grep -v SchedulerParameters "$ETC/slurm.conf" | sed 1d); then
        changed=1
    else
        changed=2
    fi
    install -m 0644 "$new_conf" "$ETC/slurm.conf"
fi
rm -f "$new_conf"

# cgroup.conf (read by proctrack/cgroup): autodetect picks cgroup/v1 here; nothing is
# constrained, as with task/none.
cat >"$ETC/cgroup.conf" <<EOF
# Written by benchmarks/slurm/setup.sh
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF

cat >"$ETC/slurmdbd.conf" <<EOF
# Written by benchmarks/slurm/setup.sh
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chown slurm:slurm "$ETC/slurmdbd.conf"
chmod 0600 "$ETC/slurmdbd.conf"

cat >"$BASE/env.sh" <<EOF
# source this file to use this Slurm cluster's commands
export SLURM_CONF=$ETC/slurm.conf
EOF
cat >"$BASE/versions.txt" <<EOF
slurm-wlm $SLURM_VERSION
munge $(dpkg-query -W -f='${Version}' munge)
mariadb-server $(dpkg-query -W -f='${Version}' mariadb-server)
EOF

# --- 4. munged ----------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
# --num-threads=10: the high_throughput guide's recommendation (used for both variants)
start munged setpriv --reuid=munge --regid=munge --init-groups \
    /usr/sbin/munged -F --num-threads=10 --socket="$MUNGE_SOCKET" --pid-file=/run/munge/munged.pid \
    --log-file="$LOG/munge/munged.log" --seed-file=/var/lib/munge/munged.seed
wait_until 20 "munged" munged bash -c 'munge -n | unmunge'

# --- 5. MariaDB (a private instance: its own datadir, socket and port on 127.0.0.1) ------------
if [ ! -d "$MYSQL_DATA/mysql" ]; then
    log "initialising MariaDB in $MYSQL_DATA"
    mariadb-install-db --user=mysql --datadir="$MYSQL_DATA" --auth-root-authentication-method=socket \
        >"$LOG/mariadb-install.log" 2>&1
fi
start mariadb /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MYSQL_DATA" \
    --socket="$MYSQL_SOCK" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --pid-file="$MYSQL_RUN/mariadb.pid" --log-error="$LOG/mariadb.log" \
    --innodb-buffer-pool-size=512M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900
wait_until 60 "MariaDB" mariadb mariadb --no-defaults --socket="$MYSQL_SOCK" -uroot -e 'SELECT 1'
mariadb --no-defaults --socket="$MYSQL_SOCK" -uroot <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF

# --- 6. slurmdbd ----------------------------------------------------------------------------------
start slurmdbd /usr/sbin/slurmdbd -D
wait_until 60 "slurmdbd (sacctmgr)" slurmdbd sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER"
sacctmgr -n -P list account format=account | grep -qx bench \
    || sacctmgr -i add account bench Cluster="$CLUSTER" Description=bench Organization=bench
sacctmgr -n -P list user format=user,defaultaccount | grep -qx 'root|bench' \
    || sacctmgr -i add user root Account=bench DefaultAccount=bench Cluster="$CLUSTER" AdminLevel=Administrator \
    || true

# --- 7. slurmctld and slurmd -----------------------------------------------------------------------
stop_daemon() {  # stop_daemon NAME: SIGTERM its recorded pid and wait (60 s) for it to exit
    local pid
    alive "$1" || return 0
    pid="$(cat "$PIDS/$1.pid")"
    kill -TERM "$pid"
    local end=$((SECONDS + 60))
    while alive "$1" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    if alive "$1"; then
        log "$1 (pid $pid) ignores SIGTERM: SIGKILL"
        kill -KILL "$pid"
        sleep 0.5
    fi
    rm -f "$PIDS/$1.pid"
}
if [ "$changed" = 1 ] && alive slurmctld; then
    log "SchedulerParameters changed: scontrol reconfigure"
    scontrol reconfigure
elif [ "$changed" = 2 ] && { alive slurmctld || alive slurmd; }; then
    log "slurm.conf changed: restarting slurmd and slurmctld"
    stop_daemon slurmd
    stop_daemon slurmctld
fi
start slurmctld /usr/sbin/slurmctld -D
wait_until 60 "slurmctld (scontrol ping)" slurmctld bash -c 'scontrol ping | grep -q "is UP"'
start slurmd /usr/sbin/slurmd -D
wait_until 60 "node $HOST idle in sinfo" slurmd bash -c "sinfo -h -n '$HOST' -o %T | grep -qx idle"
wait_until 30 "sacctmgr" slurmdbd sacctmgr -n show cluster "$CLUSTER"
# a node that was drained/down by an earlier run comes back
state="$(sinfo -h -n "$HOST" -o %T)"
if [ "$state" != idle ]; then
    scontrol update NodeName="$HOST" State=RESUME || true
    wait_until 30 "node $HOST idle" slurmd bash -c "sinfo -h -n '$HOST' -o %T | grep -qx idle"
fi
echo "proctrack/$PROCTRACK" >"$BASE/proctrack.txt"
log "Slurm $SLURM_VERSION up (proctrack/$PROCTRACK, $VARIANT scheduler parameters): export SLURM_CONF=$ETC/slurm.conf"
