//! Type checks of a pull query's WHERE clause, as ksqlDB makes them: a
//! column compares only with a literal of its kind (a number with a
//! number, a string with a string; a time column, `ROWTIME` or a window
//! bound, also with a datetime text), where SQL would coerce one to the
//! other. Window bounds of a table that has none cannot be resolved. The
//! refusals use ksqlDB's words; the clause is checked as written.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::sql::sqlparser::ast::{BinaryOperator as B, Expr as SqlExpr, Value};

use crate::catalog::sql_type_name;
use crate::error::{Error, Result};
use crate::runtime::{ROWTIME, WINDOWEND, WINDOWSTART};

/// The kinds that do not compare with each other.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Text,
    Other,
}

fn kind_of(dt: &DataType) -> Kind {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        t if t.is_numeric() => Kind::Number,
        _ => Kind::Other,
    }
}

/// A literal's text as ksqlDB prints it, its type name and kind.
fn literal(e: &SqlExpr) -> Option<(String, String, Kind)> {
    let SqlExpr::Value(v) = e else { return None };
    match &v.value {
        Value::SingleQuotedString(s) => Some((format!("'{s}'"), "STRING".into(), Kind::Text)),
        Value::Number(n, _) => {
            let ty = if n.parse::<i32>().is_ok() {
                "INTEGER".to_string()
            } else if n.parse::<i64>().is_ok() {
                "BIGINT".to_string()
            } else {
                let digits = n.chars().filter(char::is_ascii_digit).count();
                let scale = n.split_once('.').map_or(0, |(_, f)| f.len());
                format!("DECIMAL({digits}, {scale})")
            };
            Some((n.clone(), ty, Kind::Number))
        }
        _ => None,
    }
}

/// The column an expression names, in `schema` (unquoted names in any
/// case): its name and type.
fn column<'a>(e: &SqlExpr, schema: &'a Schema) -> Option<(&'a String, &'a DataType)> {
    let ident = match e {
        SqlExpr::Identifier(i) => i,
        SqlExpr::CompoundIdentifier(is) => is.last()?,
        _ => return None,
    };
    schema
        .fields()
        .iter()
        .find(|f| match ident.quote_style {
            None => f.name().eq_ignore_ascii_case(&ident.value),
            Some(_) => *f.name() == ident.value,
        })
        .map(|f| (f.name(), f.data_type()))
}

fn op_name(op: &B) -> Option<(&'static str, &'static str)> {
    Some(match op {
        B::Eq => ("EQUAL", "="),
        B::NotEq => ("NOT_EQUAL", "<>"),
        B::Lt => ("LESS_THAN", "<"),
        B::LtEq => ("LESS_THAN_OR_EQUAL", "<="),
        B::Gt => ("GREATER_THAN", ">"),
        B::GtEq => ("GREATER_THAN_OR_EQUAL", ">="),
        _ => return None,
    })
}

/// A column and a literal that do not compare: the texts and types of the
/// two sides, in order.
type Mismatch = (String, String, String, String);

fn mismatch(a: &SqlExpr, b: &SqlExpr, schema: &Schema) -> Option<Mismatch> {
    let side = |e: &SqlExpr| -> Option<(String, String, Kind, bool)> {
        if let Some((name, dt)) = column(e, schema) {
            let time = [ROWTIME, WINDOWSTART, WINDOWEND].contains(&name.as_str());
            return Some((name.clone(), sql_type_name(dt), kind_of(dt), time));
        }
        literal(e).map(|(text, ty, kind)| (text, ty, kind, false))
    };
    let (l, r) = (side(a)?, side(b)?);
    let is_column = |e: &SqlExpr| column(e, schema).is_some();
    // One column and one literal, of different kinds.
    if is_column(a) == is_column(b) || l.2 == Kind::Other || r.2 == Kind::Other || l.2 == r.2 {
        return None;
    }
    // A time column reads a datetime text.
    if (l.3 && r.2 == Kind::Text) || (r.3 && l.2 == Kind::Text) {
        return None;
    }
    Some((l.0, l.1, r.0, r.1))
}

