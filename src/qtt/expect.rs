//! A case's expected error: its message, and what its Java class (qtt) or
//! REST error type and HTTP status (rqtt) say happened, mapped to how
//! Sluice reports the same thing.
//!
//! ksqlDB's harness matches the class with `instanceOf`, so a class accepts
//! its subclasses. Mapped by what each class means in ksqlDB:
//!
//! | ksqlDB | meaning | Sluice |
//! |---|---|---|
//! | `ParseFailedException` | the parser refused the text | the statement refused with a syntax error (SQLSTATE 42601) |
//! | `KsqlStatementException` (ParseFailedException's parent) | a statement refused | the statement refused as the user's mistake: an error whose SQLSTATE class is not a system one (see [`user_error`]) |
//! | `KsqlException` (the parent of both) | likewise, raised while running the statements | likewise |
//! | `StreamsException` | a query failed while processing records (Kafka Streams' wrapper) | a query failed while the runner processed the inputs, after every statement was accepted |
//!
//! Over REST (rqtt), an `expectedError` of type `KsqlStatementErrorMessage`
//! or `KsqlErrorMessage` (the same error, with or without the statement
//! echoed) and status 400 means the statement was answered with a client
//! error: over the Postgres wire, an ErrorResponse whose SQLSTATE is a user
//! error. A status of 500 or more would be a system one. An error without
//! type or status is any ErrorResponse to the statement. A query failing
//! while the runner drives the engine is never a statement's answer.
//! Any other class or type is not known to the runner: the case fails,
//! saying so.

use serde_json::Value;

/// How a case's statements failed, as far as the expected class goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// A statement was refused with this SQLSTATE.
    Statement(&'a str),
    /// Every statement was accepted; a query failed processing records.
    Processing,
}

/// Whether a SQLSTATE reports the user's mistake (a 4xx in ksqlDB's REST
/// terms) rather than a failure of the system: internal errors (XX),
/// system and I/O errors (58), connection failures (08: the Kafka cluster
/// unreachable), resources exhausted (53) and operator intervention (57).
pub(crate) fn user_error(sqlstate: &str) -> bool {
    !matches!(
        sqlstate.get(..2),
        Some("XX" | "58" | "08" | "53" | "57") | None
    )
}

/// What the case expects to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A statement refused with a syntax error.
    Syntax,
    /// A statement refused as the user's mistake.
    Rejected,
    /// A statement answered with a system error.
    SystemError,
    /// A statement refused, any SQLSTATE.
    AnyStatement,
    /// A query failing while processing records.
    Processing,
    /// A class or type the runner does not know.
    Unknown(String),
}

/// A case's expected error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Must be contained in the actual message.
    pub message: String,
    kind: Kind,
}

impl Expected {
    /// A qtt case's `expectedException` (`type` is a Java class name).
    pub(crate) fn qtt(case: &Value) -> Option<Self> {
        let e = case.get("expectedException")?;
        let kind = match e.get("type").and_then(Value::as_str) {
            Some("io.confluent.ksql.parser.exception.ParseFailedException") => Kind::Syntax,
            Some(
                "io.confluent.ksql.util.KsqlStatementException"
                | "io.confluent.ksql.util.KsqlException",
            ) => Kind::Rejected,
            Some("org.apache.kafka.streams.errors.StreamsException") => Kind::Processing,
            Some(other) => Kind::Unknown(other.to_string()),
            None => Kind::AnyStatement,
        };
        Some(Self {
            message: message(e),
            kind,
        })
    }

    /// An rqtt case's `expectedError` (a REST error type and status).
    pub(crate) fn rqtt(case: &Value) -> Option<Self> {
        let e = case.get("expectedError")?;
        let status = e.get("status").and_then(Value::as_u64);
        let kind = match (e.get("type").and_then(Value::as_str), status) {
            (Some(t), _)
                if !matches!(
                    t,
                    "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage"
                        | "io.confluent.ksql.rest.entity.KsqlErrorMessage"
                ) =>
            {
                Kind::Unknown(t.to_string())
            }
            (_, Some(400..=499)) => Kind::Rejected,
            (_, Some(500..=599)) => Kind::SystemError,
            (_, Some(s)) => Kind::Unknown(format!("HTTP status {s}")),
            (Some(_), None) => Kind::Rejected,
            (None, None) => Kind::AnyStatement,
        };
        Some(Self {
            message: message(e),
            kind,
        })
    }

    /// Check the kind of a failure whose message matched: `Err` says why
    /// it is not the one expected.
    pub(crate) fn check_kind(&self, failure: Failure<'_>) -> Result<(), String> {
        let ok = match (&self.kind, failure) {
            (Kind::Unknown(t), _) => {
                return Err(format!(
                    "the runner does not know the expected error type {t}"
                ))
            }
            (Kind::Processing, Failure::Processing) => true,
            (Kind::Processing, Failure::Statement(_)) => false,
            (_, Failure::Processing) => false,
            (Kind::Syntax, Failure::Statement(code)) => code == "42601",
            (Kind::Rejected, Failure::Statement(code)) => user_error(code),
            (Kind::SystemError, Failure::Statement(code)) => !user_error(code),
            (Kind::AnyStatement, Failure::Statement(_)) => true,
        };
        if ok {
            return Ok(());
        }
        let got = match failure {
            Failure::Statement(code) => format!("a statement refused with SQLSTATE {code}"),
            Failure::Processing => "a query failing while processing records".to_string(),
        };
        Err(format!("expected {}, got {got}", self.describe()))
    }

