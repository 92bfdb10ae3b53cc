#!/usr/bin/env bash
# The one command that runs all of Sluice's tests on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# One build directory outside the checkout, shared by tests, the binary and CI.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
cargo test --all-targets
