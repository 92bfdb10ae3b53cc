//! Cursors: `DECLARE name CURSOR FOR <pull or push query>`, `FETCH`,
//! `MOVE`, `CLOSE`, so any driver can page through a result, or through a
//! live subscription (psycopg's and psycopg2's named cursors, pgjdbc's
//! fetch size, ...).
//!
//! A cursor holds its query's rows as they come. `FETCH n` answers the
//! next `n` rows of a pull query; on a push query it waits for the first
//! row (as long as `WITH (timeout = '...')` says, if given; then it may
//! answer none) and then answers those already there, up to `n`, as
//! Materialize does: a live subscription is paged without waiting for rows
//! that have not happened. Cursors only move forward (`NO SCROLL`).
//! Without `WITH HOLD` a cursor lives in its transaction block (DECLARE
//! outside one is refused, as in Postgres) and closes at its end; closing a
//! cursor, or the session, stops its push query at once.

use std::sync::Arc;
use std::time::Duration;

use futures::{stream, FutureExt, StreamExt};
use pgwire::api::results::FieldInfo;
use tokio::sync::Mutex;

use super::results::Rows;
use crate::error::{Error, Result};

/// A cursor statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `DECLARE name ... CURSOR [WITH HOLD] FOR query`.
    Declare {
        name: String,
        hold: bool,
        query: String,
    },
    /// `FETCH` (`discard`: `MOVE`) of `count` rows (None: all).
    Fetch {
        name: String,
        count: Option<usize>,
        timeout: Option<Duration>,
        discard: bool,
    },
    /// `CLOSE name` (None: `CLOSE ALL`).
    Close(Option<String>),
}

/// A declared cursor.
pub(crate) struct Cursor {
    pub fields: Arc<Vec<FieldInfo>>,
    rows: Arc<Mutex<Rows>>,
    /// Its query is a push query: rows come as they happen.
    push: bool,
    /// `WITH HOLD`: it outlives its transaction block.
    pub hold: bool,
}

impl Cursor {
    pub(crate) fn new(fields: Arc<Vec<FieldInfo>>, rows: Rows, push: bool, hold: bool) -> Self {
        Self {
            fields,
            rows: Arc::new(Mutex::new(rows)),
            push,
            hold,
        }
    }

    /// The next rows, up to `count` (None: all; on a push query, all that
    /// are there once the first came), as they are taken from the cursor.
    pub(crate) fn fetch(&self, count: Option<usize>, timeout: Option<Duration>) -> Rows {
        let (rows, push) = (self.rows.clone(), self.push);
        stream::unfold(0usize, move |taken| {
            let rows = rows.clone();
            async move {
                if count.is_some_and(|n| taken >= n) {
                    return None;
                }
                let mut rows = rows.lock().await;
                let next = match (push, taken, timeout) {
                    (true, 0, Some(t)) => tokio::time::timeout(t, rows.next()).await.ok().flatten(),
                    (true, 0, None) => rows.next().await,
                    (true, _, _) => rows.next().now_or_never().flatten(),
                    (false, _, _) => rows.next().await,
                };
                next.map(|row| (row, taken + 1))
            }
        })
        .boxed()
    }
}

/// The cursor statement `text` is (None: not one).
pub(crate) fn statement(text: &str) -> Result<Option<Statement>> {
    let words = Words::new(text);
    let Some(first) = words.upper(0) else {
        return Ok(None);
    };
    match first.as_str() {
        "DECLARE" => declare(&words, text).map(Some),
        "FETCH" | "MOVE" => fetch(&words, first == "MOVE").map(Some),
        "CLOSE" => {
            let name = words
                .name(1)
                .ok_or_else(|| syntax("CLOSE needs a cursor name or ALL"))?;
            if words.len() != 2 {
                return Err(syntax("CLOSE takes one cursor name, or ALL"));
            }
            Ok(Some(Statement::Close(
                (words.upper(1).as_deref() != Some("ALL")).then_some(name),
            )))
        }
        _ => Ok(None),
    }
}

fn syntax(message: &str) -> Error {
    Error::syntax(format!("syntax error: {message}"), None)
}

