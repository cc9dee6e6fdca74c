#!/usr/bin/env bash
# What one create costs PostgreSQL, with 1 and 3 scimd replicas on one database (docs/scaling.md):
# runs `scimd-bench replicas` (POST /Users, the Entra body, 30 tenants, 32 concurrent requests)
# and reads, before and after each run, the database's counters (pg_stat_database: commits,
# rows; pg_stat_wal: WAL records, bytes, flushes) and the CPU time of every PostgreSQL process
# and of the scimd replicas (/proc). Prints the cost per created user.
# Usage: PGURL=postgres://USER:PASSWORD@HOST:PORT/postgres scripts/bench-pg-cost.sh
#   env BIN (dir of scimd and scimd-bench, default /var/tmp/scimd-target-bench/release), OUT,
#   REPLICAS ("1 3"), DURATION (15)
set -euo pipefail
BIN=${BIN:-/var/tmp/scimd-target-bench/release}
OUT=${OUT:-/var/tmp/scimd-pg-cost/run-$(date +%Y%m%d-%H%M%S)}
REPLICAS=${REPLICAS:-"1 3"}
DURATION=${DURATION:-15}
mkdir -p "$OUT"
cd "$OUT"
ticks=$(getconf CLK_TCK)

# cpu COMM: CPU seconds (user + system) of every process named COMM, children included
cpu() {
    local total=0 pid
    for pid in $(pgrep -x "$1" || true); do
        total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

stats() { # DB: commits, rows written, WAL records, WAL bytes, WAL flushes (pg_stat_wal is cluster-wide)
    psql "$PGURL" -Atc "SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted,
        w.wal_records, w.wal_bytes, w.wal_sync FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '$1'"
}

printf '%-9s %8s %8s %10s %9s %9s %10s %10s %12s %12s\n' replicas creates per_s commits/op rows/op walrec/op walbytes/op flushes/op pg_cpu_us/op scimd_cpu_us/op
for n in $REPLICAS; do
    db="pgcost_r$n"
    psql "$PGURL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
    url="${PGURL%/*}/$db"
    before=$(stats "$db")
    pg0=$(cpu postgres)
    "$BIN/scimd-bench" replicas --scimd-bin "$BIN/scimd" --database "$url" --replicas "$n" --tenants 30 \
        --concurrency 32 --duration "$DURATION" --json "replicas-$n.json" >"replicas-$n.txt" 2>&1
    pg1=$(cpu postgres)
    after=$(stats "$db")
    python3 - "$n" "replicas-$n.json" "$before" "$after" "$pg0" "$pg1" "$ticks" <<'PY'
import json, sys
n, path, before, after, pg0, pg1, ticks = sys.argv[1:]
doc = json.load(open(path))
# The counters cover every user stored (setup, warm-up and run); scimd's CPU, the measured window.
stored = max(int(doc["stored_users"]), 1)
fig = doc["figures"]
d = [int(y) - int(x) for x, y in zip(before.split("|"), after.split("|"))]
pg_us = (int(pg1) - int(pg0)) / int(ticks) / stored * 1e6
scimd_us = (doc.get("scimd_cpu_s") or 0) / max(fig["ops"], 1) * 1e6
print(f"{n:<9} {fig['ops']:8d} {fig['per_sec']:8.0f} {d[0]/stored:10.2f} {d[1]/stored:9.2f} {d[2]/stored:9.2f} "
      f"{d[3]/stored:10.0f} {d[4]/stored:10.3f} {pg_us:12.0f} {scimd_us:12.0f}")
PY
    psql "$PGURL" -qc "DROP DATABASE $db" >/dev/null 2>&1 || true
done
