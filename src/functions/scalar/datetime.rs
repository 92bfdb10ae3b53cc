//! Date and time functions.
//!
//! Two generations, as in ksqlDB: the BIGINT/INT ones (`TIMESTAMPTOSTRING`,
//! `STRINGTOTIMESTAMP`, `DATETOSTRING`, `STRINGTODATE`) work on epoch
//! milliseconds and epoch days; the typed ones (`FORMAT_*`, `PARSE_*`,
//! `*ADD`/`*SUB`, `CONVERT_TZ`, `FROM_UNIXTIME`, `FROM_DAYS`) on TIMESTAMP
//! (`Timestamp(ms)`), DATE (`Date32`) and TIME (`Time32(ms)`).
//!
//! Patterns are Java `DateTimeFormatter` patterns (see `javatime`). Zones are
//! Java zone ids: `UTC`, `+01:00`, `America/Los_Angeles`. Where ksqlDB uses
//! the JVM's default zone (no zone argument) Sluice uses UTC. Text that does
//! not parse, an unknown zone or a pattern that cannot format the value gives
//! NULL (ksqlDB: a function error, logged, NULL).
//!
//! The unit of `TIMESTAMPADD(unit, n, ts)` and friends is a string naming a
//! Java `TimeUnit`, singular or plural: `'MILLISECONDS'`, `'SECOND'`,
//! `'HOURS'`, `'DAYS'` ... (the planner turns ksqlDB's bare keyword into it).

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use datafusion::arrow::array::timezone::Tz;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::javatime::{parsed_to_millis, to_local, zone};
use super::udf::{
    ret_date, ret_i32, ret_i64, ret_str, ret_time, ret_ts, utf8, Arg::*, Call, Params, RowUdf,
};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "CONVERT_TZ",
        "Converts a TIMESTAMP from one time zone to another",
    ),
    (
        "DATEADD",
        "Adds a duration to a DATE: DATEADD(unit, n, date)",
    ),
    (
        "DATESUB",
        "Subtracts a duration from a DATE: DATESUB(unit, n, date)",
    ),
    (
        "DATETOSTRING",
        "Formats epoch days with a Java date pattern",
    ),
    ("FORMAT_DATE", "Formats a DATE with a Java date pattern"),
    ("FORMAT_TIME", "Formats a TIME with a Java time pattern"),
    (
        "FORMAT_TIMESTAMP",
        "Formats a TIMESTAMP with a Java pattern, optionally in a time zone",
    ),
    ("FROM_DAYS", "Converts epoch days to a DATE"),
    (
        "FROM_UNIXTIME",
        "Converts epoch milliseconds to a TIMESTAMP",
    ),
    ("PARSE_DATE", "Parses a DATE with a Java date pattern"),
    ("PARSE_TIME", "Parses a TIME with a Java time pattern"),
    (
        "PARSE_TIMESTAMP",
        "Parses a TIMESTAMP with a Java pattern, optionally in a time zone",
    ),
    ("STRINGTODATE", "Parses a date string to epoch days"),
    (
        "STRINGTOTIMESTAMP",
        "Parses a timestamp string to epoch milliseconds",
    ),
    ("TIMEADD", "Adds a duration to a TIME, wrapping at midnight"),
    (
        "TIMESTAMPADD",
        "Adds a duration to a TIMESTAMP: TIMESTAMPADD(unit, n, ts)",
    ),
    ("TIMESTAMPSUB", "Subtracts a duration from a TIMESTAMP"),
    (
        "TIMESTAMPTOSTRING",
        "Formats epoch milliseconds with a Java pattern, optionally in a zone",
    ),
    (
        "TIMESUB",
        "Subtracts a duration from a TIME, wrapping at midnight",
    ),
    ("UNIX_DATE", "Epoch days of a DATE, or of today"),
    (
        "UNIX_TIMESTAMP",
        "Epoch milliseconds of a TIMESTAMP, or of now",
    ),
];

const DAY_MS: i64 = 86_400_000;

