//! Grammar-aware statements: ksqlDB DDL, DML and queries over the streams
//! and tables the generator has created so far, with expressions built from
//! their columns, literals and the function registry; and (in [`super::deep`])
//! statements on both sides of the planner's limits.

use crate::cases::Rng;
use crate::catalog::types::SqlType;

use super::mutate::{random_type, ODD_TEXT};

/// A stream or table the generator created, as it declared it.
#[derive(Debug, Clone)]
pub(super) struct Src {
    pub name: String,
    pub table: bool,
    pub key: Vec<(String, SqlType)>,
    pub cols: Vec<(String, SqlType)>,
    /// Declared with its columns (no query writes to it but INSERT VALUES).
    pub base: bool,
}

impl Src {
    fn all(&self) -> impl Iterator<Item = &(String, SqlType)> {
        self.key.iter().chain(&self.cols)
    }
}

/// The generator's view of the engine: what exists (as far as it knows).
pub(super) struct SqlGen {
    pub rng: Rng,
    pub sources: Vec<Src>,
    pub queries: Vec<String>,
    next: u64,
    functions: Vec<&'static str>,
}

/// Functions whose size arguments a random call must not make large: the
/// run is about crashes, not about exhausting the machine's memory.
const SIZED: &[&str] = &["LPAD", "RPAD", "GENERATE_SERIES", "REPEAT", "SPACE"];

impl SqlGen {
    pub fn new(rng: Rng) -> SqlGen {
        let functions = crate::functions::catalog()
            .into_iter()
            .map(|(name, _, _)| name)
            .collect();
        SqlGen {
            rng,
            sources: Vec::new(),
            queries: Vec::new(),
            next: 0,
            functions,
        }
    }

    /// Forget everything (a new engine).
    pub fn reset(&mut self) {
        self.sources.clear();
        self.queries.clear();
    }

    pub(super) fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    /// One statement, and the source it declares if it succeeds.
    pub fn statement(&mut self) -> (String, Option<Src>) {
        if self.sources.len() < 2 {
            return self.create_source();
        }
        let w = [
            8.0,  // CREATE STREAM/TABLE
            8.0,  // CSAS
            6.0,  // CTAS
            3.0,  // join
            14.0, // INSERT VALUES
            2.0,  // INSERT INTO SELECT
            10.0, // pull
            6.0,  // push
            4.0,  // SHOW, DESCRIBE, EXPLAIN, PRINT
            2.0,  // DROP, TERMINATE, ALTER
            2.0,  // SET, UNSET
            0.5,  // over and under the limits
        ];
        match self.rng.weighted(&w) {
            0 => self.create_source(),
            1 => self.create_stream_as(),
            2 => self.create_table_as(),
            3 => self.join(),
            4 => (self.insert_values(), None),
            5 => (self.insert_select(), None),
            6 => (self.pull(), None),
            7 => (self.push(), None),
            8 => (self.inspect(), None),
            9 => (self.remove(), None),
            10 => (self.set(), None),
            _ => (super::deep::limits(self), None),
        }
    }

    pub(super) fn pick_src(&mut self, table: Option<bool>) -> Option<Src> {
        let c: Vec<&Src> = self
            .sources
            .iter()
            .filter(|s| table.is_none_or(|t| s.table == t))
            .collect();
        self.rng.pick(&c).map(|s| (*s).clone())
    }

