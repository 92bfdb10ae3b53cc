#!/usr/bin/env bash
# Sluice's benchmark harness, the one command: installs what it needs (the
# Kafka broker and PostgreSQL server, Maven's Kafka Streams, matplotlib),
# builds Sluice optimized and the Kafka Streams peer, runs every benchmark
# and rewrites docs/benchmarks.md and its plots (docs/benchmarks/*.png).
#
#   bench/run.sh                          everything, at full scale (an estimated three hours)
#   bench/run.sh --only kafka,latency     some parts (the others keep their last figures,
#                                         labelled with the run that measured them)
#   bench/run.sh --only kafka --engines sluice --topologies project
#                                         one engine and topology (to profile it)
#   bench/run.sh --cache off              one record-cache setting (default: off and on)
#   bench/run.sh --runs 5 --events 4000000  other sizes (bench/out/bin/sluice-bench run --help)
#   bench/run.sh --runs 1 --events 20000 --nexmark-events 5000 --state-keys 20000 \
#     --state-runs 1 --pull-keys 2000 --pull-secs 2 --latency-secs 3 --latency-warmup-secs 1
#                                         a quick check that every part works
#
# Environment: SLUICE_BENCH_KAFKA_PORT (default 19400), CARGO_TARGET_DIR
# (default ~/.cache/sluice-target, shared with the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
./scripts/setup.sh

# PostgreSQL's server (Debian's package), the pull queries' peer.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "bench: PostgreSQL's server is missing; run as root or install postgresql" >&2; exit 1; }
  echo "bench: installing PostgreSQL" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
venv="$HOME/.cache/sluice-venv"
"$venv/bin/python" -c 'import matplotlib' >/dev/null 2>&1 ||
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'matplotlib==3.10.*'

# The dependencies are the tests' build (optimized, no debug assertions);
# Sluice itself is optimized on top, without debug assertions.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
cargo build --bins \
  --config 'profile.dev.package.sluice.opt-level=3' \
  --config 'profile.dev.package.sluice.debug-assertions=false' \
  --config 'profile.dev.package.sluice.overflow-checks=false'
mkdir -p bench/out/bin
cp "$CARGO_TARGET_DIR/debug/sluice" "$CARGO_TARGET_DIR/debug/sluice-bench" bench/out/bin/
mvn -q -f bench/kstreams/pom.xml package -DskipTests

port="${SLUICE_BENCH_KAFKA_PORT:-19400}"
kdir="${TMPDIR:-/tmp}/sluice-bench-kafka"
rm -rf "$kdir"
SLUICE_KAFKA_HEAP_OPTS="${SLUICE_KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}" \
  ./scripts/kafka.sh start --port "$port" --dir "$kdir" >/dev/null
trap './scripts/kafka.sh stop --port "$port" --dir "$kdir" >/dev/null 2>&1 || true; rm -rf "$kdir"' EXIT

kafka_version="$(sed -n 's/^KAFKA_VERSION="${SLUICE_KAFKA_VERSION:-\(.*\)}"$/\1/p' scripts/kafka.sh)"
kafka_version="${SLUICE_KAFKA_VERSION:-$kafka_version}"
streams_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' bench/kstreams/pom.xml)"
bench/out/bin/sluice-bench run --root "$root" --kafka "localhost:$port" --sluice bench/out/bin/sluice \
  --version-of "Apache Kafka broker=$kafka_version" \
  --version-of "Kafka Streams=$streams_version" \
  --version-of "Java=$(java -version 2>&1 | head -1)" \
  --version-of "rustc=$(rustc --version)" \
  "$@"
"$venv/bin/python" bench/plot.py bench/out/results.json docs/benchmarks
echo "bench: docs/benchmarks.md and docs/benchmarks/*.png are up to date" >&2
