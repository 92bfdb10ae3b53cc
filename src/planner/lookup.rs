//! Key lookups recognized from a pull query's text, for the serving fast
//! path: `SELECT <columns or *> FROM <table> WHERE <column> = $n` (either
//! side of the `=`) or `... WHERE <column> IN ($a, $b, ...)`, nothing else. What the columns are and whether the
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
}

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
    let (column, parameters) = match select.selection.as_ref()? {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Identifier(c), v) | (v, Expr::Identifier(c)) => (c, vec![placeholder(v)?]),
            _ => None?,
        },
        Expr::InList {
            expr,
            list,
            negated: false,
        } => match expr.as_ref() {
            Expr::Identifier(c) if !list.is_empty() => {
                (c, list.iter().map(placeholder).collect::<Option<_>>()?)
            }
            _ => None?,
        },
        _ => None?,
    };
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
    })
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
        })
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