    fn create_source(&mut self) -> (String, Option<Src>) {
        let table = self.rng.chance(0.4);
        let name = self.fresh(if table { "T" } else { "S" });
        let key_ty = match self.rng.below(4) {
            0 => SqlType::Int,
            1 => SqlType::Bigint,
            _ => SqlType::String,
        };
        let key = vec![("ID".to_string(), key_ty)];
        let n = 1 + self.rng.below(6) as usize;
        let mut cols: Vec<(String, SqlType)> = (0..n)
            .map(|i| (format!("C{i}"), random_type(&mut self.rng, 3)))
            .collect();
        cols.push(("TS".into(), SqlType::Bigint));
        let mut defs: Vec<String> = vec![format!(
            "ID {} {}",
            key[0].1,
            if table { "PRIMARY KEY" } else { "KEY" }
        )];
        defs.extend(cols.iter().map(|(c, t)| format!("{c} {t}")));
        let format = match self.rng.below(10) {
            0 => "DELIMITED",
            1 => "PROTOBUF_NOSR",
            2 => "KAFKA",
            _ => "JSON",
        };
        let mut with = format!(
            "KAFKA_TOPIC='{}', PARTITIONS={}, VALUE_FORMAT='{format}'",
            name.to_lowercase(),
            1 + self.rng.below(3)
        );
        if self.rng.chance(0.3) {
            with.push_str(", KEY_FORMAT='JSON'");
        }
        if self.rng.chance(0.3) {
            with.push_str(", TIMESTAMP='TS'");
        }
        let sql = format!(
            "CREATE {} {name} ({}) WITH ({with});",
            if table { "TABLE" } else { "STREAM" },
            defs.join(", ")
        );
        let src = Src {
            name,
            table,
            key,
            cols,
            base: true,
        };
        (sql, Some(src))
    }

    /// A projection of a source's columns and expressions, with aliases.
    fn projection(&mut self, src: &Src, keep_key: bool) -> (String, Vec<(String, SqlType)>) {
        if self.rng.chance(0.3) {
            return ("*".into(), src.cols.clone());
        }
        let mut items = Vec::new();
        let mut cols = Vec::new();
        if keep_key {
            items.push(src.key[0].0.clone());
        }
        let n = 1 + self.rng.below(4);
        for i in 0..n {
            let e = self.expr(src, 3, false);
            items.push(format!("{e} AS E{i}"));
            cols.push((format!("E{i}"), SqlType::String));
        }
        (items.join(", "), cols)
    }

    fn create_stream_as(&mut self) -> (String, Option<Src>) {
        let Some(src) = self.pick_src(Some(false)) else {
            return self.create_source();
        };
        let name = self.fresh("S");
        let (proj, cols) = self.projection(&src, true);
        let mut sql = format!("CREATE STREAM {name} AS SELECT {proj} FROM {}", src.name);
        if self.rng.chance(0.5) {
            sql.push_str(&format!(" WHERE {}", self.predicate(&src, 2)));
        }
        if self.rng.chance(0.15) {
            let e = self.expr(&src, 1, false);
            sql.push_str(&format!(" PARTITION BY {e}"));
        }
        sql.push_str(" EMIT CHANGES;");
        let out = Src {
            name,
            table: false,
            key: src.key.clone(),
            cols,
            base: false,
        };
        (sql, Some(out))
    }

    fn window(&mut self) -> String {
        let unit = *self
            .rng
            .pick(&["MILLISECONDS", "SECONDS", "MINUTES", "HOURS", "DAYS"])
            .unwrap_or(&"SECONDS");
        let size = 1 + self.rng.below(60);
        let grace = if self.rng.chance(0.3) {
            format!(", GRACE PERIOD {} SECONDS", self.rng.below(100))
        } else {
            String::new()
        };
        match self.rng.below(3) {
            0 => format!(" WINDOW TUMBLING (SIZE {size} {unit}{grace})"),
            1 => {
                // At most 100 windows per record: the point is the code,
                // not the machine's memory.
                let advance = (size / (1 + self.rng.below(10))).max(1);
                format!(" WINDOW HOPPING (SIZE {size} {unit}, ADVANCE BY {advance} {unit}{grace})")
            }
            _ => format!(" WINDOW SESSION ({size} {unit})"),
        }
    }

    fn aggregate(&mut self, src: &Src) -> String {
        let col = self
            .rng
            .pick(&src.cols)
            .map(|c| c.0.clone())
            .unwrap_or_else(|| "ID".into());
        let f = *self
            .rng
            .pick(&[
                "COUNT",
                "SUM",
                "MIN",
                "MAX",
                "AVG",
                "LATEST_BY_OFFSET",
                "EARLIEST_BY_OFFSET",
                "COLLECT_LIST",
                "COLLECT_SET",
                "COUNT_DISTINCT",
                "TOPK",
                "HISTOGRAM",
                "STDDEV_SAMP",
            ])
            .unwrap_or(&"COUNT");
        match f {
            "COUNT" if self.rng.chance(0.5) => "COUNT(*)".into(),
            "TOPK" => format!("TOPK({col}, {})", 1 + self.rng.below(5)),
            _ => format!("{f}({col})"),
        }
    }

