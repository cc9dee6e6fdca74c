#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run calls it:
#   1. a PostgreSQL server for the store contract suite (scripts/postgres.sh; it installs Debian's
#      `postgresql` package when missing, which needs root), unless SCIMD_TEST_POSTGRES_URL names one;
#   2. cargo test --workspace (the store contract suite on SQLite and PostgreSQL, the HTTP API
#      on SQLite, the CLI), then the HTTP suite again on PostgreSQL (SCIMD_TEST_ENGINE=postgres);
#   3. the public SCIM conformance suite scim2-tester against a live scimd (scripts/conformance.sh).
# The console's browser tests (crates/scimd/tests/browser) drive Debian's headless `chromium`
# through `chromedriver` (package `chromium-driver`); they are installed here when missing (as root).
# Set SCIMD_SKIP_CONFORMANCE=1 to leave out step 3 (it needs PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/scimd-target}"

if [ -z "${SCIMD_TEST_POSTGRES_URL:-}" ]; then
    echo "== postgres"
    pg_dir="$(mktemp -d /tmp/scimd-pg.XXXXXX)"
    trap 'scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
    pg_env="$(scripts/postgres.sh start "$pg_dir")" # a failed start stops here (set -e)
    eval "$pg_env"
fi
: "${SCIMD_TEST_POSTGRES_URL:?no PostgreSQL: the store contract tests would be skipped}"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver" >&2
        exit 1
    fi
    echo "== installing chromium and chromium-driver"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

echo "== cargo test"
cargo test --workspace

echo "== the HTTP suite on PostgreSQL"
SCIMD_TEST_ENGINE=postgres cargo test -p scimd --test it -- --skip cli::

if [ "${SCIMD_SKIP_CONFORMANCE:-0}" != 1 ]; then
    echo "== conformance (scim2-tester)"
    scripts/conformance.sh
fi
