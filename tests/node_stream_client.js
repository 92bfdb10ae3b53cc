// node-postgres with pg-query-stream against `sluice server` (driven by
// tests/drivers.rs; `scripts/setup.sh` installs pg and pg-query-stream in
// ~/.cache/sluice-node). pg-query-stream reads a portal in batches
// (Execute with a row limit, PortalSuspended, again) and, on an early
// `break`, sends Close + Sync and waits for their answer. Checks, with
// exact results:
// - a push query with no new rows: 2 rows read, `break`, and the next
//   query on the connection answers at once (within BOUND_MS; no new row
//   ever arrives), and the push query stops;
// - a pull query streamed the same way: every row, and an early `break`.
// Usage: node node_stream_client.js PORT. Prints "ok" and exits 0, or says
// what was wrong and exits 1.

const { Client } = require('pg');
const QueryStream = require('pg-query-stream');

const port = Number(process.argv[2]);
const BOUND_MS = 10000;

function fail(message) {
  console.error(message);
  process.exit(1);
}

function same(got, expected, what) {
  const g = JSON.stringify(got);
  const e = JSON.stringify(expected);
  if (g !== e) fail(`${what}: expected ${e}, got ${g}`);
}

// A promise's value, or a failure after BOUND_MS.
function within(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${BOUND_MS} ms: the connection hangs`)),
      BOUND_MS,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rowsUntil(client, sql, expected) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const { rows } = await client.query(sql);
    if (JSON.stringify(rows) === JSON.stringify(expected) || Date.now() > deadline) return rows;
    await sleep(100);
  }
}

async function transientQueries(client) {
  const { rows } = await client.query('SHOW QUERIES;');
  return rows.map((r) => Object.values(r)[0]).filter((id) => String(id).startsWith('transient_'));
}

async function main() {
  const client = new Client({ host: '127.0.0.1', port, user: 'sluice', database: 'sluice' });
  await client.connect();
  await client.query(
    "CREATE STREAM ticks (id INT KEY, n INT) WITH (kafka_topic='ticks', value_format='JSON', partitions=1);",
  );
  await client.query('CREATE TABLE totals AS SELECT id, SUM(n) AS total FROM ticks GROUP BY id;');
  for (const [id, n] of [[1, 10], [2, 20], [1, 5]]) {
    await client.query(`INSERT INTO ticks (id, n) VALUES (${id}, ${n});`);
  }
  const pull = 'SELECT id, total FROM totals ORDER BY id;';
  same(
    await rowsUntil(client, pull, [{ id: 1, total: 15 }, { id: 2, total: 20 }]),
    [{ id: 1, total: 15 }, { id: 2, total: 20 }],
    'the table',
  );

  // A push query from the stream's start: its 3 rows, then nothing more.
  await client.query("SET 'auto.offset.reset'='earliest';");
  const push = client.query(
    new QueryStream('SELECT id, n FROM ticks EMIT CHANGES', [], { batchSize: 2 }),
  );
  const seen = [];
  await within(
    (async () => {
      for await (const row of push) {
        seen.push(row);
        if (seen.length === 2) break;
      }
    })(),
    'reading 2 rows of the push query, then break,',
  );
  same(seen, [{ id: 1, n: 10 }, { id: 2, n: 20 }], 'the push query rows read before break');
  const after = await within(client.query('SELECT 1 AS one;'), 'the query after break');
  same(after.rows, [{ one: 1 }], 'the query after break');
  same(
    (await within(client.query(pull), 'a pull query after break')).rows,
    [{ id: 1, total: 15 }, { id: 2, total: 20 }],
    'a pull query after break',
  );
  // The closed portal's push query stops.
  const deadline = Date.now() + BOUND_MS;
  while ((await transientQueries(client)).length > 0) {
    if (Date.now() > deadline) fail('the push query still runs after its portal was closed');
    await sleep(100);
  }

  // A pull query streamed the same way: every row, in batches of one...
  const all = [];
  await within(
    (async () => {
      for await (const row of client.query(new QueryStream(pull, [], { batchSize: 1 }))) {
        all.push(row);
      }
    })(),
    'streaming a pull query',
  );
  same(all, [{ id: 1, total: 15 }, { id: 2, total: 20 }], 'the pull query streamed');
  // ... and left after its first row.
  const first = [];
  await within(
    (async () => {
      for await (const row of client.query(new QueryStream(pull, [], { batchSize: 1 }))) {
        first.push(row);
        break;
      }
    })(),
    'a pull query streamed, then break,',
  );
  same(first, [{ id: 1, total: 15 }], 'the pull query row read before break');
  const next = await within(client.query('SELECT 2 AS two;'), 'the query after a pull break');
  same(next.rows, [{ two: 2 }], 'the query after a pull break');
  await client.end();
  console.log('ok');
}

main().catch((e) => fail(e.stack || String(e)));
