//! What ordinary Postgres tools do besides queries, against `sluice
//! server`: COPY in and out (the real `psql`), transaction blocks, bulk
//! inserts from psycopg2 and psycopg 3, column names as drivers see them,
//! and cursors (psycopg's and psycopg2's named cursors, FETCH, MOVE).

use std::io::Write;
use std::process::{Command, Output, Stdio};

mod common;
use common::Server;

/// Run `psql -c` for each command, unaligned, stopping at the first error,
/// with `input` on its standard input (COPY FROM STDIN reads it).
fn psql(server: &Server, commands: &[&str], input: &str) -> Output {
    let mut args = vec!["-v", "ON_ERROR_STOP=1"];
    for c in commands {
        args.extend(["-c", c]);
    }
    run_psql(server, &args, input)
}

/// Run a script through `psql -f -`, going on after errors, as psql
/// does by default.
fn psql_script(server: &Server, script: &str) -> Output {
    run_psql(server, &["-f", "-"], script)
}

/// `psql`, unaligned with `|` between columns, with these arguments and
/// `input` on its standard input.
fn run_psql(server: &Server, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-F", "|"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql (Debian's postgresql-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write psql's input");
    child.wait_with_output().expect("psql's output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Stdout and stderr of `commands` once stdout is `want` (the server
/// reads its topics in the background), else the last.
fn until(server: &Server, commands: &[&str], want: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = psql(server, commands, "");
        let got = (text(&out.stdout), text(&out.stderr));
        if got.0 == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const ORDERS: &str =
    "CREATE STREAM orders (id BIGINT KEY, who STRING, note STRING, amount DECIMAL(10, 2)) \
     WITH (kafka_topic='orders', value_format='JSON', partitions=1)";

#[test]
fn copy_reads_and_writes_csv_and_text_as_postgres_does() {
    let server = Server::start();
    let out = psql(&server, &[ORDERS], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // CSV with a header, a quoted comma, a quoted line end, an empty
    // string and a NULL.
    let csv = "id,who,note,amount\n1,alice,\"big, red\",2.50\n2,bob,\"two\nlines\",10.00\n3,carol,\"\",\n";
    let out = psql(
        &server,
        &["COPY orders (id, who, note, amount) FROM STDIN WITH (FORMAT csv, HEADER)"],
        csv,
    );
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("COPY 3\n".into(), String::new())
    );
    // Text format, ksqlDB's legacy spelling of the options too.
    let out = psql(
        &server,
        &["COPY orders FROM STDIN"],
        "4\tdan\ta\\tb\t\\N\n\\.\n",
    );
    assert_eq!(text(&out.stdout), "COPY 1\n", "{}", text(&out.stderr));
    // A bad value anywhere: nothing written, the line and column named.
    let out = psql(
        &server,
        &["COPY orders FROM STDIN CSV"],
        "5,eve,,1.00\n6,fay,,lots\n",
    );
    assert_eq!(
        text(&out.stderr),
        "ERROR:  COPY ORDERS, line 2, column AMOUNT: invalid input for type DECIMAL(10, 2): \"lots\"\n"
    );
    let want = "id,who,note,amount\n\
                1,alice,\"big, red\",2.50\n\
                2,bob,\"two\nlines\",10.00\n\
                3,carol,\"\",\n\
                4,dan,a\tb,\n";
    let (out, err) = until(
        &server,
        &["COPY (SELECT id, who, note, amount FROM orders ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"],
        want,
    );
    assert_eq!((out.as_str(), err.as_str()), (want, ""));
    let out = psql(
        &server,
        &["COPY (SELECT id, note FROM orders WHERE id > 2 ORDER BY id) TO STDOUT WITH (DELIMITER '|', NULL 'nil', HEADER)"],
        "",
    );
    assert_eq!(text(&out.stdout), "id|note\n3|\n4|a\\tb\n");
    let out = psql(&server, &["COPY orders (id, who) TO STDOUT"], "");
    assert_eq!(text(&out.stdout), "1\talice\n2\tbob\n3\tcarol\n4\tdan\n");
}

#[test]
fn a_rolled_back_transaction_leaves_no_trace() {
    let server = Server::start();
    let out = psql(&server, &[ORDERS], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = psql(
        &server,
        &[
            "BEGIN",
            "INSERT INTO orders (id, who) VALUES (1, 'never'), (2, 'never')",
            "ROLLBACK",
            "BEGIN",
            "INSERT INTO orders (id, who) VALUES (3, 'kept')",
            "SAVEPOINT one",
            "INSERT INTO orders (id, who) VALUES (4, 'dropped')",
            "ROLLBACK TO SAVEPOINT one",
            "COPY orders (id, who) FROM STDIN",
            "COMMIT",
        ],
        "5\tcopied\n",
    );
    assert_eq!(
        text(&out.stdout),
        "BEGIN\nINSERT 0 2\nROLLBACK\nBEGIN\nINSERT 0 1\nSAVEPOINT\nINSERT 0 1\nROLLBACK\nCOPY 1\nCOMMIT\n"
    );
    assert_eq!(text(&out.stderr), "");
    // A failed statement aborts the block (every statement up to its end
    // is refused); DDL in a rolled-back block stayed, and ROLLBACK says so.
    let out = psql_script(
        &server,
        "BEGIN;\n\
         CREATE STREAM extra (id BIGINT KEY) WITH (kafka_topic='extra', value_format='JSON', partitions=1);\n\
         INSERT INTO orders (id, who) VALUES (6, 'dropped');\n\
         SELECT * FROM nowhere;\n\
         INSERT INTO orders (id, who) VALUES (7, 'refused');\n\
         ROLLBACK;\n",
    );
    assert_eq!(
        text(&out.stdout),
        "BEGIN\nCREATE STREAM\nINSERT 0 1\nROLLBACK\n"
    );
    assert_eq!(
        text(&out.stderr),
        "psql:<stdin>:2: NOTICE:  Stream created\n\
         psql:<stdin>:4: ERROR:  NOWHERE does not exist.\n\
         psql:<stdin>:5: ERROR:  current transaction is aborted, commands ignored until end of transaction block\n\
         psql:<stdin>:6: WARNING:  ROLLBACK dropped the rows written in the transaction, but these statements took effect when they ran and stay: \
         CREATE STREAM extra (id BIGINT KEY) WITH (kafka_topic='extra', value_format='JSON', partitions=1)\n"
    );
    let want = "id|who\n3|kept\n5|copied\n(2 rows)\n";
    let (out, err) = until(&server, &["SELECT id, who FROM orders ORDER BY id"], want);
    assert_eq!((out.as_str(), err.as_str()), (want, ""));
}

#[test]
fn bulk_inserts_and_names_from_python_drivers() {
    let server = Server::start();
    let out = Command::new(common::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bulk_client.py"))
        .arg(server.port.to_string())
        .output()
        .expect("run python");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("copy took "), "{stderr}");
    eprint!("{stderr}");
    assert_eq!(
        text(&out.stdout),
        "execute_values 250 rows in its last statement\n\
         counted 1000\n\
         columns ['sensor', 'n', 'hottest'] [('s3', 100, 99.3)]\n\
         copied 100000\n\
         counted 101000\n\
         s3 [(10100, 99.3)]\n\
         upper ['SENSOR', 'N'] [('s0', 10100)]\n"
    );
    assert!(out.status.success());
}

#[test]
fn python_drivers_page_through_pull_and_push_queries_with_cursors() {
    let server = Server::start();
    let out = Command::new(common::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cursor_client.py"
        ))
        .arg(server.port.to_string())
        .output()
        .expect("run python (scripts/setup.sh installs psycopg and psycopg2)");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "psycopg pull ['id', 'page'] [(2, 'cart'), (3, 'home')] [(4, 'pay'), (5, 'home')]\n\
         psycopg push [(1, 'home'), (3, 'home')] [(5, 'home')]\n\
         psycopg2 pull [('cart', 1), ('home', 3), ('pay', 1)]\n\
         moved 2\n\
         fetch [(3,), (4,), (5,)]\n\
         fetch [] FETCH 0\n\
         after commit 34000 cursor \"sub\" does not exist\n\
         outside a block 25P01 DECLARE CURSOR can only be used in transaction blocks (or WITH HOLD)\n\
         held [(1,), (2,)]\n\
         CLOSE CURSOR\n"
    );
    assert!(out.status.success());
}
