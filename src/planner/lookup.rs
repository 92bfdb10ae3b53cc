//! Key lookups recognized from a pull query's text, for the serving fast
//! path: `SELECT <columns or *> FROM <table> WHERE <column> = $n` (either
//! side of the `=`) or `... WHERE <column> IN ($a, $b, ...)`; for one key,
//! also `AND WINDOWSTART <op> $m` (`=`, `<`, `<=`, `>`, `>=`, as often as
//! wanted: a range of a windowed table's windows); nothing else. What the columns are and whether the
//! column is the table's key is decided by whoever holds the table (the
//! engine's serving snapshot); this only reads the statement's shape, so a
//! lookup is recognized once, when the statement is prepared, and planned
//! never.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, SelectItem, SetExpr, Statement, TableFactor, Value,
};
use datafusion::sql::sqlparser::parser::Parser as SqlParser;

use super::parser::PullDialect;

/// A pull query that reads rows of a table by their keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LookupShape {
    /// The table, as the catalog names it (unquoted names upper-cased).
    pub table: String,
    /// The column compared with the parameters.
    pub column: String,
    /// The parameters that carry the keys, in the statement's order
    /// (1-based: `$1` is 1): one for `=`, one per item of an `IN` list.
    pub parameters: Vec<usize>,
    /// Bounds on `WINDOWSTART` (a windowed table's), all of which hold.
    pub window: Vec<WindowBound>,
}

/// `WINDOWSTART <op> $parameter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowBound {
    pub op: BoundOp,
    pub parameter: usize,
}

/// How `WINDOWSTART` compares with a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BoundOp {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl BoundOp {
    fn of(op: &BinaryOperator) -> Option<Self> {
        Some(match op {
            BinaryOperator::Eq => Self::Eq,
            BinaryOperator::Lt => Self::Lt,
            BinaryOperator::LtEq => Self::LtEq,
            BinaryOperator::Gt => Self::Gt,
            BinaryOperator::GtEq => Self::GtEq,
            _ => return None,
        })
    }

    /// The same comparison with its sides swapped (`$1 < x` is `x > $1`).
    fn flipped(self) -> Self {
        match self {
            Self::Eq => Self::Eq,
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
        }
    }
}

/// The column a window bound constrains.
const WINDOWSTART: &str = "WINDOWSTART";

