#!/usr/bin/env bash
# Install what building and testing Sluice needs on a fresh Debian machine:
# libclang (bindgen for RocksDB's bindings), a C/C++ toolchain (RocksDB,
# librdkafka), a JDK with Maven (the Kafka broker the tests run against, and
# pgjdbc for the JDBC test), Node.js with npm (node-postgres and
# pg-query-stream for the node test) and
# psql, Python's psycopg and openssl (the Postgres wire tests drive the real
# clients, over TLS too), and moto's S3 server with pyarrow (the analytics
# sink writes to an S3-compatible bucket, read back by pandas' Parquet engine).
set -euo pipefail
need=()
# bindgen (through clang-sys) loads libclang itself: a file named libclang.so,
# libclang-N.so or libclang.so.N (libclang-cpp.so.N is another library and
# does not serve), in the loader's paths or an LLVM lib directory, plus clang's
# own headers (stddef.h) beside it, which libclang-dev brings in.
has_libclang() {
  local dir f
  for dir in ${LIBCLANG_PATH:-} $(ldconfig -p 2>/dev/null | awk '/=>/ {print $NF}' | xargs -r -n1 dirname | sort -u) /usr/lib/llvm-*/lib; do
    for f in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-[0-9]*.so.*; do
      [ -e "$f" ] || continue
      case "$(basename "$f")" in libclang-cpp*) continue ;; esac
      # clang's builtin headers: <llvm>/lib/clang/<version>/include/stddef.h
      compgen -G "/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null && return 0
    done
  done
  return 1
}
has_libclang || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
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

# Python's psycopg 3 and psycopg2 for the driver tests, SQLAlchemy and pgcli for the catalog's,
# moto (an S3-compatible server) and pyarrow, pandas and DuckDB for the analytics sink's test,
# in a virtualenv beside the build directory (the tests look for it there).
venv="$HOME/.cache/sluice-venv"
if ! "$venv/bin/python" -c 'import psycopg, psycopg2, moto.server, boto3, pyarrow.parquet, pandas, duckdb, sqlalchemy, pgcli' >/dev/null 2>&1; then
  echo "setup: installing psycopg, psycopg2, SQLAlchemy, pgcli, moto, pyarrow, pandas and DuckDB into $venv" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'psycopg[binary]==3.2.*' \
    'psycopg2-binary==2.9.*' 'moto[server]==5.1.*' 'pyarrow==22.*' 'pandas==2.3.*' 'duckdb==1.4.*' \
    'sqlalchemy==2.0.*' 'pgcli==4.7.*'
fi

# pgjdbc for the JDBC driver test, from Maven Central into ~/.m2.
pgjdbc="$HOME/.m2/repository/org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar"
if [ ! -f "$pgjdbc" ]; then
  echo "setup: fetching pgjdbc 42.7.8" >&2
  mvn -q dependency:get -Dartifact=org.postgresql:postgresql:42.7.8 >/dev/null
fi

# node-postgres and pg-query-stream for the node driver test, from the npm registry into
# ~/.cache/sluice-node/node_modules (the test sets NODE_PATH to it).
node_dir="$HOME/.cache/sluice-node"
if [ ! -f "$node_dir/node_modules/pg/package.json" ] || [ ! -f "$node_dir/node_modules/pg-query-stream/package.json" ]; then
  echo "setup: installing pg and pg-query-stream into $node_dir" >&2
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent 'pg@8.23' 'pg-query-stream@4.17' >/dev/null
fi