pub(super) fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowUdf::new(
            "unix_timestamp",
            Params::Fixed(&[&[], &[Ts]]),
            ret_i64,
            |c| {
                if c.len() == 0 {
                    return Ok(ScalarValue::Int64(Some(Utc::now().timestamp_millis())));
                }
                Ok(ScalarValue::Int64(c.ts(0)))
            },
        )
        .volatile()
        .build(),
        RowUdf::new("unix_date", Params::Fixed(&[&[], &[Date]]), ret_i32, |c| {
            if c.len() == 0 {
                let days = Utc::now().timestamp_millis().div_euclid(DAY_MS);
                return Ok(ScalarValue::Int32(i32::try_from(days).ok()));
            }
            Ok(ScalarValue::Int32(c.date(0)))
        })
        .volatile()
        .build(),
        RowUdf::new(
            "timestamptostring",
            Params::Fixed(&[&[Int, Str], &[Int, Str, Str], &[Ts, Str], &[Ts, Str, Str]]),
            ret_str,
            |c| {
                let ms = c.i(0).or_else(|| c.ts(0));
                format_ms(c, ms)
            },
        )
        .build(),
        RowUdf::new(
            "format_timestamp",
            Params::Fixed(&[&[Ts, Str], &[Ts, Str, Str]]),
            ret_str,
            |c| {
                let ms = c.ts(0);
                format_ms(c, ms)
            },
        )
        .build(),
        RowUdf::new(
            "stringtotimestamp",
            Params::Fixed(&[&[Str, Str], &[Str, Str, Str]]),
            ret_i64,
            |c| Ok(ScalarValue::Int64(parse_ms(c))),
        )
        .build(),
        RowUdf::new(
            "parse_timestamp",
            Params::Fixed(&[&[Str, Str], &[Str, Str, Str]]),
            ret_ts,
            |c| Ok(ScalarValue::TimestampMillisecond(parse_ms(c), None)),
        )
        .build(),
        RowUdf::new(
            "datetostring",
            Params::Fixed(&[&[Int, Str]]),
            ret_str,
            |c| {
                let days = c.i(0).and_then(|d| i32::try_from(d).ok());
                format_date(c, days)
            },
        )
        .build(),
        RowUdf::new(
            "format_date",
            Params::Fixed(&[&[Date, Str]]),
            ret_str,
            |c| {
                let days = c.date(0);
                format_date(c, days)
            },
        )
        .build(),
        RowUdf::new(
            "stringtodate",
            Params::Fixed(&[&[Str, Str]]),
            ret_i32,
            |c| Ok(ScalarValue::Int32(parse_days(c))),
        )
        .build(),
        RowUdf::new("parse_date", Params::Fixed(&[&[Str, Str]]), ret_date, |c| {
            Ok(ScalarValue::Date32(parse_days(c)))
        })
        .build(),
        RowUdf::new(
            "format_time",
            Params::Fixed(&[&[Time, Str]]),
            ret_str,
            format_time,
        )
        .build(),
        RowUdf::new(
            "parse_time",
            Params::Fixed(&[&[Str, Str]]),
            ret_time,
            parse_time,
        )
        .build(),
        RowUdf::new(
            "convert_tz",
            Params::Fixed(&[&[Ts, Str, Str]]),
            ret_ts,
            convert_tz,
        )
        .build(),
        RowUdf::new("from_unixtime", Params::Fixed(&[&[Int]]), ret_ts, |c| {
            Ok(ScalarValue::TimestampMillisecond(c.i(0), None))
        })
        .build(),
        RowUdf::new("from_days", Params::Fixed(&[&[Int]]), ret_date, |c| {
            Ok(ScalarValue::Date32(
                c.i(0).and_then(|d| i32::try_from(d).ok()),
            ))
        })
        .build(),
        RowUdf::new(
            "timestampadd",
            Params::Fixed(&[&[Str, Int, Ts]]),
            ret_ts,
            |c| add_ts(c, 1),
        )
        .build(),
        RowUdf::new(
            "timestampsub",
            Params::Fixed(&[&[Str, Int, Ts]]),
            ret_ts,
            |c| add_ts(c, -1),
        )
        .build(),
        RowUdf::new(
            "dateadd",
            Params::Fixed(&[&[Str, Int, Date]]),
            ret_date,
            |c| add_date(c, 1),
        )
        .build(),
        RowUdf::new(
            "datesub",
            Params::Fixed(&[&[Str, Int, Date]]),
            ret_date,
            |c| add_date(c, -1),
        )
        .build(),
        RowUdf::new(
            "timeadd",
            Params::Fixed(&[&[Str, Int, Time]]),
            ret_time,
            |c| add_time(c, 1),
        )
        .build(),
        RowUdf::new(
            "timesub",
            Params::Fixed(&[&[Str, Int, Time]]),
            ret_time,
            |c| add_time(c, -1),
        )
        .build(),
    ]
}

