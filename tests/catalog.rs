//! Tools that read the Postgres catalog, against `sluice server`:
//! SQLAlchemy 2 and pandas, pgjdbc's `DatabaseMetaData`, pgcli and psql's
//! `\d`. Each sees the streams and tables as relations of `public`, their
//! columns with Postgres types, and a table's key as its primary key.

use std::process::{Command, Output};

mod common;
use common::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `psql -c` for each command, unaligned, stopping at the first error.
fn psql(server: &Server, commands: &[&str]) -> Output {
    let mut args = vec!["-v", "ON_ERROR_STOP=1"];
    for c in commands {
        args.extend(["-c", c]);
    }
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "shop", "-X", "-A", "-F", "|"])
        .args(args)
        .output()
        .expect("run psql (Debian's postgresql-client)")
}

/// A server with a case study's shape: a stream of orders, a table of
/// orders by id (its key a primary key) with two rows, and a stream of
/// payments.
fn shop() -> Server {
    let server = Server::start();
    let out = psql(
        &server,
        &[
            "CREATE STREAM order_events (id BIGINT KEY, customer STRING, amount DOUBLE) \
             WITH (kafka_topic='order_events', value_format='JSON', partitions=1)",
            "CREATE TABLE orders AS SELECT id, LATEST_BY_OFFSET(customer) AS customer, \
             SUM(amount) AS amount FROM order_events GROUP BY id",
            "CREATE STREAM payments (id BIGINT KEY, who STRING) \
             WITH (kafka_topic='payments', value_format='JSON', partitions=1)",
            "INSERT INTO order_events (id, customer, amount) VALUES (1, 'ann', 2.5), (2, 'bob', 4.0)",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = psql(&server, &["SELECT count(*) AS n FROM orders"]);
        if text(&out.stdout) == "n\n2\n(1 row)\n" {
            return server;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orders never had both rows: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sqlalchemy_reflects_the_catalog_and_pandas_reads_a_pull_query() {
    let server = shop();
    let out = Command::new(common::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/catalog_client.py"
        ))
        .arg(server.port.to_string())
        .output()
        .expect("run python");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "version (15,)\n\
         schema public\n\
         tables ['order_events', 'orders', 'payments']\n\
         column id BIGINT False KEY\n\
         column customer VARCHAR True None\n\
         column amount DOUBLE PRECISION True None\n\
         pk {'constrained_columns': ['id'], 'name': 'orders_pkey', 'comment': None, 'dialect_options': {'postgresql_include': []}}\n\
         pk of a stream {'name': None, 'constrained_columns': []}\n \
         id customer  amount\n  \
         1      ann     2.5\n"
    );
    assert!(out.status.success());
}

#[test]
fn jdbc_database_metadata_lists_tables_columns_and_primary_keys() {
    let jar = common::pgjdbc();
    let server = shop();
    let out = Command::new("java")
        .arg("-cp")
        .arg(&jar)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/JdbcCatalog.java"
        ))
        .arg(server.port.to_string())
        .output()
        .expect("run java");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "catalog shop\n\
         table shop public order_events TABLE [stream on topic order_events]\n\
         table shop public orders TABLE [table on topic ORDERS]\n\
         table shop public payments TABLE [stream on topic payments]\n\
         column id -5 int8 1 NO [KEY]\n\
         column customer 12 varchar 2 YES [null]\n\
         column amount 8 float8 3 YES [null]\n\
         pk orders id 1 orders_pkey\n\
         stream pk false\n"
    );
    assert!(out.status.success());
}

#[test]
fn pgcli_starts_runs_a_query_and_describes_a_table() {
    let server = shop();
    let home = tempfile::tempdir().expect("a home for pgcli");
    let pgcli = common::python().with_file_name("pgcli");
    let out = Command::new(&pgcli)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "shop", "--less-chatty"])
        .args(["-c", "SELECT id, customer FROM orders WHERE id = 1"])
        .args(["-c", "\\d orders"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (scripts/setup.sh installs it)",
                pgcli.display()
            )
        });
    assert_eq!(text(&out.stderr), "");
    let stdout = text(&out.stdout);
    // Timings vary: drop them.
    let shown: String = stdout
        .lines()
        .filter(|l| !l.starts_with("Time: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        shown,
        "+----+----------+\n\
         | id | customer |\n\
         |----+----------|\n\
         | 1  | ann      |\n\
         +----+----------+\n\
         SELECT 1\n\
         +----------+-------------------+-----------+\n\
         | Column   | Type              | Modifiers |\n\
         |----------+-------------------+-----------|\n\
         | id       | bigint            |  not null |\n\
         | customer | character varying |           |\n\
         | amount   | double precision  |           |\n\
         +----------+-------------------+-----------+\n\
         Indexes:\n    \"orders_pkey\" PRIMARY KEY, btree (id)\n\n"
    );
    assert!(out.status.success());
}

