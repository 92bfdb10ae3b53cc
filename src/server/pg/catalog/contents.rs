//! The rows of each catalog table, made from a [`Snapshot`]. A table not
//! named here has no rows: Sluice has no functions in SQL, triggers,
//! rules, policies, extensions, sequences, inheritance, ... to describe.

use datafusion::common::ScalarValue;

use super::snapshot::{
    namespace_name, Relation, Snapshot, DATABASE, INFORMATION_SCHEMA_NS, PG_CATALOG_NS, PUBLIC_NS,
    ROLE,
};
use super::tables::{boolean, int, int2s, oid, oids, text, Row};
use super::types;

/// The rows of `pg_catalog.<table>`.
pub(super) fn pg_catalog(table: &str, snap: &Snapshot) -> Vec<Row> {
    match table {
        "pg_namespace" => namespaces(),
        "pg_class" => classes(snap),
        "pg_attribute" => attributes(snap),
        "pg_type" => pg_types(),
        "pg_index" => indexes(snap),
        "pg_constraint" => constraints(snap),
        "pg_description" => descriptions(snap),
        "pg_database" => vec![database(snap)],
        "pg_roles" | "pg_authid" | "pg_user" => {
            let mut row = role(snap);
            if let Some(def) = super::tables::PG_CATALOG.iter().find(|d| d.name == table) {
                row.retain(|(name, _)| super::tables::columns(def).any(|(c, _)| c == *name));
            }
            vec![row]
        }
        "pg_settings" => settings(snap),
        "pg_am" => vec![
            vec![
                ("oid", oid(2)),
                ("amname", text("heap")),
                ("amhandler", text("heap_tableam_handler")),
                ("amtype", text("t")),
            ],
            vec![
                ("oid", oid(403)),
                ("amname", text("btree")),
                ("amhandler", text("bthandler")),
                ("amtype", text("i")),
            ],
        ],
        "pg_collation" => [(100, "default", "d"), (950, "C", "c"), (951, "POSIX", "c")]
            .into_iter()
            .map(|(o, name, provider)| {
                vec![
                    ("oid", oid(o)),
                    ("collname", text(name)),
                    ("collnamespace", oid(PG_CATALOG_NS)),
                    ("collowner", oid(ROLE)),
                    ("collprovider", text(provider)),
                    ("collisdeterministic", boolean(true)),
                    ("collencoding", int(-1)),
                    ("collcollate", text(if o == 100 { "" } else { name })),
                    ("collctype", text(if o == 100 { "" } else { name })),
                ]
            })
            .collect(),
        "pg_tablespace" => [(1663, "pg_default"), (1664, "pg_global")]
            .into_iter()
            .map(|(o, name)| {
                vec![
                    ("oid", oid(o)),
                    ("spcname", text(name)),
                    ("spcowner", oid(ROLE)),
                ]
            })
            .collect(),
        "pg_language" => [(12, "internal"), (13, "c"), (14, "sql")]
            .into_iter()
            .map(|(o, name)| {
                vec![
                    ("oid", oid(o)),
                    ("lanname", text(name)),
                    ("lanowner", oid(ROLE)),
                    ("lanpltrusted", boolean(o == 14)),
                ]
            })
            .collect(),
        "pg_tables" => user_relations(snap)
            .map(|r| {
                vec![
                    ("schemaname", text("public")),
                    ("tablename", text(&r.name)),
                    ("tableowner", text(&snap.facts.user)),
                    ("hasindexes", boolean(r.primary_key.is_some())),
                ]
            })
            .collect(),
        "pg_indexes" => user_relations(snap)
            .filter_map(|r| {
                Some(vec![
                    ("schemaname", text("public")),
                    ("tablename", text(&r.name)),
                    ("indexname", text(&r.primary_key.as_ref()?.name)),
                    ("indexdef", text(r.index_definition()?)),
                ])
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The rows of `information_schema.<view>`.
pub(super) fn information_schema(view: &str, snap: &Snapshot) -> Vec<Row> {
    let db = || text(&snap.facts.database);
    match view {
        "schemata" => [PG_CATALOG_NS, PUBLIC_NS, INFORMATION_SCHEMA_NS]
            .into_iter()
            .map(|ns| {
                vec![
                    ("catalog_name", db()),
                    ("schema_name", text(namespace_name(ns))),
                    ("schema_owner", text(&snap.facts.user)),
                ]
            })
            .collect(),
        "tables" => snap
            .relations
            .iter()
            .map(|r| {
                let user = r.namespace == PUBLIC_NS;
                vec![
                    ("table_catalog", db()),
                    ("table_schema", text(namespace_name(r.namespace))),
                    ("table_name", text(&r.name)),
                    (
                        "table_type",
                        text(if r.kind == "v" { "VIEW" } else { "BASE TABLE" }),
                    ),
                    ("is_insertable_into", text(if user { "YES" } else { "NO" })),
                    ("is_typed", text("NO")),
                ]
            })
            .collect(),
        "columns" => snap
            .relations
            .iter()
            .flat_map(|r| columns(snap, r))
            .collect(),
        "table_constraints" => user_relations(snap)
            .filter_map(|r| {
                let key = r.primary_key.as_ref()?;
                Some(vec![
                    ("constraint_catalog", db()),
                    ("constraint_schema", text("public")),
                    ("constraint_name", text(&key.name)),
                    ("table_catalog", db()),
                    ("table_schema", text("public")),
                    ("table_name", text(&r.name)),
                    ("constraint_type", text("PRIMARY KEY")),
                    ("is_deferrable", text("NO")),
                    ("initially_deferred", text("NO")),
                    ("enforced", text("YES")),
                ])
            })
            .collect(),
        "key_column_usage" => user_relations(snap)
            .filter_map(|r| Some((r, r.primary_key.as_ref()?)))
            .flat_map(|(r, key)| {
                key.attnums.iter().enumerate().filter_map(move |(i, n)| {
                    let a = r
                        .attributes
                        .get(usize::try_from(*n).ok()?.checked_sub(1)?)?;
                    Some(vec![
                        ("constraint_catalog", db()),
                        ("constraint_schema", text("public")),
                        ("constraint_name", text(&key.name)),
                        ("table_catalog", db()),
                        ("table_schema", text("public")),
                        ("table_name", text(&r.name)),
                        ("column_name", text(&a.name)),
                        ("ordinal_position", int(i as i64 + 1)),
                    ])
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn user_relations(snap: &Snapshot) -> impl Iterator<Item = &Relation> {
    snap.relations.iter().filter(|r| r.namespace == PUBLIC_NS)
}

fn namespaces() -> Vec<Row> {
    [PG_CATALOG_NS, PUBLIC_NS, INFORMATION_SCHEMA_NS]
        .into_iter()
        .map(|ns| {
            vec![
                ("oid", oid(ns)),
                ("nspname", text(namespace_name(ns))),
                ("nspowner", oid(ROLE)),
            ]
        })
        .collect()
}

fn classes(snap: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in &snap.relations {
        rows.push(vec![
            ("oid", oid(r.oid)),
            ("relname", text(&r.name)),
            ("relnamespace", oid(r.namespace)),
            ("relowner", oid(ROLE)),
            ("relam", oid(if r.kind == "r" { 2 } else { 0 })),
            ("relfilenode", oid(r.oid)),
            ("reltuples", int(-1)),
            ("relhasindex", boolean(r.primary_key.is_some())),
            ("relpersistence", text("p")),
            ("relkind", text(r.kind)),
            ("relnatts", int(r.attributes.len() as i64)),
            ("relispopulated", boolean(true)),
            ("relreplident", text(if r.kind == "r" { "d" } else { "n" })),
        ]);
        if let Some(key) = &r.primary_key {
            rows.push(vec![
                ("oid", oid(key.index_oid)),
                ("relname", text(&key.name)),
                ("relnamespace", oid(r.namespace)),
                ("relowner", oid(ROLE)),
                ("relam", oid(403)),
                ("relfilenode", oid(key.index_oid)),
                ("reltuples", int(-1)),
                ("relpersistence", text("p")),
                ("relkind", text("i")),
                ("relnatts", int(key.attnums.len() as i64)),
                ("relispopulated", boolean(true)),
                ("relreplident", text("n")),
            ]);
        }
    }
    rows
}

fn attributes(snap: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in &snap.relations {
        for (i, a) in r.attributes.iter().enumerate() {
            let ty = types::by_oid(a.type_oid);
            rows.push(vec![
                ("attrelid", oid(r.oid)),
                ("attname", text(&a.name)),
                ("atttypid", oid(a.type_oid)),
                ("attstattarget", int(-1)),
                ("attlen", int(ty.map_or(-1, |t| i64::from(t.len)))),
                ("attnum", int(i as i64 + 1)),
                ("attcacheoff", int(-1)),
                ("atttypmod", int(i64::from(a.typmod))),
                ("attalign", text("i")),
                (
                    "attstorage",
                    text(if ty.is_some_and(|t| t.len < 0) {
                        "x"
                    } else {
                        "p"
                    }),
                ),
                ("attcompression", text("")),
                ("attnotnull", boolean(a.not_null)),
                ("attidentity", text("")),
                ("attgenerated", text("")),
                ("attislocal", boolean(true)),
                (
                    "attcollation",
                    oid(if ty.is_some_and(|t| t.category == "S") {
                        100
                    } else {
                        0
                    }),
                ),
            ]);
        }
    }
    rows
}

fn pg_types() -> Vec<Row> {
    types::all()
        .into_iter()
        .map(|t| {
            let io = |suffix: &str| match (t.elem, t.kind) {
                (0, "p") => text(format!("{}_{suffix}", t.name)),
                (0, _) => text(format!("{}{suffix}", t.name)),
                _ => text(format!("array_{suffix}")),
            };
            vec![
                ("oid", oid(t.oid)),
                ("typname", text(t.name)),
                ("typnamespace", oid(PG_CATALOG_NS)),
                ("typowner", oid(ROLE)),
                ("typlen", int(i64::from(t.len))),
                ("typbyval", boolean(t.len > 0 && t.len <= 8)),
                ("typtype", text(t.kind)),
                ("typcategory", text(t.category)),
                ("typisdefined", boolean(true)),
                ("typdelim", text(",")),
                (
                    "typsubscript",
                    text(if t.elem != 0 {
                        "array_subscript_handler"
                    } else {
                        "-"
                    }),
                ),
                ("typelem", oid(t.elem)),
                ("typarray", oid(t.array)),
                ("typinput", io("in")),
                ("typoutput", io("out")),
                ("typreceive", io("recv")),
                ("typsend", io("send")),
                ("typmodin", text("-")),
                ("typmodout", text("-")),
                ("typanalyze", text("-")),
                ("typalign", text(if t.len == 8 { "d" } else { "i" })),
                ("typstorage", text(if t.len < 0 { "x" } else { "p" })),
                ("typtypmod", int(-1)),
                ("typcollation", oid(if t.category == "S" { 100 } else { 0 })),
            ]
        })
        .collect()
}

fn indexes(snap: &Snapshot) -> Vec<Row> {
    snap.relations
        .iter()
        .filter_map(|r| {
            let key = r.primary_key.as_ref()?;
            let n = key.attnums.len() as i64;
            Some(vec![
                ("indexrelid", oid(key.index_oid)),
                ("indrelid", oid(r.oid)),
                ("indnatts", int(n)),
                ("indnkeyatts", int(n)),
                ("indisunique", boolean(true)),
                ("indisprimary", boolean(true)),
                ("indimmediate", boolean(true)),
                ("indisvalid", boolean(true)),
                ("indisready", boolean(true)),
                ("indislive", boolean(true)),
                ("indkey", int2s(&key.attnums)),
                ("indcollation", oids(&vec![0; key.attnums.len()])),
                ("indclass", oids(&vec![0; key.attnums.len()])),
                ("indoption", int2s(&vec![0; key.attnums.len()])),
            ])
        })
        .collect()
}

fn constraints(snap: &Snapshot) -> Vec<Row> {
    snap.relations
        .iter()
        .filter_map(|r| {
            let key = r.primary_key.as_ref()?;
            Some(vec![
                ("oid", oid(key.constraint_oid)),
                ("conname", text(&key.name)),
                ("connamespace", oid(r.namespace)),
                ("contype", text("p")),
                ("convalidated", boolean(true)),
                ("conrelid", oid(r.oid)),
                ("conindid", oid(key.index_oid)),
                ("confupdtype", text(" ")),
                ("confdeltype", text(" ")),
                ("confmatchtype", text(" ")),
                ("conislocal", boolean(true)),
                ("connoinherit", boolean(true)),
                ("conkey", int2s(&key.attnums)),
            ])
        })
        .collect()
}

fn descriptions(snap: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in &snap.relations {
        let describe = |subid: i64, d: &str| {
            vec![
                ("objoid", oid(r.oid)),
                ("classoid", oid(1259)),
                ("objsubid", int(subid)),
                ("description", text(d)),
            ]
        };
        rows.extend(r.description.as_deref().map(|d| describe(0, d)));
        for (i, a) in r.attributes.iter().enumerate() {
            rows.extend(a.description.as_deref().map(|d| describe(i as i64 + 1, d)));
        }
    }
    rows
}

fn database(snap: &Snapshot) -> Row {
    vec![
        ("oid", oid(DATABASE)),
        ("datname", text(&snap.facts.database)),
        ("datdba", oid(ROLE)),
        ("encoding", int(6)),
        ("datlocprovider", text("c")),
        ("datallowconn", boolean(true)),
        ("datconnlimit", int(-1)),
        ("dattablespace", oid(1663)),
        ("datcollate", text("C.UTF-8")),
        ("datctype", text("C.UTF-8")),
    ]
}

fn role(snap: &Snapshot) -> Row {
    let name = text(&snap.facts.user);
    vec![
        ("oid", oid(ROLE)),
        ("usesysid", oid(ROLE)),
        ("rolname", name.clone()),
        ("usename", name),
        ("rolsuper", boolean(true)),
        ("usesuper", boolean(true)),
        ("rolinherit", boolean(true)),
        ("rolcreaterole", boolean(true)),
        ("rolcreatedb", boolean(true)),
        ("usecreatedb", boolean(true)),
        ("rolcanlogin", boolean(true)),
        ("rolconnlimit", int(-1)),
        ("rolpassword", text("********")),
        ("passwd", text("********")),
    ]
}

fn settings(snap: &Snapshot) -> Vec<Row> {
    snap.facts
        .settings
        .iter()
        .map(|(name, value)| {
            vec![
                ("name", text(name)),
                ("setting", text(value)),
                ("category", text("Sluice")),
                ("context", text("user")),
                ("vartype", text("string")),
                ("source", text("session")),
                ("boot_val", text(value)),
                ("reset_val", text(value)),
                ("pending_restart", boolean(false)),
            ]
        })
        .collect()
}

/// `information_schema.columns` rows of one relation.
fn columns(snap: &Snapshot, r: &Relation) -> Vec<Row> {
    r.attributes
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ty = types::by_oid(a.type_oid);
            let data_type = match ty {
                Some(t) if t.elem != 0 => "ARRAY".to_string(),
                Some(t) if t.kind == "b" && t.category != "N" || t.oid == 26 => {
                    types::format_type(t.oid, None)
                }
                _ => types::format_type(a.type_oid, None),
            };
            let (precision, radix, scale) = match a.type_oid {
                21 => (Some(16), Some(2), Some(0)),
                23 => (Some(32), Some(2), Some(0)),
                20 => (Some(64), Some(2), Some(0)),
                700 => (Some(24), Some(2), None),
                701 => (Some(53), Some(2), None),
                1700 if a.typmod >= 4 => (
                    Some(i64::from(((a.typmod - 4) >> 16) & 0xffff)),
                    Some(10),
                    Some(i64::from((a.typmod - 4) & 0xffff)),
                ),
                _ => (None, None, None),
            };
            let opt = |v: Option<i64>| v.map_or(ScalarValue::Int32(None), int);
            vec![
                ("table_catalog", text(&snap.facts.database)),
                ("table_schema", text(namespace_name(r.namespace))),
                ("table_name", text(&r.name)),
                ("column_name", text(&a.name)),
                ("ordinal_position", int(i as i64 + 1)),
                ("is_nullable", text(if a.not_null { "NO" } else { "YES" })),
                ("data_type", text(data_type)),
                ("numeric_precision", opt(precision)),
                ("numeric_precision_radix", opt(radix)),
                ("numeric_scale", opt(scale)),
                ("character_maximum_length", ScalarValue::Int32(None)),
                ("character_octet_length", ScalarValue::Int32(None)),
                ("datetime_precision", ScalarValue::Int32(None)),
                ("interval_precision", ScalarValue::Int32(None)),
                ("maximum_cardinality", ScalarValue::Int32(None)),
                ("udt_catalog", text(&snap.facts.database)),
                ("udt_schema", text("pg_catalog")),
                ("udt_name", text(ty.map_or("unknown", |t| t.name))),
                ("dtd_identifier", text((i + 1).to_string())),
                ("is_self_referencing", text("NO")),
                ("is_identity", text("NO")),
                ("is_generated", text("NEVER")),
                (
                    "is_updatable",
                    text(if r.namespace == PUBLIC_NS {
                        "YES"
                    } else {
                        "NO"
                    }),
                ),
            ]
        })
        .collect()
}
