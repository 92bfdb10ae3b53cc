//! The records part: keys and values for every format the decoders read
//! (JSON, DELIMITED, KAFKA, PROTOBUF_NOSR, NONE; windowed keys of both
//! kinds) against random schemas, each decoded inside `catch_unwind`.
//!
//! A batch shares one schema and one pair of formats. Its records are
//! valid ones (random JSON for the schema, read by the JSON format and
//! written by the batch's format), the same mutated, corpus bytes mutated,
//! random bytes and empty ones. Every record is decoded on its own, key and
//! value (and its key as a windowed key); every [`ENGINE_BATCH_EVERY`]th
//! batch also goes through an engine, as a stream's topic read by a
//! `CREATE STREAM AS SELECT *`, which must account for each record: written
//! to the output, or skipped into the processing log.
//!
//! Before a batch is decoded it is written to `DIR/current-records.txt`
//! (the schema, the formats, and each record's key and value in hex).

use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, FieldRef};
use serde_json::{json, Map, Value};

use super::mutate::{mutate_bytes, random_type, ODD_TEXT};
use super::{panics_on, FuzzConfig, Heartbeat, Tally};
use crate::cases::Rng;
use crate::catalog::types::SqlType;
use crate::connectors::formats::{
    columnar_differs, decode_windowed_key, Format, FormatKind, WindowKind,
};
use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};

/// Records per batch (at most).
const BATCH: u64 = 200;
/// One batch in this many also runs through an engine.
const ENGINE_BATCH_EVERY: u64 = 5;
/// Engine batches per engine.
const BATCHES_PER_ENGINE: u64 = 40;
/// The longest record generated.
const MAX_RECORD: usize = 64 << 10;

/// One batch's schema and formats.
struct Schema {
    key: Vec<(String, SqlType)>,
    value: Vec<(String, SqlType)>,
    key_format: Format,
    value_format: Format,
    key_fields: Vec<FieldRef>,
    value_fields: Vec<FieldRef>,
}

fn fields(cols: &[(String, SqlType)]) -> Vec<FieldRef> {
    cols.iter()
        .map(|(n, t)| Arc::new(Field::new(n, t.to_arrow(), true)))
        .collect()
}

/// A format and columns it can carry (random; checked by the format).
fn random_side(rng: &mut Rng, is_key: bool) -> (Format, Vec<(String, SqlType)>) {
    let prefix = if is_key { "K" } else { "V" };
    for _ in 0..20 {
        let kind = match rng.below(if is_key { 4 } else { 5 }) {
            0 => FormatKind::Json,
            1 => FormatKind::Delimited,
            2 => FormatKind::Kafka,
            3 => FormatKind::ProtobufNoSr,
            _ => FormatKind::None,
        };
        let (n, depth) = match kind {
            FormatKind::Kafka => (1, 0),
            FormatKind::Delimited => (1 + rng.below(5), 0),
            FormatKind::None => (0, 0),
            _ => (1 + rng.below(if is_key { 2 } else { 5 }), 3),
        };
        let cols: Vec<(String, SqlType)> = (0..n)
            .map(|i| (format!("{prefix}{i}"), random_type(rng, depth)))
            .collect();
        let mut format = Format::new(kind);
        if kind == FormatKind::Delimited && rng.chance(0.3) {
            format = format.with_delimiter(*rng.pick(&['|', '\t', ';', ' ', 'é']).unwrap_or(&'|'));
        }
        if !is_key && n == 1 && rng.chance(0.3) {
            format = format.with_wrap_single(Some(rng.chance(0.5)));
        }
        if format.validate(&fields(&cols), is_key).is_ok() {
            return (format, cols);
        }
    }
    let cols = vec![(format!("{prefix}0"), SqlType::String)];
    (Format::new(FormatKind::Json), cols)
}

impl Schema {
    fn random(rng: &mut Rng) -> Schema {
        let (key_format, key) = if rng.chance(0.2) {
            (Format::new(FormatKind::None), Vec::new())
        } else {
            random_side(rng, true)
        };
        let (value_format, value) = random_side(rng, false);
        Schema {
            key_fields: fields(&key),
            value_fields: fields(&value),
            key,
            value,
            key_format,
            value_format,
        }
    }

    fn describe(&self) -> String {
        let cols = |c: &[(String, SqlType)]| {
            c.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "key ({}) {:?}\nvalue ({}) {:?}\n",
            cols(&self.key),
            self.key_format,
            cols(&self.value),
            self.value_format
        )
    }
}

