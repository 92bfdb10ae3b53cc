//! Sinks: `CREATE SINK name FROM stream WITH (CONNECTOR='parquet',
//! LOCATION='...')` lands a stream's records in Parquet files (the
//! analytics store; [`crate::runtime::file_sink`]), `DROP SINK`, `SHOW
//! SINKS`, and the sinks' files as tables of pull queries.
//!
//! Options:
//! - `CONNECTOR`: `'parquet'` (the only one).
//! - `LOCATION`: a directory under the analytics root (the server's
//!   `analytics` setting; default `DATA_DIR/analytics`), or an absolute
//!   directory, `file://` or `s3://bucket/prefix` URL under that root or one
//!   of the server's `analytics_allow` roots; never outside them
//!   ([`crate::connectors::location`]). The location must be new or empty,
//!   or the sink's own (a sink marks it; DROP SINK leaves the files and the
//!   mark), so a sink never serves files it did not write.
//! - `ROLL_ROWS` / `ROLL_MS`: a file set is written when this many rows wait
//!   or the oldest has waited this long (defaults: the properties
//!   `sink.roll.rows` and `sink.roll.ms`, else 100000 rows and 60 s).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::TableProvider;
use datafusion::common::Column;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{col, Expr, LogicalPlanBuilder};

use super::{Engine, StatementResult};
use crate::connectors::parquet::ParquetStore;
use crate::error::{Error, Result};
use crate::planner::ast::{CreateSink, SourceKind};
use crate::runtime::file_sink::{FileSink, FileSinkSpec};

const DEFAULT_ROLL_ROWS: usize = 100_000;
const DEFAULT_ROLL_MS: u64 = 60_000;

/// The columns of `SHOW SINKS`.
const SHOW_SINKS: [&str; 7] = [
    "Sink Name",
    "Source",
    "Location",
    "Records Read",
    "Rows Written",
    "Files",
    "Status",
];

/// Options `CREATE SINK` takes.
const OPTIONS: [&str; 4] = ["CONNECTOR", "LOCATION", "ROLL_ROWS", "ROLL_MS"];

