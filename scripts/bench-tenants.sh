#!/usr/bin/env bash
# A thousand tenants provisioning at once (scimd-bench tenants, BENCHMARKS.md "A thousand
# tenants (issue 14)"), every run on a fresh database:
#   sqlite       1,000 tenants on SQLite, flat (32 concurrent requests) and at Entra's pace (a
#                cycle every 600 ms per tenant, a connection each), alternating, ROUNDS rounds;
#                then at a cycle every 1,000 ms, 2 runs
#   connections  at Entra's pace: one shared connection pool against a connection per tenant,
#                alternating, 2 rounds
#   scale        flat, 1 tenant against 1,000, each with the provisioning log on and off, 2 rounds
#                of 10 s
#   conc         1,000 tenants flat at 8, 16 and 64 concurrent requests, 10 s each
#   pg           with PGURL: 1,000 tenants on PostgreSQL (1 replica, a new database next to
#                PGURL's, dropped after): flat x2, Entra's pace x1, a cycle every 3,000 ms x2;
#                the feed's unnumbered events are counted every 5 s during each run
# Before each run the script waits (up to QUIET_WAIT seconds) for the 1-minute load average to
# drop below QUIET_LOAD, and logs `uptime` (OUT/uptime.log) either way.
#
# Usage: [PGURL=postgres://USER:PASSWORD@HOST:PORT/DB] scripts/bench-tenants.sh
#   env SCIMD_BIN (default /var/tmp/scimd-target/release/scimd), BENCH_BIN (default scimd-bench
#   next to SCIMD_BIN), OUT (default /var/tmp/scimd-tenants-bench/run-DATE),
#   STEPS ("sqlite connections scale conc pg"), ROUNDS (3), DURATION (20), QUIET_LOAD (2.5),
#   QUIET_WAIT (180)
# The binaries are copied to OUT/bin first, so a rebuild during the run changes nothing.
set -euo pipefail

SCIMD_BIN=${SCIMD_BIN:-/var/tmp/scimd-target/release/scimd}
BENCH_BIN=${BENCH_BIN:-$(dirname "$SCIMD_BIN")/scimd-bench}
OUT=${OUT:-/var/tmp/scimd-tenants-bench/run-$(date +%Y%m%d-%H%M%S)}
STEPS=${STEPS:-"sqlite connections scale conc pg"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
QUIET_LOAD=${QUIET_LOAD:-2.5}
QUIET_WAIT=${QUIET_WAIT:-180}

mkdir -p "$OUT/bin"
cp "$SCIMD_BIN" "$OUT/bin/scimd"
cp "$BENCH_BIN" "$OUT/bin/scimd-bench"
B="$OUT/bin/scimd-bench"
cd "$OUT"
printf '[request_log]\nenabled = false\n' > logoff.toml

quiet() {
    local waited=0
    while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$QUIET_LOAD" 'BEGIN{exit !(l>=m)}'; do
        [ "$waited" -ge "$QUIET_WAIT" ] && break
        sleep 5
        waited=$((waited + 5))
    done
}

# run NAME ARGS...: one run, its table in NAME.txt and its JSON in NAME.json
run() {
    local name=$1
    shift
    quiet
    echo "== $name $(uptime)" | tee -a uptime.log
    "$B" tenants --scimd-bin bin/scimd "$@" --json "$name.json" >"$name.txt" 2>&1
}

# pg NAME ARGS...: a run on a new PostgreSQL database, the feed's unnumbered events in NAME.feed
pg() {
    local name=$1
    shift
    local db="tenants_${name//[^a-z0-9]/_}"
    local url="${PGURL%/*}/$db"
    psql "$PGURL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
    (
        sleep 8
        for i in 1 2 3 4 5; do
            psql "$url" -Atc "SELECT 'unnumbered events', now(), count(*) FILTER (WHERE seq IS NULL), count(*) FROM events" 2>/dev/null || true
            sleep 5
        done
    ) >"$name.feed" &
    run "$name" "$@" --database "$url"
    wait
    psql "$url" -Atc "SELECT 'after the run: unnumbered events', count(*) FILTER (WHERE seq IS NULL), count(*) FROM events" >>"$name.feed"
    psql "$url" -Atc "SELECT 'logged requests', count(*) FROM requests" >>"$name.feed"
    psql "$PGURL" -qc "DROP DATABASE $db"
}

for step in $STEPS; do
    case $step in
    sqlite)
        for r in $(seq "$ROUNDS"); do
            run "sqlite-flat-$r" --tenants 1000 --pace flat --duration "$DURATION"
            run "sqlite-entra-$r" --tenants 1000 --pace entra --duration "$DURATION"
        done
        for r in 1 2; do run "sqlite-entra1000-$r" --tenants 1000 --pace entra --cycle-ms 1000 --duration "$DURATION"; done
        ;;
    connections)
        for r in 1 2; do
            run "conn-shared-$r" --tenants 1000 --pace entra --shared-pool --duration "$DURATION"
            run "conn-tenant-$r" --tenants 1000 --pace entra --duration "$DURATION"
        done
        ;;
    scale)
        for r in 1 2; do
            for t in 1 1000; do
                run "scale-$t-logon-$r" --tenants "$t" --pace flat --duration 10
                run "scale-$t-logoff-$r" --tenants "$t" --pace flat --duration 10 --config logoff.toml
            done
        done
        ;;
    conc)
        for c in 8 16 64; do run "conc-$c" --tenants 1000 --pace flat --concurrency "$c" --duration 10; done
        ;;
    pg)
        if [ -z "${PGURL:-}" ]; then
            echo "pg: no PGURL, skipped" | tee -a uptime.log
            continue
        fi
        for r in 1 2; do pg "pg-flat-$r" --tenants 1000 --pace flat --duration "$DURATION"; done
        pg pg-entra-1 --tenants 1000 --pace entra --duration "$DURATION"
        for r in 1 2; do pg "pg-entra3000-$r" --tenants 1000 --pace entra --cycle-ms 3000 --duration "$DURATION"; done
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done
grep -h -E "^(aggregate|fairness|targets)" ./*.txt >/dev/null || true
echo "done: $OUT"