    fn create_table_as(&mut self) -> (String, Option<Src>) {
        let Some(src) = self.pick_src(None) else {
            return self.create_source();
        };
        let name = self.fresh("T");
        let group = match self.rng.below(3) {
            0 => src.key[0].0.clone(),
            1 => self
                .rng
                .pick(&src.cols)
                .map(|c| c.0.clone())
                .unwrap_or_else(|| "ID".into()),
            _ => self.expr(&src, 1, false),
        };
        let n = 1 + self.rng.below(3);
        let aggs: Vec<String> = (0..n)
            .map(|i| format!("{} AS A{i}", self.aggregate(&src)))
            .collect();
        let mut sql = format!(
            "CREATE TABLE {name} AS SELECT {group} AS K, {} FROM {}",
            aggs.join(", "),
            src.name
        );
        if !src.table && self.rng.chance(0.5) {
            sql.push_str(&self.window());
        }
        if self.rng.chance(0.3) {
            sql.push_str(&format!(" WHERE {}", self.predicate(&src, 2)));
        }
        sql.push_str(&format!(" GROUP BY {group}"));
        if self.rng.chance(0.2) {
            sql.push_str(&format!(
                " HAVING {} > {}",
                self.aggregate(&src),
                self.rng.range(-5, 5)
            ));
        }
        sql.push_str(" EMIT CHANGES;");
        let out = Src {
            name,
            table: true,
            key: vec![("K".into(), SqlType::String)],
            cols: (0..n).map(|i| (format!("A{i}"), SqlType::Bigint)).collect(),
            base: false,
        };
        (sql, Some(out))
    }

    fn join(&mut self) -> (String, Option<Src>) {
        let (Some(left), Some(right)) = (self.pick_src(None), self.pick_src(None)) else {
            return self.create_source();
        };
        let kind = *self
            .rng
            .pick(&[
                "JOIN",
                "INNER JOIN",
                "LEFT JOIN",
                "RIGHT JOIN",
                "FULL OUTER JOIN",
            ])
            .unwrap_or(&"JOIN");
        let within = if !left.table && !right.table || self.rng.chance(0.1) {
            format!(" WITHIN {} SECONDS", 1 + self.rng.below(100))
        } else {
            String::new()
        };
        let table = left.table && right.table;
        let name = self.fresh(if table { "T" } else { "S" });
        let rcol = if self.rng.chance(0.8) {
            right.key[0].0.clone()
        } else {
            self.rng
                .pick(&right.cols)
                .map(|c| c.0.clone())
                .unwrap_or_else(|| "ID".into())
        };
        let lcol = left.key[0].0.clone();
        let extra = match (left.cols.first(), right.cols.first()) {
            (Some(a), Some(b)) if self.rng.chance(0.7) => {
                format!(", L.{} AS LC, R.{} AS RC", a.0, b.0)
            }
            _ => String::new(),
        };
        let sql = format!(
            "CREATE {} {name} AS SELECT L.{lcol} AS ID{extra} FROM {} L {kind} {} R{within} ON L.{lcol} = R.{rcol} EMIT CHANGES;",
            if table { "TABLE" } else { "STREAM" },
            left.name,
            right.name
        );
        let out = Src {
            name,
            table,
            key: left.key.clone(),
            cols: vec![
                ("LC".into(), SqlType::String),
                ("RC".into(), SqlType::String),
            ],
            base: false,
        };
        (sql, Some(out))
    }