impl Engine {
    pub(super) fn create_sink(&mut self, c: CreateSink, text: &str) -> Result<StatementResult> {
        if self.sinks.contains_key(&c.name) {
            if c.if_not_exists {
                return Ok(done(format!("Sink {} already exists.", c.name)));
            }
            return Err(Error::AlreadyExists(format!(
                "Cannot add sink '{}': A sink with the same name already exists",
                c.name
            )));
        }
        if self.catalog.source(&c.name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "Cannot add sink '{}': a stream or table of that name exists (a sink's files are queried by its name)",
                c.name
            )));
        }
        for (name, (_, at)) in &c.with {
            if !OPTIONS.contains(&name.as_str()) {
                return Err(Error::semantic(format!(
                    "Invalid sink property {name}: expected {}",
                    OPTIONS.join(", ")
                ))
                .with_position(*at));
            }
        }
        let option = |name: &str| c.with.get(name).map(|(v, at)| (v.as_string(), *at));
        match option("CONNECTOR") {
            Some((v, _)) if v.eq_ignore_ascii_case("parquet") => {}
            Some((v, at)) => {
                return Err(Error::semantic(format!(
                    "Unknown sink connector '{v}': Sluice writes 'parquet'"
                ))
                .with_position(at))
            }
            None => {
                return Err(Error::semantic(
                    "CREATE SINK needs CONNECTOR='parquet' in its WITH clause",
                ))
            }
        }
        let Some((location, location_at)) = option("LOCATION") else {
            return Err(Error::semantic(
                "CREATE SINK needs LOCATION (a directory, or a file:// or s3:// URL) in its WITH clause",
            ));
        };
        let number = |name: &str, property: &str, default: u64| -> Result<u64> {
            let (text, at) = match option(name) {
                Some((v, at)) => (v, Some(at)),
                None => match self.properties.get(property) {
                    Some(v) => (v.clone(), None),
                    None => return Ok(default),
                },
            };
            match text.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => {
                    let e =
                        Error::semantic(format!("{name} must be a positive integer, not '{text}'"));
                    Err(match at {
                        Some(at) => e.with_position(at),
                        None => e,
                    })
                }
            }
        };
        let roll_rows = number("ROLL_ROWS", "sink.roll.rows", DEFAULT_ROLL_ROWS as u64)?;
        let roll_ms = number("ROLL_MS", "sink.roll.ms", DEFAULT_ROLL_MS)?;
        let src = self
            .catalog
            .source(&c.source)
            .ok_or_else(|| Error::NotFound(format!("{} does not exist.", c.source)))?
            .clone();
        if src.kind != SourceKind::Stream {
            return Err(Error::semantic(format!(
                "Cannot sink {}: it is a table; a sink lands a stream's records",
                c.source
            )));
        }
        let source = self.planner.source_spec(&src, false)?;
        let place = self
            .sandbox
            .sinks
            .resolve(&location)
            .map_err(|e| e.with_position(location_at))?;
        let files = Arc::new(ParquetStore::open(
            &place,
            &self.sandbox.sinks.s3,
            &location,
        )?);
        files.claim(&c.name)?;
        if let Some((url, store)) = files.registration() {
            let url = datafusion::execution::object_store::ObjectStoreUrl::parse(&url)?;
            self.planner
                .state()
                .runtime_env()
                .register_object_store(url.as_ref(), store);
        }
        let sink = FileSink::open(
            FileSinkSpec {
                name: c.name.clone(),
                source,
                declared: src.columns.iter().map(|col| col.name.clone()).collect(),
                roll_rows: usize::try_from(roll_rows).unwrap_or(usize::MAX),
                roll: Duration::from_millis(roll_ms),
            },
            self.topics.clone(),
            files,
            self.store.clone(),
        )?;
        let message = format!(
            "Created sink {} writing {} to {}",
            c.name,
            c.source,
            sink.store().url()
        );
        self.sinks.insert(c.name.clone(), sink);
        self.log_statement(text)?;
        Ok(done(message))
    }

    pub(super) fn drop_sink(
        &mut self,
        name: &str,
        if_exists: bool,
        text: &str,
    ) -> Result<StatementResult> {
        let Some(sink) = self.sinks.remove(name) else {
            if if_exists {
                return Ok(done(format!("Sink {name} does not exist.")));
            }
            return Err(Error::NotFound(format!("Sink {name} does not exist.")));
        };
        // Replayed, the positions are a sink's made again later in the log.
        if !self.replaying() {
            sink.forget()?;
        }
        self.log_statement(text)?;
        Ok(done(format!(
            "Dropped sink {name}; its files stay at {}",
            sink.store().url()
        )))
    }

    /// The sinks reading a stream (a stream they read cannot be dropped).
    pub(super) fn sinks_of(&self, source: &str) -> Vec<String> {
        self.sinks
            .values()
            .filter(|s| s.source_name() == source)
            .map(|s| s.name().to_string())
            .collect()
    }

    pub(super) fn show_sinks(&self) -> StatementResult {
        StatementResult::Rows {
            columns: SHOW_SINKS.into_iter().map(String::from).collect(),
            rows: self
                .sinks
                .values()
                .map(|s| {
                    let m = s.metrics();
                    vec![
                        s.name().to_string(),
                        s.source_name().to_string(),
                        s.store().url().to_string(),
                        m.records_in.to_string(),
                        m.rows_written.to_string(),
                        m.files_written.to_string(),
                        match self.sink_errors.get(s.name()) {
                            Some(e) => format!("RETRYING: {e}"),
                            None => "RUNNING".to_string(),
                        },
                    ]
                })
                .collect(),
        }
    }

    /// One round of every sink; returns the records read. A sink that fails
    /// (Kafka or its store unreachable) forgets what it had not written and
    /// reads it again next round: nothing is lost or written twice.
    pub(super) fn poll_sinks(&mut self, batch: usize) -> usize {
        let mut read = 0;
        for (name, sink) in self.sinks.iter_mut() {
            match sink.poll(batch) {
                Ok(n) => {
                    read += n;
                    self.sink_errors.remove(name);
                }
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, "sink failed; it retries from its last commit");
                    self.sink_errors.insert(name.clone(), e.to_string());
                    if let Err(e) = sink.rewind() {
                        tracing::warn!(sink = %name, error = %e, "cannot rewind the sink yet");
                    }
                }
            }
        }
        read
    }

    /// Each sink's committed files as a table of pull queries (its name):
    /// the stream's columns, the pseudo columns, and the `DT` and `HOUR`
    /// of each file's directory (text).
    pub(super) fn sink_tables(&self) -> Result<Vec<(String, Arc<dyn TableProvider>)>> {
        let mut tables = Vec::new();
        for sink in self.sinks.values() {
            let url = ListingTableUrl::parse(sink.store().url())?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![
                    ("dt".to_string(), DataType::Utf8),
                    ("hour".to_string(), DataType::Utf8),
                ]);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(sink.schema());
            let files: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
            // Sluice's names are upper case; the directories' are not.
            let mut columns: Vec<Expr> = sink
                .schema()
                .fields()
                .iter()
                .map(|f| col(Column::from_name(f.name())))
                .collect();
            columns.push(col(Column::from_name("dt")).alias("DT"));
            columns.push(col(Column::from_name("hour")).alias("HOUR"));
            let plan = LogicalPlanBuilder::scan(sink.name(), provider_as_source(files), None)?
                .project(columns)?
                .build()?;
            let table: Arc<dyn TableProvider> = Arc::new(ViewTable::new(plan, None));
            tables.push((sink.name().to_string(), table));
        }
        Ok(tables)
    }
}

