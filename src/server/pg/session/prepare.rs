//! Statements prepared by the extended protocol's Parse: what they answer
//! with, what their parameters are, and the fast paths they may take (a
//! key lookup, a plan made once).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;

use super::script::{position_of, shift, split, strip_comments};
use super::settings::is_sluice_show;
use super::statements::no_cursor;
use super::{select_kind, text_fields, Session};
use crate::engine::serving::PreparedLookup;
use crate::engine::{Engine, PullPlan, StatementResult};
use crate::error::{Error, Result};
use crate::planner::ast::Statement;
use crate::planner::parser;
use crate::server::pg::results::{fields, push_fields, with_formats};
use crate::server::pg::values::pg_type;
use crate::server::pg::{catalog, copy, cursor, lock, params, SharedEngine};

/// A statement prepared by the extended protocol's Parse.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The statement's text, with its `$n` placeholders.
    pub text: String,
    /// Each parameter's type: as the client declared it, else as Sluice
    /// inferred it, else text.
    pub params: Vec<Type>,
    /// The columns it answers with (text formats); None: no rows.
    pub columns: Option<Arc<Vec<FieldInfo>>>,
    /// The same, all in binary (what most drivers ask for at Bind).
    pub binary_columns: Option<Arc<Vec<FieldInfo>>>,
    /// A pull query that is a key lookup: served without the engine
    /// (`super::extended`), while the view it was prepared against lasts.
    pub lookup: Option<Arc<PreparedLookup>>,
    /// A pull query planned once: each execution binds its values into the
    /// plan and runs it without the engine, while the plan holds.
    pub pull: Option<Arc<PreparedPull>>,
}

impl Prepared {
    /// Its columns in the formats a Bind asked for (None: it answers no
    /// rows); all text or all binary are made once, at Parse.
    pub(crate) fn columns_for(&self, format: &Format) -> Result<Option<Arc<Vec<FieldInfo>>>> {
        Ok(match (format, &self.columns, &self.binary_columns) {
            (_, None, _) => None,
            (Format::UnifiedText, Some(text), _) => Some(text.clone()),
            (Format::UnifiedBinary, _, Some(binary)) => Some(binary.clone()),
            (_, Some(columns), _) => Some(with_formats(columns, format)?),
        })
    }
}

/// A pull query planned at Parse, with its placeholders.
#[derive(Debug)]
pub(crate) struct PreparedPull {
    pub plan: PullPlan,
    /// Each parameter's type in the plan.
    pub types: Vec<DataType>,
    /// The catalog's version it was planned at.
    pub(super) version: u64,
    /// The session's settings it was planned with.
    pub(super) properties: Option<BTreeMap<String, String>>,
}

/// What preparing a statement tells: its columns (None: it answers no
/// rows), its parameters' types where they can be told, the key lookup it
/// is, and its plan, for a pull query.
#[derive(Default)]
struct Described {
    columns: Option<Arc<Vec<FieldInfo>>>,
    inferred: Vec<Option<DataType>>,
    lookup: Option<Arc<PreparedLookup>>,
    pull: Option<(PullPlan, u64)>,
}

impl Described {
    fn columns(columns: Arc<Vec<FieldInfo>>) -> Self {
        Self {
            columns: Some(columns),
            ..Self::default()
        }
    }
}

