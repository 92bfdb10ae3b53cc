#!/usr/bin/env bash
# Run a SQL script against an in-process Sluice engine: ./scripts/run.sh FILE.sql
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
exec cargo run --quiet -- run "$@"
