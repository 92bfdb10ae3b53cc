//! The records a case's queries wrote, and their comparison with the
//! case's `outputs` (by [`super::compare`]'s rules).

use std::collections::BTreeMap;

use serde_json::Value;

use super::compare::{json_equal, record_type};
use crate::connectors::formats::{bytes_to_test_json, decode_windowed_key};
use crate::engine::Engine;

/// Compare the case's `outputs` (if it has them) with the records that
/// arrived on their topics; `outputs: []` means no query's sink got any.
pub(crate) fn check_outputs(
    engine: &Engine,
    arrivals: &Arrivals,
    t: &Value,
) -> std::result::Result<(), String> {
    if let Some(outputs) = t.get("outputs").and_then(|o| o.as_array()) {
        let mut by_topic: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for o in outputs {
            let topic = o
                .get("topic")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_string();
            by_topic.entry(topic).or_default().push(o);
        }
        if outputs.is_empty() {
            // Nothing may be emitted to any query's sink.
            for q in engine.catalog().queries() {
                if let Some(s) = engine.catalog().source(&q.sink) {
                    by_topic.entry(s.topic.clone()).or_default();
                }
            }
        }
        for (topic, expected) in by_topic {
            compare_topic(engine, arrivals, &topic, &expected)?;
        }
    }
    Ok(())
}

/// Records of every topic in the order they were written, as far as the
/// runner can tell: it collects new records after each input is processed
/// (partitions in order within one step), so records of one topic spread
/// over partitions compare in production order as ksqlDB's harness does.
#[derive(Default)]
pub(crate) struct Arrivals {
    records: BTreeMap<String, Vec<crate::connectors::Record>>,
    next: BTreeMap<(String, i32), i64>,
}

impl Arrivals {
    pub(crate) fn collect(&mut self, engine: &Engine) -> std::result::Result<(), String> {
        let topics = engine.topics();
        for topic in topics.list() {
            for p in 0..topics.partitions(&topic).unwrap_or(0) {
                let from = self.next.get(&(topic.clone(), p)).copied().unwrap_or(0);
                let recs = topics
                    .fetch(&topic, p, from, usize::MAX)
                    .map_err(|e| e.to_string())?;
                if let Some(last) = recs.last() {
                    self.next.insert((topic.clone(), p), last.offset + 1);
                }
                self.records.entry(topic.clone()).or_default().extend(recs);
            }
        }
        Ok(())
    }
}

fn compare_topic(
    engine: &Engine,
    arrivals: &Arrivals,
    topic: &str,
    expected: &[&Value],
) -> std::result::Result<(), String> {
    let actual = arrivals.records.get(topic).cloned().unwrap_or_default();
    let sink = engine
        .catalog()
        .sources()
        .filter(|s| s.topic == topic)
        .max_by_key(|s| s.query.is_some());
    let shown = |recs: &[crate::connectors::Record]| -> Vec<String> {
        recs.iter().map(|r| describe_actual(sink, r)).collect()
    };
    if actual.len() != expected.len() {
        return Err(format!(
            "topic {topic}: expected {} records, got {}\n  expected: {}\n  actual:   {}",
            expected.len(),
            actual.len(),
            expected
                .iter()
                .map(|e| compact(e))
                .collect::<Vec<_>>()
                .join("\n            "),
            shown(&actual).join("\n            ")
        ));
    }
    for (n, (want, got)) in expected.iter().zip(&actual).enumerate() {
        if let Err(diff) = compare_record(sink, want, got) {
            return Err(format!(
                "topic {topic}, record {n}: {diff}\n  expected: {}\n  actual:   {}",
                compact(want),
                describe_actual(sink, got)
            ));
        }
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("topic");
    }
    v.to_string()
}

fn decode_key(
    sink: Option<&crate::catalog::Source>,
    bytes: &[u8],
) -> std::result::Result<(Value, Option<(i64, i64)>), String> {
    let Some(s) = sink else {
        return Ok((
            Value::String(String::from_utf8_lossy(bytes).to_string()),
            None,
        ));
    };
    let fields: Vec<_> = s.key_columns().map(|c| c.field()).collect();
    let (inner, window) = match s.window {
        Some(w) => {
            let (inner, start, end) =
                decode_windowed_key(bytes, w.kind, w.size).map_err(|e| e.to_string())?;
            (inner, Some((start, end)))
        }
        None => (bytes, None),
    };
    if fields.is_empty() {
        return Ok((Value::Null, window));
    }
    Ok((
        bytes_to_test_json(&s.key_format, inner, &fields, true).map_err(|e| e.to_string())?,
        window,
    ))
}

fn decode_value(
    sink: Option<&crate::catalog::Source>,
    bytes: &[u8],
) -> std::result::Result<Value, String> {
    let Some(s) = sink else {
        return Ok(serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).to_string())));
    };
    let fields: Vec<_> = s.value_columns().map(|c| c.field()).collect();
    bytes_to_test_json(&s.value_format, bytes, &fields, false).map_err(|e| e.to_string())
}

fn describe_actual(sink: Option<&crate::catalog::Source>, r: &crate::connectors::Record) -> String {
    let (key, window) = match &r.key {
        Some(k) => decode_key(sink, k).unwrap_or((Value::String("<undecodable>".into()), None)),
        None => (Value::Null, None),
    };
    let value = match &r.value {
        Some(v) => decode_value(sink, v).unwrap_or(Value::String("<undecodable>".into())),
        None => Value::Null,
    };
    let mut o = serde_json::Map::new();
    o.insert("key".into(), key);
    o.insert("value".into(), value);
    o.insert("timestamp".into(), Value::from(r.timestamp));
    if let Some((s, e)) = window {
        o.insert("window".into(), serde_json::json!({"start": s, "end": e}));
    }
    Value::Object(o).to_string()
}

fn compare_record(
    sink: Option<&crate::catalog::Source>,
    want: &Value,
    got: &crate::connectors::Record,
) -> std::result::Result<(), String> {
    let (key, window) = match &got.key {
        Some(k) => decode_key(sink, k)?,
        None => (Value::Null, None),
    };
    let want_key = want.get("key").cloned().unwrap_or(Value::Null);
    let key_fields: Vec<_> = sink
        .map(|s| s.key_columns().map(|c| c.field()).collect())
        .unwrap_or_default();
    let value_fields: Vec<_> = sink
        .map(|s| s.value_columns().map(|c| c.field()).collect())
        .unwrap_or_default();
    if !json_equal(&want_key, &key, record_type(&key_fields, &key).as_ref()) {
        return Err(format!("key differs: expected {want_key}, got {key}"));
    }
    let value = match &got.value {
        Some(v) => decode_value(sink, v)?,
        None => Value::Null,
    };
    let want_value = want.get("value").cloned().unwrap_or(Value::Null);
    if !json_equal(
        &want_value,
        &value,
        record_type(&value_fields, &value).as_ref(),
    ) {
        return Err(format!("value differs: expected {want_value}, got {value}"));
    }
    if let Some(ts) = want.get("timestamp").and_then(|t| t.as_i64()) {
        if ts != got.timestamp {
            return Err(format!(
                "timestamp differs: expected {ts}, got {}",
                got.timestamp
            ));
        }
    }
    if let Some(w) = want.get("window") {
        let start = w.get("start").and_then(|s| s.as_i64());
        let end = w.get("end").and_then(|s| s.as_i64());
        match window {
            Some((s, e)) if Some(s) == start && Some(e) == end => {}
            other => return Err(format!("window differs: expected {w}, got {other:?}")),
        }
    }
    Ok(())
}
