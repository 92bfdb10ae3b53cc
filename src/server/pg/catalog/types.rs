//! The Postgres types `pg_type` describes: the ones Sluice's columns are
//! sent as, the ones the catalog's own columns have, and the pseudo-types
//! tools ask for by name (`'trigger'::regtype`). OIDs are PostgreSQL's, so
//! a client's built-in type table agrees with them.

use datafusion::arrow::datatypes::DataType;
use pgwire::api::Type;

use crate::server::pg::values::pg_type;

/// One row of `pg_type`.
#[derive(Clone, Copy)]
pub(super) struct PgType {
    pub oid: i64,
    pub name: &'static str,
    /// What `format_type` calls it (`integer` for `int4`).
    pub sql_name: &'static str,
    /// `typlen`: bytes, or -1 (varlena) / -2 (C string).
    pub len: i16,
    /// `typtype`: `b` base, `p` pseudo.
    pub kind: &'static str,
    /// `typcategory`.
    pub category: &'static str,
    /// The array type of this type (0: none), or for an array type its
    /// element type.
    pub array: i64,
    pub elem: i64,
}

const fn base(
    oid: i64,
    name: &'static str,
    sql_name: &'static str,
    len: i16,
    category: &'static str,
    array: i64,
) -> PgType {
    PgType {
        oid,
        name,
        sql_name,
        len,
        kind: "b",
        category,
        array,
        elem: 0,
    }
}

const fn pseudo(oid: i64, name: &'static str) -> PgType {
    PgType {
        oid,
        name,
        sql_name: name,
        len: 4,
        kind: "p",
        category: "P",
        array: 0,
        elem: 0,
    }
}

/// The base and pseudo types; [`all`] adds their array types.
const BASE: &[PgType] = &[
    base(16, "bool", "boolean", 1, "B", 1000),
    base(17, "bytea", "bytea", -1, "U", 1001),
    base(18, "char", "\"char\"", 1, "Z", 1002),
    base(19, "name", "name", 64, "S", 1003),
    base(20, "int8", "bigint", 8, "N", 1016),
    base(21, "int2", "smallint", 2, "N", 1005),
    base(22, "int2vector", "int2vector", -1, "A", 1006),
    base(23, "int4", "integer", 4, "N", 1007),
    base(24, "regproc", "regproc", 4, "N", 1008),
    base(25, "text", "text", -1, "S", 1009),
    base(26, "oid", "oid", 4, "N", 1028),
    base(28, "xid", "xid", 4, "U", 1011),
    base(30, "oidvector", "oidvector", -1, "A", 1013),
    base(114, "json", "json", -1, "U", 199),
    base(194, "pg_node_tree", "pg_node_tree", -1, "Z", 0),
    base(700, "float4", "real", 4, "N", 1021),
    base(701, "float8", "double precision", 8, "N", 1022),
    base(1033, "aclitem", "aclitem", 16, "U", 1034),
    base(1042, "bpchar", "character", -1, "S", 1014),
    base(1043, "varchar", "character varying", -1, "S", 1015),
    base(1082, "date", "date", 4, "D", 1182),
    base(1083, "time", "time without time zone", 8, "D", 1183),
    base(
        1114,
        "timestamp",
        "timestamp without time zone",
        8,
        "D",
        1115,
    ),
    base(
        1184,
        "timestamptz",
        "timestamp with time zone",
        8,
        "D",
        1185,
    ),
    base(1186, "interval", "interval", 16, "T", 1187),
    base(1700, "numeric", "numeric", -1, "N", 1231),
    base(2205, "regclass", "regclass", 4, "N", 2210),
    base(2206, "regtype", "regtype", 4, "N", 2211),
    base(2950, "uuid", "uuid", 16, "U", 2951),
    base(3802, "jsonb", "jsonb", -1, "U", 3807),
    base(4089, "regnamespace", "regnamespace", 4, "N", 4090),
    base(4096, "regrole", "regrole", 4, "N", 4097),
    pseudo(705, "unknown"),
    pseudo(2249, "record"),
    pseudo(2275, "cstring"),
    pseudo(2276, "any"),
    pseudo(2277, "anyarray"),
    pseudo(2278, "void"),
    pseudo(2279, "trigger"),
    pseudo(2281, "internal"),
    pseudo(2283, "anyelement"),
];

/// Every type `pg_type` lists: the base and pseudo types and the arrays of
/// the base types (`_int4`, ...).
pub(super) fn all() -> Vec<PgType> {
    let mut out: Vec<PgType> = Vec::new();
    for t in BASE {
        out.push(*t);
        if t.array != 0 {
            out.push(PgType {
                oid: t.array,
                name: array_name(t.name),
                sql_name: t.sql_name,
                len: -1,
                kind: "b",
                category: "A",
                array: 0,
                elem: t.oid,
            });
        }
    }
    out
}

