#!/usr/bin/env bash
# Stop the daemons benchmarks/slurm/setup.sh started, by the pids it recorded (never by name):
# slurmd, slurmctld, slurmdbd, mariadb, munged, in that order. SIGTERM, then SIGKILL after a
# deadline. Jobs still running are cancelled first so that their slurmstepd processes end too.
#
#   benchmarks/slurm/stop.sh            (root)

set -uo pipefail

BASE="${SPUR_SLURM_BASE:-/var/tmp/spur-bench-slurm}"
PIDS="$BASE/pids"
export SLURM_CONF="$BASE/etc/slurm.conf"

log() { echo "stop.sh: $*" >&2; }

alive_pid() {
    [ -d "/proc/$1" ] && ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

if [ ! -d "$PIDS" ]; then
    log "nothing recorded in $PIDS"
    exit 0
fi

# Cancel this cluster's jobs while slurmctld and slurmd still run (bounded: KillWait is 30 s).
if [ -f "$PIDS/slurmctld.pid" ] && alive_pid "$(cat "$PIDS/slurmctld.pid")"; then
    if timeout 20 scancel --state=PENDING,RUNNING,SUSPENDED 2>/dev/null; then
        end=$((SECONDS + 45))
        while [ "$SECONDS" -lt "$end" ] && \
              [ -n "$(timeout 10 squeue -h -t R,S,CG -o %i 2>/dev/null)" ]; do
            sleep 0.5
        done
    fi
fi

for name in slurmd slurmctld slurmdbd mariadb munged; do
    f="$PIDS/$name.pid"
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    if [ -z "$pid" ] || ! alive_pid "$pid"; then
        rm -f "$f"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null
    end=$((SECONDS + 60))
    while alive_pid "$pid" && [ "$SECONDS" -lt "$end" ]; do
        sleep 0.1
    done
    if alive_pid "$pid"; then
        log "$name (pid $pid) did not stop after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    rm -f "$f"
    log "stopped $name (pid $pid)"
done