#[test]
fn psql_describes_tables_with_their_keys_and_ordinary_sql_reads_the_catalog() {
    let server = shop();
    let out = psql(&server, &["\\d orders"]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "Table \"public.orders\"\n\
         Column|Type|Collation|Nullable|Default\n\
         id|bigint||not null|\n\
         customer|character varying|||\n\
         amount|double precision|||\n\
         Indexes:\n    \"orders_pkey\" PRIMARY KEY, btree (id)\n"
    );
    // Joins, WHERE, aggregates and the catalog's functions.
    let out = psql(
        &server,
        &[
            "SELECT c.relname, count(a.attnum) AS columns, bool_or(c.relhasindex) AS keyed \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
             WHERE n.nspname = 'public' AND c.relkind = 'r' GROUP BY c.relname ORDER BY 1",
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = 'payments' ORDER BY ordinal_position",
            "SELECT current_database(), current_schema(), 'orders'::regclass::oid = c.oid AS same, \
             obj_description(c.oid, 'pg_class') FROM pg_class c WHERE relname = 'orders'",
        ],
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "relname|columns|keyed\n\
         order_events|3|f\n\
         orders|3|t\n\
         payments|2|f\n\
         (3 rows)\n\
         table_name|column_name|data_type\n\
         payments|id|bigint\n\
         payments|who|character varying\n\
         (2 rows)\n\
         current_database|current_schema|same|obj_description\n\
         shop|public|t|table on topic ORDERS\n\
         (1 row)\n"
    );
}

#[test]
fn pg_dump_writes_every_stream_and_table_as_a_table_with_its_key() {
    let server = shop();
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
        ])
        .args(["-U", "sluice", "shop"])
        .output()
        .expect("run pg_dump (Debian's postgresql-client)");
    assert_eq!(text(&out.stderr), "");
    assert!(out.status.success());
    // Without the lines that change with each run or pg_dump's version.
    let dump: String = text(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
                && !l.starts_with("-- Dumped by")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let start = dump.find("CREATE TABLE").expect("a CREATE TABLE");
    assert!(
        dump.contains("-- Dumped from database version 15.0\n"),
        "{dump}"
    );
    assert_eq!(
        &dump[start..],
        "CREATE TABLE public.order_events (\n    id bigint,\n    customer character varying,\n    amount double precision\n);\n\n\n\
         ALTER TABLE public.order_events OWNER TO sluice;\n\n--\n\
         -- Name: TABLE order_events; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON TABLE public.order_events IS 'stream on topic order_events';\n\n\n--\n\
         -- Name: COLUMN order_events.id; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON COLUMN public.order_events.id IS 'KEY';\n\n\n--\n\
         -- Name: orders; Type: TABLE; Schema: public; Owner: sluice\n--\n\n\
         CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    customer character varying,\n    amount double precision\n);\n\n\n\
         ALTER TABLE public.orders OWNER TO sluice;\n\n--\n\
         -- Name: TABLE orders; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON TABLE public.orders IS 'table on topic ORDERS';\n\n\n--\n\
         -- Name: COLUMN orders.id; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON COLUMN public.orders.id IS 'KEY';\n\n\n--\n\
         -- Name: payments; Type: TABLE; Schema: public; Owner: sluice\n--\n\n\
         CREATE TABLE public.payments (\n    id bigint,\n    who character varying\n);\n\n\n\
         ALTER TABLE public.payments OWNER TO sluice;\n\n--\n\
         -- Name: TABLE payments; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON TABLE public.payments IS 'stream on topic payments';\n\n\n--\n\
         -- Name: COLUMN payments.id; Type: COMMENT; Schema: public; Owner: sluice\n--\n\n\
         COMMENT ON COLUMN public.payments.id IS 'KEY';\n\n\n--\n\
         -- Name: orders orders_pkey; Type: CONSTRAINT; Schema: public; Owner: sluice\n--\n\n\
         ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n\n\n--\n\
         -- PostgreSQL database dump complete\n--\n\n\n"
    );
}