/// `DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR
/// [{WITH | WITHOUT} HOLD] FOR query`.
fn declare(words: &Words, text: &str) -> Result<Statement> {
    let name = words
        .name(1)
        .ok_or_else(|| syntax("DECLARE needs a cursor name"))?;
    let mut i = 2;
    let mut hold = false;
    loop {
        match words.upper(i).as_deref() {
            Some("BINARY" | "ASENSITIVE" | "INSENSITIVE" | "CURSOR") => i += 1,
            Some("NO") if words.upper(i + 1).as_deref() == Some("SCROLL") => i += 2,
            Some("SCROLL") => {
                return Err(Error::Unsupported(
                    "SCROLL cursors (Sluice's cursors move forward only)".into(),
                ))
            }
            Some(w @ ("WITH" | "WITHOUT")) if words.upper(i + 1).as_deref() == Some("HOLD") => {
                hold = w == "WITH";
                i += 2;
            }
            Some("FOR") => break,
            Some(other) => return Err(syntax(&format!("at or near \"{other}\" in DECLARE"))),
            None => return Err(syntax("DECLARE needs FOR and a query")),
        }
    }
    let query = words.rest(text, i + 1).trim().to_string();
    if query.is_empty() {
        return Err(syntax("DECLARE needs a query after FOR"));
    }
    Ok(Statement::Declare { name, hold, query })
}

/// `FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name [WITH
/// (timeout = '1s')]`, and `MOVE` alike.
fn fetch(words: &Words, discard: bool) -> Result<Statement> {
    let mut i = 1;
    let mut count = Some(1);
    let number = |w: &str| w.parse::<usize>().ok();
    match words.upper(i).as_deref() {
        Some("NEXT") => i += 1,
        Some("FORWARD") => {
            i += 1;
            match words.upper(i).as_deref() {
                Some("ALL") => (count, i) = (None, i + 1),
                Some(w) if number(w).is_some() => (count, i) = (number(w), i + 1),
                _ => {}
            }
        }
        Some("ALL") => (count, i) = (None, i + 1),
        Some(w) if number(w).is_some() => (count, i) = (number(w), i + 1),
        Some(w @ ("PRIOR" | "FIRST" | "LAST" | "ABSOLUTE" | "RELATIVE" | "BACKWARD")) => {
            return Err(Error::Unsupported(format!(
                "FETCH {w} (Sluice's cursors move forward only)"
            )))
        }
        _ => {}
    }
    if matches!(words.upper(i).as_deref(), Some("FROM" | "IN")) {
        i += 1;
    }
    let name = words
        .name(i)
        .ok_or_else(|| syntax("FETCH needs a cursor name"))?;
    let timeout = match words.upper(i + 1).as_deref() {
        None => None,
        Some("WITH") => Some(timeout_option(&words.joined(i + 2))?),
        Some(other) => return Err(syntax(&format!("at or near \"{other}\" in FETCH"))),
    };
    Ok(Statement::Fetch {
        name,
        count,
        timeout,
        discard,
    })
}

/// `(timeout = '1s')`: how long a FETCH on a push query waits for a row
/// (`ms`, `s`, `m` or `h`; a number alone is seconds).
fn timeout_option(text: &str) -> Result<Duration> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| syntax("FETCH ... WITH takes (timeout = '<duration>')"))?;
    let (key, value) = inner
        .split_once('=')
        .ok_or_else(|| syntax("FETCH ... WITH takes (timeout = '<duration>')"))?;
    if !key.trim().eq_ignore_ascii_case("timeout") {
        return Err(Error::Unsupported(format!("FETCH option {}", key.trim())));
    }
    let value = value.trim().trim_matches('\'');
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad_timeout(value))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad_timeout(value)),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad_timeout(value))
}

fn bad_timeout(value: &str) -> Error {
    Error::BadParameter(format!(
        "invalid FETCH timeout '{value}' (a duration such as '500ms', '1s', '2m')"
    ))
}

/// A statement's words, with where each starts (names may be quoted).
struct Words {
    words: Vec<(usize, String)>,
}

