#!/usr/bin/env bash
# The provisioning log and console figures (scimd-bench console), in one sitting:
#   log    initial-sync of USERS users with [request_log] enabled = false and true, alternating,
#          ROUNDS rounds (each runs both), a fresh scimd and database per run; on SQLite, and on
#          PostgreSQL when PGURL is set (a new database per run next to PGURL's)
#   pages  the console's pages for a tenant of TENANT_USERS users, seeded into the SQLite file
#          DB (kept: a later sitting with the same DB reuses it), SAMPLES timed requests per page
# Before the first run the script waits (up to QUIET_WAIT seconds, checking every minute) for
# the 1-minute load average to drop below QUIET_LOAD; `uptime` is logged before every step
# (OUT/uptime.log) either way.
#
# Usage: [PGURL=postgres://USER:PASSWORD@HOST:PORT/DB] scripts/bench-console.sh
#   env SCIMD_BIN (default /var/tmp/scimd-target-bench/release/scimd), BENCH_BIN (default
#   scimd-bench next to SCIMD_BIN), OUT (default /var/tmp/scimd-console-bench/run-DATE),
#   STEPS ("log pages"), USERS (20000), ROUNDS (3), TENANT_USERS (1000000),
#   DB (/var/tmp/scimd-console-bench/console-1m.db), SAMPLES (30), WARMUP (3),
#   QUIET_LOAD (2.5), QUIET_WAIT (900)
# The binaries are copied to OUT/bin first, so a rebuild during the run changes nothing.
set -euo pipefail

SCIMD_BIN=${SCIMD_BIN:-/var/tmp/scimd-target-bench/release/scimd}
BENCH_BIN=${BENCH_BIN:-$(dirname "$SCIMD_BIN")/scimd-bench}
OUT=${OUT:-/var/tmp/scimd-console-bench/run-$(date +%Y%m%d-%H%M%S)}
STEPS=${STEPS:-"log pages"}
USERS=${USERS:-20000}
ROUNDS=${ROUNDS:-3}
TENANT_USERS=${TENANT_USERS:-1000000}
DB=${DB:-/var/tmp/scimd-console-bench/console-1m.db}
SAMPLES=${SAMPLES:-30}
WARMUP=${WARMUP:-3}
QUIET_LOAD=${QUIET_LOAD:-2.5}
QUIET_WAIT=${QUIET_WAIT:-900}

mkdir -p "$OUT/bin"
cp "$SCIMD_BIN" "$OUT/bin/scimd"
cp "$BENCH_BIN" "$OUT/bin/scimd-bench"
B=$OUT/bin/scimd-bench

note() { # what is about to run, with the machine's load
    local line
    line="$(date +%T) $* | $(uptime)"
    echo "== $line" >&2
    echo "$line" >>"$OUT/uptime.log"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

quiet() { # waits up to QUIET_WAIT s for the 1-minute load to drop below QUIET_LOAD
    local waited=0
    while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            note "load still at or above $QUIET_LOAD after ${waited}s; going on"
            return
        fi
        note "waiting for the load to drop below $QUIET_LOAD (${waited}s so far)"
        sleep 60
        waited=$((waited + 60))
    done
    note "load below $QUIET_LOAD after ${waited}s of waiting"
}

quiet
for step in $STEPS; do
    case $step in
    log)
        pg=()
        if [ -n "${PGURL:-}" ]; then pg=(--postgres "$PGURL"); fi
        note "log: $USERS users, $ROUNDS rounds${PGURL:+, SQLite and PostgreSQL}"
        "$B" console --scimd-bin "$OUT/bin/scimd" --parts log --users "$USERS" --rounds "$ROUNDS" "${pg[@]}" \
            --json "$OUT/log.json" >"$OUT/log.txt" 2>"$OUT/log.err"
        cat "$OUT/log.txt"
        ;;
    pages)
        note "pages: $TENANT_USERS users in $DB"
        "$B" console --scimd-bin "$OUT/bin/scimd" --parts pages --tenant-users "$TENANT_USERS" --database "$DB" \
            --samples "$SAMPLES" --warmup "$WARMUP" --json "$OUT/pages.json" >"$OUT/pages.txt" 2>"$OUT/pages.err"
        cat "$OUT/pages.txt"
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done
note "done"
echo "results in $OUT" >&2