/// The lookup `text` is, if it is exactly one.
pub(crate) fn key_lookup(text: &str) -> Option<LookupShape> {
    let mut statements = SqlParser::parse_sql(&PullDialect, text).ok()?;
    let (Some(Statement::Query(query)), true) = (statements.pop(), statements.is_empty()) else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table {
        name, alias: None, ..
    } = &from.relation
    else {
        return None;
    };
    let [part] = name.0.as_slice() else {
        return None;
    };
    let table = catalog_name(part.as_ident()?);
    let items: Vec<String> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.to_string()),
            SelectItem::Wildcard(_) => Some(item.to_string()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let placeholder = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p
                .strip_prefix('$')?
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0),
            _ => None,
        },
        _ => None,
    };
    let mut conjuncts = Vec::new();
    and_terms(select.selection.as_ref()?, &mut conjuncts);
    let (mut key, mut window) = (None, Vec::new());
    for term in conjuncts {
        match term {
            Expr::BinaryOp { left, op, right } => {
                let (c, v, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Identifier(c), v) => (c, v, BoundOp::of(op)?),
                    (v, Expr::Identifier(c)) => (c, v, BoundOp::of(op)?.flipped()),
                    _ => return None,
                };
                let parameter = placeholder(v)?;
                if catalog_name(c) == WINDOWSTART {
                    window.push(WindowBound { op, parameter });
                } else if op == BoundOp::Eq && key.is_none() {
                    key = Some((c, vec![parameter]));
                } else {
                    return None;
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => match expr.as_ref() {
                Expr::Identifier(c) if !list.is_empty() && key.is_none() => {
                    key = Some((c, list.iter().map(placeholder).collect::<Option<_>>()?));
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    let (column, parameters) = key?;
    if !window.is_empty() && parameters.len() != 1 {
        return None;
    }
    // Nothing else: no DISTINCT, GROUP BY, ORDER BY, LIMIT, ... (compared
    // as sqlparser writes the statement back, whatever clauses it knows).
    let bare = format!(
        "SELECT {} FROM {name} WHERE {}",
        items.join(", "),
        select.selection.as_ref()?
    );
    (query.to_string() == bare).then(|| LookupShape {
        table,
        column: catalog_name(column),
        parameters,
        window,
    })
}

/// The terms of `e`'s top-level `AND`s (unparenthesized), in order.
fn and_terms<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            and_terms(left, out);
            and_terms(right, out);
        }
        e => out.push(e),
    }
}

/// A name as the catalog keeps it: unquoted names upper-cased.
fn catalog_name(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_ascii_uppercase(),
        Some(_) => ident.value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(table: &str, column: &str, parameters: &[usize]) -> Option<LookupShape> {
        Some(LookupShape {
            table: table.into(),
            column: column.into(),
            parameters: parameters.to_vec(),
            window: vec![],
        })
    }

    #[test]
    fn one_key_with_bounds_on_its_windows_is_a_lookup() {
        let bound = |op, parameter| WindowBound { op, parameter };
        let with = |window: Vec<WindowBound>| {
            let mut s = shape("COUNTS", "ID", &[1]).unwrap();
            s.window = window;
            Some(s)
        };
        assert_eq!(
            key_lookup(
                "SELECT * FROM counts WHERE id = $1 AND windowstart >= $2 AND WINDOWSTART < $3"
            ),
            with(vec![bound(BoundOp::GtEq, 2), bound(BoundOp::Lt, 3)])
        );
        assert_eq!(
            key_lookup("SELECT id, n FROM counts WHERE $2 <= WindowStart AND $1 = id"),
            with(vec![bound(BoundOp::GtEq, 2)])
        );
        assert_eq!(
            key_lookup("SELECT id FROM counts WHERE windowstart = $1 AND id = $2"),
            Some(LookupShape {
                parameters: vec![2],
                window: vec![bound(BoundOp::Eq, 1)],
                ..shape("COUNTS", "ID", &[]).unwrap()
            })
        );
        for text in [
            "SELECT id FROM counts WHERE windowstart >= $1",
            "SELECT id FROM counts WHERE id IN ($1, $2) AND windowstart >= $3",
            "SELECT id FROM counts WHERE id = $1 AND windowend >= $2",
            "SELECT id FROM counts WHERE id = $1 AND windowstart <> $2",
            "SELECT id FROM counts WHERE id = $1 AND windowstart >= 10",
            "SELECT id FROM counts WHERE id = $1 OR windowstart >= $2",
            "SELECT id FROM counts WHERE id = $1 AND (windowstart >= $2 OR windowstart < $3)",
            "SELECT id FROM counts WHERE id = $1 AND id = $2",
        ] {
            assert_eq!(key_lookup(text), None, "{text}");
        }
    }

    #[test]
    fn a_key_compared_with_a_parameter_is_a_lookup() {
        assert_eq!(
            key_lookup("SELECT id, owner, balance FROM accounts WHERE id = $1"),
            shape("ACCOUNTS", "ID", &[1])
        );
        assert_eq!(
            key_lookup("select * from Accounts where $2 = \"Id\";"),
            shape("ACCOUNTS", "Id", &[2])
        );
        assert_eq!(
            key_lookup("SELECT \"owner\" FROM \"accounts\" WHERE ID=$1"),
            shape("accounts", "ID", &[1])
        );
        assert_eq!(
            key_lookup("SELECT owner FROM accounts WHERE id IN ($2, $1, $2)"),
            shape("ACCOUNTS", "ID", &[2, 1, 2])
        );
    }

    #[test]
    fn anything_more_is_not() {
        for text in [
            "SELECT id FROM accounts WHERE id = $1 LIMIT 1",
            "SELECT id FROM accounts WHERE id = $1 ORDER BY id",
            "SELECT DISTINCT id FROM accounts WHERE id = $1",
            "SELECT id FROM accounts WHERE id = $1 AND owner = 'x'",
            "SELECT id FROM accounts WHERE id = 'a'",
            "SELECT id FROM accounts WHERE id > $1",
            "SELECT id FROM accounts WHERE id IN ($1, 'a')",
            "SELECT id FROM accounts WHERE id NOT IN ($1, $2)",
            "SELECT id FROM accounts WHERE $1 IN (id)",
            "SELECT id AS k FROM accounts WHERE id = $1",
            "SELECT UCASE(id) FROM accounts WHERE id = $1",
            "SELECT a.id FROM accounts a WHERE a.id = $1",
            "SELECT id FROM s.accounts WHERE id = $1",
            "SELECT id FROM accounts JOIN b ON accounts.id = b.id WHERE id = $1",
            "SELECT id, COUNT(*) FROM accounts WHERE id = $1 GROUP BY id",
            "WITH x AS (SELECT 1) SELECT id FROM accounts WHERE id = $1",
            "SELECT id FROM accounts WHERE id = $0",
            "SELECT id FROM accounts WHERE id = $1; SELECT 1",
            "SELECT id FROM accounts WHERE id = $1 EMIT CHANGES",
            "not sql",
        ] {
            assert_eq!(key_lookup(text), None, "{text}");
        }
    }
}
