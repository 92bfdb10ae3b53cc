//! Java `DateTimeFormatter` patterns, formatted and parsed with chrono.
//!
//! ksqlDB's date functions take Java patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSX`).
//! strftime cannot express all of them (`X` prints `Z` for UTC, `S` is any
//! width, `yy` pivots on 2000), so the pattern is tokenized once into
//! literals and `(letter, count)` fields and interpreted directly; chrono
//! does the calendar arithmetic and time zones come from arrow's `Tz`
//! (chrono-tz names and fixed offsets).
//!
//! Supported letters: `G y u Y M L d D E a H k K h m s S n X x Z z V O`,
//! quoted literals (`'T'`, `''`) and any non-letter as a literal. Others
//! (week fields, optional sections `[...]`) are rejected as invalid patterns.
//!
//! Parsing follows Java's SMART resolver loosely: missing date fields default
//! to 1970-01-01 and missing time fields to midnight (as ksqlDB's
//! `StringToTimestampParser` does); a numeric field followed directly by
//! another numeric field reads exactly its pattern width (`yyyyMMdd`).

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Timelike, Utc,
};
use datafusion::arrow::array::timezone::Tz;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    Field(char, usize),
}

/// A tokenized Java date-time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JavaFormat {
    toks: Vec<Tok>,
}

/// Fields read by [`JavaFormat::parse_str`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    doy: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: Option<u32>,
    second: Option<u32>,
    nano: Option<u32>,
    /// Offset from UTC in seconds, when the text carried one.
    pub(super) offset: Option<i32>,
    /// Zone id, when the text carried one (`VV`, `z`).
    pub(super) zone: Option<String>,
}

impl Parsed {
    /// The date, defaulting missing fields to 1970-01-01.
    pub(super) fn date(&self) -> Option<NaiveDate> {
        let year = self.year.unwrap_or(1970);
        match (self.doy, self.month, self.day) {
            (Some(doy), None, None) => NaiveDate::from_yo_opt(year, doy),
            (_, m, d) => NaiveDate::from_ymd_opt(year, m.unwrap_or(1), d.unwrap_or(1)),
        }
    }

    /// The time of day, defaulting missing fields to zero.
    pub(super) fn time(&self) -> Option<NaiveTime> {
        let hour = match (self.hour, self.hour12) {
            (Some(h), _) => h,
            (None, Some(h)) => (h % 12) + if self.pm == Some(true) { 12 } else { 0 },
            (None, None) => {
                if self.pm == Some(true) {
                    12
                } else {
                    0
                }
            }
        };
        NaiveTime::from_hms_nano_opt(
            hour,
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nano.unwrap_or(0),
        )
    }

    pub(super) fn datetime(&self) -> Option<NaiveDateTime> {
        Some(NaiveDateTime::new(self.date()?, self.time()?))
    }
}

