#!/usr/bin/env bash
# Runs every scim-core fuzz target, one after another, each for $1 seconds (default 60).
#
#   crates/scim-core/fuzz/run.sh            # 60 s per target
#   crates/scim-core/fuzz/run.sh 240        # 4 min per target
#   crates/scim-core/fuzz/run.sh 240 -dict=x  # further arguments go to libFuzzer
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default /var/tmp/scimd-fuzz-target, apart from the main build)
#   FUZZ_TARGETS       space-separated targets to run (default: all, from `cargo fuzz list`)
#   FUZZ_KEEP_GOING=1  keep fuzzing after a crash (libFuzzer -fork=1 -ignore_crashes=1); every
#                      crash is still saved under artifacts/<target>/
#   FUZZ_SANITIZER     cargo fuzz --sanitizer (default none: scim-core is safe Rust, so panics are
#                      what we look for, and no sanitizer runs the targets several times faster)
#
# Only the stable toolchain is installed; cargo fuzz needs nightly flags, so RUSTC_BOOTSTRAP=1.
# Crashes land in artifacts/<target>/; the corpus grows in corpus/<target>/ (both gitignored,
# except the hand-written corpus/*/seed-* files). Exits non-zero if any target crashed.
set -uo pipefail
cd "$(dirname "$0")"

secs="${1:-60}"
shift || true

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/scimd-fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 1
fi

extra=()
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    extra=(-fork=1 -ignore_crashes=1)
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}" || exit 1
failed=()
for t in $targets; do
    echo "== $t: ${secs}s"
    mkdir -p "corpus/$t"
    if ! cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$t" -- \
        -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" "$@"; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "== crashed: ${failed[*]} (inputs under artifacts/)"
    exit 1
fi
echo "== no crashes"
