#!/usr/bin/env bash
# The one command that runs all of Sluice's tests on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# One build directory outside the checkout, shared by tests, the binary and CI.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"

# A real Kafka broker for the tests that claim to cover Kafka (installed from
# Maven Central on first use), stopped when this script exits.
if [[ -z "${SLUICE_TEST_KAFKA:-}" ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test-kafka.XXXXXX")
  trap './scripts/kafka.sh stop --port "$port" --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  SLUICE_TEST_KAFKA=$(./scripts/kafka.sh start --port "$port" --dir "$dir" | tail -n 1)
  export SLUICE_TEST_KAFKA
fi

cargo test --all-targets