impl JavaFormat {
    /// Tokenize a Java pattern; `Err` names what is not supported.
    pub(super) fn parse(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks: Vec<Tok> = Vec::new();
        let mut i = 0;
        let push_lit = |toks: &mut Vec<Tok>, s: &str| {
            if let Some(Tok::Lit(prev)) = toks.last_mut() {
                prev.push_str(s);
            } else {
                toks.push(Tok::Lit(s.to_string()));
            }
        };
        while let Some(&c) = chars.get(i) {
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    push_lit(&mut toks, "'");
                    i += 2;
                    continue;
                }
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated quote in pattern '{pattern}'")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
                push_lit(&mut toks, &lit);
            } else if c.is_ascii_alphabetic() {
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                if !"GyuYMLdDEaHkKhmsSnXxZzVO".contains(c) {
                    return Err(format!("unsupported pattern letter '{c}' in '{pattern}'"));
                }
                if (c == 'S' || c == 'n') && n > 9 {
                    return Err(format!("too many pattern letters '{c}' in '{pattern}'"));
                }
                toks.push(Tok::Field(c, n));
                i += n;
            } else if c == '[' || c == ']' || c == '{' || c == '}' || c == '#' {
                return Err(format!("reserved character '{c}' in pattern '{pattern}'"));
            } else {
                push_lit(&mut toks, &c.to_string());
                i += 1;
            }
        }
        Ok(Self { toks })
    }

    /// True if the pattern has a time-of-day field.
    pub(super) fn has_time_field(&self) -> bool {
        self.toks
            .iter()
            .any(|t| matches!(t, Tok::Field(c, _) if "aHkKhmsSn".contains(*c)))
    }

    /// True if the pattern has a date field.
    pub(super) fn has_date_field(&self) -> bool {
        self.toks
            .iter()
            .any(|t| matches!(t, Tok::Field(c, _) if "GyuYMLdDE".contains(*c)))
    }

    /// Format a local date-time that is `offset` seconds ahead of UTC in `zone`.
    pub(super) fn format(&self, dt: &NaiveDateTime, offset: i32, zone: &str) -> String {
        let mut out = String::new();
        for t in &self.toks {
            match t {
                Tok::Lit(s) => out.push_str(s),
                Tok::Field(c, n) => format_field(&mut out, *c, *n, dt, offset, zone),
            }
        }
        out
    }

    /// Parse `text` completely; `Err` says where it did not match.
    pub(super) fn parse_str(&self, text: &str) -> Result<Parsed, String> {
        let mut p = Parsed::default();
        let mut rest = text;
        for (k, t) in self.toks.iter().enumerate() {
            let next_numeric = matches!(self.toks.get(k + 1), Some(Tok::Field(c, _)) if "yuYMLdDHkKhmsSn".contains(*c));
            rest =
                match t {
                    Tok::Lit(s) => strip_prefix_ci(rest, s)
                        .ok_or_else(|| format!("expected '{s}' at '{rest}'"))?,
                    Tok::Field(c, n) => parse_field(&mut p, rest, *c, *n, next_numeric)
                        .ok_or_else(|| {
                            format!(
                                "cannot parse '{rest}' as pattern field {}",
                                c.to_string().repeat(*n)
                            )
                        })?,
                };
        }
        if rest.is_empty() {
            Ok(p)
        } else {
            Err(format!("unparsed text '{rest}'"))
        }
    }
}