/// The zone argument at `i`, UTC when absent; `None` if unknown.
fn zone_arg(c: &Call<'_>, i: usize) -> Option<Tz> {
    if c.len() > i {
        zone(c.s(i)?)
    } else {
        zone("UTC")
    }
}

fn format_ms(c: &mut Call<'_>, ms: Option<i64>) -> Result<ScalarValue> {
    let (Some(ms), Some(pattern)) = (ms, c.s(1)) else {
        return c.null();
    };
    let zone_name = if c.len() > 2 {
        c.s(2).unwrap_or("UTC")
    } else {
        "UTC"
    };
    let Some(tz) = zone_arg(c, 2) else {
        return c.null();
    };
    let Some(f) = c.format(pattern) else {
        return c.null();
    };
    let Some((dt, offset)) = to_local(ms, &tz) else {
        return c.null();
    };
    Ok(utf8(f.format(&dt, offset, zone_name)))
}

fn parse_ms(c: &mut Call<'_>) -> Option<i64> {
    let (text, pattern) = (c.s(0)?, c.s(1)?);
    let tz = zone_arg(c, 2)?;
    let f = c.format(pattern)?;
    parsed_to_millis(&f.parse_str(text).ok()?, &tz)
}

fn epoch() -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
}

fn format_date(c: &mut Call<'_>, days: Option<i32>) -> Result<ScalarValue> {
    let (Some(days), Some(pattern)) = (days, c.s(1)) else {
        return c.null();
    };
    let Some(f) = c.format(pattern) else {
        return c.null();
    };
    if f.has_time_field() {
        return c.null();
    }
    let date = epoch().and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(days))));
    let Some(dt) = date.and_then(|d| d.and_hms_opt(0, 0, 0)) else {
        return c.null();
    };
    Ok(utf8(f.format(&dt, 0, "UTC")))
}

fn parse_days(c: &mut Call<'_>) -> Option<i32> {
    let (text, pattern) = (c.s(0)?, c.s(1)?);
    let f = c.format(pattern)?;
    let ms = parsed_to_millis(&f.parse_str(text).ok()?, &zone("UTC")?)?;
    if ms.rem_euclid(DAY_MS) != 0 {
        return None; // "Date format contains time field."
    }
    i32::try_from(ms.div_euclid(DAY_MS)).ok()
}

fn format_time(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(ms), Some(pattern)) = (c.time(0), c.s(1)) else {
        return c.null();
    };
    let Some(f) = c.format(pattern) else {
        return c.null();
    };
    if f.has_date_field() || !(0..DAY_MS).contains(&i64::from(ms)) {
        return c.null();
    }
    let secs = u32::try_from(ms / 1000).unwrap_or(0);
    let nanos = u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000;
    let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos);
    let Some(dt) = epoch().zip(time).map(|(d, t)| NaiveDateTime::new(d, t)) else {
        return c.null();
    };
    Ok(utf8(f.format(&dt, 0, "UTC")))
}

fn parse_time(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(text), Some(pattern)) = (c.s(0), c.s(1)) else {
        return c.null();
    };
    let Some(f) = c.format(pattern) else {
        return c.null();
    };
    if f.has_date_field() {
        return c.null(); // "Time format contains date field."
    }
    let Some(t) = f.parse_str(text).ok().and_then(|p| p.time()) else {
        return c.null();
    };
    let ms = t.num_seconds_from_midnight() * 1000 + t.nanosecond() / 1_000_000;
    Ok(ScalarValue::Time32Millisecond(i32::try_from(ms).ok()))
}

