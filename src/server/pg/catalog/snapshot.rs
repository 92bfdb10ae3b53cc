//! What the catalog describes, taken from Sluice's catalog when a query
//! comes: every relation (streams and tables in `public`; the catalog's
//! own tables in `pg_catalog` and `information_schema`), its columns, and
//! for a table its key as a primary key (a stream's key columns are not
//! unique, so a stream has none), and the session's facts (database,
//! user, settings).
//!
//! Names are spelled as the session's clients see them ([`NameCase`]):
//! with the default, a stream `ORDERS` is the relation `orders`.

use std::collections::HashMap;

use super::tables::{self, Def, INFORMATION_SCHEMA, PG_CATALOG};
use super::types;
use crate::catalog::{ColumnKind, Source};
use crate::planner::ast::SourceKind;
use crate::server::pg::results::NameCase;

pub(super) const PG_CATALOG_NS: i64 = 11;
pub(super) const PUBLIC_NS: i64 = 2200;
pub(super) const INFORMATION_SCHEMA_NS: i64 = 13_000;
/// The one role, the session's user (Postgres's bootstrap superuser OID).
pub(super) const ROLE: i64 = 10;
pub(super) const DATABASE: i64 = 5;

/// The session's side of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub database: String,
    pub user: String,
    pub case: NameCase,
    /// Every setting `SHOW` answers, with its value now.
    pub settings: Vec<(String, String)>,
}

/// A column of a relation.
pub(super) struct Attribute {
    pub name: String,
    pub type_oid: i64,
    pub typmod: i32,
    pub not_null: bool,
    pub description: Option<String>,
}

/// A primary key: its index and constraint.
pub(super) struct PrimaryKey {
    pub index_oid: i64,
    pub constraint_oid: i64,
    /// `<relation>_pkey`, as Postgres names it.
    pub name: String,
    /// The key columns' attribute numbers, in key order.
    pub attnums: Vec<i16>,
}

/// A relation `pg_class` lists.
pub(super) struct Relation {
    pub oid: i64,
    pub name: String,
    pub namespace: i64,
    /// `relkind`: `r` table, `v` view.
    pub kind: &'static str,
    pub attributes: Vec<Attribute>,
    pub description: Option<String>,
    pub primary_key: Option<PrimaryKey>,
}

impl Relation {
    /// `pg_get_indexdef` of its primary key's index.
    pub(super) fn index_definition(&self) -> Option<String> {
        let key = self.primary_key.as_ref()?;
        Some(format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&key.name),
            namespace_name(self.namespace),
            quote_ident(&self.name),
            self.key_columns(key).join(", ")
        ))
    }

    /// `pg_get_constraintdef` of its primary key.
    pub(super) fn key_definition(&self) -> Option<String> {
        let key = self.primary_key.as_ref()?;
        Some(format!(
            "PRIMARY KEY ({})",
            self.key_columns(key).join(", ")
        ))
    }

    fn key_columns(&self, key: &PrimaryKey) -> Vec<String> {
        key.attnums
            .iter()
            .filter_map(|n| {
                self.attributes
                    .get(usize::try_from(*n).ok()?.checked_sub(1)?)
            })
            .map(|a| quote_ident(&a.name))
            .collect()
    }
}

/// The catalog as one query sees it.
pub(super) struct Snapshot {
    pub facts: Facts,
    pub relations: Vec<Relation>,
    by_oid: HashMap<i64, usize>,
}

impl Snapshot {
    pub(super) fn new<'a>(sources: impl Iterator<Item = &'a Source>, facts: Facts) -> Self {
        let mut relations: Vec<Relation> = sources.map(|s| user_relation(s, facts.case)).collect();
        relations.sort_by(|a, b| a.name.cmp(&b.name));
        relations.extend(PG_CATALOG.iter().map(|d| system_relation(d, PG_CATALOG_NS)));
        relations.extend(
            INFORMATION_SCHEMA
                .iter()
                .map(|d| system_relation(d, INFORMATION_SCHEMA_NS)),
        );
        let by_oid = relations
            .iter()
            .enumerate()
            .map(|(i, r)| (r.oid, i))
            .collect();
        Snapshot {
            facts,
            relations,
            by_oid,
        }
    }

    pub(super) fn relation(&self, oid: i64) -> Option<&Relation> {
        self.by_oid.get(&oid).map(|&i| &self.relations[i])
    }

    /// The relation whose primary key has index (or constraint) `oid`.
    pub(super) fn keyed_by(&self, oid: i64) -> Option<&Relation> {
        self.relations.iter().find(|r| {
            r.primary_key
                .as_ref()
                .is_some_and(|k| k.index_oid == oid || k.constraint_oid == oid)
        })
    }

    /// The name of relation (or index) `oid`, qualified unless its schema
    /// is on the search path, as `oid::regclass` writes it; the number
    /// itself for an unknown OID.
    pub(super) fn regclass_name(&self, oid: i64) -> String {
        if let Some(r) = self.relation(oid) {
            return qualified(r.namespace, &r.name);
        }
        match self.keyed_by(oid).and_then(|r| r.primary_key.as_ref()) {
            Some(k) => quote_ident(&k.name),
            None => oid.to_string(),
        }
    }

    /// The OID a relation name means (`'orders'::regclass`): `schema.name`,
    /// or a bare name looked up in `pg_catalog`, then `public`. Unquoted
    /// names fold to lower case, as in Postgres.
    pub(super) fn regclass_oid(&self, name: &str) -> Option<i64> {
        if let Ok(oid) = name.trim().parse::<i64>() {
            return Some(oid);
        }
        let parts: Vec<String> = split_name(name);
        let (schema, relation) = match parts.as_slice() {
            [relation] => (None, relation.as_str()),
            [schema, relation] => (Some(schema.as_str()), relation.as_str()),
            _ => return None,
        };
        let in_namespace = |ns: i64| {
            self.relations
                .iter()
                .find(|r| r.namespace == ns && r.name == relation)
                .map(|r| r.oid)
                .or_else(|| {
                    self.relations
                        .iter()
                        .filter(|r| r.namespace == ns)
                        .filter_map(|r| r.primary_key.as_ref())
                        .find(|k| k.name == relation)
                        .map(|k| k.index_oid)
                })
        };
        match schema {
            Some(s) => namespace_oid(s).and_then(in_namespace),
            None => in_namespace(PG_CATALOG_NS).or_else(|| in_namespace(PUBLIC_NS)),
        }
    }
}

