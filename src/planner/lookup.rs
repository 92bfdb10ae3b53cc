//! Key lookups recognized from a pull query's text, for the serving fast
//! path: `SELECT <columns or *> FROM <table> WHERE <column> = $n` (either
//! side of the `=`), nothing else. What the columns are and whether the
//! column is the table's key is decided by whoever holds the table (the
//! engine's serving snapshot); this only reads the statement's shape, so a
//! lookup is recognized once, when the statement is prepared, and planned
//! never.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, SelectItem, SetExpr, Statement, TableFactor, Value,
};
use datafusion::sql::sqlparser::parser::Parser as SqlParser;

use super::parser::PullDialect;

/// A pull query that reads one row of a table by its key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LookupShape {
    /// The table, as the catalog names it (unquoted names upper-cased).
    pub table: String,
    /// The column compared with the parameter.
    pub column: String,
    /// The parameter (1-based: `$1` is 1).
    pub parameter: usize,
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
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = &select.selection
    else {
        return None;
    };
    let (column, placeholder) = match (left.as_ref(), right.as_ref()) {
        (Expr::Identifier(c), Expr::Value(v)) | (Expr::Value(v), Expr::Identifier(c)) => (c, v),
        _ => None?,
    };
    let Value::Placeholder(p) = &placeholder.value else {
        return None;
    };
    let parameter = p
        .strip_prefix('$')?
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)?;
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
        parameter,
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

    fn shape(table: &str, column: &str, parameter: usize) -> Option<LookupShape> {
        Some(LookupShape {
            table: table.into(),
            column: column.into(),
            parameter,
        })
    }

    #[test]
    fn a_key_compared_with_a_parameter_is_a_lookup() {
        assert_eq!(
            key_lookup("SELECT id, owner, balance FROM accounts WHERE id = $1"),
            shape("ACCOUNTS", "ID", 1)
        );
        assert_eq!(
            key_lookup("select * from Accounts where $2 = \"Id\";"),
            shape("ACCOUNTS", "Id", 2)
        );
        assert_eq!(
            key_lookup("SELECT \"owner\" FROM \"accounts\" WHERE ID=$1"),
            shape("accounts", "ID", 1)
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
            "SELECT id FROM accounts WHERE id IN ($1, $2)",
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