/// A random JSON value for a type: mostly of the type, sometimes at its
/// edges, sometimes of another type.
fn json_of(rng: &mut Rng, t: &SqlType) -> Value {
    if rng.chance(0.05) {
        return Value::Null;
    }
    if rng.chance(0.05) {
        return json!(ODD_TEXT[rng.below(ODD_TEXT.len() as u64) as usize]);
    }
    match t {
        SqlType::Boolean => json!(rng.chance(0.5)),
        SqlType::Int => match rng.below(8) {
            0 => json!(i32::MAX),
            1 => json!(i64::from(i32::MIN) - 1),
            2 => json!(rng.range(-50, 50).to_string()),
            _ => json!(rng.range(-100_000, 100_000)),
        },
        SqlType::Bigint | SqlType::Timestamp | SqlType::Time | SqlType::Date => {
            match rng.below(8) {
                0 => json!(i64::MAX),
                1 => json!(u64::MAX),
                2 => json!("2024-01-01T00:00:00"),
                _ => json!(rng.range(-10_000_000, 10_000_000)),
            }
        }
        SqlType::Double => match rng.below(6) {
            0 => json!(f64::MAX),
            1 => json!("NaN"),
            _ => json!(rng.unit() * 1e6 - 5e5),
        },
        SqlType::Decimal(p, s) => {
            let int = "9".repeat((*p as i64 - *s as i64).max(1) as usize);
            match rng.below(3) {
                0 => json!(format!("{int}.{}", "9".repeat(*s as usize + 1))),
                _ => json!(rng.range(-999, 999) as f64 / 10.0),
            }
        }
        SqlType::String => {
            let n = rng.below(16) as usize;
            let s: String = (0..n)
                .map(|_| char::from_u32(rng.range(32, 0x2fff) as u32).unwrap_or('?'))
                .collect();
            json!(s)
        }
        SqlType::Bytes => json!(["AAEC", "", "!!notbase64", "AA=="][rng.below(4) as usize]),
        SqlType::Array(item) => {
            let n = rng.below(4);
            Value::Array((0..n).map(|_| json_of(rng, item)).collect())
        }
        SqlType::Map(_, v) => {
            let n = rng.below(4);
            Value::Object((0..n).map(|i| (format!("k{i}"), json_of(rng, v))).collect())
        }
        SqlType::Struct(fields) => {
            let mut m = Map::new();
            for (n, t) in fields {
                if rng.chance(0.9) {
                    m.insert(n.clone(), json_of(rng, t));
                }
            }
            Value::Object(m)
        }
    }
}

/// Valid bytes for one side: random JSON read by the JSON format, written
/// by the side's format. None where the values cannot be written.
fn valid_bytes(
    rng: &mut Rng,
    format: &Format,
    cols: &[(String, SqlType)],
    fields: &[FieldRef],
    is_key: bool,
) -> Option<Vec<u8>> {
    let single = cols.len() == 1 && (is_key || format.wrap_single == Some(false));
    let json = if single {
        json_of(rng, &cols[0].1)
    } else {
        Value::Object(
            cols.iter()
                .map(|(n, t)| (n.clone(), json_of(rng, t)))
                .collect(),
        )
    };
    let text = json.to_string().into_bytes();
    if format.kind == FormatKind::Json {
        return Some(text);
    }
    let reader = Format::new(FormatKind::Json).with_wrap_single(format.wrap_single);
    let values = reader.decode(&text, fields, is_key).ok()?;
    format.encode(&values, fields, is_key).ok().flatten()
}

/// One record's key or value bytes.
fn record_side(
    rng: &mut Rng,
    corpus: &[Vec<u8>],
    format: &Format,
    cols: &[(String, SqlType)],
    fields: &[FieldRef],
    is_key: bool,
) -> Option<Vec<u8>> {
    match rng.below(20) {
        0 => None,
        1 => Some(Vec::new()),
        2..=8 => valid_bytes(rng, format, cols, fields, is_key),
        9..=15 => {
            let mut b = valid_bytes(rng, format, cols, fields, is_key).unwrap_or_default();
            mutate_bytes(rng, &mut b, MAX_RECORD);
            Some(b)
        }
        16..=17 if !corpus.is_empty() => {
            let mut b = rng.pick(corpus).cloned().unwrap_or_default();
            if rng.chance(0.7) {
                mutate_bytes(rng, &mut b, MAX_RECORD);
            }
            Some(b)
        }
        _ => {
            let n = rng.below(64) as usize;
            Some((0..n).map(|_| rng.next_u64() as u8).collect())
        }
    }
}