/// A name as Postgres reads it: dot-separated parts, quoted parts kept,
/// unquoted parts in lower case.
fn split_name(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    let mut chars = name.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut part)),
            c if quoted => part.push(c),
            c => part.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(part);
    parts
}

/// `name`, quoted if Postgres would quote it.
pub(super) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

pub(super) fn namespace_name(oid: i64) -> &'static str {
    match oid {
        PG_CATALOG_NS => "pg_catalog",
        INFORMATION_SCHEMA_NS => "information_schema",
        _ => "public",
    }
}

pub(super) fn namespace_oid(name: &str) -> Option<i64> {
    match name {
        "pg_catalog" => Some(PG_CATALOG_NS),
        "public" => Some(PUBLIC_NS),
        "information_schema" => Some(INFORMATION_SCHEMA_NS),
        _ => None,
    }
}

/// `name`, qualified by its schema unless that is on the search path.
fn qualified(namespace: i64, name: &str) -> String {
    match namespace {
        PG_CATALOG_NS | PUBLIC_NS => quote_ident(name),
        ns => format!("{}.{}", namespace_name(ns), quote_ident(name)),
    }
}

/// A stable OID for `name`, above Postgres's reserved range.
pub(super) fn oid_of(name: &str) -> i64 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    16_384 + i64::from(hash % 1_000_000_000)
}

fn user_relation(s: &Source, case: NameCase) -> Relation {
    let name = case.spell(&s.name);
    let kind = match s.kind {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    };
    let attributes: Vec<Attribute> = s
        .columns
        .iter()
        .map(|c| {
            let (type_oid, typmod) = types::of_column(&c.data_type);
            Attribute {
                name: case.spell(&c.name),
                type_oid,
                typmod,
                not_null: s.kind == SourceKind::Table && c.kind == ColumnKind::Key,
                description: match &c.kind {
                    ColumnKind::Key => Some("KEY".into()),
                    ColumnKind::Header(None) => Some("HEADERS".into()),
                    ColumnKind::Header(Some(k)) => Some(format!("HEADER('{k}')")),
                    ColumnKind::Value => None,
                },
            }
        })
        .collect();
    let attnums: Vec<i16> = s
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == ColumnKind::Key)
        .filter_map(|(i, _)| i16::try_from(i + 1).ok())
        .collect();
    let primary_key = (s.kind == SourceKind::Table && !attnums.is_empty()).then(|| PrimaryKey {
        index_oid: oid_of(&format!("{}\0index", s.name)),
        constraint_oid: oid_of(&format!("{}\0constraint", s.name)),
        name: format!("{name}_pkey"),
        attnums,
    });
    Relation {
        oid: oid_of(&s.name),
        name,
        namespace: PUBLIC_NS,
        kind: "r",
        attributes,
        description: Some(format!("{kind} on topic {}", s.topic)),
        primary_key,
    }
}

fn system_relation(def: &Def, namespace: i64) -> Relation {
    let view = namespace == INFORMATION_SCHEMA_NS
        || matches!(
            def.name,
            "pg_roles"
                | "pg_settings"
                | "pg_tables"
                | "pg_user"
                | "pg_views"
                | "pg_matviews"
                | "pg_indexes"
                | "pg_seclabels"
                | "pg_stat_activity"
        );
    Relation {
        oid: def.oid,
        name: def.name.to_string(),
        namespace,
        kind: if view { "v" } else { "r" },
        attributes: tables::columns(def)
            .map(|(name, ty)| Attribute {
                name: name.to_string(),
                type_oid: column_type(ty),
                typmod: -1,
                not_null: false,
                description: None,
            })
            .collect(),
        description: None,
        primary_key: None,
    }
}

/// The type OID of a catalog column's declared type.
fn column_type(ty: &str) -> i64 {
    match ty {
        "regproc" => 24,
        "char" => 18,
        "char[]" => 1002,
        "int2vector" => 22,
        "oidvector" => 30,
        "pg_node_tree" => 194,
        other => types::by_name(other).map_or(25, |t| t.oid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_postgres_reads_them() {
        assert_eq!(
            split_name("pg_catalog.PG_CLASS"),
            vec!["pg_catalog", "pg_class"]
        );
        assert_eq!(split_name("\"My.T\""), vec!["My.T"]);
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(column_type("regproc"), 24);
        assert_eq!(column_type("aclitem[]"), 1034);
        assert_eq!(column_type("name"), 19);
        assert_eq!(column_type("char"), 18);
    }
}