    /// An INSERT of one or a few rows into a source table or stream.
    fn insert_values(&mut self) -> String {
        let Some(src) = self.pick_src(None) else {
            return "SHOW STREAMS;".into();
        };
        let cols: Vec<(String, SqlType)> = src.all().cloned().collect();
        let values: Vec<String> = cols.iter().map(|(_, t)| self.literal_of(t, 2)).collect();
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({});",
            src.name,
            names.join(", "),
            values.join(", ")
        )
    }

    /// INSERT INTO a derived stream from a declared one: no query writes
    /// into a declared stream, so no cycle of queries forms (a cycle never
    /// goes idle; ksqlDB runs it forever too).
    fn insert_select(&mut self) -> String {
        let pick = |g: &mut SqlGen, base: bool| {
            let c: Vec<&Src> = g
                .sources
                .iter()
                .filter(|s| !s.table && s.base == base)
                .collect();
            g.rng.pick(&c).map(|s| s.name.clone())
        };
        match (pick(self, false), pick(self, true)) {
            (Some(into), Some(from)) => {
                format!("INSERT INTO {into} SELECT * FROM {from} EMIT CHANGES;")
            }
            _ => "SHOW QUERIES;".into(),
        }
    }

    fn pull(&mut self) -> String {
        let Some(src) = self.pick_src(None) else {
            return "SELECT 1 AS X FROM S1;".into();
        };
        let (proj, _) = self.projection(&src, false);
        let mut sql = format!("SELECT {proj} FROM {}", src.name);
        match self.rng.below(3) {
            0 => {
                let k = self.literal_of(&src.key[0].1, 0);
                sql.push_str(&format!(" WHERE {} = {k}", src.key[0].0));
            }
            1 => sql.push_str(&format!(" WHERE {}", self.predicate(&src, 2))),
            _ => {}
        }
        if self.rng.chance(0.5) {
            sql.push_str(&format!(" LIMIT {}", self.rng.below(20)));
        }
        sql.push(';');
        sql
    }

    fn push(&mut self) -> String {
        let Some(src) = self.pick_src(None) else {
            return "SELECT * FROM S1 EMIT CHANGES LIMIT 1;".into();
        };
        let (proj, _) = self.projection(&src, false);
        let mut sql = format!("SELECT {proj} FROM {}", src.name);
        if self.rng.chance(0.5) {
            sql.push_str(&format!(" WHERE {}", self.predicate(&src, 2)));
        }
        sql.push_str(&format!(" EMIT CHANGES LIMIT {};", 1 + self.rng.below(5)));
        sql
    }

    fn inspect(&mut self) -> String {
        let name = self
            .pick_src(None)
            .map(|s| s.name)
            .unwrap_or_else(|| "S1".into());
        let f = self.rng.pick(&self.functions).copied().unwrap_or("ABS");
        let q = self
            .rng
            .pick(&self.queries)
            .cloned()
            .unwrap_or_else(|| "Q1".into());
        match self.rng.below(10) {
            0 => "SHOW STREAMS;".into(),
            1 => "SHOW TABLES EXTENDED;".into(),
            2 => "SHOW QUERIES;".into(),
            3 => "LIST TOPICS;".into(),
            4 => "SHOW PROPERTIES;".into(),
            5 => format!("DESCRIBE {name} EXTENDED;"),
            6 => format!("DESCRIBE FUNCTION {f};"),
            7 => format!("EXPLAIN {q};"),
            8 => format!("PRINT '{}' FROM BEGINNING LIMIT 3;", name.to_lowercase()),
            _ => "SHOW FUNCTIONS;".into(),
        }
    }

    fn remove(&mut self) -> String {
        match self.rng.below(4) {
            0 => {
                let q = self
                    .rng
                    .pick(&self.queries)
                    .cloned()
                    .unwrap_or_else(|| "X".into());
                format!("TERMINATE {q};")
            }
            1 => {
                let s = self.pick_src(None);
                match s {
                    Some(s) => format!(
                        "DROP {} IF EXISTS {}{};",
                        if s.table { "TABLE" } else { "STREAM" },
                        s.name,
                        if self.rng.chance(0.3) {
                            " DELETE TOPIC"
                        } else {
                            ""
                        }
                    ),
                    None => "DROP STREAM IF EXISTS NOPE;".into(),
                }
            }
            2 => {
                let s = self.pick_src(None);
                let ty = random_type(&mut self.rng, 2);
                match s {
                    Some(s) => format!(
                        "ALTER {} {} ADD COLUMN {} {ty};",
                        if s.table { "TABLE" } else { "STREAM" },
                        s.name,
                        self.fresh("N")
                    ),
                    None => "ALTER STREAM NOPE ADD COLUMN X INT;".into(),
                }
            }
            _ => "TERMINATE ALL;".into(),
        }
    }

    fn set(&mut self) -> String {
        let (k, v) = *self
            .rng
            .pick(&[
                ("auto.offset.reset", "earliest"),
                ("auto.offset.reset", "latest"),
                ("auto.offset.reset", "sideways"),
                ("ksql.query.pull.table.scan.enabled", "false"),
                ("ksql.query.pull.table.scan.enabled", "true"),
                ("processing.guarantee", "exactly_once_v2"),
                ("ksql.timestamp.throw.on.invalid", "true"),
                ("ksql.timestamp.throw.on.invalid", "false"),
                ("cache.max.bytes.buffering", "-1"),
                ("", ""),
                ("x", "\u{0}"),
            ])
            .unwrap_or(&("x", "y"));
        if self.rng.chance(0.2) {
            format!("UNSET '{k}';")
        } else {
            format!("SET '{k}'='{v}';")
        }
    }

    /// A WHERE condition over a source's columns.
    fn predicate(&mut self, src: &Src, depth: u32) -> String {
        let a = self.expr(src, depth, false);
        let b = self.expr(src, depth, false);
        match self.rng.below(8) {
            0 => format!("{a} IS NULL"),
            1 => format!("{a} IS NOT NULL"),
            2 => format!("{a} BETWEEN {b} AND {}", self.expr(src, 0, false)),
            3 => format!("{a} LIKE '%{}%'", self.rng.below(10)),
            4 => format!("{a} IN ({b}, {})", self.expr(src, 0, false)),
            5 => format!("NOT ({a} = {b})"),
            6 => format!("({a} > {b}) OR ({a} <= {b} AND {a} <> {b})"),
            _ => format!("{a} = {b}"),
        }
    }

    /// An expression over a source's columns; `small` keeps integer
    /// literals small (arguments of functions that size their result).
    pub fn expr(&mut self, src: &Src, depth: u32, small: bool) -> String {
        if depth == 0 || self.rng.chance(0.25) {
            return self.leaf(src, small);
        }
        let d = depth - 1;
        match self.rng.below(12) {
            0 | 1 => {
                let op = *self.rng.pick(&["+", "-", "*", "/", "%"]).unwrap_or(&"+");
                format!(
                    "({} {op} {})",
                    self.expr(src, d, small),
                    self.expr(src, d, small)
                )
            }
            2 => format!(
                "({} || {})",
                self.expr(src, d, small),
                self.expr(src, d, small)
            ),
            3..=5 => self.call(src, d),
            6 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.predicate(src, d),
                self.expr(src, d, small),
                self.expr(src, d, small)
            ),
            7 => {
                let t = random_type(&mut self.rng, 1);
                format!("CAST({} AS {t})", self.expr(src, d, small))
            }
            8 => self.access(src),
            9 => format!(
                "ARRAY[{}, {}]",
                self.expr(src, d, small),
                self.expr(src, d, small)
            ),
            10 => format!(
                "MAP('a' := {}, 'b' := {})",
                self.expr(src, d, small),
                self.expr(src, d, small)
            ),
            _ => {
                let f = *self
                    .rng
                    .pick(&["TRANSFORM", "FILTER", "REDUCE"])
                    .unwrap_or(&"FILTER");
                let arr = self.expr(src, d, true);
                match f {
                    "REDUCE" => format!("REDUCE({arr}, 0, (s, x) => s + x)"),
                    "TRANSFORM" => format!("TRANSFORM({arr}, x => x + 1)"),
                    _ => format!("FILTER({arr}, x => x > 0)"),
                }
            }
        }
    }

    /// A function from the registry with 0 to 3 arguments.
    fn call(&mut self, src: &Src, depth: u32) -> String {
        let f = self.rng.pick(&self.functions).copied().unwrap_or("ABS");
        let small = SIZED.contains(&f);
        let n = self.rng.below(4);
        let args: Vec<String> = (0..n).map(|_| self.expr(src, depth, small)).collect();
        format!("{f}({})", args.join(", "))
    }

    /// A subscript, a map lookup or a struct field of a nested column.
    fn access(&mut self, src: &Src) -> String {
        let nested: Vec<(String, SqlType)> = src
            .cols
            .iter()
            .filter(|(_, t)| {
                matches!(
                    t,
                    SqlType::Array(_) | SqlType::Map(_, _) | SqlType::Struct(_)
                )
            })
            .cloned()
            .collect();
        let Some((c, t)) = self.rng.pick(&nested).cloned() else {
            return self.leaf(src, false);
        };
        match t {
            SqlType::Array(_) => format!("{c}[{}]", self.rng.range(-3, 3)),
            SqlType::Map(_, _) => format!("{c}['{}']", self.rng.below(3)),
            _ => format!("{c}->F{}", self.rng.below(4)),
        }
    }

    fn leaf(&mut self, src: &Src, small: bool) -> String {
        if self.rng.chance(0.6) {
            let cols: Vec<&(String, SqlType)> = src.all().collect();
            if let Some((c, _)) = self.rng.pick(&cols) {
                return match self.rng.below(10) {
                    0 => "ROWTIME".into(),
                    1 => format!("{}.{c}", src.name),
                    _ => c.clone(),
                };
            }
        }
        if small {
            return self.rng.range(-100, 100).to_string();
        }
        let t = random_type(&mut self.rng, 1);
        self.literal_of(&t, 1)
    }

    /// A literal of a type, sometimes at its edges or of the wrong type.
    pub fn literal_of(&mut self, t: &SqlType, depth: u32) -> String {
        if self.rng.chance(0.05) {
            return "NULL".into();
        }
        match t {
            SqlType::Boolean => (if self.rng.chance(0.5) {
                "true"
            } else {
                "false"
            })
            .into(),
            SqlType::Int => self.int_literal(&["2147483647", "-2147483648", "2147483648"]),
            SqlType::Bigint => self.int_literal(&[
                "9223372036854775807",
                "-9223372036854775808",
                "9223372036854775808",
            ]),
            SqlType::Double => match self.rng.below(6) {
                0 => "1e308".into(),
                1 => "-0.0".into(),
                2 => "4.9e-324".into(),
                _ => format!("{:.3}", self.rng.unit() * 1000.0 - 500.0),
            },
            SqlType::Decimal(p, s) => {
                let digits = (*p as i64 - *s as i64).max(0) as usize;
                let int = "9".repeat(digits.min(1 + self.rng.below(40) as usize));
                format!(
                    "{}.{}",
                    if int.is_empty() { "0" } else { &int },
                    "5".repeat(*s as usize)
                )
            }
            SqlType::String => self.string_literal(),
            SqlType::Bytes => "TO_BYTES('AAEC', 'base64')".into(),
            SqlType::Timestamp => match self.rng.below(3) {
                0 => "'2024-02-29T12:00:00.000'".into(),
                1 => "'9999-12-31T23:59:59.999'".into(),
                _ => "'not a time'".into(),
            },
            SqlType::Date => "'2024-02-30'".into(),
            SqlType::Time => "'25:61:00'".into(),
            SqlType::Array(item) if depth > 0 => {
                let n = self.rng.below(4);
                let items: Vec<String> = (0..n).map(|_| self.literal_of(item, depth - 1)).collect();
                format!("ARRAY[{}]", items.join(", "))
            }
            SqlType::Map(_, v) if depth > 0 => {
                let n = self.rng.below(3);
                let items: Vec<String> = (0..n)
                    .map(|i| format!("'k{i}' := {}", self.literal_of(v, depth - 1)))
                    .collect();
                format!("MAP({})", items.join(", "))
            }
            SqlType::Struct(fields) if depth > 0 => {
                let items: Vec<String> = fields
                    .iter()
                    .map(|(n, t)| format!("{n} := {}", self.literal_of(t, depth - 1)))
                    .collect();
                format!("STRUCT({})", items.join(", "))
            }
            _ => "NULL".into(),
        }
    }

    fn int_literal(&mut self, edges: &[&str]) -> String {
        if self.rng.chance(0.1) {
            return self.rng.pick(edges).copied().unwrap_or("0").to_string();
        }
        self.rng.range(-1000, 1000).to_string()
    }

    fn string_literal(&mut self) -> String {
        let mut s = String::new();
        let n = self.rng.below(12);
        for _ in 0..n {
            if self.rng.chance(0.1) {
                let odd = ODD_TEXT[self.rng.below(ODD_TEXT.len() as u64) as usize];
                s.push_str(&odd.replace('\'', "''"));
            } else {
                s.push((b'a' + self.rng.below(26) as u8) as char);
            }
        }
        format!("'{s}'")
    }
}
