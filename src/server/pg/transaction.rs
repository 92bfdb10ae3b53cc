//! Transaction blocks: `BEGIN` (`START TRANSACTION`) ... `COMMIT`
//! (`END`) or `ROLLBACK` (`ABORT`), with `SAVEPOINT`, `RELEASE` and
//! `ROLLBACK TO` inside.
//!
//! Rows a session writes in a block (`INSERT ... VALUES`, `COPY ... FROM
//! STDIN`) are checked and encoded at once, and kept until the COMMIT,
//! which writes them all in one send; ROLLBACK (or ROLLBACK TO a
//! savepoint) drops them. Nothing else Sluice does can be undone: a CREATE,
//! DROP or TERMINATE in a block takes effect at once, and a ROLLBACK names
//! what stayed in a WARNING, so a rolled-back block never looks as if it
//! had done nothing when it did. A statement that fails aborts the block:
//! every statement but ROLLBACK is refused (25P02) until it ends, as in
//! Postgres. Reads see what is committed, never the block's own rows.
//!
//! The statements are checked word by word, as Postgres writes them;
//! anything else after the first word is a syntax error, never text
//! silently dropped (`END DROP STREAM pv DELETE TOPIC` used to answer
//! COMMIT and drop nothing, which a user could not tell from a dropped
//! stream).

use pgwire::api::results::{Response, Tag};
use pgwire::messages::response::TransactionStatus;

use super::session::Answer;
use super::{lock, SharedEngine};
use crate::connectors::OutRecord;
use crate::error::{Error, Result};

/// Words a transaction mode is made of (`ISOLATION LEVEL READ COMMITTED`,
/// `READ ONLY`, `NOT DEFERRABLE`, separated by commas).
const MODE_WORDS: &[&str] = &[
    "ISOLATION",
    "LEVEL",
    "SERIALIZABLE",
    "REPEATABLE",
    "READ",
    "COMMITTED",
    "UNCOMMITTED",
    "WRITE",
    "ONLY",
    "NOT",
    "DEFERRABLE",
];

/// Check a transaction statement's words (upper case, comments and the
/// final `;` removed): `BEGIN [WORK | TRANSACTION] [modes]`, `START
/// TRANSACTION [modes]`, `COMMIT | END | ROLLBACK | ABORT [WORK |
/// TRANSACTION] [AND [NO] CHAIN]`.
pub(super) fn check(words: &[String]) -> Result<()> {
    let word = |i: usize| words.get(i).map(String::as_str);
    let (rest, modes) = match word(0) {
        Some("BEGIN") => (skip_noise(words, 1), true),
        Some("START") if word(1) == Some("TRANSACTION") => (2, true),
        Some("COMMIT" | "END" | "ROLLBACK" | "ABORT") => (skip_noise(words, 1), false),
        _ => return Ok(()),
    };
    let tail: Vec<&str> = words[rest.min(words.len())..]
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
        .collect();
    let fits = if modes {
        tail.iter().all(|w| MODE_WORDS.contains(w))
    } else {
        matches!(
            tail.as_slice(),
            [] | ["AND", "CHAIN"] | ["AND", "NO", "CHAIN"]
        )
    };
    if fits {
        return Ok(());
    }
    let allowed: &[&str] = if modes {
        MODE_WORDS
    } else {
        &["AND", "NO", "CHAIN"]
    };
    let at = tail
        .iter()
        .find(|w| !allowed.contains(w))
        .or(tail.first())
        .copied()
        .unwrap_or_default();
    Err(Error::syntax(
        format!(
            "syntax error at or near \"{at}\": {} takes no more than {}",
            words[0],
            if modes {
                "WORK or TRANSACTION and transaction modes"
            } else {
                "WORK or TRANSACTION and AND [NO] CHAIN"
            }
        ),
        None,
    ))
}

/// Past an optional `WORK` or `TRANSACTION`.
fn skip_noise(words: &[String], at: usize) -> usize {
    match words.get(at).map(String::as_str) {
        Some("WORK" | "TRANSACTION") => at + 1,
        _ => at,
    }
}

/// The words of a statement, for [`check`]: upper case, without the final
/// `;`.
pub(super) fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// A transaction statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Control {
    Begin,
    /// `COMMIT`; `chain`: `AND CHAIN`, a new block starts at once.
    Commit {
        chain: bool,
    },
    Rollback {
        chain: bool,
    },
    Savepoint(String),
    Release(String),
    RollbackTo(String),
}

