#!/usr/bin/env bash
# Install what building Sluice needs on a fresh Debian machine:
# libclang (bindgen for RocksDB's bindings) and a C/C++ toolchain.
set -euo pipefail
need=()
ldconfig -p 2>/dev/null | grep 'libclang' >/dev/null || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
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