fn pad(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let digits = v.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn offset_hm(out: &mut String, offset: i32, colon: bool, minutes: Minutes) {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (h, m) = (abs / 3600, (abs % 3600) / 60);
    out.push(sign);
    out.push_str(&format!("{h:02}"));
    if minutes == Minutes::Always || (minutes == Minutes::IfNonZero && m != 0) {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{m:02}"));
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Minutes {
    Always,
    IfNonZero,
}

fn format_field(out: &mut String, c: char, n: usize, dt: &NaiveDateTime, offset: i32, zone: &str) {
    let name = |list: &[&str], i: usize, n: usize| -> String {
        let full = list.get(i).copied().unwrap_or("");
        match n {
            ..=3 => full.chars().take(3).collect(),
            4 => full.to_string(),
            _ => full.chars().take(1).collect(),
        }
    };
    match c {
        'G' => out.push_str(if dt.year() > 0 { "AD" } else { "BC" }),
        'y' | 'u' | 'Y' if n == 2 => pad(out, i64::from(dt.year().rem_euclid(100)), 2),
        'y' | 'u' | 'Y' => pad(out, i64::from(dt.year()), n),
        'M' | 'L' if n >= 3 => out.push_str(&name(&MONTHS, dt.month0() as usize, n)),
        'M' | 'L' => pad(out, i64::from(dt.month()), n),
        'd' => pad(out, i64::from(dt.day()), n),
        'D' => pad(out, i64::from(dt.ordinal()), n),
        'E' => out.push_str(&name(
            &DAYS,
            dt.weekday().num_days_from_monday() as usize,
            n,
        )),
        'a' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
        'H' => pad(out, i64::from(dt.hour()), n),
        'k' => pad(
            out,
            i64::from(if dt.hour() == 0 { 24 } else { dt.hour() }),
            n,
        ),
        'K' => pad(out, i64::from(dt.hour() % 12), n),
        'h' => pad(
            out,
            i64::from(if dt.hour().is_multiple_of(12) {
                12
            } else {
                dt.hour() % 12
            }),
            n,
        ),
        'm' => pad(out, i64::from(dt.minute()), n),
        's' => pad(out, i64::from(dt.second()), n),
        'S' => {
            let nanos = format!("{:09}", dt.nanosecond() % 1_000_000_000);
            out.push_str(&nanos[..n.min(9)]);
        }
        'n' => pad(out, i64::from(dt.nanosecond() % 1_000_000_000), n),
        'X' if offset == 0 => out.push('Z'),
        'X' | 'x' => match n {
            1 => offset_hm(out, offset, false, Minutes::IfNonZero),
            2 | 4 => offset_hm(out, offset, false, Minutes::Always),
            _ => offset_hm(out, offset, true, Minutes::Always),
        },
        'Z' => match n {
            ..=3 => offset_hm(out, offset, false, Minutes::Always),
            4 if offset == 0 => out.push_str("GMT"),
            4 => {
                out.push_str("GMT");
                offset_hm(out, offset, true, Minutes::Always);
            }
            _ if offset == 0 => out.push('Z'),
            _ => offset_hm(out, offset, true, Minutes::Always),
        },
        'O' => {
            out.push_str("GMT");
            if offset != 0 {
                offset_hm(out, offset, true, Minutes::IfNonZero);
            }
        }
        // 'z' and 'V': the zone as given (no short names table).
        _ => out.push_str(zone),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Read between `min` and `max` ASCII digits.
fn digits(s: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let len = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if len < min || len == 0 {
        return None;
    }
    let v = s.get(..len)?.parse::<i64>().ok()?;
    Some((v, s.get(len..)?))
}

fn name_index<'a>(s: &'a str, list: &[&str]) -> Option<(usize, &'a str)> {
    // Full names first, so "March" is not read as "Mar" + "ch".
    for (i, full) in list.iter().enumerate() {
        if let Some(rest) = strip_prefix_ci(s, full) {
            return Some((i, rest));
        }
    }
    for (i, full) in list.iter().enumerate() {
        if let Some(rest) = full.get(..3).and_then(|short| strip_prefix_ci(s, short)) {
            return Some((i, rest));
        }
    }
    None
}

fn parse_offset(s: &str, allow_z: bool) -> Option<(i32, &str)> {
    if allow_z {
        if let Some(rest) = s.strip_prefix('Z').or_else(|| s.strip_prefix('z')) {
            return Some((0, rest));
        }
    }
    let (sign, s) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let (h, mut s) = digits(s, 2, 2)?;
    let mut m = 0;
    let after_colon = s.strip_prefix(':').unwrap_or(s);
    if let Some((mm, rest)) = digits(after_colon, 2, 2) {
        m = mm;
        s = rest;
    }
    if h > 18 || m > 59 {
        return None;
    }
    let secs = i32::try_from(h * 3600 + m * 60).ok()?;
    Some((sign * secs, s))
}

fn u32_of(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

fn parse_field<'a>(
    p: &mut Parsed,
    s: &'a str,
    c: char,
    n: usize,
    adjacent: bool,
) -> Option<&'a str> {
    // Width of a plain numeric field: exact for `nn`, 1..2 for `n`.
    let (min, max) = if n >= 2 { (n, n) } else { (1, 2) };
    match c {
        'G' => strip_prefix_ci(s, "AD").or_else(|| strip_prefix_ci(s, "BC")),
        'y' | 'u' | 'Y' => {
            if n == 2 {
                let (v, rest) = digits(s, 2, 2)?;
                p.year = Some(2000 + i32::try_from(v).ok()?);
                Some(rest)
            } else {
                let (sign, s) = match s.strip_prefix('-') {
                    Some(r) => (-1, r),
                    None => (1, s.strip_prefix('+').unwrap_or(s)),
                };
                let (v, rest) = digits(s, n, if adjacent { n.max(4) } else { 9 })?;
                p.year = Some(sign * i32::try_from(v).ok()?);
                Some(rest)
            }
        }
        'M' | 'L' if n >= 3 => {
            let (i, rest) = name_index(s, &MONTHS)?;
            p.month = u32_of(i as i64 + 1);
            Some(rest)
        }
        'E' => name_index(s, &DAYS).map(|(_, rest)| rest),
        'a' => {
            if let Some(rest) = strip_prefix_ci(s, "AM") {
                p.pm = Some(false);
                Some(rest)
            } else {
                p.pm = Some(true);
                strip_prefix_ci(s, "PM")
            }
        }
        'S' => {
            let (v, rest) = digits(s, n, n)?;
            let scale = 10i64.checked_pow(u32::try_from(9usize.checked_sub(n)?).ok()?)?;
            p.nano = u32_of(v.checked_mul(scale)?);
            Some(rest)
        }
        'n' => {
            let (v, rest) = digits(s, 1, 9)?;
            p.nano = u32_of(v);
            Some(rest)
        }
        'X' | 'x' | 'Z' => {
            let (off, rest) = parse_offset(s, c != 'x')?;
            p.offset = Some(off);
            Some(rest)
        }
        'O' => {
            let s = strip_prefix_ci(s, "GMT")?;
            match parse_offset(s, false) {
                Some((off, rest)) => {
                    p.offset = Some(off);
                    Some(rest)
                }
                None => {
                    p.offset = Some(0);
                    Some(s)
                }
            }
        }
        'z' | 'V' => {
            let len = s
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || b"_/+-:".contains(b))
                .count();
            if len == 0 {
                return None;
            }
            p.zone = Some(s.get(..len)?.to_string());
            s.get(len..)
        }
        _ => {
            let max = if c == 'D' && n == 1 { 3 } else { max };
            let (v, rest) = digits(s, min, max)?;
            let v = u32_of(v)?;
            match c {
                'M' | 'L' => p.month = Some(v),
                'd' => p.day = Some(v),
                'D' => p.doy = Some(v),
                'H' => p.hour = Some(v),
                'k' => p.hour = Some(v % 24),
                'K' | 'h' => p.hour12 = Some(v),
                'm' => p.minute = Some(v),
                's' => p.second = Some(v),
                _ => return None,
            }
            Some(rest)
        }
    }
}

/// A time zone from a Java zone id: `UTC`, `Z`, `+01:00`, `GMT+1`,
/// `America/New_York`. `None` if unknown.
pub(super) fn zone(id: &str) -> Option<Tz> {
    let id = id.trim();
    if id.eq_ignore_ascii_case("Z")
        || id.eq_ignore_ascii_case("UTC")
        || id.eq_ignore_ascii_case("GMT")
    {
        return "+00:00".parse().ok();
    }
    for prefix in ["UTC", "GMT", "UT"] {
        if let Some(off) = id.strip_prefix(prefix) {
            if off.starts_with('+') || off.starts_with('-') {
                let (secs, rest) = parse_offset(off, false).or_else(|| {
                    // GMT+1: a one-digit hour.
                    let (sign, d) = off.split_at(1);
                    let h: i32 = d.parse().ok()?;
                    Some((if sign == "-" { -h } else { h } * 3600, ""))
                })?;
                if !rest.is_empty() {
                    return None;
                }
                let text = format!(
                    "{}{:02}:{:02}",
                    if secs < 0 { '-' } else { '+' },
                    secs.unsigned_abs() / 3600,
                    (secs.unsigned_abs() % 3600) / 60
                );
                return text.parse().ok();
            }
        }
    }
    id.parse().ok()
}

/// Epoch milliseconds to the local date-time in `tz` and its UTC offset (s).
pub(super) fn to_local(ms: i64, tz: &Tz) -> Option<(NaiveDateTime, i32)> {
    let utc: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single()?;
    let local = utc.with_timezone(tz);
    Some((local.naive_local(), local.offset().fix().local_minus_utc()))
}

/// A local date-time in `tz` to epoch milliseconds. Ambiguous times take the
/// earlier instant; times in a gap move forward by the gap (as Java does).
pub(super) fn from_local(dt: &NaiveDateTime, tz: &Tz) -> Option<i64> {
    match tz.from_local_datetime(dt) {
        LocalResult::Single(t) => Some(t.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => Some(a.timestamp_millis().min(b.timestamp_millis())),
        LocalResult::None => {
            let before = dt.checked_sub_signed(Duration::days(1))?;
            let off = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
            Some(
                dt.checked_sub_signed(Duration::seconds(i64::from(off)))?
                    .and_utc()
                    .timestamp_millis(),
            )
        }
    }
}

/// A parsed value to epoch milliseconds: its own offset or zone wins over `tz`.
pub(super) fn parsed_to_millis(p: &Parsed, tz: &Tz) -> Option<i64> {
    let dt = p.datetime()?;
    if let Some(off) = p.offset {
        let fixed = FixedOffset::east_opt(off)?;
        return fixed
            .from_local_datetime(&dt)
            .single()
            .map(|t| t.timestamp_millis());
    }
    if let Some(z) = &p.zone {
        return from_local(&dt, &zone(z)?);
    }
    from_local(&dt, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(pattern: &str, ms: i64, tz: &str) -> String {
        let f = JavaFormat::parse(pattern).unwrap();
        let tz = zone(tz).unwrap();
        let (dt, off) = to_local(ms, &tz).unwrap();
        f.format(&dt, off, "UTC")
    }

    fn parse(pattern: &str, text: &str, tz: &str) -> Option<i64> {
        let f = JavaFormat::parse(pattern).ok()?;
        let p = f.parse_str(text).ok()?;
        parsed_to_millis(&p, &zone(tz)?)
    }

    #[test]
    fn tokenizes_quotes_and_letters() {
        let f = JavaFormat::parse("yyyy-MM-dd'T'HH:mm:ss.SSS''X").unwrap();
        assert_eq!(f.toks.len(), 15);
        assert_eq!(f.toks[5], Tok::Lit("T".into()));
        assert_eq!(f.toks[12], Tok::Field('S', 3));
        assert_eq!(f.toks[13], Tok::Lit("'".into()));
        assert!(JavaFormat::parse("yyyy-ww").is_err());
        assert!(JavaFormat::parse("'open").is_err());
        assert!(JavaFormat::parse("[yyyy]").is_err());
    }

    #[test]
    fn formats_common_patterns() {
        // 2017-11-19T12:34:56.789Z
        let ms = 1_511_094_896_789;
        assert_eq!(
            fmt("yyyy-MM-dd'T'HH:mm:ss.SSSX", ms, "UTC"),
            "2017-11-19T12:34:56.789Z"
        );
        assert_eq!(
            fmt("yyyy-MM-dd HH:mm:ss.SSS", ms, "+01:00"),
            "2017-11-19 13:34:56.789"
        );
        assert_eq!(fmt("dd/MMM/yy h:mm a", ms, "UTC"), "19/Nov/17 12:34 PM");
        assert_eq!(fmt("EEEE, MMMM d", ms, "UTC"), "Sunday, November 19");
        assert_eq!(fmt("HH:mm XXX Z", ms, "-05:30"), "07:04 -05:30 -0530");
        assert_eq!(fmt("S SS SSSSSS", ms, "UTC"), "7 78 789000");
        assert_eq!(
            fmt("yyyy-MM-dd HH:mm", ms, "America/New_York"),
            "2017-11-19 07:34"
        );
        assert_eq!(fmt("D k K", 0, "UTC"), "1 24 0");
    }

    #[test]
    fn parses_common_patterns() {
        assert_eq!(
            parse(
                "yyyy-MM-dd'T'HH:mm:ss.SSS",
                "2017-11-19T12:34:56.789",
                "UTC"
            ),
            Some(1_511_094_896_789)
        );
        assert_eq!(
            parse("yyyy-MM-dd'T'HH:mm:ssX", "2017-11-19T13:34:56+01", "UTC"),
            Some(1_511_094_896_000)
        );
        assert_eq!(
            parse("yyyy-MM-dd'T'HH:mm:ssXXX", "2017-11-19T12:34:56Z", "+05:00"),
            Some(1_511_094_896_000)
        );
        assert_eq!(
            parse("yyyy-MM-dd HH:mm", "2017-11-19 13:34", "+01:00"),
            Some(1_511_094_840_000)
        );
        assert_eq!(
            parse("yyyyMMddHHmmss", "20171119123456", "UTC"),
            Some(1_511_094_896_000)
        );
        assert_eq!(
            parse("dd-MMM-yyyy", "19-nov-2017", "UTC"),
            Some(1_511_049_600_000)
        );
        assert_eq!(parse("h:mm a", "1:05 PM", "UTC"), Some(47_100_000));
        assert_eq!(
            parse("yyyy-MM-dd", "2017-11-19", "America/Los_Angeles"),
            Some(1_511_078_400_000)
        );
        assert_eq!(
            parse(
                "yyyy-MM-dd HH:mm VV",
                "2017-11-19 12:00 Europe/Paris",
                "UTC"
            ),
            Some(1_511_089_200_000)
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(parse("yyyy-MM-dd", "2004", "UTC"), None);
        assert_eq!(parse("yyyy-MM-dd", "2004-13-01", "UTC"), None);
        assert_eq!(parse("yyyy-MM-dd", "2004-01-01x", "UTC"), None);
        assert_eq!(parse("HH:mm", "", "UTC"), None);
        assert_eq!(parse("yyyy", "é", "UTC"), None);
    }

    #[test]
    fn zones() {
        assert!(zone("UTC").is_some());
        assert!(zone("Z").is_some());
        assert!(zone("+01:00").is_some());
        assert!(zone("GMT+1").is_some());
        assert!(zone("UTC-05:30").is_some());
        assert!(zone("Europe/London").is_some());
        assert!(zone("Not/AZone").is_none());
    }
}