impl Session {
    /// Prepare one statement (None: it is empty): what it answers with and
    /// what its parameters are. Nothing runs but read-only statements
    /// (`SHOW`, `DESCRIBE`, `EXPLAIN`, ...), whose columns are those of
    /// their answer.
    pub(crate) fn prepare(
        &self,
        engine: &SharedEngine,
        sql: &str,
        declared: &[Option<Type>],
    ) -> Result<Option<Prepared>> {
        let chunks = split(sql);
        let chunk = match chunks.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            [_, second, ..] => {
                return Err(Error::syntax(
                    "cannot insert multiple commands into a prepared statement",
                    Some(position_of(sql, second.start)),
                ))
            }
        };
        let text = &sql[chunk.start..chunk.end];
        let described = self
            .describe(engine, text, declared)
            .map_err(|e| shift(e, position_of(sql, chunk.start)))?;
        let inferred = &described.inferred;
        let params: Vec<Type> = (0..params::count(text)?.max(declared.len()))
            .map(|i| {
                declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred.get(i).cloned().flatten().map(|dt| pg_type(&dt)))
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        // A lookup whose parameters are all the statement's, each declared
        // (or inferred) as a type the fast path decodes (a key, or a window
        // bound: BIGINT); any other goes the planned way.
        let lookup = described.lookup.filter(|l| {
            let declared = |n: usize| params.get(n.wrapping_sub(1));
            let bounds = || l.window.iter().map(|b| b.parameter);
            (1..=params.len()).all(|n| l.parameters.contains(&n) || bounds().any(|b| b == n))
                && l.parameters.iter().all(|&n| {
                    declared(n).is_some_and(|ty| params::is_key_type(ty, l.lookup.key_type()))
                })
                && bounds()
                    .all(|n| declared(n).is_some_and(|ty| params::binds(ty, &DataType::Int64)))
        });
        // A plan whose every parameter has a type its values bind to
        // exactly; any other is planned again with its values pasted.
        let pull = described.pull.and_then(|(plan, version)| {
            let types: Vec<DataType> = described.inferred.into_iter().collect::<Option<_>>()?;
            let bindable = types.len() == params.len()
                && params
                    .iter()
                    .zip(&types)
                    .all(|(ty, dt)| params::binds(ty, dt));
            bindable.then(|| {
                Arc::new(PreparedPull {
                    plan,
                    types,
                    version,
                    properties: self.settings_now(),
                })
            })
        });
        let binary_columns = match &described.columns {
            Some(c) => Some(with_formats(c, &Format::UnifiedBinary)?),
            None => None,
        };
        Ok(Some(Prepared {
            text: sql.to_string(),
            params,
            columns: described.columns,
            binary_columns,
            lookup,
            pull,
        }))
    }

    fn describe(
        &self,
        engine: &SharedEngine,
        text: &str,
        declared: &[Option<Type>],
    ) -> Result<Described> {
        let case = self.names();
        let words: Vec<String> = strip_comments(text)
            .split_whitespace()
            .take(2)
            .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
            .collect();
        let first = words.first().map(String::as_str).unwrap_or("");
        let second = words.get(1).map(String::as_str).unwrap_or("");
        match (first, second) {
            (
                "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "DISCARD" | "RESET"
                | "DEALLOCATE" | "SAVEPOINT" | "RELEASE",
                _,
            )
            | ("START", "TRANSACTION") => return Ok(Described::default()),
            ("SET", _) if !second.starts_with('\'') => return Ok(Described::default()),
            ("SHOW", noun) if !is_sluice_show(noun) => {
                let name = strip_comments(text)
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim_end_matches(';')
                    .to_ascii_lowercase();
                let field = FieldInfo::new(name, None, None, Type::TEXT, FieldFormat::Text);
                return Ok(Described::columns(Arc::new(vec![field])));
            }
            _ => {}
        }
        if copy::statement(text)?.is_some() {
            return Ok(Described::default());
        }
        if let Some(c) = cursor::statement(&strip_comments(text))? {
            return Ok(match c {
                cursor::Statement::Fetch {
                    name,
                    discard: false,
                    ..
                } => match self.cursor_fields(&name) {
                    Some(fields) => Described::columns(fields),
                    None => return Err(no_cursor(&name)),
                },
                _ => Described::default(),
            });
        }
        if catalog::is_catalog_query(text) {
            let (fields, _) = catalog::answer(&lock(engine), self.catalog_facts(), text)?;
            return Ok(Described::columns(fields));
        }
        let mut engine = lock(engine);
        self.in_engine(&mut engine, |e| match select_kind(text) {
            Some(true) => {
                let inferred = e.push_parameter_types(text);
                let (schema, table) =
                    e.describe_push_query(&typed_nulls(text, declared, &inferred)?)?;
                Ok(Described {
                    inferred,
                    ..Described::columns(push_fields(&schema, table, case))
                })
            }
            Some(false) => {
                let version = e.serving().catalog_version();
                let plan = e.plan_pull(text)?;
                let schema = plan.schema();
                Ok(Described {
                    columns: Some(fields(&schema, case)),
                    inferred: plan.parameter_types()?,
                    lookup: e.prepare_lookup(text, &schema).map(Arc::new),
                    pull: Some((plan, version)),
                })
            }
            None => {
                let parsed = parser::parse(&typed_nulls(text, declared, &[])?)?;
                let [p] = parsed.as_slice() else {
                    return Err(Error::syntax(
                        "cannot insert multiple commands into a prepared statement",
                        None,
                    ));
                };
                match &p.statement {
                    Statement::InsertValues {
                        target, columns, ..
                    } => Ok(Described {
                        inferred: insert_parameters(e, text, target, columns),
                        ..Described::default()
                    }),
                    Statement::Show { .. }
                    | Statement::Describe { .. }
                    | Statement::DescribeFunction(_)
                    | Statement::Explain(_)
                    | Statement::ExplainQuery(_)
                    | Statement::Print { .. } => match e.execute_parsed(p)? {
                        StatementResult::Rows { columns, .. } => {
                            Ok(Described::columns(text_fields(columns)))
                        }
                        StatementResult::Done { .. } => Ok(Described::default()),
                    },
                    _ => Ok(Described::default()),
                }
            }
        })
    }
}

