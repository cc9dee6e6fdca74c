#!/usr/bin/env bash
# CI's short fuzz run (.ci/run calls it after scripts/test.sh): every scim-core fuzz target
# (crates/scim-core/fuzz; run.sh there is for long runs) for SCIMD_FUZZ_SECONDS, one per core at a
# time, and a failure if any of them crashes (a panic, a failed round-trip assertion, an
# input slower than 20 s, running out of memory) or if the targets no longer build. About 2.5 min
# on a 2-core machine from nothing (cargo-fuzz install ~40 s, fuzz build ~45 s, fuzzing ~65 s);
# about 75 s once cargo-fuzz and the build directory are there.
#
#   scripts/fuzz-ci.sh                     # 30 s per target
#   SCIMD_FUZZ_SECONDS=120 scripts/fuzz-ci.sh
#   SCIMD_FUZZ_SECONDS=0 scripts/fuzz-ci.sh  # skips
#
# Environment:
#   SCIMD_FUZZ_SECONDS     seconds per target (default 30; 0 skips the fuzz run)
#   SCIMD_FUZZ_JOBS        targets fuzzed at once (default: the number of cores)
#   SCIMD_FUZZ_TARGET_DIR  build directory (default /var/tmp/scimd-fuzz-target, kept between runs
#                          and apart from the main build: the fuzz build has its own flags)
#   SCIMD_FUZZ_CORPUS      where the corpus grows (default /var/tmp/scimd-fuzz-corpus, kept
#                          between runs so that each run starts where the last one stopped; set
#                          it to "" for a throw-away corpus). The clone's corpus/*/seed-* files
#                          are read, never written.
#   SCIMD_FUZZ_TARGETS     space-separated targets (default: all, from `cargo fuzz list`)
#
# Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) when it is missing. Only the stable
# toolchain is installed; cargo fuzz needs nightly flags, so RUSTC_BOOTSTRAP=1, as in run.sh.
# A crash's input is saved under $SCIMD_FUZZ_TARGET_DIR/artifacts/<target>/ and printed in the
# log (libFuzzer's `Base64:` line), with the command that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${SCIMD_FUZZ_SECONDS:-30}"
case "$secs" in
'' | *[!0-9]*)
    echo "SCIMD_FUZZ_SECONDS must be a whole number of seconds, not '$secs'" >&2
    exit 2
    ;;
esac
if [ "$secs" -eq 0 ]; then
    echo "== fuzz: skipped (SCIMD_FUZZ_SECONDS=0)"
    exit 0
fi
jobs="${SCIMD_FUZZ_JOBS:-$(nproc)}"

export RUSTC_BOOTSTRAP=1
# Not the main build's CARGO_TARGET_DIR (which .ci/run exports): other RUSTFLAGS, other artifacts.
export CARGO_TARGET_DIR="${SCIMD_FUZZ_TARGET_DIR:-/var/tmp/scimd-fuzz-target}"
mkdir -p "$CARGO_TARGET_DIR"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== fuzz: installing cargo-fuzz"
    start=$SECONDS
    cargo install cargo-fuzz --locked --target-dir "$CARGO_TARGET_DIR/cargo-fuzz-install"
    echo "== fuzz: cargo-fuzz installed in $((SECONDS - start)) s"
fi
cargo fuzz --version

corpus_root="${SCIMD_FUZZ_CORPUS-/var/tmp/scimd-fuzz-corpus}"
work="$(mktemp -d /tmp/scimd-fuzz.XXXXXX)"
children=()
cleanup() {
    for pid in "${children[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$corpus_root" ]; then
    corpus_root="$work/corpus"
fi

cd crates/scim-core/fuzz
targets="${SCIMD_FUZZ_TARGETS:-$(cargo fuzz list)}"
# The flags of `cargo fuzz build` and `cargo fuzz run` must be the same, or `run` rebuilds.
# No sanitizer: scim-core is safe Rust (unsafe_code is forbidden), so panics are what we look
# for, and the targets run several times faster without one. Debug assertions catch overflows.
flags=(--sanitizer none --debug-assertions)

echo "== fuzz: build"
start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "== fuzz: built in $((SECONDS - start)) s"

# One target in the background; its output goes to $work/<target>.log.
fuzz_one() {
    local t="$1"
    mkdir -p "$corpus_root/$t" "$CARGO_TARGET_DIR/artifacts/$t"
    # New inputs go to the first corpus directory only; the seeds in the clone are read.
    exec cargo fuzz run "${flags[@]}" "$t" "$corpus_root/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$CARGO_TARGET_DIR/artifacts/$t/" >"$work/$t.log" 2>&1
}

echo "== fuzz: ${secs} s per target, $jobs at once: ${targets//$'\n'/ }"
start=$SECONDS
failed=()
set -- $targets
while [ $# -gt 0 ]; do
    wave=()
    children=()
    while [ $# -gt 0 ] && [ "${#wave[@]}" -lt "$jobs" ]; do
        fuzz_one "$1" &
        children+=("$!")
        wave+=("$1")
        shift
    done
    for i in "${!wave[@]}"; do
        t="${wave[$i]}"
        if wait "${children[$i]}"; then
            # e.g. "stat::number_of_executed_units: 123456" and the corpus size at the end.
            execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)"
            cov="$(grep -E '^#[0-9]+' "$work/$t.log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' || true)"
            echo "-- $t: ok, ${execs:-?} runs; $cov"
        else
            failed+=("$t")
            # The end of the log has the crash, its input (Base64) and how to reproduce it;
            # the progress lines of the fuzzing before it are left out.
            echo "-- $t: FAILED; the end of its log:"
            grep -vE '^#[0-9]+\s|^\s+NEW_FUNC' "$work/$t.log" | tail -n 150
        fi
    done
    children=()
done
echo "== fuzz: ran in $((SECONDS - start)) s"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzz: crashed: ${failed[*]} (inputs under $CARGO_TARGET_DIR/artifacts/; reproduce with"
    echo "   RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo fuzz run ${flags[*]} TARGET INPUT"
    echo "   in crates/scim-core/fuzz)"
    exit 1
fi
echo "== fuzz: no crashes"
