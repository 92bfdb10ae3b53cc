//! Postgres settings (`SET name = value`, `RESET`, `SHOW name`, those a
//! client gives at startup) and the other Postgres statements drivers
//! send on their own (`DISCARD`, `DEALLOCATE`).

use std::collections::BTreeMap;

use pgwire::api::results::{Response, Tag};

use super::{text_table, Answer, Session};
use crate::error::{Error, Result};
use crate::server::pg::results::NameCase;

/// The setting that says how column names are spelled ([`NameCase`]).
pub(super) const IDENTIFIER_CASE: &str = "sluice.identifier_case";

/// The settings in a startup packet's `options`: `-c name=value` or
/// `--name=value`, separated by spaces (`\ ` is a space in a value).
pub(super) fn startup_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => words.push(std::mem::take(&mut word)),
            c => word.push(c),
        }
    }
    words.push(word);
    let mut out = Vec::new();
    let mut words = words.into_iter().filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        let setting = match w.as_str() {
            "-c" => words.next(),
            _ => w
                .strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_string),
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((
                name.trim().to_ascii_lowercase().replace('-', "_"),
                value.to_string(),
            ));
        }
    }
    out
}

/// The PostgreSQL version Sluice reports (`server_version`, `version()`).
/// Its major version is 15, not the newest: pg_dump refuses a server newer
/// than itself, and the pg_dump most distributions ship is 15; nothing
/// Sluice answers differs between 15 and 16 for the clients it serves.
pub(crate) const SERVER_VERSION: &str = "15.0";

