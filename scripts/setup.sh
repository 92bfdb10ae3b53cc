#!/usr/bin/env bash
# Install what building and testing Sluice needs on a fresh Debian machine:
# libclang (bindgen for RocksDB's bindings), a C/C++ toolchain (RocksDB,
# librdkafka), Java with Maven (the Kafka broker the tests run against) and
# psql (the Postgres wire tests drive the real client).
set -euo pipefail
need=()
ldconfig -p 2>/dev/null | grep 'libclang' >/dev/null || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust 1.88+) is required" >&2; exit 1; }
