//! Restoring the catalog when an engine opens on a data directory.
//!
//! The statement log (`c/<seq>` keys in the state store) holds every
//! statement that changed the catalog, in order. A statement is logged
//! after comment lines that carry what replaying it needs and its text does
//! not say: a persistent query's own settings (`-- sluice query settings:`)
//! and, for a stream or table declared over a topic that existed (so the
//! statement names no `PARTITIONS`), that topic's partition count
//! (`-- sluice topic partitions:`). Opening an engine replays the log; a
//! replayed statement is not logged again and deletes no stored state (the
//! store already holds what the statements left: a replayed `DROP` of a
//! table or sink must not delete the view or files' positions of one made
//! again under the same name later in the log).
//!
//! Two ways to restore:
//! - **over the same topics** (a Kafka cluster): queries resume from the
//!   offsets checkpointed with their state;
//! - **over new, empty topics** (the embedded broker keeps nothing across
//!   restarts): the statement log is all that is kept. Every query's state
//!   and offsets, the tables' views and the sinks' topic positions are
//!   discarded first (they describe records that are gone, and offsets past
//!   the end of the new topics); a sink's flush count is kept, so that the
//!   files it committed stay. The topics of streams and tables are created
//!   again with their partitions, and a topic a `DROP ... DELETE TOPIC`
//!   deleted is deleted only once the log is replayed, if no source uses it
//!   then (the embedded broker cannot reuse a deleted topic's name, and a
//!   later statement may declare it again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Engine, EngineConfig, Sandbox, LOG_PREFIX, QUERY_SETTINGS};
use crate::connectors::Topics;
use crate::error::Result;
use crate::planner::ast::SourceKind;

/// Prefix of the comment line that carries the partitions of the topic a
/// logged `CREATE STREAM|TABLE` was declared over.
const TOPIC_PARTITIONS: &str = "-- sluice topic partitions: ";

/// A replay in progress.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// The topics are new and empty.
    new_topics: bool,
    /// The partitions logged with the statement being replayed.
    partitions: Option<i32>,
    /// Topics deleted by a replayed `DROP ... DELETE TOPIC` (over new
    /// topics: deleted at the end).
    deleted: BTreeSet<String>,
}

/// What an engine restored over new topics (the server says it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Restored {
    pub streams: usize,
    pub tables: usize,
    pub queries: usize,
    pub sinks: usize,
}

impl Restored {
    /// Nothing was restored.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A statement as logged: its comment lines, then its text.
#[derive(Debug, PartialEq)]
struct Logged {
    settings: BTreeMap<String, String>,
    partitions: Option<i32>,
    sql: String,
}

impl Logged {
    fn parse(logged: &str) -> Self {
        let mut out = Logged {
            settings: BTreeMap::new(),
            partitions: None,
            sql: String::new(),
        };
        let mut rest = logged;
        loop {
            if let Some((line, sql)) = rest
                .strip_prefix(QUERY_SETTINGS)
                .and_then(|r| r.split_once('\n'))
            {
                out.settings = serde_json::from_str(line).unwrap_or_default();
                rest = sql;
            } else if let Some((line, sql)) = rest
                .strip_prefix(TOPIC_PARTITIONS)
                .and_then(|r| r.split_once('\n'))
            {
                out.partitions = line.trim().parse().ok();
                rest = sql;
            } else {
                break;
            }
        }
        out.sql = rest.to_string();
        out
    }
}

impl Engine {
    /// Open an engine on a data directory whose topics are new and empty
    /// (the embedded broker's, after a restart): the catalog comes back from
    /// the statement log, everything kept about the old topics' records is
    /// discarded, and the queries start over.
    pub(crate) fn open_over_new_topics(
        config: EngineConfig,
        topics: Arc<dyn Topics>,
        sandbox: Sandbox,
    ) -> Result<(Self, Restored)> {
        let mut engine = Self::open_unrestored(config, topics, sandbox)?;
        engine
            .store
            .delete_all_except(&[LOG_PREFIX, crate::runtime::file_sink::STATE_ROOT])?;
        crate::runtime::file_sink::forget_positions(&engine.store)?;
        engine.replay(true)?;
        let count = |kind| engine.catalog.sources().filter(|s| s.kind == kind).count();
        let restored = Restored {
            streams: count(SourceKind::Stream),
            tables: count(SourceKind::Table),
            queries: engine.catalog.queries().count(),
            sinks: engine.sinks.len(),
        };
        Ok((engine, restored))
    }

