//! The runner's checks, each shown to fail a case that breaks it (case
//! files written here, run as `sluice qtt` runs them).

use serde_json::{json, Value};

use super::{run_file, Outcome};

/// Run one case (a qtt test object) and return its outcome.
fn outcome(case: Value) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.json");
    std::fs::write(&path, json!({ "tests": [case] }).to_string()).unwrap();
    let report = run_file(&path, None).unwrap();
    assert_eq!(report.cases.len(), 1);
    report.cases[0].outcome.clone()
}

fn failed_with(o: &Outcome, text: &str) -> bool {
    matches!(o, Outcome::Failed(m) if m.contains(text))
}

fn windowed(window: &str, post_type: &str) -> Value {
    json!({
        "name": "windowed",
        "statements": [
            "CREATE STREAM S (ID INT KEY, V INT) WITH (kafka_topic='s', value_format='JSON');",
            format!("CREATE TABLE T AS SELECT ID, COUNT(*) AS N FROM S WINDOW {window} GROUP BY ID;")
        ],
        "inputs": [],
        "post": {"sources": [{"name": "T", "type": "table",
            "keyFormat": {"format": "KAFKA", "windowType": post_type}}]}
    })
}

#[test]
fn hopping_and_tumbling_windows_are_told_apart() {
    let hopping = "HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS)";
    let tumbling = "TUMBLING (SIZE 30 SECONDS)";
    assert_eq!(outcome(windowed(hopping, "HOPPING")), Outcome::Passed);
    assert_eq!(outcome(windowed(tumbling, "TUMBLING")), Outcome::Passed);
    assert_eq!(
        outcome(windowed("SESSION (30 SECONDS)", "SESSION")),
        Outcome::Passed
    );
    let o = outcome(windowed(hopping, "TUMBLING"));
    assert!(
        failed_with(&o, "window type is HOPPING, expected TUMBLING"),
        "{o:?}"
    );
    let o = outcome(windowed(tumbling, "HOPPING"));
    assert!(
        failed_with(&o, "window type is TUMBLING, expected HOPPING"),
        "{o:?}"
    );
}

fn projected(column: &str, expected: Value) -> Value {
    json!({
        "name": "projected",
        "statements": [
            format!("CREATE STREAM S (ID INT KEY, {column} INT) WITH (kafka_topic='s', value_format='JSON');"),
            "CREATE STREAM O AS SELECT * FROM S;"
        ],
        "inputs": [{"topic": "s", "key": 1, "value": {"V": 2, "v": 2}}],
        "outputs": [{"topic": "O", "key": 1, "value": expected}]
    })
}

#[test]
fn a_string_never_equals_a_number() {
    assert_eq!(outcome(projected("V", json!({"V": 2}))), Outcome::Passed);
    let o = outcome(projected("V", json!({"V": "2"})));
    assert!(failed_with(&o, "value differs"), "{o:?}");
}

#[test]
fn field_names_match_as_written_or_upper_cased_only() {
    // ksqlDB's fallback: an expected name upper-cased finds `V`.
    assert_eq!(outcome(projected("V", json!({"v": 2}))), Outcome::Passed);
    // A quoted lower-case column is `v`: `V` is another name.
    assert_eq!(outcome(projected("`v`", json!({"v": 2}))), Outcome::Passed);
    let o = outcome(projected("`v`", json!({"V": 2})));
    assert!(failed_with(&o, "value differs"), "{o:?}");
}

fn rejected(statement: &str, class: &str, message: &str) -> Value {
    json!({
        "name": "rejected",
        "statements": [
            "CREATE STREAM S (ID INT KEY, V INT) WITH (kafka_topic='s', value_format='JSON');",
            statement
        ],
        "expectedException": {"type": class, "message": message}
    })
}

#[test]
fn an_expected_exceptions_class_is_checked() {
    let parse = "io.confluent.ksql.parser.exception.ParseFailedException";
    let statement = "io.confluent.ksql.util.KsqlStatementException";
    let streams = "org.apache.kafka.streams.errors.StreamsException";
    let syntax = "CREATE STREAM O AS SELEKT * FROM S;";
    let unknown_column = "CREATE STREAM O AS SELECT NOPE FROM S;";
    assert_eq!(outcome(rejected(syntax, parse, "")), Outcome::Passed);
    assert_eq!(outcome(rejected(syntax, statement, "")), Outcome::Passed);
    assert_eq!(
        outcome(rejected(unknown_column, statement, "")),
        Outcome::Passed
    );
    let o = outcome(rejected(unknown_column, parse, ""));
    assert!(
        failed_with(&o, "expected a statement refused with a syntax error"),
        "{o:?}"
    );
    let o = outcome(rejected(unknown_column, streams, ""));
    assert!(
        failed_with(&o, "expected a query failing while processing records"),
        "{o:?}"
    );
    let o = outcome(rejected(unknown_column, "java.lang.Error", ""));
    assert!(
        failed_with(&o, "does not know the expected error type java.lang.Error"),
        "{o:?}"
    );
    // The message still has to be there.
    let o = outcome(rejected(unknown_column, statement, "no such words"));
    assert!(failed_with(&o, "expected error containing"), "{o:?}");
}