/// Settings drivers ask for with `SHOW`, with Sluice's answers.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, YMD"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", "150000"),
    ("sluice.identifier_case", "lower"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "Etc/UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

impl Session {
    /// Answer the Postgres statements drivers send (None: not one).
    pub(super) fn postgres_statement(&self, text: &str) -> Result<Option<Answer>> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let first = upper.first().map(String::as_str).unwrap_or("");
        let second = upper.get(1).map(String::as_str).unwrap_or("");
        let response = match (first, second) {
            ("DISCARD", _) => Response::Execution(Tag::new(&format!("DISCARD {second}"))),
            // pg_dump locks the tables it dumps; Sluice's statements never
            // block each other, so there is nothing to wait for.
            ("LOCK", _) => Response::Execution(Tag::new("LOCK TABLE")),
            ("DEALLOCATE", _) => {
                let name = words[1..]
                    .iter()
                    .map(|w| w.trim_end_matches(';'))
                    .find(|w| !w.eq_ignore_ascii_case("PREPARE"))
                    .unwrap_or("ALL");
                let name =
                    (!name.eq_ignore_ascii_case("ALL")).then(|| name.trim_matches('"').to_string());
                return Ok(Some(Answer::Deallocate(name)));
            }
            ("SET", "TRANSACTION" | "SESSION")
                if second == "TRANSACTION"
                    || upper.get(2).is_some_and(|w| w == "CHARACTERISTICS") =>
            {
                // Isolation and access modes: every Sluice statement reads
                // committed state, and reads are never blocked.
                Response::Execution(Tag::new("SET"))
            }
            ("SET", _) if !words.get(1).is_some_and(|w| w.starts_with('\'')) => {
                let (name, value) = parse_set(text)?;
                let name = alias(&name).to_string();
                if name == IDENTIFIER_CASE && NameCase::parse(&value).is_none() {
                    return Err(Error::BadParameter(format!(
                        "invalid value for parameter \"{IDENTIFIER_CASE}\": \"{value}\" (lower or upper)"
                    )));
                }
                self.settings().insert(name, value);
                Response::Execution(Tag::new("SET"))
            }
            ("RESET", _) => {
                let name = words
                    .get(1)
                    .map(|w| w.trim_end_matches(';').to_ascii_lowercase());
                match name.as_deref() {
                    Some("all") | None => self.settings().clear(),
                    Some(n) => {
                        self.settings().remove(n);
                    }
                }
                Response::Execution(Tag::new("RESET"))
            }
            ("SHOW", noun) if !is_sluice_show(noun) => {
                let name = words[1..]
                    .join(" ")
                    .trim_end_matches(';')
                    .to_ascii_lowercase();
                let name = alias(&name).to_string();
                let value = self.setting(&name).ok_or_else(|| {
                    Error::NotFound(format!("unrecognized configuration parameter \"{name}\""))
                })?;
                return Ok(Some(text_table(vec![name], vec![vec![value]])));
            }
            _ => return Ok(None),
        };
        Ok(Some(Answer::Response(response)))
    }

    /// How column names are spelled for this session's client.
    pub(crate) fn names(&self) -> NameCase {
        self.setting(IDENTIFIER_CASE)
            .and_then(|v| NameCase::parse(&v))
            .unwrap_or(NameCase::Lower)
    }

    pub(super) fn settings(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every setting `SHOW` answers, with its value now.
    pub(super) fn all_settings(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = DEFAULT_SETTINGS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        all.extend(self.settings().clone());
        all.into_iter().collect()
    }

    pub(super) fn setting(&self, name: &str) -> Option<String> {
        self.settings().get(name).cloned().or_else(|| {
            DEFAULT_SETTINGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }
}

/// The setting a Postgres spelling names (`time zone` is `timezone`).
fn alias(name: &str) -> &str {
    match name {
        "time zone" => "timezone",
        "transaction isolation level" => "transaction_isolation",
        "session authorization" => "session_authorization",
        other => other,
    }
}

/// Sluice's own SHOW / LIST nouns.
pub(super) fn is_sluice_show(noun: &str) -> bool {
    matches!(
        noun,
        "STREAMS"
            | "TABLES"
            | "QUERIES"
            | "TOPICS"
            | "ALL"
            | "FUNCTIONS"
            | "PROPERTIES"
            | "TYPES"
            | "VARIABLES"
            | "CONNECTORS"
            | "SINKS"
    )
}

/// `SET [SESSION | LOCAL] name { = | TO } value`: the lower-cased name and
/// the value without quotes.
fn parse_set(text: &str) -> Result<(String, String)> {
    let rest = text.trim().trim_end_matches(';');
    let rest = rest[3..].trim_start();
    let rest = ["SESSION ", "LOCAL "]
        .iter()
        .find_map(|p| {
            rest.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .map(|_| rest[p.len()..].trim_start())
        })
        .unwrap_or(rest);
    if let Some(zone) = rest
        .get(..10)
        .filter(|h| h.eq_ignore_ascii_case("TIME ZONE "))
        .map(|_| rest[10..].trim())
    {
        let zone = zone.trim_matches('\'').trim_matches('"');
        return Ok(("timezone".into(), zone.to_string()));
    }
    let (name, value) = match rest.find('=') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => {
            let mut parts = rest.splitn(2, char::is_whitespace);
            let name = parts.next().unwrap_or("");
            let value = parts.next().unwrap_or("").trim_start();
            match value.get(..3) {
                Some(to) if to.eq_ignore_ascii_case("TO ") => (name, &value[3..]),
                _ => {
                    return Err(Error::syntax(
                        format!("syntax error in SET: expected `SET name = value` or `SET 'property'='value'`, got `{text}`"),
                        None,
                    ))
                }
            }
        }
    };
    let value = value
        .trim()
        .trim_matches('\'')
        .trim_matches('"')
        .to_string();
    Ok((name.trim().to_ascii_lowercase(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_set_forms() {
        assert_eq!(
            parse_set("SET application_name = 'PostgreSQL JDBC Driver'").unwrap(),
            ("application_name".into(), "PostgreSQL JDBC Driver".into())
        );
        assert_eq!(
            parse_set("set SESSION DateStyle TO ISO").unwrap(),
            ("datestyle".into(), "ISO".into())
        );
        assert_eq!(
            parse_set("SET extra_float_digits=3;").unwrap(),
            ("extra_float_digits".into(), "3".into())
        );
        assert!(parse_set("SET nonsense").is_err());
        assert_eq!(
            parse_set("set time zone \"Europe/Paris\"").unwrap(),
            ("timezone".into(), "Europe/Paris".into())
        );
        assert_eq!(alias("time zone"), "timezone");
    }
}
