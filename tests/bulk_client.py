"""Bulk writes and names as Python applications use them, against `sluice
server`: psycopg2's execute_values (multi-row INSERT ... VALUES), psycopg
3's COPY FROM STDIN of 100,000 rows, a rolled-back transaction, and column
names as the drivers see them (lower case; ksqlDB's upper case behind
`sluice.identifier_case`). Prints what it got; tests/postgres_tools.rs
compares it exactly. The time the COPY took goes to stderr (not compared:
docs/benchmarks.md has the measured figure)."""

import sys
import time

import psycopg
import psycopg2
import psycopg2.extras

port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=sluice dbname=sluice"


def wait_for(cur, sql, want):
    """Run `sql` until its one value is `want` (the engine reads the topic
    in the background); the last value otherwise."""
    deadline = time.time() + 60
    while True:
        cur.execute(sql)
        got = cur.fetchone()[0]
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.2)


# Not `with psycopg2.connect(...)`: psycopg2 2.9 opens a transaction in
# that block even in autocommit mode, and its rows would wait for the end.
conn = psycopg2.connect(dsn)
try:
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(
        "CREATE STREAM readings (sensor STRING KEY, at BIGINT, celsius DOUBLE) "
        "WITH (kafka_topic='readings', value_format='JSON', partitions=1)"
    )
    cur.execute(
        "CREATE TABLE per_sensor AS SELECT sensor, COUNT(*) AS n, MAX(celsius) AS hottest "
        "FROM readings GROUP BY sensor"
    )
    rows = [(f"s{i % 10}", i, i / 10) for i in range(1000)]
    psycopg2.extras.execute_values(
        cur, "INSERT INTO readings (sensor, at, celsius) VALUES %s", rows, page_size=250
    )
    print("execute_values", cur.rowcount, "rows in its last statement")
    print("counted", wait_for(cur, "SELECT SUM(n) FROM per_sensor", 1000))
    cur.execute("SELECT sensor, n, hottest FROM per_sensor WHERE sensor = 's3'")
    print("columns", [d.name for d in cur.description], cur.fetchall())

    # Not applied: rolled back.
    conn.autocommit = False
    cur.execute("INSERT INTO readings (sensor, at, celsius) VALUES ('s3', 1, 99.5)")
    conn.rollback()
    conn.autocommit = True
finally:
    conn.close()

with psycopg.connect(dsn, autocommit=True) as conn:
    cur = conn.cursor()
    start = time.time()
    with cur.copy("COPY readings (sensor, at, celsius) FROM STDIN") as copy:
        for i in range(100_000):
            copy.write_row((f"s{i % 10}", 1000 + i, 1.5))
    print(f"copy took {time.time() - start:.2f} s", file=sys.stderr)
    print("copied", cur.rowcount)
    print("counted", wait_for(cur, "SELECT SUM(n) FROM per_sensor", 101_000))
    # The rolled-back row never arrived: s3's hottest is still 99.3.
    cur.execute("SELECT n, hottest FROM per_sensor WHERE sensor = 's3'")
    print("s3", cur.fetchall())
    cur.execute("SET sluice.identifier_case = upper")
    cur.execute("SELECT sensor, n FROM per_sensor WHERE sensor = 's0'")
    print("upper", [d.name for d in cur.description], cur.fetchall())