    /// Replay the statement log (`new_topics`: over new, empty topics).
    pub(super) fn replay(&mut self, new_topics: bool) -> Result<()> {
        let log = self.store.scan_prefix(LOG_PREFIX)?;
        self.replay = Some(Replay {
            new_topics,
            ..Replay::default()
        });
        for (k, v) in log {
            self.log_seq = self.log_seq.max(
                std::str::from_utf8(&k[LOG_PREFIX.len()..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
                    + 1,
            );
            let logged = Logged::parse(&String::from_utf8_lossy(&v));
            if let Some(r) = self.replay.as_mut() {
                r.partitions = logged.partitions;
            }
            let session = self.properties.clone();
            self.properties.extend(logged.settings);
            if let Err(e) = self.execute(&logged.sql) {
                tracing::error!(statement = %logged.sql, error = %e, "could not restore statement");
            }
            self.properties = session;
        }
        let replay = self.replay.take().unwrap_or_default();
        for topic in replay.deleted {
            if !self.catalog.sources().any(|s| s.topic == topic) {
                self.topics.delete(&topic);
            }
        }
        Ok(())
    }

    /// Whether the statement log is being replayed.
    pub(super) fn replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// Over new topics, the partitions of the topic the statement being
    /// replayed was declared over (1 when the log, written by an older
    /// Sluice, does not say). `None` otherwise.
    pub(super) fn recorded_partitions(&self) -> Option<i32> {
        let replay = self.replay.as_ref().filter(|r| r.new_topics)?;
        Some(replay.partitions.unwrap_or(1))
    }

    /// Delete a source's topic (`DROP ... DELETE TOPIC`); replayed over new
    /// topics, at the end of the replay.
    pub(super) fn delete_topic(&mut self, topic: &str) {
        match self.replay.as_mut() {
            Some(r) if r.new_topics => {
                r.deleted.insert(topic.to_string());
            }
            Some(_) => {}
            None => self.topics.delete(topic),
        }
    }

    pub(super) fn log_statement(&mut self, sql: &str) -> Result<()> {
        if self.replaying() {
            return Ok(());
        }
        let mut b = crate::runtime::StateBatch::default();
        b.put(format!("c/{:020}", self.log_seq).as_bytes(), sql.as_bytes());
        self.log_seq += 1;
        self.store.commit(b)
    }

    /// Log a `CREATE STREAM|TABLE`; one declared over a topic that existed
    /// (`existing`) with that topic's partitions, so that it can be made
    /// again on new topics.
    pub(super) fn log_source_statement(&mut self, sql: &str, existing: Option<&str>) -> Result<()> {
        match existing.and_then(|t| self.topics.partitions(t)) {
            Some(p) => self.log_statement(&format!("{TOPIC_PARTITIONS}{p}\n{sql}")),
            None => self.log_statement(sql),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::MemoryTopics;
    use crate::engine::StatementResult;

    #[test]
    fn a_logged_statement_parses_its_comment_lines() {
        assert_eq!(
            Logged::parse("-- sluice topic partitions: 3\nCREATE STREAM s (v INT) WITH (kafka_topic='s', value_format='JSON');"),
            Logged {
                settings: BTreeMap::new(),
                partitions: Some(3),
                sql: "CREATE STREAM s (v INT) WITH (kafka_topic='s', value_format='JSON');".into(),
            }
        );
        let parsed = Logged::parse(
            "-- sluice query settings: {\"processing.guarantee\":\"exactly_once\"}\nCREATE TABLE t AS SELECT 1;",
        );
        assert_eq!(parsed.settings["processing.guarantee"], "exactly_once");
        assert_eq!(parsed.partitions, None);
        assert_eq!(parsed.sql, "CREATE TABLE t AS SELECT 1;");
        assert_eq!(Logged::parse("DROP STREAM s;").sql, "DROP STREAM s;");
    }

    fn rows(e: &mut Engine, sql: &str) -> Vec<Vec<String>> {
        match e.execute(sql).unwrap().remove(0) {
            StatementResult::Rows { rows, .. } => rows,
            other => panic!("{other:?}"),
        }
    }

    /// Over new topics: the catalog comes back, topics are made again with
    /// their partitions (a stream declared over an existing topic
    /// included), a topic deleted by `DROP ... DELETE TOPIC` and declared
    /// again is there once, and the query starts over from empty state.
    #[test]
    fn over_new_topics_the_catalog_comes_back_and_queries_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        };
        let old: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        old.create("raw", 3).unwrap();
        {
            let mut e = Engine::open_with_topics(config.clone(), old.clone()).unwrap();
            e.execute(
                "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='raw', value_format='JSON');
                 CREATE TABLE t AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id;
                 CREATE STREAM gone (v INT) WITH (kafka_topic='gone', value_format='JSON', partitions=1);
                 DROP STREAM gone DELETE TOPIC;
                 CREATE STREAM again (v INT) WITH (kafka_topic='gone', value_format='JSON', partitions=1);
                 CREATE STREAM dropped (v INT) WITH (kafka_topic='dropped', value_format='JSON', partitions=1);
                 DROP STREAM dropped DELETE TOPIC;
                 INSERT INTO s (id, v) VALUES (1, 10);
                 INSERT INTO s (id, v) VALUES (1, 5);",
            )
            .unwrap();
            e.run_until_idle().unwrap();
        }
        let new: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let (mut e, restored) =
            Engine::open_over_new_topics(config, new.clone(), Sandbox::local(dir.path())).unwrap();
        assert_eq!(
            restored,
            Restored {
                streams: 2,
                tables: 1,
                queries: 1,
                sinks: 0
            }
        );
        assert_eq!(new.partitions("raw"), Some(3));
        assert_eq!(new.partitions("T"), Some(3));
        assert_eq!(new.partitions("gone"), Some(1));
        assert!(!new.exists("dropped"));
        let mut listed: Vec<String> = rows(&mut e, "SHOW STREAMS;")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        listed.sort();
        assert_eq!(listed, ["AGAIN", "S"]);
        e.execute("INSERT INTO s (id, v) VALUES (1, 1);").unwrap();
        e.run_until_idle().unwrap();
        let printed: Vec<String> = rows(&mut e, "PRINT 'T' FROM BEGINNING;")
            .into_iter()
            .map(|r| r[4].clone())
            .collect();
        assert_eq!(printed, [r#"{"N":1,"TOTAL":1}"#]);
    }

    /// A replayed `DROP TABLE` does not delete the view of the table made
    /// again under the same name later in the log.
    #[test]
    fn a_replayed_drop_keeps_the_view_of_a_table_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        };
        let topics: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let view = crate::runtime::view::view_prefix("T");
        {
            let mut e = Engine::open_with_topics(config.clone(), topics.clone()).unwrap();
            e.execute(
                "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
                 CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;
                 DROP TABLE t;
                 CREATE TABLE t AS SELECT id, SUM(v) AS n FROM s GROUP BY id;
                 INSERT INTO s (id, v) VALUES (1, 10);",
            )
            .unwrap();
            e.run_until_idle().unwrap();
            assert_eq!(e.store.scan_prefix(&view).unwrap().len(), 1);
        }
        let e = Engine::open_with_topics(config, topics).unwrap();
        assert_eq!(e.store.scan_prefix(&view).unwrap().len(), 1);
    }
}
