"""Cursors as Python applications page through results with them, against
`sluice server`: psycopg 3 and psycopg2 named (server-side) cursors over a
pull query and over a push query (a live subscription), and the statements
themselves (FETCH with a timeout, MOVE, CLOSE, the end of a block closing a
cursor). Prints what it got; tests/postgres_tools.rs compares it exactly."""

import sys
import time

import psycopg
import psycopg2

port = sys.argv[1]


def take(fetch, n):
    """`n` rows of a live cursor: a FETCH answers the rows there once the
    first came, so it may take several."""
    rows = []
    while len(rows) < n:
        rows += fetch(n - len(rows))
    return rows


dsn = f"host=127.0.0.1 port={port} user=sluice dbname=sluice"

with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute(
        "CREATE STREAM clicks (id BIGINT KEY, page STRING) "
        "WITH (kafka_topic='clicks', value_format='JSON', partitions=1)"
    )
    conn.execute(
        "INSERT INTO clicks (id, page) VALUES (1, 'home'), (2, 'cart'), (3, 'home'), (4, 'pay'), (5, 'home')"
    )
    deadline = time.time() + 30
    while conn.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] < 5 and time.time() < deadline:
        time.sleep(0.1)

# psycopg 3: a named cursor lives in the transaction the driver opens.
with psycopg.connect(dsn) as conn:
    with conn.cursor(name="by_id") as cur:
        cur.itersize = 2
        cur.execute("SELECT id, page FROM clicks WHERE id > %s ORDER BY id", (1,))
        print("psycopg pull", [d.name for d in cur.description], cur.fetchmany(2), cur.fetchall())
    conn.commit()
    conn.execute("SET 'auto.offset.reset'='earliest'")
    with conn.cursor(name="live") as cur:
        cur.execute("SELECT id, page FROM clicks WHERE page = 'home' EMIT CHANGES")
        print("psycopg push", take(cur.fetchmany, 2), take(cur.fetchmany, 1))
    conn.commit()

# psycopg2: its named cursor fetches `itersize` rows at a time.
conn = psycopg2.connect(dsn)
try:
    cur = conn.cursor(name="pages")
    cur.itersize = 2
    cur.execute("SELECT page, COUNT(*) AS n FROM clicks GROUP BY page ORDER BY page")
    print("psycopg2 pull", list(cur))
    conn.commit()
    cur = conn.cursor()
    cur.execute("SET 'auto.offset.reset'='earliest'")
    cur.execute("DECLARE sub CURSOR FOR SELECT id FROM clicks EMIT CHANGES")
    moved = 0
    while moved < 2:
        cur.execute(f"MOVE {2 - moved} sub")
        moved += int(cur.statusmessage.split()[1])
    print("moved", moved)

    def fetch(n):
        cur.execute(f"FETCH {n} sub")
        return cur.fetchall()

    print("fetch", take(fetch, 3))
    # Nothing new: the timeout answers no rows.
    cur.execute("FETCH 10 sub WITH (timeout = '200ms')")
    print("fetch", cur.fetchall(), cur.statusmessage)
    conn.commit()
    try:
        cur.execute("FETCH 1 sub")
    except psycopg2.Error as e:
        print("after commit", e.pgcode, e.diag.message_primary)
        conn.rollback()
    conn.autocommit = True
    try:
        cur.execute("DECLARE loose CURSOR FOR SELECT id FROM clicks")
    except psycopg2.Error as e:
        print("outside a block", e.pgcode, e.diag.message_primary)
    cur.execute("DECLARE held CURSOR WITH HOLD FOR SELECT id FROM clicks ORDER BY id")
    cur.execute("FETCH 2 FROM held")
    print("held", cur.fetchall())
    cur.execute("CLOSE held")
    print(cur.statusmessage)
finally:
    conn.close()
