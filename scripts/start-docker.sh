#!/usr/bin/env bash
# Make sure a Docker engine answers and debootstrap and docker-compose are installed (idempotent; Debian,
# as root). Installs docker.io / debootstrap / docker-compose only when missing, starts dockerd in the background with its log
# in /tmp/vdbench-dockerd.log and waits up to 60 s for `docker info`.
set -euo pipefail

LOG=/tmp/vdbench-dockerd.log
WAIT_SECONDS=60

say() { echo "start-docker: $*"; }
die() { echo "start-docker: ERROR: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root for: $*"
    fi
}

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

missing=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)  # Compose v1: the tests check `vdbench compose` with it
if ! engine_answers; then
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || { [[ " ${missing[*]} " == *" docker.io "* ]] || missing+=(docker.io); }
fi

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y --no-install-recommends "${missing[@]}"; then
        say "apt-get install failed; updating the package lists and retrying"
        as_root apt-get update
        as_root apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

if engine_answers; then
    say "docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

# Start dockerd unless one is already starting (a pid file whose process lives).
pid=""
[ -r /var/run/docker.pid ] && pid=$(cat /var/run/docker.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "dockerd (pid $pid) is already running; waiting for it"
else
    say "starting dockerd (log: $LOG)"
    as_root bash -c "nohup dockerd >>'$LOG' 2>&1 </dev/null & echo \$! > /tmp/vdbench-dockerd.pid"
fi

for ((i = 0; i < WAIT_SECONDS; i++)); do
    if engine_answers; then
        say "docker engine answers after ${i}s ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 1
done

echo "start-docker: ERROR: no answer from 'docker info' within ${WAIT_SECONDS}s; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2 2>/dev/null || true
exit 1