type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

/// How the columnar decoders read a record differently from the scalar
/// ones, if they do (they must not).
fn columnar_check(schema: &Schema, r: &Record) -> Option<String> {
    let sides = [
        (&r.0, &schema.key_format, &schema.key_fields, true),
        (&r.1, &schema.value_format, &schema.value_fields, false),
    ];
    sides
        .into_iter()
        .find_map(|(bytes, format, fields, is_key)| {
            columnar_differs(format, bytes.as_deref()?, fields, is_key)
        })
}

/// Decode a record alone: its key, its key as a windowed key, its value.
/// The first error, if any.
fn decode_one(schema: &Schema, r: &Record, window: WindowKind) -> Result<()> {
    let mut first: Option<Error> = None;
    let mut note = |e: Error| {
        if first.is_none() {
            first = Some(e);
        }
    };
    if let Some(k) = &r.0 {
        if let Err(e) = schema.key_format.decode(k, &schema.key_fields, true) {
            note(e.into());
        }
        match decode_windowed_key(k, window, Some(60_000)) {
            Ok((inner, _, _)) => {
                if let Err(e) = schema.key_format.decode(inner, &schema.key_fields, true) {
                    note(e.into());
                }
            }
            Err(e) => note(e.into()),
        }
    }
    if let Some(v) = &r.1 {
        if let Err(e) = schema
            .value_format
            .decode_record(v, &schema.value_fields, false)
        {
            note(e.into());
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(super) fn run(config: &FuzzConfig, corpus: &[Vec<u8>], hb: &Heartbeat) -> Result<Tally> {
    let mut rng = Rng::new(config.seed ^ 0x7265_636f_7264_7321);
    let mut tally = Tally::default();
    let mut engine: Option<(Engine, tempfile::TempDir)> = None;
    let mut batch_no = 0u64;
    let mut engine_batches = 0u64;
    let current = config.out.join("current-records.txt");
    while tally.inputs < config.records {
        let schema = Schema::random(&mut rng);
        let n = BATCH.min(config.records - tally.inputs);
        let records: Vec<Record> = (0..n)
            .map(|_| {
                let k = record_side(
                    &mut rng,
                    corpus,
                    &schema.key_format,
                    &schema.key,
                    &schema.key_fields,
                    true,
                );
                let v = record_side(
                    &mut rng,
                    corpus,
                    &schema.value_format,
                    &schema.value,
                    &schema.value_fields,
                    false,
                );
                (k, v)
            })
            .collect();
        let mut text = format!(
            "-- sluice fuzz --seed {}: record batch {batch_no}\n",
            config.seed
        );
        text.push_str(&schema.describe());
        for (k, v) in &records {
            let hex = |b: &Option<Vec<u8>>| match b {
                None => "null".to_string(),
                Some(b) => b.iter().fold(String::new(), |mut s, x| {
                    let _ = write!(s, "{x:02x}");
                    s
                }),
            };
            let _ = writeln!(text, "{} {}", hex(k), hex(v));
        }
        std::fs::write(&current, &text)?;
        hb.beat(|| {
            format!(
                "seed {} record batch {batch_no}, in {}",
                config.seed,
                current.display()
            )
        });
        let panics = panics_on(&["fuzz-records"]);
        for r in &records {
            tally.inputs += 1;
            let window = if rng.chance(0.5) {
                WindowKind::Time
            } else {
                WindowKind::Session
            };
            if let Ok(Some(diff)) =
                std::panic::catch_unwind(AssertUnwindSafe(|| columnar_check(&schema, r)))
            {
                let show = |b: &Option<Vec<u8>>| -> String {
                    let text = b.as_deref().map(String::from_utf8_lossy);
                    format!("{text:?}").chars().take(300).collect()
                };
                tally.failures.push(format!(
                    "columnar decoding differs: {diff}\n{}key {}, value {}",
                    schema.describe(),
                    show(&r.0),
                    show(&r.1)
                ));
            }
            match std::panic::catch_unwind(AssertUnwindSafe(|| decode_one(&schema, r, window))) {
                Ok(Ok(())) => tally.count("decoded"),
                Ok(Err(e)) => tally.error(&e, "a record"),
                Err(_) => tally.count("panic"),
            }
        }
        if batch_no.is_multiple_of(ENGINE_BATCH_EVERY) {
            if engine_batches.is_multiple_of(BATCHES_PER_ENGINE) {
                drop(engine.take());
                let dir = tempfile::Builder::new()
                    .prefix("records-")
                    .tempdir_in(&config.out)?;
                let e = Engine::open(EngineConfig {
                    data_dir: dir.path().to_path_buf(),
                    properties: Default::default(),
                })?;
                engine = Some((e, dir));
            }
            engine_batches += 1;
            if let Some((e, _)) = engine.as_mut() {
                let name = format!("R{batch_no}");
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    through_engine(e, &name, &schema, &records)
                }));
                match outcome {
                    Ok(Ok(None)) => {
                        tally.count("batch through a query: every record accounted for")
                    }
                    Ok(Ok(Some(why))) => {
                        tally.count("batch through a query: records unaccounted for");
                        if tally.internal.len() < 20 {
                            tally.internal.insert(
                                format!("unaccounted records: {why}"),
                                format!("batch {batch_no}"),
                            );
                        }
                    }
                    Ok(Err(e)) => tally.error(&e, &format!("batch {batch_no} through a query")),
                    Err(_) => {
                        tally.count("panic");
                        engine = None;
                    }
                }
            }
        }
        if panics_on(&["fuzz-records"]) > panics {
            let path = config.out.join(format!("panic-records-{batch_no}.txt"));
            std::fs::write(&path, &text)?;
            tally.failures.push(format!(
                "a panic while decoding record batch {batch_no}; the batch is in {}",
                path.display()
            ));
        }
        batch_no += 1;
    }
    Ok(tally)
}

