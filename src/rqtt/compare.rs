//! How a query's answer over the wire is compared with ksqlDB's expected
//! REST response.
//!
//! ksqlDB's harness compares the response as JSON, exactly (`is(expected)`
//! on the parsed objects): the header's schema string, then every row's
//! values. Over the Postgres wire the runner has the row description
//! (column names, and the column types the server describes for the
//! query) and each value's text. So:
//!
//! - **Header**: the column names must be the header schema's, exactly
//!   (ksqlDB spells them as it stores them: upper-cased unless quoted), and
//!   each column's Postgres type must be the one Sluice gives the header's
//!   ksqlDB type ([`pg_types_for`]).
//! - **Values**: the expected JSON type must fit the column's type: `null`
//!   any (SQL NULL only); a boolean a `bool` (`t`/`f`); a number a numeric
//!   type, an integer literal an integer type or a `numeric` without a
//!   fraction, compared by value exactly (integers as integers, otherwise
//!   as doubles; no tolerance); a string a text, date/time or `bytea`
//!   column, compared exactly (BYTES as base64 against Postgres' `\x`
//!   hex); an array or object a `json` column, its text parsed and compared
//!   with the in-process runner's rules (`crate::qtt::compare`). So `"2"`
//!   never matches an INTEGER column's `2`.
//! - Rows compare as a multiset unless `outputConditions.verifyOrder`. A
//!   table push query's rows end with an `OP` column (`insert`, `update`,
//!   `delete`), compared with the rows' `tombstone` flags.

use serde_json::Value;
use tokio_postgres::types::Type;

use crate::qtt::compare::json_equal;

