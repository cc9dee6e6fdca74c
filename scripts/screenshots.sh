#!/usr/bin/env bash
# The console's screenshots in docs/console/*.png (shown by docs/console.md), taken by the
# browser tests (crates/scimd/tests/browser) in a real headless Chromium: the sign-in page, the
# tenants list, a tenant, a token shown once, the customer's setup page before and after
# provisioning, the provisioning log and the service health.
#
# Needs Debian's `chromium` and `chromium-driver` (or SCIMD_CHROMEDRIVER and SCIMD_CHROMIUM).
# The whole browser suite runs; a failing test stops here (set -e) and may leave some pictures
# unchanged.
#
# Usage: scripts/screenshots.sh   (from anywhere; pictures land in docs/console/)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/scimd-target}"

mkdir -p docs/console
SCIMD_SCREENSHOTS=docs/console cargo test -p scimd --test browser
ls -l docs/console/*.png
