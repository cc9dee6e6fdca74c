#!/usr/bin/env bash
# The change-feed benchmarks of issue 10, in one sitting:
#   1. initial-sync (SQLite, USERS users) with the binary before the feed (BASE) and after it
#      (NEW), alternately, ROUNDS rounds, each on a fresh database
#   2. feed-latency: a consumer long-polling the feed while a writer creates RATE users/s for
#      LAT_SECS s, on SQLite and on PostgreSQL
#   3. feed-read: a tenant filled with READ_EVENTS users (one event each), then its whole
#      feed read from position 0 in pages of 1000, on SQLite and on PostgreSQL
#   4. replicas: 1 and 3 scimd processes on one PostgreSQL database, creating users in 1 tenant
#      and in 30, for BASE and NEW (step replicas-durable: the same on PGURL_DURABLE, a server
#      with fsync and synchronous_commit on)
# Every run starts on a fresh database (PostgreSQL: CREATE DATABASE, dropped after the run).
# `uptime` is logged before each run (OUT/uptime.log and the run's output).
#
# Usage: PGURL=postgres://USER:PASSWORD@HOST:PORT/DB [PGURL_DURABLE=...] scripts/bench-feed.sh
#   env BASE_BIN, NEW_BIN (scimd binaries; default /var/tmp/scimd-base-target/release/scimd and
#   /var/tmp/scimd-bench-target/release/scimd), BENCH_BIN (default scimd-bench next to NEW_BIN),
#   OUT (default /var/tmp/scimd-feed-bench/run-DATE), ROUNDS (4), USERS (10000), RATE (1000),
#   LAT_SECS (20), READ_EVENTS (100000), REP_SECS (15), REP_CONCURRENCY (32), REP_ROUNDS (1),
#   STEPS ("sync latency read replicas")
# The binaries are copied to OUT/bin first, so a rebuild during the run changes nothing.
# PGURL's database is only used to create and drop the per-run databases; scripts/postgres.sh
# starts a suitable server (fsync off: a test server).
set -euo pipefail

: "${PGURL:?set PGURL to a PostgreSQL URL (e.g. from scripts/postgres.sh)}"
BASE_BIN=${BASE_BIN:-/var/tmp/scimd-base-target/release/scimd}
NEW_BIN=${NEW_BIN:-/var/tmp/scimd-bench-target/release/scimd}
BENCH_BIN=${BENCH_BIN:-$(dirname "$NEW_BIN")/scimd-bench}
OUT=${OUT:-/var/tmp/scimd-feed-bench/run-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-4}
USERS=${USERS:-10000}
RATE=${RATE:-1000}
LAT_SECS=${LAT_SECS:-20}
READ_EVENTS=${READ_EVENTS:-100000}
REP_SECS=${REP_SECS:-15}
REP_CONCURRENCY=${REP_CONCURRENCY:-32}
REP_ROUNDS=${REP_ROUNDS:-1}
STEPS=${STEPS:-"sync latency read replicas"}

mkdir -p "$OUT/bin"
cp "$BASE_BIN" "$OUT/bin/base-scimd"
cp "$NEW_BIN" "$OUT/bin/new-scimd"
cp "$BENCH_BIN" "$OUT/bin/scimd-bench"
B=$OUT/bin/scimd-bench
bin_of() { echo "$OUT/bin/$1-scimd"; }
ADMIN_URL=$PGURL
STAMP=$(date +%H%M%S)

note() { # what is about to run, with the machine's load
    local line
    line="$(date +%T) $* | $(uptime)"
    echo "== $line" >&2
    echo "$line" >>"$OUT/uptime.log"
}

newdb() { # NAME [SERVER_URL]: creates database NAME, prints its URL
    local server=${2:-$ADMIN_URL}
    psql "$server" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $1" >/dev/null
    echo "${server%/*}/$1"
}
dropdb() { psql "${2:-$ADMIN_URL}" -qAt -c "DROP DATABASE IF EXISTS $1" >/dev/null || true; }

replicas() { # SERVER_URL LABEL: every combination, REP_ROUNDS times, on databases of SERVER_URL
    local server=$1 label=$2 r t n v db url
    for r in $(seq 1 "$REP_ROUNDS"); do
        for t in 1 30; do
            for n in 1 3; do
                for v in base new; do
                    db=feed_rep_${STAMP}_${label}_${v}_${n}_${t}_$r
                    url=$(newdb "$db" "$server")
                    note "replicas ($label) $v n=$n tenants=$t round $r"
                    "$B" replicas --name "$v-$r" --scimd-bin "$(bin_of $v)" --database "$url" --replicas "$n" \
                        --tenants "$t" --concurrency "$REP_CONCURRENCY" --duration "$REP_SECS" \
                        --json "$OUT/$label-$v-$n-$t-$r.json" | tee "$OUT/$label-$v-$n-$t-$r.txt"
                    dropdb "$db" "$server"
                done
            done
        done
    done
}