    /// What the expected kind is, in words.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Syntax => "a statement refused with a syntax error (42601)".into(),
            Kind::Rejected => "a statement refused as the user's mistake".into(),
            Kind::SystemError => "a statement failing with a system error".into(),
            Kind::AnyStatement => "a statement refused".into(),
            Kind::Processing => "a query failing while processing records".into(),
            Kind::Unknown(t) => format!("an error of unknown type {t}"),
        }
    }
}

/// The expected message, without ksqlDB's pointers to its documentation
/// and issue tracker (`See https://cnfl.io/queries for more info.`, `See
/// https://github.com/confluentinc/ksql/issues/6621 for more.`): Sluice's
/// messages say the same without sending a user to another product's pages.
fn message(e: &Value) -> String {
    let text = e.get("message").and_then(Value::as_str).unwrap_or_default();
    static LINK: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let link = LINK.get_or_init(|| {
        regex::Regex::new(
            r"\s?See https://(?:cnfl\.io|github\.com/confluentinc)/[A-Za-z0-9/_-]+(?: for more(?: info)?)?\.?",
        )
        .expect("a valid pattern")
    });
    link.replace_all(text, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qtt(class: &str) -> Expected {
        Expected::qtt(&json!({"expectedException": {"type": class, "message": "m"}})).unwrap()
    }

    #[test]
    fn ksqldb_exception_classes_map_to_how_sluice_fails() {
        let parse = qtt("io.confluent.ksql.parser.exception.ParseFailedException");
        assert!(parse.check_kind(Failure::Statement("42601")).is_ok());
        assert!(parse.check_kind(Failure::Statement("42000")).is_err());
        for class in [
            "io.confluent.ksql.util.KsqlStatementException",
            "io.confluent.ksql.util.KsqlException",
        ] {
            let e = qtt(class);
            for code in ["42601", "42000", "0A000", "42P01", "22P02"] {
                assert!(e.check_kind(Failure::Statement(code)).is_ok(), "{code}");
            }
            for code in ["XX000", "08006", "58030", "53200", "57014"] {
                assert!(e.check_kind(Failure::Statement(code)).is_err(), "{code}");
            }
            assert!(e.check_kind(Failure::Processing).is_err());
        }
        let streams = qtt("org.apache.kafka.streams.errors.StreamsException");
        assert!(streams.check_kind(Failure::Processing).is_ok());
        assert!(streams.check_kind(Failure::Statement("42000")).is_err());
        let unknown = qtt("java.lang.IllegalStateException");
        assert!(unknown
            .check_kind(Failure::Statement("42000"))
            .unwrap_err()
            .contains("java.lang.IllegalStateException"));
        assert_eq!(parse.message, "m");
        assert_eq!(Expected::qtt(&json!({})), None);
    }

    #[test]
    fn links_to_ksqldb_pages_are_left_out_of_expected_messages() {
        let linked =
            |m: &str| Expected::qtt(&json!({"expectedException": {"message": m}})).unwrap();
        assert_eq!(
            linked("No GROUP BY. See https://cnfl.io/queries for more info.\nAdd EMIT CHANGES.")
                .message,
            "No GROUP BY.\nAdd EMIT CHANGES."
        );
        assert_eq!(
            linked(
                "Type: MAP<K, V>. See https://github.com/confluentinc/ksql/issues/6621 for more."
            )
            .message,
            "Type: MAP<K, V>."
        );
        assert_eq!(
            linked("Key missing (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query").message,
            "Key missing (ie, SELECT).\nThe query"
        );
    }

    #[test]
    fn rest_error_types_and_statuses_map_to_sqlstates() {
        let rqtt = |e: Value| Expected::rqtt(&json!({ "expectedError": e })).unwrap();
        let client = rqtt(json!({
            "type": "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage",
            "message": "m", "status": 400
        }));
        assert!(client.check_kind(Failure::Statement("42000")).is_ok());
        assert!(client.check_kind(Failure::Statement("XX000")).is_err());
        assert!(client.check_kind(Failure::Processing).is_err());
        let push = rqtt(json!({
            "type": "io.confluent.ksql.rest.entity.KsqlErrorMessage", "status": 400
        }));
        assert!(push.check_kind(Failure::Statement("0A000")).is_ok());
        let server = rqtt(json!({"status": 500}));
        assert!(server.check_kind(Failure::Statement("XX000")).is_ok());
        assert!(server.check_kind(Failure::Statement("42000")).is_err());
        let any = rqtt(json!({"message": "m"}));
        assert!(any.check_kind(Failure::Statement("XX000")).is_ok());
        assert!(any.check_kind(Failure::Processing).is_err());
        assert!(rqtt(json!({"type": "Other", "status": 400}))
            .check_kind(Failure::Statement("42000"))
            .is_err());
    }
}