/// `_name`: array types' names are fixed strings, so they are spelled out.
fn array_name(name: &str) -> &'static str {
    const NAMES: &[(&str, &str)] = &[
        ("bool", "_bool"),
        ("bytea", "_bytea"),
        ("char", "_char"),
        ("name", "_name"),
        ("int8", "_int8"),
        ("int2", "_int2"),
        ("int2vector", "_int2vector"),
        ("int4", "_int4"),
        ("regproc", "_regproc"),
        ("text", "_text"),
        ("oid", "_oid"),
        ("xid", "_xid"),
        ("oidvector", "_oidvector"),
        ("json", "_json"),
        ("float4", "_float4"),
        ("float8", "_float8"),
        ("aclitem", "_aclitem"),
        ("bpchar", "_bpchar"),
        ("varchar", "_varchar"),
        ("date", "_date"),
        ("time", "_time"),
        ("timestamp", "_timestamp"),
        ("timestamptz", "_timestamptz"),
        ("interval", "_interval"),
        ("numeric", "_numeric"),
        ("regclass", "_regclass"),
        ("regtype", "_regtype"),
        ("uuid", "_uuid"),
        ("jsonb", "_jsonb"),
        ("regnamespace", "_regnamespace"),
        ("regrole", "_regrole"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("_unknown", |(_, a)| a)
}

/// The type with OID `oid`.
pub(super) fn by_oid(oid: i64) -> Option<PgType> {
    all().into_iter().find(|t| t.oid == oid)
}

/// The type a name means, as `to_regtype` reads it: its `typname`
/// (`int4`, `_int4`), its SQL name (`integer`, `character varying`), a
/// common alias (`int`, `varchar`, `timestamptz`), or `name[]`; an
/// optional `pg_catalog.` in front; case-insensitive unless quoted.
pub(super) fn by_name(name: &str) -> Option<PgType> {
    let name = name.trim();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_string(),
        None => name.to_ascii_lowercase(),
    };
    if let Some(elem) = name.strip_suffix("[]") {
        let elem = by_name(elem)?;
        return by_oid(elem.array).filter(|_| elem.array != 0);
    }
    let alias = match name.as_str() {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "\"char\"" => "char",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    all().into_iter().find(|t| t.name == alias)
}

/// `format_type(oid, typmod)`: the type's SQL name, with the modifier
/// (`character varying(20)`, `numeric(10,2)`); `???` for an unknown OID,
/// as Postgres writes it.
pub(super) fn format_type(oid: i64, typmod: Option<i32>) -> String {
    let Some(t) = by_oid(oid) else {
        return "???".into();
    };
    let modifier = match (t.elem != 0, t.sql_name, typmod) {
        (false, "character varying" | "character", Some(m)) if m >= 4 => {
            format!("({})", m - 4)
        }
        (false, "numeric", Some(m)) if m >= 4 => {
            let m = m - 4;
            format!("({},{})", (m >> 16) & 0xffff, m & 0xffff)
        }
        _ => String::new(),
    };
    match t.elem {
        0 => format!("{}{modifier}", t.sql_name),
        _ => format!("{}[]", t.sql_name),
    }
}

/// The Postgres type (OID and modifier) a column of Arrow type `dt` is
/// sent as: the same type the wire gives it ([`pg_type`]), with a
/// decimal's precision and scale.
pub(super) fn of_column(dt: &DataType) -> (i64, i32) {
    let ty: Type = pg_type(dt);
    let typmod = match dt {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ((i32::from(*p) << 16) | (i32::from(*s) & 0xffff)) + 4
        }
        _ => -1,
    };
    (i64::from(ty.oid()), typmod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_found_by_every_name_tools_use() {
        assert_eq!(by_name("integer").map(|t| t.oid), Some(23));
        assert_eq!(by_name("pg_catalog.int4").map(|t| t.oid), Some(23));
        assert_eq!(by_name("VARCHAR").map(|t| t.oid), Some(1043));
        assert_eq!(by_name("text[]").map(|t| t.oid), Some(1009));
        assert_eq!(by_name("trigger").map(|t| t.oid), Some(2279));
        assert_eq!(by_name("_int2").map(|t| t.elem), Some(21));
        assert!(by_name("hstore").is_none());
    }

    #[test]
    fn format_type_writes_modifiers_as_postgres_does() {
        assert_eq!(format_type(1043, Some(24)), "character varying(20)");
        assert_eq!(format_type(1043, Some(-1)), "character varying");
        assert_eq!(format_type(1700, Some((10 << 16 | 2) + 4)), "numeric(10,2)");
        assert_eq!(format_type(1007, None), "integer[]");
        assert_eq!(format_type(20, None), "bigint");
        assert_eq!(format_type(999_999, None), "???");
        assert_eq!(
            of_column(&DataType::Decimal128(10, 2)),
            (1700, (10 << 16 | 2) + 4)
        );
        assert_eq!(of_column(&DataType::Utf8), (1043, -1));
    }
}
