"""psycopg 3 against `sluice server`, as an application would use it: a
transaction opened by the driver (BEGIN/COMMIT: its rows are written at the
COMMIT), executemany with
parameters, pull queries with and without parameters (extended and simple
protocol; a key lookup prepared on the server), a push query with LIMIT and an error. Prints what it got; the
Rust test (tests/drivers.rs) compares it exactly."""

import sys
import time
from decimal import Decimal

import psycopg

port = sys.argv[1]
with psycopg.connect(f"host=127.0.0.1 port={port} user=sluice dbname=sluice") as conn:
    print("server_version", conn.info.server_version)
    cur = conn.cursor()
    cur.execute(
        "CREATE STREAM orders (id BIGINT KEY, who STRING, amount DECIMAL(10, 2)) "
        "WITH (kafka_topic='orders', value_format='JSON', partitions=1)"
    )
    print("created stream")
    cur.executemany(
        "INSERT INTO orders (id, who, amount) VALUES (%s, %s, %s)",
        [(1, "alice", Decimal("2.50")), (2, "bob", Decimal("10.00")), (3, "alice", Decimal("5.00"))],
    )
    print("inserted", cur.rowcount)
    # Rows written in a transaction are written at its COMMIT.
    conn.commit()
    cur.execute(
        "CREATE TABLE totals AS SELECT who, COUNT(*) AS n, SUM(amount) AS total "
        "FROM orders GROUP BY who"
    )
    deadline = time.time() + 30
    while True:
        cur.execute("SELECT who, n, total FROM totals ORDER BY who")
        rows = cur.fetchall()
        if [r[1] for r in rows] == [2, 1] or time.time() > deadline:
            break
        time.sleep(0.1)
    print("totals", rows)
    cur.execute("SELECT who, n FROM totals WHERE who = %s", ("alice",))
    print("alice", cur.fetchall())
    # Prepared once on the server, executed again and again: the key
    # lookup's fast path.
    lookups = []
    for who in ["bob", "alice", "nobody"]:
        cur.execute("SELECT who, n FROM totals WHERE who = %s", (who,), prepare=True)
        lookups.append(cur.fetchall())
    print("prepared", lookups)
    cur.execute("SET 'auto.offset.reset'='earliest'")
    cur.execute("SELECT who, amount FROM orders WHERE amount > %s EMIT CHANGES LIMIT 2", (3,))
    print("push", cur.fetchall())
    try:
        cur.execute("SELECT * FROM nowhere")
    except psycopg.Error as e:
        print("error", e.sqlstate, e.diag.message_primary)
        conn.rollback()
