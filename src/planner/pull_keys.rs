//! Key lookups: what a pull query's WHERE clause must be when table scans
//! are off (`ksql.query.pull.table.scan.enabled=false`), as ksqlDB decides
//! it.
//!
//! The clause is read as a disjunction of conjunctions (its top-level `OR`s
//! of `AND`s). Every disjunct must pin the table's key: each key column
//! compared with `=` to, or `IN` a list of, expressions without column
//! references, once. Comparisons of value columns and window bounds are
//! filters on top and do not count. A range on the key (`<`, `<=`, `>`,
//! `>=`, `BETWEEN`) is a range scan, allowed only on the single STRING key
//! of an unwindowed table, in a clause without `OR`, with range scans on
//! (`ksql.query.pull.range.scan.enabled`); anything else needs a table scan.
//! The refusals use ksqlDB's words; the clause is checked as written
//! (before ksqlDB's semantics are rewritten into it), so that messages
//! show it as the user wrote it.

use datafusion::sql::sqlparser::ast::{BinaryOperator as B, Expr as SqlExpr};

use crate::error::{Error, Result};

/// The key of a table a pull query reads.
#[derive(Debug, Clone)]
pub(crate) struct LookupKey {
    /// Key columns: name and ksqlDB type name (`STRING`, `INTEGER`, ...).
    pub columns: Vec<(String, String)>,
    pub windowed: bool,
}

/// What a disjunct says about one key column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Equal,
    Range,
    NotEqual,
}

/// Refuse a WHERE clause that cannot be answered by key lookups (and, if
/// allowed, a range scan) of a table with this key.
pub(crate) fn check_key_lookup(
    selection: Option<&SqlExpr>,
    key: &LookupKey,
    range_scan: bool,
) -> Result<()> {
    let scan_needed = || Error::semantic("Query requires table scan to be enabled");
    let Some(selection) = selection else {
        return Err(scan_needed());
    };
    let mut disjuncts = Vec::new();
    split(selection, B::Or, &mut disjuncts);
    let several = disjuncts.len() > 1;
    for d in disjuncts {
        let mut conjuncts = Vec::new();
        split(d, B::And, &mut conjuncts);
        let mut bounds: Vec<(usize, Bound)> = Vec::new();
        for c in conjuncts {
            bounds.extend(conjunct_bounds(c, key)?);
        }
        if bounds.is_empty() {
            return Err(Error::semantic(format!(
                "WHERE clause missing key column for disjunct: ({d})"
            )));
        }
        for (i, _) in &bounds {
            if bounds.iter().filter(|(j, _)| j == i).count() > 1 {
                return Err(Error::semantic(
                    "A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate",
                ));
            }
        }
        if bounds.iter().any(|(_, b)| *b == Bound::NotEqual) {
            let keys: Vec<String> = key
                .columns
                .iter()
                .map(|(n, t)| format!("`{n}` {t} KEY"))
                .collect();
            return Err(Error::semantic(format!(
                "Bound on key columns '[{}]' must currently be '='. ",
                keys.join(", ")
            )));
        }
        if bounds.len() < key.columns.len() {
            return Err(Error::semantic(
                "Multi-column sources must specify every key in the WHERE clause.",
            ));
        }
        if bounds.iter().any(|(_, b)| *b == Bound::Range) {
            let string_key = key.columns.len() == 1 && key.columns[0].1 == "STRING";
            let range_scan_fits = range_scan && string_key && !key.windowed && !several;
            if !range_scan_fits {
                return Err(scan_needed());
            }
        }
    }
    Ok(())
}

/// The operands of nested `op`s (`a OR (b OR c)` gives a, b, c).
fn split<'a>(e: &'a SqlExpr, op: B, out: &mut Vec<&'a SqlExpr>) {
    match e {
        SqlExpr::BinaryOp { left, op: o, right } if *o == op => {
            split(left, op.clone(), out);
            split(right, op, out);
        }
        SqlExpr::Nested(inner) => split(inner, op, out),
        other => out.push(other),
    }
}

/// The key column an expression is, if it is one.
/// (Unquoted names match in any case: the clause is read as written.)
fn key_column(e: &SqlExpr, key: &LookupKey) -> Option<usize> {
    let ident = match e {
        SqlExpr::Identifier(i) => i,
        SqlExpr::CompoundIdentifier(is) => is.last()?,
        SqlExpr::Nested(inner) => return key_column(inner, key),
        _ => return None,
    };
    key.columns
        .iter()
        .position(|(n, _)| match ident.quote_style {
            None => n.eq_ignore_ascii_case(&ident.value),
            Some(_) => *n == ident.value,
        })
}

