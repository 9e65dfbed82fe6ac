#!/usr/bin/env bash
# Stop what scripts/start-slurm.sh started, by the PIDs it recorded (never by process name).
set -euo pipefail
PIDS=${VDBENCH_SLURM_HOME:-/var/lib/vdbench-slurm}/pids
for name in slurmd-n1 slurmd-n2 slurmctld registry munged; do
    file=$PIDS/$name.pid
    [ -r "$file" ] || continue
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop-slurm: stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
done