/// The transaction statement `text` is (None: not one; Err: one that is
/// not written as Postgres writes it).
pub(super) fn control(text: &str) -> Result<Option<Control>> {
    let words = words(text);
    let word = |i: usize| words.get(i).map(String::as_str);
    let name = |i: usize| -> Result<String> {
        match (text.split_whitespace().nth(i), words.len()) {
            (Some(n), len) if len == i + 1 => {
                Ok(n.trim_end_matches(';').trim_matches('"').to_string())
            }
            _ => Err(Error::syntax(
                format!("syntax error: {} takes one savepoint name", words.join(" ")),
                None,
            )),
        }
    };
    Ok(Some(match (word(0), word(1), word(2)) {
        (Some("SAVEPOINT"), ..) => Control::Savepoint(name(1)?),
        (Some("RELEASE"), Some("SAVEPOINT"), _) => Control::Release(name(2)?),
        (Some("RELEASE"), ..) => Control::Release(name(1)?),
        (Some("ROLLBACK" | "ABORT"), Some("TO"), Some("SAVEPOINT")) => {
            Control::RollbackTo(name(3)?)
        }
        (Some("ROLLBACK" | "ABORT"), Some("TO"), _) => Control::RollbackTo(name(2)?),
        (Some("ROLLBACK" | "ABORT"), Some("WORK" | "TRANSACTION"), Some("TO")) => match word(3) {
            Some("SAVEPOINT") => Control::RollbackTo(name(4)?),
            _ => Control::RollbackTo(name(3)?),
        },
        (Some("BEGIN"), ..) | (Some("START"), Some("TRANSACTION"), _) => {
            check(&words)?;
            Control::Begin
        }
        (Some(end @ ("COMMIT" | "END" | "ROLLBACK" | "ABORT")), ..) => {
            check(&words)?;
            let chain = words.ends_with(&["AND".to_string(), "CHAIN".to_string()])
                && !words.iter().any(|w| w == "NO");
            match end {
                "COMMIT" | "END" => Control::Commit { chain },
                _ => Control::Rollback { chain },
            }
        }
        _ => return Ok(None),
    }))
}

/// A session's transaction block.
#[derive(Debug, Default)]
pub(super) struct Block {
    /// Records written in the block, for the COMMIT.
    pending: Vec<OutRecord>,
    /// Savepoints, oldest first, with how many records were pending then.
    savepoints: Vec<(String, usize)>,
    /// Statements that took effect at once and stay after a ROLLBACK.
    immediate: Vec<String>,
    /// A statement failed: the block must end (or roll back to a
    /// savepoint) before any other runs.
    failed: bool,
}

impl Block {
    /// Keep records for the COMMIT.
    pub(super) fn keep(&mut self, records: Vec<OutRecord>) {
        self.pending.extend(records);
    }

    /// Remember a statement that took effect at once (`CREATE STREAM s`).
    pub(super) fn took_effect(&mut self, what: String) {
        self.immediate.push(what);
    }

    pub(super) fn fail(&mut self) {
        self.failed = true;
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }
}

/// The transaction status a session in `block` reports.
pub(super) fn status(block: &Option<Block>) -> TransactionStatus {
    match block {
        None => TransactionStatus::Idle,
        Some(b) if b.failed => TransactionStatus::Error,
        Some(_) => TransactionStatus::Transaction,
    }
}

/// What refuses a statement in a failed block.
pub(super) fn aborted() -> Error {
    Error::TransactionAborted
}

