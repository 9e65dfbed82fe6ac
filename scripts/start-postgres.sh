#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the results-store tests (idempotent).
# Debian's postgresql; the cluster lives under $VDBENCH_PG_DIR (default /tmp/vdbench-pg), owned by the
# postgres user, started with pg_ctl. Prints the URL and writes it to $VDBENCH_PG_DIR/url, which the
# `postgres`-marked tests read (or set VDBENCH_PG_URL yourself). Stop: pg_ctl -D $VDBENCH_PG_DIR/data stop
set -euo pipefail
DIR=${VDBENCH_PG_DIR:-/tmp/vdbench-pg}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then echo "start-postgres: postgresql is not installed (apt-get install postgresql, as root)" >&2; exit 1; fi
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }

mkdir -p "$DIR"
chown postgres:postgres "$DIR" 2>/dev/null || true
if [ ! -s "$DIR/data/PG_VERSION" ]; then
  # trust on loopback only: a throwaway cluster for tests, reachable from this host alone
  as_pg "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync -E UTF8 >"$DIR/initdb.log"
fi
if [ -n "${VDBENCH_PG_PORT:-}" ]; then PORT=$VDBENCH_PG_PORT
elif [ -s "$DIR/port" ]; then PORT=$(cat "$DIR/port")  # the port this cluster was first started on
else  # a free loopback port (a fixed one may be taken by another user of a shared machine)
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
echo "$PORT" >"$DIR/port"
URL="postgresql://postgres@127.0.0.1:${PORT}/postgres"
if ! as_pg "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_pg "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200" start >/dev/null
fi
as_pg "$bin/pg_isready" -h 127.0.0.1 -p "$PORT" -t 30 >/dev/null
echo "$URL" >"$DIR/url"
chmod 644 "$DIR/url"
echo "$URL"