/// `text` with each parameter a NULL of its type (declared, else inferred,
/// else STRING), for Sluice's own parser, which takes no placeholders.
fn typed_nulls(
    text: &str,
    declared: &[Option<Type>],
    inferred: &[Option<DataType>],
) -> Result<String> {
    let nulls: Vec<String> = (0..params::count(text)?)
        .map(|i| {
            let ty = declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| inferred.get(i).cloned().flatten().map(|dt| pg_type(&dt)));
            format!("CAST(NULL AS {})", params::sql_type(ty.as_ref()))
        })
        .collect();
    params::substitute(text, &nulls)
}

/// The types of an `INSERT ... VALUES`' parameters: a value that is just
/// `$n` takes its column's type (in any of its rows).
fn insert_parameters(
    engine: &Engine,
    text: &str,
    target: &str,
    columns: &Option<Vec<String>>,
) -> Vec<Option<DataType>> {
    let Some(src) = engine.catalog().source(target) else {
        return vec![];
    };
    let names: Vec<String> = match columns {
        Some(c) => c.clone(),
        None => src
            .key_columns()
            .chain(src.value_columns())
            .map(|c| c.name.clone())
            .collect(),
    };
    // The values lists: the text after the last top-level `VALUES`, a
    // parenthesized list after another.
    let upper = text.to_ascii_uppercase();
    let Some(at) = upper.rfind("VALUES") else {
        return vec![];
    };
    let mut rows = Vec::new();
    let mut rest = &text[at + "VALUES".len()..];
    while let Some(open) = rest.trim_start().strip_prefix('(') {
        let (values, after) = split_values(open);
        rows.push(values);
        rest = after.trim_start().strip_prefix(',').unwrap_or("");
    }
    let mut types = vec![None; params::count(text).unwrap_or(0)];
    let cells = rows
        .iter()
        .flat_map(|r| r.iter().take(names.len()).enumerate());
    for (i, v) in cells {
        let Some((_, n)) = params::placeholders(v).into_iter().next() else {
            continue;
        };
        if v.trim().len() != 1 + n.to_string().len() {
            continue;
        }
        let ty = names.get(i).and_then(|name| {
            if name == crate::runtime::ROWTIME {
                return Some(DataType::Int64);
            }
            src.columns
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.data_type.clone())
        });
        if let Some(slot) = types.get_mut(n - 1) {
            *slot = ty;
        }
    }
    types
}

/// The comma-separated items of a parenthesized list, up to its closing
/// parenthesis (commas inside quotes or nested parentheses do not split),
/// and the text after that parenthesis.
fn split_values(list: &str) -> (Vec<&str>, &str) {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut quote = None;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => {
                items.push(&list[start..i]);
                return (items, &list[i + 1..]);
            }
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (items, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_columns_come_in_the_formats_a_bind_asks_for() {
        let text = Arc::new(vec![
            FieldInfo::new("ID".into(), None, None, Type::VARCHAR, FieldFormat::Text),
            FieldInfo::new("N".into(), None, None, Type::INT8, FieldFormat::Text),
        ]);
        let prepared = Prepared {
            text: "SELECT id, n FROM t WHERE id = $1".into(),
            params: vec![Type::VARCHAR],
            binary_columns: Some(with_formats(&text, &Format::UnifiedBinary).unwrap()),
            columns: Some(text),
            lookup: None,
            pull: None,
        };
        let formats = |f: &Format| -> Vec<FieldFormat> {
            let columns = prepared.columns_for(f).unwrap().unwrap();
            columns.iter().map(|c| c.format()).collect()
        };
        assert_eq!(formats(&Format::UnifiedText), [FieldFormat::Text; 2]);
        assert_eq!(formats(&Format::UnifiedBinary), [FieldFormat::Binary; 2]);
        assert_eq!(
            formats(&Format::Individual(vec![0, 1])),
            [FieldFormat::Text, FieldFormat::Binary]
        );
        assert_eq!(
            prepared
                .columns_for(&Format::Individual(vec![1]))
                .unwrap_err()
                .to_string(),
            "bind message has 1 result formats but the query has 2 columns"
        );
    }
}
