#!/usr/bin/env bash
# The Sluice demo: every case study running on an embedded Kafka broker, fed
# by its generator, answering psql. Installs what the build needs, builds,
# and runs `sluice demo` (arguments are passed on: --listen, --rate, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
exec cargo run --quiet -- demo "$@"