/// Run a transaction statement on the session's `block`.
pub(super) fn run(
    block: &mut Option<Block>,
    engine: &SharedEngine,
    control: Control,
) -> Result<Vec<Answer>> {
    let done = |tag: &str| Answer::Response(Response::Execution(Tag::new(tag)));
    let warning = |m: &str| Answer::Warning(m.to_string());
    Ok(match control {
        Control::Begin => {
            if block.is_some() {
                return Ok(vec![
                    warning("there is already a transaction in progress"),
                    Answer::Response(Response::TransactionStart(Tag::new("BEGIN"))),
                ]);
            }
            *block = Some(Block::default());
            vec![Answer::Response(Response::TransactionStart(Tag::new(
                "BEGIN",
            )))]
        }
        Control::Commit { chain } => {
            let Some(b) = block.take() else {
                return Ok(vec![
                    warning("there is no transaction in progress"),
                    Answer::Response(Response::TransactionEnd(Tag::new("COMMIT"))),
                ]);
            };
            if b.failed {
                if chain {
                    *block = Some(Block::default());
                }
                return Ok(vec![Answer::Response(Response::TransactionEnd(Tag::new(
                    "ROLLBACK",
                )))]);
            }
            lock(engine).write_records(&b.pending)?;
            if chain {
                *block = Some(Block::default());
            }
            vec![Answer::Response(Response::TransactionEnd(Tag::new(
                "COMMIT",
            )))]
        }
        Control::Rollback { chain } => {
            let mut answers = Vec::new();
            match block.take() {
                None => answers.push(warning("there is no transaction in progress")),
                Some(b) if !b.immediate.is_empty() => answers.push(warning(&format!(
                    "ROLLBACK dropped the rows written in the transaction, but these statements took effect when they ran and stay: {}",
                    b.immediate.join("; ")
                ))),
                Some(_) => {}
            }
            if chain {
                *block = Some(Block::default());
            }
            answers.push(Answer::Response(Response::TransactionEnd(Tag::new(
                "ROLLBACK",
            ))));
            answers
        }
        Control::Savepoint(name) => {
            let b = in_block(block, "SAVEPOINT")?;
            if b.failed {
                return Err(aborted());
            }
            b.savepoints.push((name, b.pending.len()));
            vec![done("SAVEPOINT")]
        }
        Control::Release(name) => {
            let b = in_block(block, "RELEASE SAVEPOINT")?;
            if b.failed {
                return Err(aborted());
            }
            let at = savepoint(b, &name)?;
            b.savepoints.truncate(at);
            vec![done("RELEASE")]
        }
        Control::RollbackTo(name) => {
            let b = in_block(block, "ROLLBACK TO SAVEPOINT")?;
            let at = savepoint(b, &name)?;
            let kept = b.savepoints[at].1;
            b.pending.truncate(kept);
            b.savepoints.truncate(at + 1);
            b.failed = false;
            vec![done("ROLLBACK")]
        }
    })
}

/// The open block, for a statement that needs one.
fn in_block<'a>(block: &'a mut Option<Block>, what: &str) -> Result<&'a mut Block> {
    block.as_mut().ok_or_else(|| {
        Error::NoTransaction(format!("{what} can only be used in transaction blocks"))
    })
}

/// The index of the newest savepoint called `name`.
fn savepoint(block: &Block, name: &str) -> Result<usize> {
    block
        .savepoints
        .iter()
        .rposition(|(n, _)| n.eq_ignore_ascii_case(name))
        .ok_or_else(|| Error::Savepoint(format!("savepoint \"{name}\" does not exist")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> std::result::Result<(), (String, String)> {
        check(&words(text)).map_err(|e| (e.sqlstate().to_string(), e.to_string()))
    }

    #[test]
    fn transaction_statements_as_postgres_writes_them_pass() {
        for ok in [
            "BEGIN",
            "begin;",
            "BEGIN WORK",
            "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "BEGIN READ ONLY, NOT DEFERRABLE",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "COMMIT",
            "COMMIT WORK",
            "END",
            "END TRANSACTION;",
            "ROLLBACK",
            "ROLLBACK AND NO CHAIN",
            "ABORT",
            "COMMIT AND CHAIN",
        ] {
            assert_eq!(check_text(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn anything_after_a_transaction_word_is_a_syntax_error() {
        assert_eq!(
            check_text("END DROP STREAM pv DELETE TOPIC"),
            Err((
                "42601".to_string(),
                "syntax error at or near \"DROP\": END takes no more than WORK or TRANSACTION and AND [NO] CHAIN".to_string()
            ))
        );
        assert_eq!(
            check_text("BEGIN; DROP STREAM pv"),
            Err((
                "42601".to_string(),
                "syntax error at or near \"DROP\": BEGIN takes no more than WORK or TRANSACTION and transaction modes".to_string()
            ))
        );
        assert_eq!(
            check_text("COMMIT TERMINATE ALL").unwrap_err().1,
            "syntax error at or near \"TERMINATE\": COMMIT takes no more than WORK or TRANSACTION and AND [NO] CHAIN"
        );
        assert_eq!(
            check_text("ROLLBACK TO SAVEPOINT a").unwrap_err().1,
            "syntax error at or near \"TO\": ROLLBACK takes no more than WORK or TRANSACTION and AND [NO] CHAIN"
        );
    }
}