/// One query's answer as the client saw it.
#[derive(Debug, Default)]
pub(super) struct Answer {
    pub columns: Vec<String>,
    /// The columns' types, as the server describes the query.
    pub types: Vec<Type>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// The expected rows of a query response (its `row` entries).
pub(super) fn expected_rows(want: &Value) -> Vec<&Value> {
    want.as_array()
        .map(|a| a.iter().filter_map(|e| e.get("row")).collect())
        .unwrap_or_default()
}

/// Compare a query's answer with its expected response.
pub(super) fn compare_answer(
    want: &Value,
    got: &Answer,
    verify_order: bool,
) -> std::result::Result<(), String> {
    if got.types.len() != got.columns.len() {
        return Err(format!(
            "the server described {} columns for the query and answered {} ({:?})",
            got.types.len(),
            got.columns.len(),
            got.columns
        ));
    }
    let header = want.as_array().and_then(|a| {
        a.iter()
            .filter_map(|e| e.get("header"))
            .find_map(|h| h.get("schema").and_then(|s| s.as_str()))
    });
    // A table's push query ends its rows with an `OP` column (insert,
    // update, delete): compared with the expected rows' tombstone flags.
    let items = header.map(schema_items);
    let marked = items.as_ref().is_some_and(|n| {
        got.columns.len() == n.len() + 1 && got.columns.last().is_some_and(|c| c.starts_with("OP"))
    });
    let width = got.columns.len() - usize::from(marked);
    if let Some(items) = &items {
        let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
        if names != got.columns[..width] {
            return Err(format!(
                "columns differ: expected {names:?}, got {:?}",
                got.columns
            ));
        }
        for ((name, ksql), pg) in items.iter().zip(&got.types) {
            let allowed = pg_types_for(ksql);
            if !allowed.contains(pg) {
                return Err(format!(
                    "column {name}: expected {ksql} (Postgres {}), got Postgres {pg}",
                    allowed
                        .iter()
                        .map(Type::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
        }
    }
    let rows: Vec<Value> = expected_rows(want)
        .into_iter()
        .filter_map(|r| {
            let mut cells = r.get("columns")?.clone();
            if let (true, Some(cells)) = (marked, cells.as_array_mut()) {
                let tombstone = r.get("tombstone").and_then(Value::as_bool).unwrap_or(false);
                cells.push(Value::Bool(tombstone));
            }
            Some(cells)
        })
        .collect();
    let mut types = got.types.clone();
    if marked {
        // The OP column read as "is a tombstone".
        if let Some(t) = types.last_mut() {
            *t = Type::BOOL;
        }
    }
    let got_rows: Vec<Vec<Option<String>>> = got
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let (true, Some(op)) = (marked, r.last_mut()) {
                let tombstone = op.as_deref() == Some("delete");
                *op = Some(if tombstone { "t" } else { "f" }.into());
            }
            r
        })
        .collect();
    let shown = || {
        format!(
            "\n  expected: {}\n  actual:   {}",
            rows.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n            "),
            got_rows
                .iter()
                .map(|r| show_row(r))
                .collect::<Vec<_>>()
                .join("\n            ")
        )
    };
    if rows.len() != got_rows.len() {
        return Err(format!(
            "expected {} rows, got {}{}",
            rows.len(),
            got_rows.len(),
            shown()
        ));
    }
    if verify_order {
        for (n, (w, g)) in rows.iter().zip(&got_rows).enumerate() {
            if !row_matches(w, g, &types) {
                return Err(format!("row {n} differs{}", shown()));
            }
        }
        return Ok(());
    }
    // A multiset: every expected row takes one distinct actual row.
    let mut used = vec![false; got_rows.len()];
    for w in &rows {
        let found = got_rows
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && row_matches(w, g, &types));
        match found {
            Some((i, _)) => used[i] = true,
            None => return Err(format!("expected row {w} is missing{}", shown())),
        }
    }
    Ok(())
}

fn show_row(row: &[Option<String>]) -> String {
    let cells: Vec<String> = row
        .iter()
        .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
        .collect();
    format!("[{}]", cells.join(", "))
}

fn row_matches(want: &Value, got: &[Option<String>], types: &[Type]) -> bool {
    match want.as_array() {
        Some(cells) => {
            cells.len() == got.len()
                && cells.len() == types.len()
                && cells
                    .iter()
                    .zip(got)
                    .zip(types)
                    .all(|((w, g), t)| value_matches(w, g.as_deref(), t))
        }
        None => false,
    }
}

/// An expected JSON value against a column's text and type (the rules in
/// the module's documentation).
pub(crate) fn value_matches(want: &Value, got: Option<&str>, ty: &Type) -> bool {
    let Some(text) = got else {
        return want.is_null();
    };
    let integer = [Type::INT2, Type::INT4, Type::INT8];
    match want {
        Value::Null => false,
        Value::Bool(b) => *ty == Type::BOOL && text == if *b { "t" } else { "f" },
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            let exact = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
            let whole = integer.contains(ty) || (*ty == Type::NUMERIC && !text.contains('.'));
            whole && text.parse::<i128>().ok() == exact
        }
        Value::Number(n) => {
            [Type::FLOAT4, Type::FLOAT8, Type::NUMERIC].contains(ty)
                && text
                    .parse::<f64>()
                    .ok()
                    .zip(n.as_f64())
                    .is_some_and(|(x, y)| x == y)
        }
        Value::String(s) => {
            if *ty == Type::BYTEA {
                same_bytes(s, text)
            } else {
                [
                    Type::VARCHAR,
                    Type::TEXT,
                    Type::BPCHAR,
                    Type::NAME,
                    Type::DATE,
                    Type::TIME,
                    Type::TIMESTAMP,
                    Type::TIMESTAMPTZ,
                ]
                .contains(ty)
                    && s == text
            }
        }
        Value::Array(_) | Value::Object(_) => {
            [Type::JSON, Type::JSONB].contains(ty)
                && serde_json::from_str::<Value>(text).is_ok_and(|v| json_equal(want, &v, None))
        }
    }
}

/// The Postgres types Sluice's wire server gives a column of this ksqlDB
/// type (`server::pg::values::pg_type` of the type's Arrow form).
pub(crate) fn pg_types_for(ksql: &str) -> &'static [Type] {
    let base: String = ksql
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match base.as_str() {
        "BOOLEAN" => &[Type::BOOL],
        "INT" | "INTEGER" => &[Type::INT4],
        "BIGINT" => &[Type::INT8],
        "DOUBLE" => &[Type::FLOAT8],
        "DECIMAL" => &[Type::NUMERIC],
        "STRING" | "VARCHAR" => &[Type::VARCHAR, Type::TEXT],
        "BYTES" => &[Type::BYTEA],
        "DATE" => &[Type::DATE],
        "TIME" => &[Type::TIME],
        "TIMESTAMP" => &[Type::TIMESTAMP],
        "ARRAY" | "MAP" | "STRUCT" => &[Type::JSON, Type::JSONB],
        _ => &[],
    }
}