fn convert_tz(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(ms), Some(from), Some(to)) = (c.ts(0), c.s(1), c.s(2)) else {
        return c.null();
    };
    let (Some(from), Some(to)) = (zone(from), zone(to)) else {
        return c.null();
    };
    let Some(instant) = Utc.timestamp_millis_opt(ms).single() else {
        return c.null();
    };
    let off = |tz: &Tz| {
        i64::from(
            tz.offset_from_utc_datetime(&instant.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let shifted = (off(&to) - off(&from))
        .checked_mul(1000)
        .and_then(|d| ms.checked_add(d));
    Ok(ScalarValue::TimestampMillisecond(shifted, None))
}

/// Nanoseconds in one `unit` (Java `TimeUnit`), by name.
fn unit_nanos(unit: &str) -> Option<i64> {
    let u = unit.trim().to_ascii_uppercase();
    let u = u.strip_suffix('S').unwrap_or(&u);
    Some(match u {
        "NANOSECOND" => 1,
        "MICROSECOND" => 1_000,
        "MILLISECOND" => 1_000_000,
        "SECOND" => 1_000_000_000,
        "MINUTE" => 60_000_000_000,
        "HOUR" => 3_600_000_000_000,
        "DAY" => 86_400_000_000_000,
        _ => return None,
    })
}

/// `unit.toMillis(n)` (truncating, as Java's `TimeUnit`).
fn unit_millis(unit: &str, n: i64) -> Option<i64> {
    let nanos = unit_nanos(unit)?;
    if nanos >= 1_000_000 {
        n.checked_mul(nanos / 1_000_000)
    } else {
        Some(n / (1_000_000 / nanos))
    }
}

fn add_ts(c: &mut Call<'_>, sign: i64) -> Result<ScalarValue> {
    let (Some(unit), Some(n), Some(ts)) = (c.s(0), c.i(1), c.ts(2)) else {
        return c.null();
    };
    let r = unit_millis(unit, n)
        .and_then(|d| d.checked_mul(sign))
        .and_then(|d| ts.checked_add(d));
    Ok(ScalarValue::TimestampMillisecond(r, None))
}

fn add_date(c: &mut Call<'_>, sign: i64) -> Result<ScalarValue> {
    let (Some(unit), Some(n), Some(days)) = (c.s(0), c.i(1), c.date(2)) else {
        return c.null();
    };
    // Java: MILLISECONDS.toDays(date + unit.toMillis(n)), truncating.
    let r = unit_millis(unit, n)
        .and_then(|d| d.checked_mul(sign))
        .and_then(|d| i64::from(days).checked_mul(DAY_MS)?.checked_add(d))
        .and_then(|ms| i32::try_from(ms / DAY_MS).ok());
    Ok(ScalarValue::Date32(r))
}

fn add_time(c: &mut Call<'_>, sign: i64) -> Result<ScalarValue> {
    let (Some(unit), Some(n), Some(ms)) = (c.s(0), c.i(1), c.time(2)) else {
        return c.null();
    };
    let day_nanos = i128::from(DAY_MS) * 1_000_000;
    let r = unit_nanos(unit).map(|u| {
        let delta = i128::from(u) * i128::from(n) * i128::from(sign);
        let nanos = (i128::from(ms) * 1_000_000 + delta).rem_euclid(day_nanos);
        i32::try_from(nanos / 1_000_000).unwrap_or(0)
    });
    Ok(ScalarValue::Time32Millisecond(r))
}

/// Parse a timestamp with a Java `DateTimeFormatter` pattern, in UTC unless
/// the text carries an offset: how a source's `TIMESTAMP_FORMAT` column is
/// read into ROWTIME.
pub(crate) fn parse_timestamp_millis(
    text: &str,
    pattern: &str,
) -> std::result::Result<i64, String> {
    let f = super::javatime::JavaFormat::parse(pattern)?;
    let parsed = f.parse_str(text)?;
    let utc = zone("UTC").ok_or_else(|| "no UTC time zone".to_string())?;
    parsed_to_millis(&parsed, &utc)
        .ok_or_else(|| format!("'{text}' is not a valid time for '{pattern}'"))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[test]
    fn timestamp_format_of_sources() {
        let p = super::parse_timestamp_millis;
        assert_eq!(
            p("2017-11-19 12:34:56", "yyyy-MM-dd HH:mm:ss"),
            Ok(1_511_094_896_000)
        );
        assert_eq!(
            p("2017-11-19T13:34:56+0100", "yyyy-MM-dd'T'HH:mm:ssZ"),
            Ok(1_511_094_896_000)
        );
        assert!(p("junk", "yyyy").is_err());
        assert!(p("2017", "yyyy-ww").is_err());
    }

    #[tokio::test]
    async fn legacy_bigint_functions() {
        assert_eq!(q1("SELECT timestamptostring(1511094896789, 'yyyy-MM-dd HH:mm:ss.SSS'), timestamptostring(1511094896789, 'yyyy-MM-dd HH:mm', 'America/New_York')").await, "2017-11-19 12:34:56.789|2017-11-19 07:34");
        assert_eq!(q1("SELECT stringtotimestamp('2017-11-19 12:34:56.789', 'yyyy-MM-dd HH:mm:ss.SSS'), stringtotimestamp('2017-11-19 13:34', 'yyyy-MM-dd HH:mm', '+01:00'), stringtotimestamp('junk', 'yyyy')").await, "1511094896789|1511094840000|NULL");
        assert_eq!(q1("SELECT datetostring(17489, 'yyyy-MM-dd'), stringtodate('2017-11-19', 'yyyy-MM-dd'), datetostring(1, 'HH')").await, "2017-11-19|17489|NULL");
        assert_eq!(q1("SELECT timestamptostring(0, 'yyyy', 'No/Such_Zone'), timestamptostring(NULL, 'yyyy')").await, "NULL|NULL");
    }

    #[tokio::test]
    async fn typed_parse_and_format() {
        assert_eq!(q1("SELECT parse_date('2003-12-24', 'yyyy-MM-dd'), parse_date('2004', 'yyyy-MM-dd'), CAST(parse_date('2004-01-01', 'yyyy-MM-dd') AS INT)").await, "2003-12-24|NULL|12418");
        assert_eq!(q1("SELECT parse_timestamp('2017-11-19T12:34:56Z', 'yyyy-MM-dd''T''HH:mm:ssX'), format_timestamp(parse_timestamp('2017-11-19 12:00', 'yyyy-MM-dd HH:mm'), 'HH:mm X', '+02:00')").await, "2017-11-19T12:34:56|14:00 +02");
        assert_eq!(q1("SELECT format_date(parse_date('2017-11-19', 'yyyy-MM-dd'), 'dd/MM/yy'), format_time(parse_time('13:05:01', 'HH:mm:ss'), 'hh:mm a'), parse_time('2017-01-01', 'yyyy-MM-dd')").await, "19/11/17|01:05 PM|NULL");
        assert_eq!(q1("SELECT arrow_typeof(parse_timestamp('1970', 'yyyy')), arrow_typeof(parse_time('10:00', 'HH:mm'))").await, "Timestamp(ms)|Time32(ms)");
    }

    #[tokio::test]
    async fn conversions_and_arithmetic() {
        assert_eq!(q1("SELECT from_unixtime(1000), from_days(1), unix_timestamp(from_unixtime(42)), unix_date(from_days(3))").await, "1970-01-01T00:00:01|1970-01-02|42|3");
        assert_eq!(q1("SELECT convert_tz(from_unixtime(0), 'UTC', 'America/Los_Angeles'), convert_tz(from_unixtime(0), '+01:00', 'UTC')").await, "1969-12-31T16:00:00|1969-12-31T23:00:00");
        assert_eq!(q1("SELECT timestampadd('SECONDS', 5, from_unixtime(0)), timestampsub('DAYS', 1, from_unixtime(0)), timestampadd('WEEKS', 1, from_unixtime(0))").await, "1970-01-01T00:00:05|1969-12-31T00:00:00|NULL");
        assert_eq!(q1("SELECT dateadd('DAYS', 3, from_days(1)), datesub('DAY', 1, from_days(1)), timeadd('HOURS', 25, parse_time('23:00', 'HH:mm')), timesub('MINUTES', 1, parse_time('00:00', 'HH:mm'))").await, "1970-01-05|1970-01-01|00:00:00|23:59:00");
        assert_eq!(
            q1("SELECT unix_timestamp() > 1600000000000, unix_date() > 18000").await,
            "true|true"
        );
    }
}
