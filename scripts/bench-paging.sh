#!/usr/bin/env bash
# List pages at every depth of a large SQLite tenant, before and after (scimd-bench run
# --list-walk), in one sitting, rounds alternating before/after:
#   index-deep   1 walk by startIndex from index FROM (100 per page)
#   index-top    1 walk by startIndex from index 1
#   index-4      4 walks by startIndex, each from its quarter of the tenant
#   name-deep    1 walk by startIndex from FROM, sortBy=userName
#   cursor-all   1 walk by cursor through the whole tenant (after only: before has no cursors)
#   cursor-deep  1 walk by cursor from FROM (reached untimed), and the same sortBy=userName
#   writes       initial-sync and incremental of WRITE_USERS users on a fresh database, to see
#                what maintaining counts costs the writes
# The tenant's database DB (schema 8, e.g. made by scripts/bench-console.sh) is copied twice
# first: BEFORE_BIN runs on one copy, AFTER_BIN (which migrates its copy) on the other; DB is
# never opened. `uptime` is logged before every step (OUT/uptime.log).
#
# Usage: BEFORE_BIN=... AFTER_BIN=... scripts/bench-paging.sh
#   env BENCH_BIN (default scimd-bench next to AFTER_BIN), DB
#   (/var/tmp/scimd-console-bench/console-1m.db), OUT (/var/tmp/scimd-paging-bench/run-DATE),
#   FROM (900001), ROUNDS (2), DURATION (20), WRITE_USERS (10000), STEPS ("reads writes"),
#   QUIET_LOAD (2.5), QUIET_WAIT (900): before each round, wait up to QUIET_WAIT seconds for
#   the 1-minute load average to drop below QUIET_LOAD (the machine may be shared)
set -euo pipefail

: "${BEFORE_BIN:?the scimd binary to measure first (e.g. built from the commit before)}"
: "${AFTER_BIN:?the scimd binary to measure against it}"
BENCH_BIN=${BENCH_BIN:-$(dirname "$AFTER_BIN")/scimd-bench}
DB=${DB:-/var/tmp/scimd-console-bench/console-1m.db}
OUT=${OUT:-/var/tmp/scimd-paging-bench/run-$(date +%Y%m%d-%H%M%S)}
FROM=${FROM:-900001}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
WRITE_USERS=${WRITE_USERS:-10000}
STEPS=${STEPS:-"reads writes"}
QUIET_LOAD=${QUIET_LOAD:-2.5}
QUIET_WAIT=${QUIET_WAIT:-900}

mkdir -p "$OUT/bin"
cp "$BEFORE_BIN" "$OUT/bin/scimd-before"
cp "$AFTER_BIN" "$OUT/bin/scimd-after"
cp "$BENCH_BIN" "$OUT/bin/scimd-bench"
B=$OUT/bin/scimd-bench

note() {
    local line
    line="$(date +%T) $* | $(uptime)"
    echo "== $line" >&2
    echo "$line" >>"$OUT/uptime.log"
}

quiet() {
    local waited=0
    while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            note "load still at or above $QUIET_LOAD after ${waited}s; going on"
            return
        fi
        sleep 30
        waited=$((waited + 30))
    done
    note "load below $QUIET_LOAD after ${waited}s of waiting"
}

# walk NAME BIN DATABASE KIND FROM TASKS [EXTRA]: one list walk, its row appended to OUT/walks.txt
walk() {
    local name=$1 bin=$2 db=$3 kind=$4 from=$5 tasks=$6 extra=${7:-} duration=$DURATION
    if [ "$name" = cursor-all ]; then duration=600; fi
    note "$name ($(basename "$bin"))"
    "$B" run --scimd-bin "$bin" --database "$db" --users 0 --scenarios list --no-ceiling \
        --list-walk "$kind" --list-from "$from" --concurrency "$tasks" --duration "$duration" \
        ${extra:+--list-extra "$extra"} --json "$OUT/$name-$(basename "$bin")-$round.json" \
        >"$OUT/$name-$(basename "$bin")-$round.txt" 2>"$OUT/$name-$(basename "$bin")-$round.err"
    printf '%-12s %-13s %s\n' "$name" "$(basename "$bin")-$round" \
        "$(grep '^list ' "$OUT/$name-$(basename "$bin")-$round.txt")" | tee -a "$OUT/walks.txt"
}

for step in $STEPS; do
    case $step in
    reads)
        note "copying $DB"
        sqlite3 "$DB" ".backup $OUT/before.db"
        sqlite3 "$DB" ".backup $OUT/after.db"
        for round in $(seq 1 "$ROUNDS"); do
            for side in before after; do
                quiet
                bin=$OUT/bin/scimd-$side
                db=$OUT/$side.db
                walk index-deep "$bin" "$db" index "$FROM" 1
                walk index-top "$bin" "$db" index 1 1
                walk index-4 "$bin" "$db" index 1 4
                walk name-deep "$bin" "$db" index "$FROM" 1 "&sortBy=userName"
                if [ $side = after ]; then
                    walk cursor-all "$bin" "$db" cursor 1 1
                    walk cursor-deep "$bin" "$db" cursor "$FROM" 1
                    walk cursor-name "$bin" "$db" cursor "$FROM" 1 "&sortBy=userName"
                fi
            done
        done
        rm -f "$OUT/before.db" "$OUT/after.db"
        ;;
    writes)
        for round in $(seq 1 "$ROUNDS"); do
            for side in before after; do
                quiet
                note "writes $side-$round"
                "$B" run --scimd-bin "$OUT/bin/scimd-$side" --users "$WRITE_USERS" --duration 10 --no-ceiling \
                    --scenarios initial-sync,incremental --json "$OUT/writes-$side-$round.json" \
                    >"$OUT/writes-$side-$round.txt" 2>"$OUT/writes-$side-$round.err"
                grep -E '^(initial-sync|incremental)' "$OUT/writes-$side-$round.txt" | sed "s/^/$side-$round /" |
                    tee -a "$OUT/writes.txt"
            done
        done
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done
note "done"
echo "results in $OUT" >&2