fn is_column(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
}

/// Whether an expression names any column (it cannot be resolved before
/// the lookup).
fn has_column(e: &SqlExpr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
        found |= is_column(x);
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// What one conjunct bounds of the key.
fn conjunct_bounds(c: &SqlExpr, key: &LookupKey) -> Result<Vec<(usize, Bound)>> {
    let unresolvable = || {
        Error::semantic("A comparison must be between a key column and a resolvable expression.")
    };
    match c {
        SqlExpr::Nested(inner) => conjunct_bounds(inner, key),
        SqlExpr::BinaryOp { left, op, right }
            if matches!(op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq) =>
        {
            let bound = match op {
                B::Eq => Bound::Equal,
                B::NotEq => Bound::NotEqual,
                _ => Bound::Range,
            };
            match (key_column(left, key), key_column(right, key)) {
                (Some(_), Some(_)) => Err(unresolvable()),
                (Some(_), None) if has_column(right) => Err(unresolvable()),
                (None, Some(_)) if has_column(left) => Err(unresolvable()),
                (Some(k), None) | (None, Some(k)) => Ok(vec![(k, bound)]),
                (None, None) => {
                    let mentions_key = |e: &SqlExpr| {
                        let mut found = false;
                        let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
                            found |= key_column(x, key).is_some();
                            std::ops::ControlFlow::<()>::Continue(())
                        });
                        found
                    };
                    if mentions_key(left) || mentions_key(right) {
                        return Err(Error::semantic(
                            "A comparison must directly reference a key column.",
                        ));
                    }
                    Ok(Vec::new())
                }
            }
        }
        SqlExpr::InList {
            expr,
            list,
            negated: false,
        } => match key_column(expr, key) {
            Some(_) if list.iter().any(has_column) => Err(unresolvable()),
            Some(k) => Ok(vec![(k, Bound::Equal)]),
            None => Ok(Vec::new()),
        },
        SqlExpr::Between {
            expr,
            negated: false,
            low,
            high,
        } => match key_column(expr, key) {
            Some(_) if has_column(low) || has_column(high) => Err(unresolvable()),
            Some(k) => Ok(vec![(k, Bound::Range)]),
            None => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(
        where_: &str,
        key: &[(&str, &str)],
        windowed: bool,
    ) -> std::result::Result<(), String> {
        let e = Parser::new(&GenericDialect)
            .try_with_sql(where_)
            .unwrap()
            .parse_expr()
            .unwrap();
        let key = LookupKey {
            columns: key
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            windowed,
        };
        check_key_lookup(Some(&e), &key, true).map_err(|e| e.to_string())
    }

    #[test]
    fn lookups_pass_and_scans_are_refused_with_ksqldbs_words() {
        let id = [("ID", "STRING")];
        assert_eq!(check("ID = '10'", &id, false), Ok(()));
        assert_eq!(check("ID IN ('1', '2') OR ID = '3'", &id, false), Ok(()));
        assert_eq!(
            check("ID = '1' AND COUNT > 2 AND WINDOWSTART = 0", &id, true),
            Ok(())
        );
        assert_eq!(check("ID <= '10'", &id, false), Ok(()));
        let err = |w: &str, key: &[(&str, &str)], windowed| check(w, key, windowed).unwrap_err();
        assert!(err("COUNT = 100", &id, false)
            .contains("missing key column for disjunct: (COUNT = 100)"));
        assert!(err("ID <= '10'", &id, true).contains("Query requires table scan to be enabled"));
        assert!(err("ID <= '1' OR ID >= '3'", &id, false).contains("table scan"));
        assert!(err("ID <= 12", &[("ID", "INTEGER")], false).contains("table scan"));
        assert!(err("'0' < ID AND ID < '9'", &id, false).contains("cannot be combined"));
        assert!(err("ID != '1'", &id, false).contains("Bound on key columns '[`ID` STRING KEY]'"));
        assert!(err("ID = COUNT - 1", &id, false).contains("resolvable expression"));
        assert!(err("ID IN (2, COUNT + 1)", &id, false).contains("resolvable expression"));
        assert!(err("ID + 10 = 20", &id, false).contains("directly reference a key column"));
        let two = [("ID1", "STRING"), ("ID2", "INTEGER")];
        assert!(err("ID1 = '1'", &two, false).contains("must specify every key"));
        assert_eq!(check("ID1 = '1' AND ID2 = 2", &two, false), Ok(()));
    }
}