/// Check a pull query's WHERE clause against its table's schema;
/// `key_columns` names the table's key columns (for IN lookups).
pub(crate) fn check_where_types(
    selection: &SqlExpr,
    schema: &Schema,
    key_columns: &[String],
) -> Result<()> {
    let mut error = None;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(selection, |x| {
        if error.is_some() {
            return std::ops::ControlFlow::<()>::Break(());
        }
        match x {
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                let name = match x {
                    SqlExpr::Identifier(i) => i.value.to_ascii_uppercase(),
                    SqlExpr::CompoundIdentifier(is) => is
                        .last()
                        .map(|i| i.value.to_ascii_uppercase())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let bound = name == WINDOWSTART || name == WINDOWEND;
                if bound && column(x, schema).is_none() {
                    error = Some(format!("WHERE column '{name}' cannot be resolved."));
                }
            }
            SqlExpr::BinaryOp { left, op, right } => {
                if let (Some((name, symbol)), Some((lt, lty, rt, rty))) =
                    (op_name(op), mismatch(left, right, schema))
                {
                    error = Some(format!(
                        "Error in WHERE expression: Cannot compare {lt} ({lty}) to {rt} ({rty}) with {name}.\nStatement: ({lt} {symbol} {rt})"
                    ));
                }
            }
            SqlExpr::Between {
                expr, low, high, ..
            } => {
                for (bound, name) in [(low, "GREATER_THAN_OR_EQUAL"), (high, "LESS_THAN_OR_EQUAL")]
                {
                    if let Some((lt, lty, rt, rty)) = mismatch(expr, bound, schema) {
                        error.get_or_insert(format!(
                            "Invalid expression: Cannot compare {lt} ({lty}) to {rt} ({rty}) with {name}"
                        ));
                    }
                }
            }
            SqlExpr::InList { expr, list, .. } => {
                if let Some((name, dt)) = column(expr, schema) {
                    if key_columns.contains(name) {
                        for item in list {
                            if let Some((text, _, kind)) = literal(item) {
                                let want = kind_of(dt);
                                if want != Kind::Other && kind != want {
                                    error.get_or_insert(format!(
                                        "{text} can not be converted to the type of the key column: {name} {} KEY",
                                        sql_type_name(dt)
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    });
    match error {
        Some(message) => Err(Error::semantic(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(where_: &str) -> std::result::Result<(), String> {
        let e = Parser::new(&GenericDialect)
            .try_with_sql(where_)
            .unwrap()
            .parse_expr()
            .unwrap();
        let schema = Schema::new(vec![
            Field::new("ID", DataType::Int32, true),
            Field::new("NAME", DataType::Utf8, true),
            Field::new(ROWTIME, DataType::Int64, true),
        ]);
        check_where_types(&e, &schema, &["ID".into()]).map_err(|e| e.to_string())
    }

    #[test]
    fn columns_compare_only_with_literals_of_their_kind() {
        assert_eq!(
            check("ID = 10 AND NAME = 'x' AND ROWTIME > '2020-01-01'"),
            Ok(())
        );
        assert_eq!(check("ID = NAME"), Ok(()));
        assert_eq!(
            check("id = '10'").unwrap_err(),
            "Error in WHERE expression: Cannot compare ID (INTEGER) to '10' (STRING) with EQUAL.\nStatement: (ID = '10')"
        );
        assert!(check("NAME >= 1.5")
            .unwrap_err()
            .contains("to 1.5 (DECIMAL(2, 1)) with GREATER_THAN_OR_EQUAL"));
        assert!(check("NAME BETWEEN 10 AND 'z'").unwrap_err().starts_with(
            "Invalid expression: Cannot compare NAME (STRING) to 10 (INTEGER) with GREATER_THAN_OR_EQUAL"
        ));
        assert!(check("ID IN ('10', 8)").unwrap_err().starts_with(
            "'10' can not be converted to the type of the key column: ID INTEGER KEY"
        ));
        assert_eq!(
            check("ID = 1 AND WINDOWSTART = 10").unwrap_err(),
            "WHERE column 'WINDOWSTART' cannot be resolved."
        );
    }
}
