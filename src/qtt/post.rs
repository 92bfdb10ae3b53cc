//! A case's `post` checks: the created sources' types, schemas, formats
//! and window types, and the topics that must not exist.

use serde_json::Value;

use crate::connectors::formats::WindowKind;
use crate::engine::Engine;
use crate::planner::ast::{SourceKind, Statement, WindowSpec};
use crate::planner::parser;

fn normalize_schema(s: &str) -> String {
    let s = s.replace('`', "").to_uppercase();
    let s = regex::Regex::new(r"\s+")
        .map(|r| r.replace_all(&s, " ").to_string())
        .unwrap_or(s);
    let s = s.replace("PRIMARY KEY", "KEY");
    let s = regex::Regex::new(r"\bINT\b")
        .map(|r| r.replace_all(&s, "INTEGER").to_string())
        .unwrap_or(s);
    let s = regex::Regex::new(r"\bVARCHAR\b")
        .map(|r| r.replace_all(&s, "STRING").to_string())
        .unwrap_or(s);
    s.replace(", ", ",")
        .replace(" ,", ",")
        .replace("< ", "<")
        .replace(" >", ">")
        .trim()
        .to_string()
}

pub(super) fn check_post(engine: &Engine, post: &Value) -> std::result::Result<(), String> {
    if let Some(sources) = post.get("sources").and_then(|s| s.as_array()) {
        for want in sources {
            let name = want
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            let Some(src) = engine.catalog().source(name) else {
                return Err(format!("post: source {name} does not exist"));
            };
            if let Some(ty) = want.get("type").and_then(|t| t.as_str()) {
                let actual = match src.kind {
                    SourceKind::Stream => "stream",
                    SourceKind::Table => "table",
                };
                if !ty.eq_ignore_ascii_case(actual) {
                    return Err(format!("post: {name} is a {actual}, expected {ty}"));
                }
            }
            if let Some(schema) = want.get("schema").and_then(|t| t.as_str()) {
                let got = src.schema_string();
                if normalize_schema(schema) != normalize_schema(&got) {
                    return Err(format!(
                        "post: {name} schema is `{got}`, expected `{schema}`"
                    ));
                }
            }
            for (field, fmt) in [
                ("keyFormat", &src.key_format),
                ("valueFormat", &src.value_format),
            ] {
                if let Some(f) = want
                    .get(field)
                    .and_then(|f| f.get("format"))
                    .and_then(|f| f.as_str())
                {
                    if !f.eq_ignore_ascii_case(&fmt.kind.to_string()) {
                        return Err(format!(
                            "post: {name} {field} is {}, expected {f}",
                            fmt.kind
                        ));
                    }
                }
            }
            if let Some(wt) = want
                .get("keyFormat")
                .and_then(|f| f.get("windowType"))
                .and_then(|w| w.as_str())
            {
                let got = window_type(engine, src, 0).unwrap_or("none");
                if !wt.eq_ignore_ascii_case(got) {
                    return Err(format!("post: {name} window type is {got}, expected {wt}"));
                }
            }
        }
    }
    if let Some(bl) = post
        .get("topics")
        .and_then(|t| t.get("blacklist"))
        .and_then(|b| b.as_str())
    {
        let re = regex::Regex::new(bl).map_err(|e| format!("post: bad blacklist regex: {e}"))?;
        for t in engine.topics().list() {
            if re.is_match(&t) {
                return Err(format!("post: topic {t} must not exist"));
            }
        }
    }
    Ok(())
}

/// The window type of a source's key as ksqlDB names it (`TUMBLING`,
/// `HOPPING`, `SESSION`), `None` for an unwindowed one: from the statement
/// that created it (`WINDOW_TYPE` of a declared source, the `WINDOW` of a
/// query), or, for a query without one, from the windowed source it reads.
fn window_type(
    engine: &Engine,
    src: &crate::catalog::Source,
    depth: usize,
) -> Option<&'static str> {
    let kind = src.window?.kind;
    let from_kind = match kind {
        WindowKind::Session => "SESSION",
        WindowKind::Time => "TIME",
    };
    let Ok(parsed) = parser::parse(&src.sql) else {
        return Some(from_kind);
    };
    for p in parsed {
        match &p.statement {
            Statement::CreateSource(c) => {
                if let Some((t, _)) = c.with.get("WINDOW_TYPE") {
                    return match t.as_string().to_uppercase().as_str() {
                        "TUMBLING" => Some("TUMBLING"),
                        "HOPPING" => Some("HOPPING"),
                        "SESSION" => Some("SESSION"),
                        _ => Some(from_kind),
                    };
                }
            }
            Statement::CreateAs(c) => {
                return match c.query.window {
                    Some(WindowSpec::Tumbling { .. }) => Some("TUMBLING"),
                    Some(WindowSpec::Hopping { .. }) => Some("HOPPING"),
                    Some(WindowSpec::Session { .. }) => Some("SESSION"),
                    None if depth < 16 => std::iter::once(&c.query.from)
                        .chain(c.query.joins.iter().map(|j| &j.right))
                        .filter_map(|r| engine.catalog().source(&r.name))
                        .find_map(|up| window_type(engine, up, depth + 1))
                        .or(Some(from_kind)),
                    None => Some(from_kind),
                };
            }
            _ => {}
        }
    }
    Some(from_kind)
}
