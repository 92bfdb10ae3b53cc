//! The transaction statements drivers send (`BEGIN`, `COMMIT`, `END`,
//! `ROLLBACK`, `ABORT`, `START TRANSACTION`), checked word by word.
//!
//! Sluice has no transactions: these statements only set the transaction
//! status drivers expect. The whole statement must still be one of them, as
//! Postgres writes them; anything else after the first word is a syntax
//! error, never text silently dropped (`END DROP STREAM pv DELETE TOPIC`
//! used to answer COMMIT and drop nothing, which a user could not tell
//! from a dropped stream).

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
