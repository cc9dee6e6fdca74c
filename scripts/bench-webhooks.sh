#!/usr/bin/env bash
# The webhook delivery benchmarks of issue 11, in one sitting (scimd-bench webhooks; a receiver
# inside scimd-bench answers 200 at once and records every body):
#   single       one tenant: BACKLOG users created, then a webhook added and replayed from 1
#   tenants      TENANTS tenants of PER_TENANT users, one webhook per tenant, replayed
#   tenants-all  the same with one webhook for every tenant (allTenants)
#   latency      a webhook on the tenant, creates at each of RATES per second for LAT_SECS s
#   sync         scimd-bench run --scenarios initial-sync --users SYNC_USERS, without and with a
#                webhook, alternating, SYNC_ROUNDS rounds, a fresh SQLite file each
#   pg           single and tenants on PostgreSQL (needs PGURL; a new database per run)
# single, tenants and tenants-all run ROUNDS times (SQLite). Before the first run the script
# waits (up to QUIET_WAIT seconds, checking every minute) for the 1-minute load average to
# drop below QUIET_LOAD; `uptime` is logged before every run (OUT/uptime.log) either way.
#
# Usage: [PGURL=postgres://USER:PASSWORD@HOST:PORT/DB] scripts/bench-webhooks.sh
#   env SCIMD_BIN (default /var/tmp/scimd-bench-target/release/scimd), BENCH_BIN (default
#   scimd-bench next to SCIMD_BIN), OUT (default /var/tmp/scimd-webhooks-bench/run-DATE),
#   STEPS ("single tenants tenants-all latency sync pg"), ROUNDS (2), BACKLOG (20000),
#   TENANTS (10), PER_TENANT (2000), RATES (200,1000), LAT_SECS (15), SYNC_USERS (10000),
#   SYNC_ROUNDS (3), QUIET_LOAD (2.5), QUIET_WAIT (900)
# The binaries are copied to OUT/bin first, so a rebuild during the run changes nothing.
set -euo pipefail

SCIMD_BIN=${SCIMD_BIN:-/var/tmp/scimd-bench-target/release/scimd}
BENCH_BIN=${BENCH_BIN:-$(dirname "$SCIMD_BIN")/scimd-bench}
OUT=${OUT:-/var/tmp/scimd-webhooks-bench/run-$(date +%Y%m%d-%H%M%S)}
STEPS=${STEPS:-"single tenants tenants-all latency sync pg"}
ROUNDS=${ROUNDS:-2}
BACKLOG=${BACKLOG:-20000}
TENANTS=${TENANTS:-10}
PER_TENANT=${PER_TENANT:-2000}
RATES=${RATES:-200,1000}
LAT_SECS=${LAT_SECS:-15}
SYNC_USERS=${SYNC_USERS:-10000}
SYNC_ROUNDS=${SYNC_ROUNDS:-3}
QUIET_LOAD=${QUIET_LOAD:-2.5}
QUIET_WAIT=${QUIET_WAIT:-900}

mkdir -p "$OUT/bin"
cp "$SCIMD_BIN" "$OUT/bin/scimd"
cp "$BENCH_BIN" "$OUT/bin/scimd-bench"
B=$OUT/bin/scimd-bench
W=("$B" webhooks --scimd-bin "$OUT/bin/scimd" --backlog "$BACKLOG" --tenants "$TENANTS" --per-tenant "$PER_TENANT")
STAMP=$(date +%H%M%S)

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

one() { # NAME ARGS...: one run of scimd-bench webhooks, its table in OUT/NAME.txt
    local name=$1
    shift
    note "$name"
    "${W[@]}" --name "$name" "$@" --json "$OUT/$name.json" | tee "$OUT/$name.txt"
}

quiet
for step in $STEPS; do
    case $step in
    single | tenants | tenants-all)
        for r in $(seq 1 "$ROUNDS"); do one "$step-sqlite-$r" --parts "$step"; done
        ;;
    latency) one latency-sqlite --parts latency --rates "$RATES" --latency-duration "$LAT_SECS" ;;
    sync) one sync-sqlite --parts sync --sync-users "$SYNC_USERS" --sync-rounds "$SYNC_ROUNDS" ;;
    pg)
        : "${PGURL:?set PGURL for the pg step}"
        for part in single tenants; do
            db=wh_${STAMP}_${part}
            psql "$PGURL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
            one "$part-pg" --parts "$part" --database "${PGURL%/*}/$db"
            psql "$PGURL" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null || true
        done
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done

# One line per measurement.
{
    echo "# summary ($OUT)"
    for f in "$OUT"/*.json; do
        [ -e "$f" ] || continue
        jq -r --arg f "$(basename "$f" .json)" '
            (.backlog[] | "\($f)\t\(.engine)\t\(.tenants) tenants, \(.webhooks) webhooks\t\(.events) events in \(.secs_from_replay * 100 | floor / 100) s: \(.events_per_sec_from_replay | floor)/s from the replay, \(.events_per_sec_first_to_last | floor)/s first to last\tdup \(.check.duplicates) missing \(.check.missing) disorder \(.check.out_of_order)\tceiling \(.ceiling.events_per_sec // 0 | floor)/s\ttarget \(.target_per_sec): \(if .target_met then "met" else "MISSED" end)\t\(.load_before)"),
            (.latency[] | "\($f)\t\(.engine)\t\(.rate)/s\tafter answer p50 \(.latency_after_answer.p50_ms) p99 \(.latency_after_answer.p99_ms) max \(.latency_after_answer.max_ms) ms\tmissed \(.missed) dup \(.check.duplicates) disorder \(.check.out_of_order)\twrites/s \(.writes.per_sec | floor)\t\(.load_before)"),
            (.sync[] | "\($f)\tround \(.round)\t\(if .webhook then "with" else "without" end)\tusers/s \(.initial_sync.per_sec | floor)\tp99 \(.initial_sync.p99_ms) ms\tscimd CPU \(.scimd_cpu_s) s\tdelivered \(.user_created_delivered_before_stop)\t\(.load_before)")
        ' "$f"
    done
} | tee "$OUT/summary.txt"
echo "results in $OUT" >&2