impl Words {
    fn new(text: &str) -> Self {
        let mut words = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() || bytes[i] == b';' {
                i += 1;
                continue;
            }
            let start = i;
            if bytes[i] == b'"' {
                i = super::session::skip_quoted(bytes, i).map_or(bytes.len(), |e| e + 1);
            } else {
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b';' {
                    i += 1;
                }
            }
            words.push((start, text[start..i.min(text.len())].to_string()));
        }
        Self { words }
    }

    fn len(&self) -> usize {
        self.words.len()
    }

    fn upper(&self, i: usize) -> Option<String> {
        self.words.get(i).map(|(_, w)| w.to_ascii_uppercase())
    }

    /// Word `i` as a name: quoted as it is, else in lower case (Postgres'
    /// folding: cursor names are Postgres', not ksqlDB's).
    fn name(&self, i: usize) -> Option<String> {
        let (_, w) = self.words.get(i)?;
        Some(
            match w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => w.to_lowercase(),
            },
        )
    }

    /// The text from word `i` on.
    fn rest<'a>(&self, text: &'a str, i: usize) -> &'a str {
        self.words.get(i).map_or("", |(at, _)| &text[*at..])
    }

    /// The words from `i` on, joined by spaces.
    fn joined(&self, i: usize) -> String {
        self.words
            .iter()
            .skip(i)
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_statements_as_drivers_send_them() {
        assert_eq!(
            statement("DECLARE \"c_1\" CURSOR WITHOUT HOLD FOR SELECT a FROM t").unwrap(),
            Some(Statement::Declare {
                name: "c_1".into(),
                hold: false,
                query: "SELECT a FROM t".into()
            })
        );
        assert_eq!(
            statement(
                "declare Cur binary no scroll cursor with hold for select * from t emit changes;"
            )
            .unwrap(),
            Some(Statement::Declare {
                name: "cur".into(),
                hold: true,
                query: "select * from t emit changes;".into()
            })
        );
        let fetch = |count, timeout, discard| Statement::Fetch {
            name: "cur".into(),
            count,
            timeout,
            discard,
        };
        assert_eq!(
            statement("FETCH FORWARD 2000 FROM \"cur\"").unwrap(),
            Some(fetch(Some(2000), None, false))
        );
        assert_eq!(
            statement("fetch cur").unwrap(),
            Some(fetch(Some(1), None, false))
        );
        assert_eq!(
            statement("FETCH ALL IN cur").unwrap(),
            Some(fetch(None, None, false))
        );
        assert_eq!(
            statement("FETCH 10 cur WITH (timeout = '250ms')").unwrap(),
            Some(fetch(Some(10), Some(Duration::from_millis(250)), false))
        );
        assert_eq!(
            statement("MOVE FORWARD ALL FROM cur").unwrap(),
            Some(fetch(None, None, true))
        );
        assert_eq!(
            statement("CLOSE cur").unwrap(),
            Some(Statement::Close(Some("cur".into())))
        );
        assert_eq!(
            statement("CLOSE ALL").unwrap(),
            Some(Statement::Close(None))
        );
        assert_eq!(statement("SELECT 1").unwrap(), None);
        assert_eq!(
            statement("FETCH PRIOR FROM cur").unwrap_err().sqlstate(),
            "0A000"
        );
        assert_eq!(
            statement("FETCH 1 cur WITH (timeout = 'soon')")
                .unwrap_err()
                .to_string(),
            "invalid FETCH timeout 'soon' (a duration such as '500ms', '1s', '2m')"
        );
    }

    #[tokio::test]
    async fn a_push_cursor_answers_what_is_there_after_its_first_row() {
        let (tx, rx) =
            tokio::sync::mpsc::unbounded_channel::<Result<Vec<super::super::values::Value>>>();
        let rows =
            stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) }).boxed();
        let cursor = Cursor::new(Arc::new(vec![]), rows, true, false);
        let wait = Some(Duration::from_millis(20));
        assert_eq!(cursor.fetch(Some(5), wait).count().await, 0);
        for _ in 0..3 {
            tx.send(Ok(vec![])).unwrap();
        }
        assert_eq!(cursor.fetch(Some(2), wait).count().await, 2);
        assert_eq!(cursor.fetch(Some(5), wait).count().await, 1);
        tx.send(Ok(vec![])).unwrap();
        assert_eq!(cursor.fetch(None, None).count().await, 1);
    }
}
