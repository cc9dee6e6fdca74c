#!/usr/bin/env bash
# Runs the public SCIM conformance suite against a freshly built scimd.
#
# The suite is scim2-tester, driven by the `scim2 test` command of scim2-cli (both from PyPI,
# installed into a virtualenv in a cache directory). The script builds scimd in release mode,
# creates tenant `conformance` and a token on a temporary SQLite database, serves it on a free
# loopback port, runs every check, prints the results and a summary line
# `conformance: N passed, N failed, N skipped`, and exits non-zero if any check failed.
#
# Usage: scripts/conformance.sh [-v]          (-v: show the data of failing checks)
# Environment:
#   CARGO_TARGET_DIR           honoured by the build
#   SCIMD_CONFORMANCE_CACHE    where the virtualenv lives (default: ~/.cache/scimd-conformance)
#   SCIM2_CLI_VERSION          scim2-cli version to install (default: pinned below)
#   SCIM2_TESTER_VERSION       scim2-tester version to install (default: pinned below)
#   STRICT_DEVIATIONS=1        count DEVIATION (a SHOULD not followed) as a failure too
# Needs: cargo, python3 (>= 3.11) with venv, network access to PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_CLI_VERSION="${SCIM2_CLI_VERSION:-0.6.0}"
SCIM2_TESTER_VERSION="${SCIM2_TESTER_VERSION:-0.5.2}"
CACHE="${SCIMD_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scimd-conformance}"
VENV="$CACHE/venv-scim2-cli-$SCIM2_CLI_VERSION-tester-$SCIM2_TESTER_VERSION"
VERBOSE=()
[[ "${1:-}" == "-v" ]] && VERBOSE=(--verbose)

say() { printf '== %s\n' "$*"; }
die() { printf 'conformance: %s\n' "$*" >&2; exit 2; }

command -v python3 >/dev/null || die "python3 is required"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "python3 >= 3.11 is required by scim2-cli (found $(python3 --version 2>&1))"

# 1. Build, and find the binary wherever the target directory is.
say "build scimd (release)"
SCIMD="$(cargo build --release -p scimd --bin scimd --message-format=json-render-diagnostics \
    | python3 -c '
import json, sys
exe = ""
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "scimd" and msg.get("executable"):
        exe = msg["executable"]
print(exe)
')"
[[ -x "$SCIMD" ]] || die "cargo build did not produce the scimd binary"
echo "$SCIMD"

# 2. The suite, in a cached virtualenv.
if [[ ! -x "$VENV/bin/scim2" ]]; then
    say "install scim2-cli $SCIM2_CLI_VERSION, scim2-tester $SCIM2_TESTER_VERSION into $VENV"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
            # Debian's python3 needs python3-venv for `python3 -m venv`.
            apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
            python3 -m venv "$VENV" || die "cannot create a virtualenv in $VENV"
        else
            die "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "scim2-cli==$SCIM2_CLI_VERSION" "scim2-tester==$SCIM2_TESTER_VERSION" \
        || { rm -rf "$VENV"; die "pip install scim2-cli failed"; }
fi
"$VENV/bin/scim2" --help >/dev/null || die "scim2 does not run from $VENV"

# 3. A temporary database with a tenant and a token, and a server on free loopback ports.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scimd-conformance.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unset SCIMD_CONFIG SCIMD_LISTEN SCIMD_ADMIN_LISTEN SCIMD_PUBLIC_URL
export SCIMD_DATABASE="sqlite://$WORK/conformance.db"
export RUST_LOG="${RUST_LOG:-warn}"
"$SCIMD" tenant create conformance >/dev/null
TOKEN="$("$SCIMD" token create --tenant conformance --label conformance | tail -n 1)"
[[ "$TOKEN" == scimd_* ]] || die "token create did not print a token on its last line"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
say "serve on $BASE (log: scimd.log below on failure)"
"$SCIMD" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    >"$WORK/serve.out" 2>"$WORK/scimd.log" &
SERVER_PID=$!

python3 - "$BASE/healthz" <<'EOF' || { cat "$WORK/scimd.log" >&2; die "scimd did not answer $BASE/healthz within 20 s"; }
import sys, time, urllib.request
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(1)
EOF

# 4. The suite. The token goes through the environment, not the command line.
say "scim2 test $BASE/scim/v2"
set +e
SCIM_CLI_HEADERS="Authorization: Bearer $TOKEN" NO_COLOR=1 \
    "$VENV/bin/scim2" --url "$BASE/scim/v2" test "${VERBOSE[@]}" >"$WORK/results.txt" 2>&1
SUITE_RC=$?
set -e
kill -0 "$SERVER_PID" 2>/dev/null || { echo "scimd died during the suite:" >&2; cat "$WORK/scimd.log" >&2; }

# 5. Results: one line per check, `STATUS title`, then indented reason and data lines.
python3 - "$WORK/results.txt" "$SUITE_RC" "${STRICT_DEVIATIONS:-0}" <<'EOF'
import re, sys
path, suite_rc, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", open(path, encoding="utf-8", errors="replace").read())
passed_states = {"SUCCESS", "COMPLIANT", "ACCEPTABLE"}
failed_states = {"ERROR", "CRITICAL"} | ({"DEVIATION"} if strict else set())
line_re = re.compile(r"^(SUCCESS|COMPLIANT|ACCEPTABLE|DEVIATION|ERROR|CRITICAL|SKIPPED) (.*)$")
checks = []  # (state, title, [detail lines])
other = []
for line in text.splitlines():
    m = line_re.match(line)
    if m:
        checks.append((m.group(1), m.group(2), []))
    elif checks and line.strip():
        # The reason is indented by two spaces; its further lines and the data are not.
        checks[-1][2].append(line.strip())
    elif line.strip():
        other.append(line)
print("\n".join(other))
for state, title, details in checks:
    print(f"{state} {title}")
    for d in details:
        print(f"    {d}")
passed = sum(1 for s, _, _ in checks if s in passed_states or (s == "DEVIATION" and not strict))
failed = [(s, t, d) for s, t, d in checks if s in failed_states]
warned = [(s, t, d) for s, t, d in checks if s == "DEVIATION" and not strict]
skipped = sum(1 for s, _, _ in checks if s == "SKIPPED")
if failed:
    print(f"\nFailed checks ({len(failed)}):")
    for s, t, d in failed:
        print(f"  {s} {t}" + (f": {d[0]}" if d else ""))
        for more in d[1:]:
            print(f"      {more[:2000]}")
if warned:
    print(f"\nDeviations from a SHOULD ({len(warned)}), counted as passed:")
    for s, t, d in warned:
        print(f"  {t}" + (f": {d[0]}" if d else ""))
if not checks:
    print("\nthe suite reported no checks at all (exit code %d): see its output above" % suite_rc)
    failed = [("ERROR", "suite", [])]
print(f"\nconformance: {passed} passed, {len(failed)} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
EOF