for step in $STEPS; do
    case $step in
    sync)
        for r in $(seq 1 "$ROUNDS"); do
            for v in base new; do
                note "initial-sync $v-$r"
                "$B" run --name "$v-$r" --scimd-bin "$(bin_of $v)" --users "$USERS" --scenarios initial-sync \
                    --json "$OUT/sync-$v-$r.json" | tee "$OUT/sync-$v-$r.txt"
            done
        done
        ;;
    latency)
        note "feed-latency SQLite"
        "$B" feed-latency --name new --scimd-bin "$(bin_of new)" --rate "$RATE" --duration "$LAT_SECS" \
            --json "$OUT/latency-sqlite.json" | tee "$OUT/latency-sqlite.txt"
        db=feed_lat_$STAMP
        url=$(newdb "$db")
        note "feed-latency PostgreSQL"
        "$B" feed-latency --name new --scimd-bin "$(bin_of new)" --database "$url" --rate "$RATE" \
            --duration "$LAT_SECS" --json "$OUT/latency-pg.json" | tee "$OUT/latency-pg.txt"
        dropdb "$db"
        ;;
    read)
        note "feed-read SQLite"
        "$B" feed-read --name new --scimd-bin "$(bin_of new)" --events "$READ_EVENTS" --passes raw,full,raw \
            --json "$OUT/read-sqlite.json" | tee "$OUT/read-sqlite.txt"
        db=feed_read_$STAMP
        url=$(newdb "$db")
        note "feed-read PostgreSQL"
        "$B" feed-read --name new --scimd-bin "$(bin_of new)" --database "$url" --events "$READ_EVENTS" --passes raw,full,raw \
            --json "$OUT/read-pg.json" | tee "$OUT/read-pg.txt"
        dropdb "$db"
        ;;
    replicas) replicas "$ADMIN_URL" replicas ;;
    replicas-durable)
        : "${PGURL_DURABLE:?set PGURL_DURABLE for replicas-durable}"
        replicas "$PGURL_DURABLE" durable
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done

# One summary of everything that ran.
{
    echo "# summary ($OUT)"
    for f in "$OUT"/sync-*.json; do
        [ -e "$f" ] || continue
        jq -r --arg f "$(basename "$f" .json)" \
            '.rows[] | select(.scenario == "initial-sync") |
             "\($f)\tusers/s \(.server.per_sec | floor)\tp99 \(.server.p99_ms) ms\tceiling ratio \(.throughput_ratio * 100 | floor / 100)\tscimd CPU \(.server_cpu_s) s\tload \(.loadavg_start)>\(.loadavg_end)"' "$f"
    done
    for f in "$OUT"/latency-*.json; do
        [ -e "$f" ] || continue
        jq -r --arg f "$(basename "$f" .json)" \
            '"\($f)\t\(.engine)\tafter answer p50 \(.latency_after_answer.p50_ms) p99 \(.latency_after_answer.p99_ms) max \(.latency_after_answer.max_ms) ms\tafter send p50 \(.latency_after_send.p50_ms) p99 \(.latency_after_send.p99_ms) max \(.latency_after_send.max_ms) ms\treceived \(.latency_after_answer.n) missed \(.missed) gaps \(.seq_gaps)\twrites/s \(.writes.per_sec | floor)"' "$f"
    done
    for f in "$OUT"/read-*.json; do
        [ -e "$f" ] || continue
        jq -r --arg f "$(basename "$f" .json)" \
            '.engine as $e | .passes[] | "\($f)\t\($e)\t\(.pass)\t\(.events) events in \(.secs * 100 | floor / 100) s\t\(.events_per_sec | floor) events/s\tscimd CPU \(.scimd_cpu_s) s\tclient CPU \(.client_cpu_s) s"' "$f"
    done
    for f in "$OUT"/replicas-*.json "$OUT"/durable-*.json; do
        [ -e "$f" ] || continue
        jq -r --arg f "$(basename "$f" .json | cut -d- -f1)" '"\($f)\t\(.server)\tn=\(.replicas)\ttenants=\(.tenants)\tops/s \(.figures.per_sec | floor)\tp99 \(.figures.p99_ms) ms\terrors \(.figures.errors)\tCPU busy \(.machine_cpu_busy_pct | floor)%\tstored \(.stored_users)/\(.created_201)"' "$f"
    done
} | tee "$OUT/summary.txt"
echo "results in $OUT" >&2