/// BYTES: ksqlDB's JSON shows them in base64, Postgres' text form is
/// `\\x` and hex.
fn same_bytes(base64: &str, text: &str) -> bool {
    let Some(hex) = text.strip_prefix("\\x") else {
        return false;
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes.is_some_and(|b| crate::qtt::base64_decode(base64).is_some_and(|d| d == b))
}

/// The columns of a ksqlDB header schema (`` `A` STRING KEY, `B`
/// STRUCT<`X` INT, `Y` INT> ``): each top-level item's name and type
/// (without `KEY`, `PRIMARY KEY` or `HEADER(...)`).
pub(crate) fn schema_items(schema: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in schema.char_indices() {
        match c {
            '`' => quoted = !quoted,
            '<' | '(' if !quoted => depth += 1,
            '>' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(&schema[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&schema[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, ty) = match item.strip_prefix('`') {
                Some(rest) => match rest.split_once('`') {
                    Some((name, ty)) => (name, ty),
                    None => (rest, ""),
                },
                None => item.split_once(char::is_whitespace).unwrap_or((item, "")),
            };
            let mut ty = ty.trim();
            for suffix in [" PRIMARY KEY", " KEY", " HEADERS"] {
                ty = ty.strip_suffix(suffix).unwrap_or(ty);
            }
            if let Some(i) = ty.find(" HEADER(") {
                ty = &ty[..i];
            }
            (name.to_string(), ty.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_as_their_type_and_text_say() {
        let m = |w: Value, g: Option<&str>, t: Type| value_matches(&w, g, &t);
        assert!(m(json!(null), None, Type::INT4));
        assert!(!m(json!(null), Some(""), Type::TEXT));
        assert!(!m(json!(""), None, Type::TEXT));
        assert!(m(json!(100), Some("100"), Type::INT4));
        assert!(m(json!(100), Some("100"), Type::NUMERIC));
        assert!(!m(json!(100), Some("100.0"), Type::NUMERIC));
        assert!(!m(json!(100), Some("100"), Type::FLOAT8));
        assert!(m(json!(1.5), Some("1.5"), Type::FLOAT8));
        assert!(!m(json!(1.5), Some("1.5000000001"), Type::FLOAT8));
        assert!(m(json!(1.5), Some("1.50"), Type::NUMERIC));
        assert!(!m(json!(1), Some("one"), Type::INT4));
        // A string is not a number, whatever its text.
        assert!(m(json!("11"), Some("11"), Type::VARCHAR));
        assert!(!m(json!("11"), Some("11"), Type::INT4));
        assert!(!m(json!(11), Some("11"), Type::VARCHAR));
        assert!(!m(json!("11"), Some("11.0"), Type::VARCHAR));
        assert!(m(json!(true), Some("t"), Type::BOOL));
        assert!(m(json!(false), Some("f"), Type::BOOL));
        assert!(!m(json!(true), Some("f"), Type::BOOL));
        assert!(!m(json!(true), Some("t"), Type::TEXT));
        assert!(m(json!([1, 2]), Some("[1,2]"), Type::JSON));
        assert!(!m(json!([1, 2]), Some("[2,1]"), Type::JSON));
        assert!(!m(json!([1, 2]), Some("[1,2]"), Type::TEXT));
        assert!(m(
            json!({"a": 1, "B": [true]}),
            Some(r#"{"A":1,"B":[true]}"#),
            Type::JSON
        ));
        assert!(!m(json!({"B": 1}), Some(r#"{"b":1}"#), Type::JSON));
        assert!(!m(json!({"A": "1"}), Some(r#"{"A":1}"#), Type::JSON));
        assert!(!m(json!({"A": 1}), Some(r#"{"A":1,"B":2}"#), Type::JSON));
        assert!(!m(json!({"A": 1}), Some("not json"), Type::JSON));
        assert!(m(json!("IQ=="), Some("\\x21"), Type::BYTEA));
        assert!(!m(json!("IQ=="), Some("\\x22"), Type::BYTEA));
    }

    #[test]
    fn header_schemas_give_column_names_and_types() {
        assert_eq!(
            schema_items("`ROWTIME` BIGINT, `K` STRING KEY, `ID` INTEGER"),
            vec![
                ("ROWTIME".into(), "BIGINT".into()),
                ("K".into(), "STRING".into()),
                ("ID".into(), "INTEGER".into())
            ]
        );
        assert_eq!(
            schema_items("`S` STRUCT<`A` INTEGER, `B` MAP<STRING, INT>>, `D` DECIMAL(4, 2)"),
            vec![
                (
                    "S".into(),
                    "STRUCT<`A` INTEGER, `B` MAP<STRING, INT>>".into()
                ),
                ("D".into(), "DECIMAL(4, 2)".into())
            ]
        );
        assert_eq!(
            schema_items("`a,b` STRING PRIMARY KEY, `H` BYTES HEADER('h')"),
            vec![
                ("a,b".into(), "STRING".into()),
                ("H".into(), "BYTES".into())
            ]
        );
        assert_eq!(schema_items(""), Vec::<(String, String)>::new());
        assert_eq!(pg_types_for("DECIMAL(4, 2)"), &[Type::NUMERIC]);
        assert_eq!(pg_types_for("STRUCT<`A` INT>"), &[Type::JSON, Type::JSONB]);
        assert!(pg_types_for("GEOMETRY").is_empty());
    }

    fn answer(columns: &[&str], types: &[Type], rows: &[&[&str]]) -> Answer {
        Answer {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            types: types.to_vec(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|c| Some(c.to_string())).collect())
                .collect(),
        }
    }

    #[test]
    fn rows_compare_as_a_multiset_unless_ordered_and_headers_exactly() {
        let want = json!([{"header": {"schema": "`K` STRING, `V` INT"}},
            {"row": {"columns": ["a", 1]}}, {"row": {"columns": ["b", 2]}},
            {"finalMessage": "Limit Reached"}]);
        let t = [Type::VARCHAR, Type::INT4];
        let got = answer(&["K", "V"], &t, &[&["b", "2"], &["a", "1"]]);
        assert!(compare_answer(&want, &got, false).is_ok());
        assert!(compare_answer(&want, &got, true).is_err());
        let lower = answer(&["k", "v"], &t, &[&["b", "2"], &["a", "1"]]);
        assert!(compare_answer(&want, &lower, false)
            .unwrap_err()
            .contains("columns differ"));
        let bigint = answer(&["K", "V"], &[Type::VARCHAR, Type::INT8], &[&["a", "1"]]);
        assert!(compare_answer(&want, &bigint, false)
            .unwrap_err()
            .contains("column V: expected INT"));
        let extra = answer(&["K", "V"], &t, &[&["b", "2"], &["a", "1"], &["c", "3"]]);
        assert!(compare_answer(&want, &extra, false)
            .unwrap_err()
            .contains("expected 2 rows, got 3"));
        let undescribed = answer(&["K", "V"], &[], &[]);
        assert!(compare_answer(&want, &undescribed, false).is_err());
    }

    #[test]
    fn a_table_push_querys_op_column_is_its_tombstone_flag() {
        let want = json!([{"header": {"schema": "`K` STRING KEY, `V` INT"}},
            {"row": {"columns": ["a", 1]}},
            {"row": {"columns": ["a", null], "tombstone": true}}]);
        let t = [Type::VARCHAR, Type::INT4, Type::TEXT];
        let mut got = answer(&["K", "V", "OP"], &t, &[&["a", "1", "insert"]]);
        got.rows
            .push(vec![Some("a".into()), None, Some("delete".into())]);
        assert!(compare_answer(&want, &got, true).is_ok());
        got.rows[1][2] = Some("update".into());
        assert!(compare_answer(&want, &got, true).is_err());
    }
}