fn done(message: String) -> StatementResult {
    StatementResult::Done {
        message,
        query_id: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::connectors::memory::MemoryTopics;
    use crate::connectors::Topics;
    use crate::engine::EngineConfig;

    fn engine(dir: &std::path::Path, topics: Arc<dyn Topics>) -> Engine {
        Engine::open_with_topics(
            EngineConfig {
                data_dir: dir.join("data"),
                properties: BTreeMap::new(),
            },
            topics,
        )
        .unwrap()
    }

    fn pull(e: &mut Engine, sql: &str) -> String {
        let (_, batches) = e.pull_query(sql).unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    const STREAM: &str = "CREATE STREAM clicks (user_id STRING KEY, page STRING, ts BIGINT)
        WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON', PARTITIONS=2, TIMESTAMP='ts');";

    /// 2026-11-22 10:59:59.000 and 11:00:00.000 UTC.
    const BEFORE: i64 = 1_795_345_199_000;
    const AFTER: i64 = 1_795_345_200_000;

    #[test]
    fn a_sink_lands_every_record_once_in_hourly_parquet_files_that_pull_queries_read() {
        let dir = tempfile::tempdir().unwrap();
        let topics: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let mut e = engine(dir.path(), topics.clone());
        e.execute(STREAM).unwrap();
        e.execute(
            "CREATE SINK archive FROM clicks WITH (CONNECTOR='parquet', LOCATION='clicks', ROLL_ROWS=3);",
        )
        .unwrap();
        let insert = |e: &mut Engine, user: &str, page: &str, ts: i64| {
            e.execute(&format!(
                "INSERT INTO clicks (user_id, page, ts) VALUES ('{user}', '{page}', {ts});"
            ))
            .unwrap();
        };
        // Read before any file exists: a later pull query still sees the
        // files written since (no listing is cached across queries).
        assert_eq!(
            pull(&mut e, "SELECT COUNT(*) AS n FROM archive"),
            "+---+\n| N |\n+---+\n| 0 |\n+---+"
        );
        insert(&mut e, "alice", "/home", BEFORE);
        insert(&mut e, "bob", "/cart", BEFORE + 500);
        insert(&mut e, "alice", "/pay", AFTER);
        e.run_until_idle().unwrap();
        let root = dir.path().join("data/analytics/clicks");
        let mut files: Vec<String> = walk(&root);
        files.sort();
        assert_eq!(
            files,
            vec![
                ".sluice-sink".to_string(),
                "dt=2026-11-22/hour=10/ARCHIVE-0000000000.parquet".to_string(),
                "dt=2026-11-22/hour=11/ARCHIVE-0000000000.parquet".to_string(),
            ]
        );
        assert_eq!(
            pull(
                &mut e,
                "SELECT user_id, page, ROWTIME, dt, hour FROM archive ORDER BY ROWTIME"
            ),
            "+---------+-------+---------------+------------+------+
| USER_ID | PAGE  | ROWTIME       | DT         | HOUR |
+---------+-------+---------------+------------+------+
| alice   | /home | 1795345199000 | 2026-11-22 | 10   |
| bob     | /cart | 1795345199500 | 2026-11-22 | 10   |
| alice   | /pay  | 1795345200000 | 2026-11-22 | 11   |
+---------+-------+---------------+------------+------+"
        );
        // A record below ROLL_ROWS waits; a restart reads it again from the
        // committed positions, and a file of a flush that never committed
        // (as a crash would leave) is removed.
        insert(&mut e, "carol", "/home", AFTER + 1);
        e.run_until_idle().unwrap();
        drop(e);
        let orphan = root.join("dt=2026-11-22/hour=11/ARCHIVE-0000000001.parquet");
        std::fs::copy(
            root.join("dt=2026-11-22/hour=11/ARCHIVE-0000000000.parquet"),
            &orphan,
        )
        .unwrap();
        let mut e = engine(dir.path(), topics.clone());
        assert!(!orphan.exists(), "the uncommitted file is removed on start");
        insert(&mut e, "dave", "/home", AFTER + 2);
        insert(&mut e, "erin", "/home", AFTER + 3);
        e.run_until_idle().unwrap();
        assert_eq!(
            pull(
                &mut e,
                "SELECT COUNT(*) AS n, COUNT(DISTINCT ROWPARTITION * 1000000 + ROWOFFSET) AS distinct_records FROM archive"
            ),
            "+---+------------------+
| N | DISTINCT_RECORDS |
+---+------------------+
| 6 | 6                |
+---+------------------+"
        );
        assert_eq!(
            e.execute("SHOW SINKS;").unwrap(),
            vec![StatementResult::Rows {
                columns: SHOW_SINKS.into_iter().map(String::from).collect(),
                rows: vec![vec![
                    "ARCHIVE".to_string(),
                    "CLICKS".to_string(),
                    format!("file://{}/", root.display()),
                    "3".to_string(),
                    "3".to_string(),
                    "1".to_string(),
                    "RUNNING".to_string(),
                ]],
            }]
        );
        // The stream cannot go while the sink reads it; the sink can, and
        // its files stay.
        let refused = e.execute("DROP STREAM clicks;").unwrap_err().to_string();
        assert_eq!(
            refused,
            "Cannot drop CLICKS: the sinks [ARCHIVE] read it. Drop them first (DROP SINK)."
        );
        e.execute("DROP SINK archive;").unwrap();
        assert_eq!(walk(&root).len(), 4, "three files and the sink's mark stay");
        e.execute("DROP STREAM clicks;").unwrap();
    }

    #[test]
    fn a_sink_statement_with_a_mistake_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), Arc::new(MemoryTopics::new()));
        e.execute(STREAM).unwrap();
        e.execute(
            "CREATE TABLE latest AS SELECT user_id, LATEST_BY_OFFSET(page) AS page FROM clicks GROUP BY user_id;",
        )
        .unwrap();
        let err = |e: &mut Engine, sql: &str| e.execute(sql).unwrap_err().to_string();
        assert_eq!(
            err(&mut e, "CREATE SINK a FROM clicks WITH (LOCATION='x');"),
            "CREATE SINK needs CONNECTOR='parquet' in its WITH clause"
        );
        assert!(err(
            &mut e,
            "CREATE SINK a FROM clicks WITH (CONNECTOR='csv', LOCATION='x');"
        )
        .starts_with("Unknown sink connector 'csv': Sluice writes 'parquet'"));
        assert_eq!(
            err(&mut e, "CREATE SINK a FROM clicks WITH (CONNECTOR='parquet');"),
            "CREATE SINK needs LOCATION (a directory, or a file:// or s3:// URL) in its WITH clause"
        );
        assert!(err(
            &mut e,
            "CREATE SINK a FROM clicks WITH (CONNECTOR='parquet', LOCATION='x', FORMAT='csv');"
        )
        .starts_with(
            "Invalid sink property FORMAT: expected CONNECTOR, LOCATION, ROLL_ROWS, ROLL_MS"
        ));
        assert!(err(
            &mut e,
            "CREATE SINK a FROM clicks WITH (CONNECTOR='parquet', LOCATION='x', ROLL_ROWS=0);"
        )
        .starts_with("ROLL_ROWS must be a positive integer, not '0'"));
        assert_eq!(
            err(
                &mut e,
                "CREATE SINK a FROM latest WITH (CONNECTOR='parquet', LOCATION='x');"
            ),
            "Cannot sink LATEST: it is a table; a sink lands a stream's records"
        );
        assert_eq!(
            err(
                &mut e,
                "CREATE SINK a FROM nowhere WITH (CONNECTOR='parquet', LOCATION='x');"
            ),
            "NOWHERE does not exist."
        );
        assert_eq!(
            err(&mut e, "CREATE SINK clicks FROM clicks WITH (CONNECTOR='parquet', LOCATION='x');"),
            "Cannot add sink 'CLICKS': a stream or table of that name exists (a sink's files are queried by its name)"
        );
        assert_eq!(
            err(&mut e, "DROP SINK nothing;"),
            "Sink NOTHING does not exist."
        );
        e.execute("DROP SINK IF EXISTS nothing;").unwrap();
        assert_eq!(e.execute("SHOW SINKS;").unwrap().len(), 1);
    }

    #[test]
    fn a_sink_writes_only_under_the_analytics_root_and_only_in_a_directory_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let topics: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let mut e = engine(dir.path(), topics);
        e.execute(STREAM).unwrap();
        let root = dir.path().join("data/analytics");
        let sink = |e: &mut Engine, name: &str, location: &str| {
            e.execute(&format!(
                "CREATE SINK {name} FROM clicks WITH (CONNECTOR='parquet', LOCATION='{location}');"
            ))
        };
        let refused = |e: &mut Engine, location: &str| {
            let err = sink(e, "escape", location).unwrap_err();
            assert_eq!(err.sqlstate(), "42000", "{err}");
            err.message()
        };
        let outside = |l: &str| {
            format!("LOCATION '{l}' is outside the locations sinks may write: a relative directory (under the analytics root), or a location under {} (the server's analytics and analytics_allow settings)", root.display())
        };
        let climbs = |l: &str| {
            format!("LOCATION '{l}' has a '..' segment: a sink's directory never climbs out of its root")
        };
        assert_eq!(
            refused(&mut e, "../../../../tmp/x"),
            climbs("../../../../tmp/x")
        );
        assert_eq!(refused(&mut e, ".."), climbs(".."));
        let tmp = dir.path().join("elsewhere");
        let absolute = tmp.display().to_string();
        assert_eq!(refused(&mut e, &absolute), outside(&absolute));
        let url = format!("file://{absolute}");
        assert_eq!(refused(&mut e, &url), outside(&url));
        assert_eq!(
            refused(&mut e, "s3://any-bucket/x"),
            outside("s3://any-bucket/x")
        );
        // Nothing was written outside the root, nor next to the state.
        assert!(!tmp.exists());
        let mut top: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        top.sort();
        assert_eq!(top, vec!["state".to_string()]);
        // A directory with files of its own is not taken: its Parquet files
        // would be served as the sink's.
        std::fs::create_dir_all(root.join("taken/dt=2020-01-01/hour=00")).unwrap();
        std::fs::write(
            root.join("taken/dt=2020-01-01/hour=00/other.parquet"),
            b"PAR1",
        )
        .unwrap();
        assert_eq!(
            refused(&mut e, "taken"),
            format!("LOCATION 'file://{}/taken/' already holds 1 file(s) (such as dt=2020-01-01/hour=00/other.parquet): a sink writes to a new or empty directory, or to its own, so that no other file is read as its records", root.display())
        );
        // An absolute directory under the root is a sink's like a relative
        // one; another sink may not share it, nor nest inside it.
        let own = root.join("own").display().to_string();
        sink(&mut e, "a", &own).unwrap();
        assert_eq!(
            sink(&mut e, "b", "own").unwrap_err().message(),
            format!("LOCATION 'file://{own}/' holds the files of sink A: a sink writes to a new or empty directory, or to its own")
        );
        assert_eq!(
            sink(&mut e, "b", "own/inner").unwrap_err().message(),
            format!("LOCATION 'file://{own}/inner/' is inside the location of sink A: a sink's files are not another's")
        );
        e.execute("DROP SINK a;").unwrap();
        sink(&mut e, "a", "own").unwrap();
        assert_eq!(
            e.execute("SHOW SINKS;").unwrap()[0],
            StatementResult::Rows {
                columns: SHOW_SINKS.into_iter().map(String::from).collect(),
                rows: vec![vec![
                    "A".to_string(),
                    "CLICKS".to_string(),
                    format!("file://{own}/"),
                    "0".to_string(),
                    "0".to_string(),
                    "0".to_string(),
                    "RUNNING".to_string(),
                ]],
            }
        );
    }

    fn walk(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
                }
            }
        }
        out
    }
}
