#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, from Debian's packages.
#
#   scripts/postgres.sh start DIR   # prints: export SCIMD_TEST_POSTGRES_URL=postgres://...
#   scripts/postgres.sh stop DIR
#
# `start` installs Debian's `postgresql` package if no server binaries are there (as root),
# creates a cluster in DIR/data (once), starts it on a free loopback port (55432 or the next
# free one; the socket is in DIR) and creates the superuser `scimd` and the database `scimd`.
# It is idempotent: a running server is left as it is and its URL printed again.
# The server runs as the `postgres` OS user when started by root (initdb refuses root).
# It is for tests only: fsync is off, and the cluster's default collation is ICU en-US (a
# realistic non-C collation, so tests see what production databases do).
#
# Only the export line goes to stdout, so `eval "$(scripts/postgres.sh start DIR)"` works.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
log() { echo "postgres.sh: $*" >&2; }

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

# Runs a command as the server's OS user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -f "$dir/data/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

case "$cmd" in
start) ;;
stop)
    BIN=$(bindir)
    if [ -n "$BIN" ] && running; then
        as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    else
        log "no server running in $dir"
    fi
    exit 0
    ;;
*) usage ;;
esac

BIN=$(bindir)
if [ -z "$BIN" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL server binaries are missing: run as root, or apt-get install postgresql"
        exit 1
    fi
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN=$(bindir)
    [ -n "$BIN" ] || { log "no initdb after installing postgresql"; exit 1; }
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    chown postgres: "$dir"
    chmod 700 "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
        log "$dir is not reachable by the postgres user: use a directory under /tmp or /var/tmp"
        exit 1
    fi
fi

if [ ! -f "$dir/data/PG_VERSION" ]; then
    # The password lives beside the cluster; it only guards a loopback test server.
    umask 077
    od -An -tx1 -N12 /dev/urandom | tr -d ' \n' >"$dir/password"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir/password"
    as_pg "$BIN/initdb" -D "$dir/data" -U scimd --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        --locale-provider=icu --icu-locale=en-US --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
fi
password=$(cat "$dir/password")

if ! running; then
    port=55432
    while port_busy "$port"; do port=$((port + 1)); done
    echo "$port" >"$dir/port"
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -k $dir -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2 || { tail -n 20 "$dir/server.log" >&2; exit 1; }
fi
port=$(cat "$dir/port")

psql_local() { "$BIN/psql" -h "$dir" -p "$port" -U scimd -X -q -v ON_ERROR_STOP=1 "$@"; }
if [ -z "$(psql_local -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'scimd'")" ]; then
    psql_local -d postgres -c "CREATE DATABASE scimd" >&2
fi
log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir/data"
echo "export SCIMD_TEST_POSTGRES_URL=postgres://scimd:$password@127.0.0.1:$port/scimd"
