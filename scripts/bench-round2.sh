#!/usr/bin/env bash
# The figures of BENCHMARKS.md "Performance round 2 (issue 14)", in one sitting, each step on a
# fresh database, `uptime` logged before each run (OUT/uptime.log):
#   sqlite1m  scimd-bench run, 1,000,000 users on SQLite: initial-sync, lookup, get, list,
#             incremental, each against the ceiling; the database is kept for `create`
#   create    POST /Users only (the `create` scenario) at 16 and at 64 connections, 20 s each,
#             on the 1M-user database
#   tenants   scimd-bench tenants: 1,000 tenants flat out and at Entra's pace (SQLite), flat out
#             on PostgreSQL
#   pg1       scimd on PostgreSQL (one replica, started here): run at 100,000 users, the same
#             scenarios, no ceiling (the ceiling is the SQLite run's)
#   pg3       scimd-bench replicas: 1 and 3 replicas on one PostgreSQL database, 30 tenants
#   profile   perf: initial-sync and incremental on both engines, 10 s of each sampled at 499 Hz
#             (perf report tables in OUT/profile-*.txt)
# Usage: PGURL=postgres://USER:PASSWORD@HOST:PORT/postgres scripts/bench-round2.sh
#   env BIN (dir of scimd and scimd-bench, default /var/tmp/scimd-target-bench/release), OUT,
#   STEPS ("sqlite1m create tenants pg1 pg3 profile"), USERS (1000000), PG_USERS (100000),
#   DURATION (10: seconds of each scenario of sqlite1m and pg1)
set -euo pipefail

BIN=${BIN:-/var/tmp/scimd-target-bench/release}
OUT=${OUT:-/var/tmp/scimd-round2/run-$(date +%Y%m%d-%H%M%S)}
STEPS=${STEPS:-"sqlite1m create tenants pg1 pg3 profile"}
USERS=${USERS:-1000000}
PG_USERS=${PG_USERS:-100000}
DURATION=${DURATION:-10}
REQUIRE='userName,name.familyName,name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,emails[type eq "work"].value,preferredLanguage,active'
mkdir -p "$OUT/bin"
cp "$BIN/scimd" "$BIN/scimd-bench" "$OUT/bin/"
S="$OUT/bin/scimd"
B="$OUT/bin/scimd-bench"
cd "$OUT"
note() { echo "== $1 $(uptime)" | tee -a uptime.log; }

# pgdb NAME: a new PostgreSQL database next to PGURL's, its URL on stdout
pgdb() {
    psql "$PGURL" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null 2>&1
    echo "${PGURL%/*}/$1"
}

# serve DATABASE: starts scimd on DATABASE with a tenant `bench` and a token; sets PORT, TOKEN, SPID
serve() {
    RUST_LOG=warn "$S" --database "$1" tenant create bench --require "$REQUIRE" >/dev/null
    TOKEN=$(RUST_LOG=warn "$S" --database "$1" token create --tenant bench --label bench | tail -1)
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    RUST_LOG=warn "$S" --database "$1" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$((PORT + 1)) \
        </dev/null >/dev/null 2>serve.log &
    SPID=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
    echo "scimd did not start" >&2
    return 1
}

for step in $STEPS; do
    case $step in
    sqlite1m)
        note sqlite1m
        rm -f 1m.db*
        "$B" run --database "$OUT/1m.db" --users "$USERS" --sync-duration 1200 --duration "$DURATION" \
            --scenarios initial-sync,lookup,get,list,incremental --json sqlite1m.json >sqlite1m.txt 2>&1
        ;;
    create)
        for c in 16 64; do
            note "create-$c"
            "$B" run --database "$OUT/1m.db" --users 1000 --concurrency "$c" --duration 20 --scenarios create \
                --json "create-$c.json" >"create-$c.txt" 2>&1
        done
        ;;
    tenants)
        note tenants-flat
        "$B" tenants --tenants 1000 --pace flat --duration 20 --json tenants-flat.json >tenants-flat.txt 2>&1
        note tenants-entra
        "$B" tenants --tenants 1000 --pace entra --duration 20 --json tenants-entra.json >tenants-entra.txt 2>&1
        note tenants-pg-flat
        "$B" tenants --tenants 1000 --pace flat --duration 20 --database "$(pgdb round2_tenants)" \
            --json tenants-pg-flat.json >tenants-pg-flat.txt 2>&1
        ;;
    pg1)
        note pg1
        serve "$(pgdb round2_pg1)"
        "$B" run --url "http://127.0.0.1:$PORT/scim/v2" --token "$TOKEN" --server-pid "$SPID" --name scimd-pg \
            --users "$PG_USERS" --duration "$DURATION" --scenarios initial-sync,lookup,get,list,incremental,create \
            --no-ceiling --json pg1.json >pg1.txt 2>&1 || true
        kill -INT "$SPID"
        wait "$SPID" || true
        ;;
    pg3)
        for n in 1 3; do
            note "pg3-replicas-$n"
            "$B" replicas --database "$(pgdb "round2_rep$n")" --replicas "$n" --tenants 30 --concurrency 32 \
                --duration 15 --json "replicas-$n.json" >"replicas-$n.txt" 2>&1
        done
        ;;
    profile)
        for engine in sqlite pg; do
            db="sqlite://$OUT/profile.db"
            rm -f profile.db*
            [ "$engine" = pg ] && db=$(pgdb round2_profile)
            serve "$db"
            # initial-sync: 40,000 new users (10 s at most), sampled from 0.5 s for 9 s; then the
            # incremental mix on 2,000 of them (their look-up first, under 2 s), sampled 8 s
            for sc in initial-sync incremental; do
                note "profile-$engine-$sc"
                users=40000 delay=0.5 span=9
                [ "$sc" = incremental ] && users=2000 delay=2 span=8
                (sleep "$delay" && perf record -F 499 -p "$SPID" -o "profile-$engine-$sc.data" -- sleep "$span") \
                    >/dev/null 2>&1 &
                perf_pid=$!
                "$B" run --url "http://127.0.0.1:$PORT/scim/v2" --token "$TOKEN" --server-pid "$SPID" \
                    --users "$users" --sync-duration 10 --duration "$DURATION" --scenarios "$sc" --no-ceiling \
                    >"profile-$engine-$sc.run.txt" 2>&1 || true
                wait "$perf_pid" || true
                perf report -i "profile-$engine-$sc.data" --sort comm,dso,sym --stdio 2>/dev/null |
                    grep -v '^#' | grep . | head -60 >"profile-$engine-$sc.txt" || true
                perf report -i "profile-$engine-$sc.data" --sort comm --stdio 2>/dev/null |
                    grep -v '^#' | grep . | head -12 >"profile-$engine-$sc.threads.txt" || true
            done
            kill -INT "$SPID"
            wait "$SPID" || true
        done
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done
echo "done: $OUT"
