#!/usr/bin/env bash
# A throwaway PostgreSQL server from Debian's packages for weir's tests.
#
#   scripts/postgres.sh start DIR PORT   initdb DIR (once), start on 127.0.0.1:PORT, print the URL
#   scripts/postgres.sh stop DIR         stop it
#
# Installs the `postgresql` package when initdb is missing. PostgreSQL refuses to run as root,
# so as root the cluster belongs to the `postgres` user (created by the package). Trust
# authentication on 127.0.0.1 only: the server is private to the test run.
set -euo pipefail

cmd=${1:?usage: postgres.sh start DIR PORT | stop DIR}
dir=${2:?data directory}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "[postgres.sh] installing postgresql" >&2
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps the environment small and needs no password.
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  port=${3:?port}
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir" && chmod 700 "$dir"
    # The server user must reach its directory (mktemp -d makes the parent 0700, root's).
    chmod o+x "$(dirname "$dir")"
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir" -U weir --auth=trust --no-sync -E UTF8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; exit 1; }
  fi
  # Sockets in the data directory (the default /var/run/postgresql may not exist or be shared).
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >&2
  echo "postgres://weir@127.0.0.1:$port/postgres"
  ;;
stop)
  [ -f "$dir/postmaster.pid" ] || exit 0
  as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >&2
  ;;
*)
  echo "usage: postgres.sh start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac
