#!/usr/bin/env bash
# Runs scimd-bench against scimd and against the SCIM servers people pick today, on this
# machine, one after the other, with the same scenarios and options:
#   - scimd (SQLite, default durability), started by scimd-bench itself
#   - scim2-server from PyPI (its `scim2-server` command, in-memory storage as shipped)
#   - a Node server on scimmy + scimmy-routers from npm (bench/peers/scimmy, in-memory Maps:
#     SCIMMY ships no storage)
# Every run also measures the ceiling (the same HTTP stack answering fixed bodies).
#
# Usage: scripts/bench-peers.sh [USERS] [DURATION_S] [CONCURRENCY]
#   env OUT=DIR (results, default /var/tmp/scimd-bench-peers), PEERS="scimd scim2-server scimmy",
#   SYNC_DURATION (time limit of initial-sync, default 300 s)
# Needs: cargo, python3 (venv, pip), node + npm. Installs the peers under $OUT.
set -euo pipefail

USERS=${1:-10000}
DURATION=${2:-10}
SYNC_DURATION=${SYNC_DURATION:-300}
CONCURRENCY=${3:-16}
OUT=${OUT:-/var/tmp/scimd-bench-peers}
PEERS=${PEERS:-"scimd scim2-server scimmy"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release
TOKEN=bench-peer-token
mkdir -p "$OUT"

cargo build --release -p scimd -p scimd-bench --manifest-path "$ROOT/Cargo.toml" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_url() { # URL TOKEN: wait until it answers 2xx with the token
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null -H "Authorization: Bearer $2" "$1"; then return 0; fi
        sleep 0.1
    done
    echo "no answer from $1" >&2; return 1
}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

bench() { # NAME URL PID
    echo "== $1: loadavg $(cat /proc/loadavg)" >&2
    "$BIN/scimd-bench" run --name "$1" --url "$2" --token "$TOKEN" --server-pid "$3" \
        --users "$USERS" --duration "$DURATION" --sync-duration "$SYNC_DURATION" --concurrency "$CONCURRENCY" \
        --json "$OUT/$1.json" | tee "$OUT/$1.txt"
}

for peer in $PEERS; do
    case $peer in
    scimd)
        echo "== scimd: loadavg $(cat /proc/loadavg)" >&2
        "$BIN/scimd-bench" run --name scimd --users "$USERS" --duration "$DURATION" --sync-duration "$SYNC_DURATION" \
            --concurrency "$CONCURRENCY" --json "$OUT/scimd.json" | tee "$OUT/scimd.txt"
        ;;
    scim2-server)
        if [ ! -x "$OUT/venv/bin/scim2-server" ]; then
            python3 -m venv "$OUT/venv"
            "$OUT/venv/bin/pip" install --quiet "scim2-server==0.8.3" >&2
        fi
        port=$(free_port)
        "$OUT/venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$TOKEN" \
            >"$OUT/scim2-server.log" 2>&1 &
        pid=$!; PIDS+=("$pid")
        base=""
        for prefix in /scim/v2 /v2 ""; do
            if wait_url "http://127.0.0.1:$port$prefix/ServiceProviderConfig" "$TOKEN" 2>/dev/null; then
                base="http://127.0.0.1:$port$prefix"; break
            fi
        done
        [ -n "$base" ] || { echo "scim2-server did not start; see $OUT/scim2-server.log" >&2; exit 1; }
        bench scim2-server "$base" "$pid"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        ;;
    scimmy)
        dir=$OUT/scimmy
        mkdir -p "$dir"
        cp "$ROOT/bench/peers/scimmy/package.json" "$ROOT/bench/peers/scimmy/server.js" "$dir/"
        [ -d "$dir/node_modules/scimmy" ] || (cd "$dir" && npm install --no-audit --no-fund --silent >&2)
        port=$(free_port)
        (cd "$dir" && exec node server.js "$port" "$TOKEN") >"$OUT/scimmy.log" 2>&1 &
        pid=$!; PIDS+=("$pid")
        wait_url "http://127.0.0.1:$port/scim/v2/ServiceProviderConfig" "$TOKEN"
        bench scimmy "http://127.0.0.1:$port/scim/v2" "$pid"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
    esac
done
echo "results in $OUT" >&2