/// A batch as a stream's topic, read by `CREATE STREAM ... AS SELECT *`:
/// None when every record is in the output or the processing log, else
/// what is missing.
fn through_engine(
    engine: &mut Engine,
    name: &str,
    schema: &Schema,
    records: &[Record],
) -> Result<Option<String>> {
    let mut cols: Vec<String> = schema
        .key
        .iter()
        .map(|(n, t)| format!("`{n}` {t} KEY"))
        .collect();
    cols.extend(schema.value.iter().map(|(n, t)| format!("`{n}` {t}")));
    let mut with = format!(
        "KAFKA_TOPIC='{}', PARTITIONS=1, KEY_FORMAT='{}', VALUE_FORMAT='{}'",
        name.to_lowercase(),
        schema.key_format.kind,
        schema.value_format.kind
    );
    if let Some(w) = schema.value_format.wrap_single {
        let _ = write!(with, ", WRAP_SINGLE_VALUE={w}");
    }
    if schema.value_format.kind == FormatKind::Delimited && schema.value_format.delimiter != ',' {
        let d = match schema.value_format.delimiter {
            '\t' => "TAB".to_string(),
            ' ' => "SPACE".to_string(),
            c => c.to_string(),
        };
        let _ = write!(with, ", VALUE_DELIMITER='{d}'");
    }
    if schema.key_format.kind == FormatKind::Delimited && schema.key_format.delimiter != ',' {
        return Ok(None);
    }
    engine.execute(&format!(
        "CREATE STREAM {name} ({}) WITH ({with});",
        cols.join(", ")
    ))?;
    let topic = name.to_lowercase();
    let log = "sluice_processing_log";
    let logged_before = end_offsets(engine, log);
    engine.append(
        &topic,
        records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.clone(), v.clone(), 1_000 + i as i64)),
    )?;
    engine.execute(&format!(
        "CREATE STREAM {name}_OUT AS SELECT * FROM {name} EMIT CHANGES;"
    ))?;
    engine.run_until_idle()?;
    let written = engine.records_of(&format!("{name}_OUT"))?;
    let logged = end_offsets(engine, log) - logged_before;
    let total = records.len() as u64;
    Ok((written + logged != total)
        .then(|| format!("{total} records in, {written} written, {logged} in the processing log")))
}

fn end_offsets(engine: &Engine, topic: &str) -> u64 {
    let topics = engine.topics();
    (0..topics.partitions(topic).unwrap_or(0))
        .map(|p| topics.end_offset(topic, p).unwrap_or(0).max(0) as u64)
        .sum()
}
