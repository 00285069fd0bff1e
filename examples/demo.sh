#!/usr/bin/env bash
# `make demo`: a 3-replica cluster with 2 nodes on this machine, a few jobs, Slurm's views.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.venv/bin"
DIR="${DEMO_DIR:-$(mktemp -d /tmp/spur-demo.XXXXXX)}"
WORK="$DIR/work"
mkdir -p "$WORK"
export PATH="$BIN:$PATH"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

cleanup() { say "spur local down --dir $DIR"; spur local down --dir "$DIR" || true; }
trap cleanup EXIT

say "spur local up --dir $DIR --replicas 3 --nodes 2 --cpus 2"
eval "$(spur local up --dir "$DIR" --replicas 3 --nodes 2 --cpus 2)"
echo "SPUR_CONF=$SPUR_CONF"
run spur local status --dir "$DIR"
run sinfo
cd "$WORK"

cat > steps.sh <<'JOB'
#!/bin/bash
#SBATCH -J steps
#SBATCH -n 1
srun bash -c 'echo step 0 on $SLURMD_NODENAME; exit 7'
srun bash -c 'exit 3'
srun bash -c 'kill -SEGV $$'
echo "the batch script ends with 0"
JOB

run sbatch --wrap 'echo hello from job $SLURM_JOB_ID on $SLURM_JOB_NODELIST'
run sbatch -J fails --wrap 'exit 13'
run sbatch -J signal --wrap 'kill -SEGV $$'
run sbatch steps.sh
LONG=$(sbatch --parsable -J long --wrap 'sleep 300')
echo "Submitted batch job $LONG"
HELD=$(sbatch --parsable -J held -H --wrap 'true')
echo "Submitted batch job $HELD"

# wait (with a deadline) until the first four jobs are done and the long one runs
for _ in $(seq 1 300); do
  active=$(squeue -h -o %i -t PD,R,CG | wc -l)
  [ "$active" -le 2 ] && [ "$(squeue -h -j "$LONG" -o %t)" = "R" ] && break
  sleep 0.1
done
run squeue
run scancel -v "$LONG"
run scancel "$HELD"
for _ in $(seq 1 300); do [ "$(squeue -h | wc -l)" -eq 0 ] && break; sleep 0.1; done
run squeue -t all
run scontrol -d show job 4
run sacct
run sacct -P -o JobID,JobName,State,ExitCode,DerivedExitCode
run srun bash -c 'echo srun outside an allocation creates a one-step job; exit 4' || echo "(srun exited $?)"
run cat "$WORK/slurm-1.out" "$WORK/slurm-4.out"
