//! String functions: LCASE .. INITCAP, regular expressions, SPLIT, ELT/FIELD,
//! AS_VALUE.
//!
//! Lengths and positions count Unicode scalar values (Rust `char`s); ksqlDB
//! counts Java UTF-16 code units, which differs only outside the BMP.
//! Positions are 1-based; a negative position counts from the end.
//! Regular expressions use the `regex` crate (Java's syntax minus
//! look-around and back-references); a pattern that does not compile gives
//! NULL. `REGEXP_REPLACE` takes Java replacement strings (`$1`, `\$`).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{
    make_list, make_map, map_type, ret_first, ret_i32, ret_str, ret_str_list, utf8, Arg::*, Call,
    Params, RowUdf,
};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "AS_VALUE",
        "Copies a key column into the value; returns its argument",
    ),
    ("CONCAT", "Concatenates strings (or bytes), skipping NULLs"),
    (
        "CONCAT_WS",
        "Concatenates strings (or bytes) with a separator, skipping NULLs",
    ),
    (
        "ELT",
        "Returns the N-th (1-based) of the following strings, NULL if out of range",
    ),
    (
        "FIELD",
        "Returns the 1-based position of a string in the following list, 0 if absent",
    ),
    (
        "INITCAP",
        "Capitalizes the first letter of each word, lower-cases the rest",
    ),
    (
        "INSTR",
        "Position of the N-th occurrence of a substring from a start position; 0 if none",
    ),
    ("LCASE", "Converts a string to lower case"),
    ("LEN", "Length of a string in characters, or of bytes"),
    (
        "LPAD",
        "Left-pads a string to a length with a padding string",
    ),
    (
        "REGEXP_EXTRACT",
        "First substring matching a regex (or its capture group)",
    ),
    (
        "REGEXP_EXTRACT_ALL",
        "All substrings matching a regex (or its capture group)",
    ),
    (
        "REGEXP_REPLACE",
        "Replaces every regex match with a replacement",
    ),
    (
        "REGEXP_SPLIT_TO_ARRAY",
        "Splits a string around regex matches",
    ),
    ("REPLACE", "Replaces every occurrence of a substring"),
    (
        "RPAD",
        "Right-pads a string to a length with a padding string",
    ),
    ("SPLIT", "Splits a string around a delimiter into an array"),
    (
        "SPLIT_TO_MAP",
        "Splits 'k1=v1,k2=v2' style strings into a map",
    ),
    (
        "SUBSTRING",
        "Substring from a 1-based position (negative: from the end), optional length",
    ),
    ("TRIM", "Removes leading and trailing whitespace"),
    ("UCASE", "Converts a string to upper case"),
];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const S: Params = Params::Fixed(&[&[Str]]);
    vec![
        RowUdf::new("lcase", S, ret_str, |c| s1(c, str::to_lowercase)).build(),
        RowUdf::new("ucase", S, ret_str, |c| s1(c, str::to_uppercase)).build(),
        RowUdf::new("trim", S, ret_str, |c| {
            s1(c, |s| s.trim_matches(|ch: char| ch <= ' ').to_string())
        })
        .build(),
        RowUdf::new("initcap", S, ret_str, |c| s1(c, initcap)).build(),
        RowUdf::new("len", Params::Fixed(&[&[Str], &[Bytes]]), ret_i32, len).build(),
        RowUdf::new(
            "concat",
            Params::Custom(coerce_str_or_bytes),
            ret_first,
            concat,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "concat_ws",
            Params::Custom(coerce_str_or_bytes),
            ret_first,
            concat_ws,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "substring",
            Params::Fixed(&[
                &[Str, Int],
                &[Str, Int, Int],
                &[Bytes, Int],
                &[Bytes, Int, Int],
            ]),
            ret_first,
            substring,
        )
        .alias("substr")
        .build(),
        RowUdf::new("lpad", Params::Fixed(&[&[Str, Int, Str]]), ret_str, |c| {
            pad(c, true)
        })
        .build(),
        RowUdf::new("rpad", Params::Fixed(&[&[Str, Int, Str]]), ret_str, |c| {
            pad(c, false)
        })
        .build(),
        RowUdf::new(
            "replace",
            Params::Fixed(&[&[Str, Str, Str]]),
            ret_str,
            |c| {
                let (Some(s), Some(old), Some(new)) = (c.s(0), c.s(1), c.s(2)) else {
                    return c.null();
                };
                Ok(utf8(s.replace(old, new)))
            },
        )
        .build(),
        RowUdf::new(
            "regexp_extract",
            Params::Fixed(&[&[Str, Str], &[Str, Str, Int]]),
            ret_str,
            regexp_extract,
        )
        .build(),
        RowUdf::new(
            "regexp_extract_all",
            Params::Fixed(&[&[Str, Str], &[Str, Str, Int]]),
            ret_str_list,
            regexp_extract_all,
        )
        .build(),
        RowUdf::new(
            "regexp_replace",
            Params::Fixed(&[&[Str, Str, Str]]),
            ret_str,
            regexp_replace,
        )
        .build(),
        RowUdf::new(
            "regexp_split_to_array",
            Params::Fixed(&[&[Str, Str]]),
            ret_str_list,
            regexp_split,
        )
        .build(),
        RowUdf::new("split", Params::Fixed(&[&[Str, Str]]), ret_str_list, split).build(),
        RowUdf::new(
            "split_to_map",
            Params::Fixed(&[&[Str, Str, Str]]),
            |_| Ok(map_type(DataType::Utf8, DataType::Utf8)),
            split_to_map,
        )
        .build(),
        RowUdf::new(
            "instr",
            Params::Fixed(&[&[Str, Str], &[Str, Str, Int], &[Str, Str, Int, Int]]),
            ret_i32,
            instr,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "elt",
            Params::Variadic {
                fixed: &[Int],
                rest: Str,
                min: 1,
            },
            ret_str,
            elt,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "field",
            Params::Variadic {
                fixed: &[Str],
                rest: Str,
                min: 1,
            },
            ret_i32,
            field,
        )
        .lenient()
        .build(),
        RowUdf::new("as_value", Params::Fixed(&[&[Any]]), ret_first, |c| {
            Ok(c.arg(0).clone())
        })
        .lenient()
        .build(),
    ]
}

fn s1(c: &mut Call<'_>, f: impl Fn(&str) -> String) -> Result<ScalarValue> {
    match c.s(0) {
        Some(s) => Ok(utf8(f(s))),
        None => c.null(),
    }
}

fn coerce_str_or_bytes(types: &[DataType]) -> std::result::Result<Vec<DataType>, String> {
    use super::udf::coerce_arg;
    let target = if types
        .iter()
        .any(|t| coerce_arg(Bytes, t).is_some() && !t.is_null())
        && types.iter().all(|t| coerce_arg(Bytes, t).is_some())
    {
        Bytes
    } else {
        Str
    };
    types
        .iter()
        .map(|t| coerce_arg(target, t))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "expects all STRING or all BYTES arguments".to_string())
}

fn len(c: &mut Call<'_>) -> Result<ScalarValue> {
    let n = match (c.s(0), c.bytes(0)) {
        (Some(s), _) => s.chars().count(),
        (_, Some(b)) => b.len(),
        _ => return c.null(),
    };
    Ok(ScalarValue::Int32(i32::try_from(n).ok()))
}

fn concat(c: &mut Call<'_>) -> Result<ScalarValue> {
    if c.ret == &DataType::Binary {
        let mut out = Vec::new();
        for i in 0..c.len() {
            out.extend_from_slice(c.bytes(i).unwrap_or_default());
        }
        return Ok(ScalarValue::Binary(Some(out)));
    }
    Ok(utf8(
        (0..c.len()).filter_map(|i| c.s(i)).collect::<String>(),
    ))
}

fn concat_ws(c: &mut Call<'_>) -> Result<ScalarValue> {
    if c.len() < 2 {
        return c.null();
    }
    if c.ret == &DataType::Binary {
        let Some(sep) = c.bytes(0) else {
            return c.null();
        };
        let parts: Vec<&[u8]> = (1..c.len()).filter_map(|i| c.bytes(i)).collect();
        return Ok(ScalarValue::Binary(Some(parts.join(sep))));
    }
    let Some(sep) = c.s(0) else { return c.null() };
    let parts: Vec<&str> = (1..c.len()).filter_map(|i| c.s(i)).collect();
    Ok(utf8(parts.join(sep)))
}

/// ksqlDB's start index: negative from the end, 1-based otherwise, clamped.
fn start_index(len: i64, pos: i64) -> usize {
    let start = if pos < 0 {
        len.saturating_add(pos).max(0)
    } else {
        pos.saturating_sub(1).min(len).max(0)
    };
    usize::try_from(start).unwrap_or(0)
}

fn substring(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(pos) = c.i(1) else { return c.null() };
    let length = if c.len() > 2 { c.i(2) } else { Some(i64::MAX) };
    let Some(length) = length else {
        return c.null();
    };
    let range = |len: usize| {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let start = start_index(len_i, pos);
        let end = i64::try_from(start)
            .unwrap_or(0)
            .saturating_add(length)
            .min(len_i)
            .max(i64::try_from(start).unwrap_or(0));
        (start, usize::try_from(end).unwrap_or(start))
    };
    if let Some(s) = c.s(0) {
        let chars: Vec<char> = s.chars().collect();
        let (start, end) = range(chars.len());
        return Ok(utf8(
            chars
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .collect::<String>(),
        ));
    }
    if let Some(b) = c.bytes(0) {
        let (start, end) = range(b.len());
        return Ok(ScalarValue::Binary(Some(
            b.get(start..end).unwrap_or_default().to_vec(),
        )));
    }
    c.null()
}

fn pad(c: &mut Call<'_>, left: bool) -> Result<ScalarValue> {
    let (Some(input), Some(target), Some(padding)) = (c.s(0), c.i(1), c.s(2)) else {
        return c.null();
    };
    let Ok(target) = usize::try_from(target) else {
        return c.null();
    };
    if padding.is_empty() || target > 1 << 24 {
        return c.null();
    }
    let input: Vec<char> = input.chars().collect();
    let fill_len = target.saturating_sub(input.len());
    let fill = padding.chars().cycle().take(fill_len);
    let out: String = if left {
        fill.chain(input.iter().copied()).take(target).collect()
    } else {
        input.iter().copied().chain(fill).take(target).collect()
    };
    Ok(utf8(out))
}

fn initcap(s: &str) -> String {
    // Java: each match of [^\s]+\s* in the lower-cased input, first char upper.
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r');
    let lower = s.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut at_word_start = true;
    let mut seen_word = false;
    for ch in lower.chars() {
        if is_ws(ch) {
            if seen_word {
                out.push(ch);
            }
            at_word_start = true;
        } else {
            if at_word_start {
                out.extend(ch.to_uppercase());
            } else {
                out.push(ch);
            }
            at_word_start = false;
            seen_word = true;
        }
    }
    out
}

fn group_of(c: &Call<'_>) -> Option<usize> {
    if c.len() > 2 {
        c.i(2).and_then(|g| usize::try_from(g).ok())
    } else {
        Some(0)
    }
}

fn regexp_extract(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(pattern), Some(input), Some(group)) = (c.s(0), c.s(1), group_of(c)) else {
        return c.null();
    };
    let Some(re) = c.regex(pattern) else {
        return c.null();
    };
    if group >= re.captures_len() {
        return c.null();
    }
    let found = re
        .captures(input)
        .and_then(|caps| caps.get(group).map(|m| m.as_str().to_string()));
    Ok(ScalarValue::Utf8(found))
}

fn regexp_extract_all(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(pattern), Some(input), Some(group)) = (c.s(0), c.s(1), group_of(c)) else {
        return c.null();
    };
    let Some(re) = c.regex(pattern) else {
        return c.null();
    };
    if group >= re.captures_len() {
        return c.null();
    }
    let items = re
        .captures_iter(input)
        .map(|caps| ScalarValue::Utf8(caps.get(group).map(|m| m.as_str().to_string())))
        .collect();
    make_list(items, &DataType::Utf8)
}

/// Java replacement syntax (`$1`, `${name}`, `\$`) to the regex crate's.
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 4);
    let mut chars = r.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' if chars.peek() == Some(&'{') => out.push('$'),
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

fn regexp_replace(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(s), Some(pattern), Some(new)) = (c.s(0), c.s(1), c.s(2)) else {
        return c.null();
    };
    let replacement = java_replacement(new);
    let Some(re) = c.regex(pattern) else {
        return c.null();
    };
    Ok(utf8(re.replace_all(s, replacement.as_str()).into_owned()))
}

fn str_list(parts: impl Iterator<Item = String>) -> Result<ScalarValue> {
    make_list(parts.map(utf8).collect(), &DataType::Utf8)
}

/// Java's `Pattern.split` with an empty-matching pattern: one element per
/// character (an empty input gives one empty string).
fn chars_of(s: &str) -> Result<ScalarValue> {
    if s.is_empty() {
        return str_list(std::iter::once(String::new()));
    }
    str_list(s.chars().map(String::from))
}

fn regexp_split(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(s), Some(pattern)) = (c.s(0), c.s(1)) else {
        return c.null();
    };
    let Some(re) = c.regex(pattern) else {
        return c.null();
    };
    if pattern.is_empty() || re.is_match("") {
        return chars_of(s);
    }
    str_list(re.split(s).map(String::from))
}

fn split(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(s), Some(delim)) = (c.s(0), c.s(1)) else {
        return c.null();
    };
    if delim.is_empty() {
        return chars_of(s);
    }
    str_list(s.split(delim).map(String::from))
}

fn split_to_map(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(s), Some(entry), Some(kv)) = (c.s(0), c.s(1), c.s(2)) else {
        return c.null();
    };
    if entry.is_empty() || kv.is_empty() || entry == kv {
        return c.null();
    }
    let mut entries: Vec<(ScalarValue, ScalarValue)> = Vec::new();
    for e in s.split(entry).filter(|e| !e.is_empty() && e.contains(kv)) {
        let mut parts = e.split(kv);
        let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let key = utf8(k);
        match entries.iter_mut().find(|(ek, _)| ek == &key) {
            Some(slot) => slot.1 = utf8(v),
            None => entries.push((key, utf8(v))),
        }
    }
    make_map(entries, c.ret)
}

fn instr(c: &mut Call<'_>) -> Result<ScalarValue> {
    let pos = if c.len() > 2 { c.i(2) } else { Some(1) };
    let occurrence = if c.len() > 3 { c.i(3) } else { Some(1) };
    let (Some(pos), Some(occurrence)) = (pos, occurrence) else {
        return c.null();
    };
    let (Some(s), Some(sub)) = (c.s(0), c.s(1)) else {
        return Ok(ScalarValue::Int32(Some(0)));
    };
    Ok(ScalarValue::Int32(Some(instr_of(s, sub, pos, occurrence))))
}

fn instr_of(s: &str, sub: &str, pos: i64, occurrence: i64) -> i32 {
    let hay: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let len = i64::try_from(hay.len()).unwrap_or(i64::MAX);
    if pos.unsigned_abs() > len.unsigned_abs() || occurrence <= 0 {
        return 0;
    }
    let (hay, needle, pos, reversed) = if pos < 0 {
        let rh: Vec<char> = hay.iter().rev().copied().collect();
        let rn: Vec<char> = needle.iter().rev().copied().collect();
        (rh, rn, -pos, true)
    } else {
        (hay, needle, pos, false)
    };
    // commons-lang StringUtils.substring(str, pos - 1): negative counts from the end.
    let start = if pos >= 1 {
        pos - 1
    } else {
        (len + pos - 1).max(0)
    };
    let start = usize::try_from(start).unwrap_or(0).min(hay.len());
    let tail = hay.get(start..).unwrap_or_default();
    // StringUtils.ordinalIndexOf: overlapping matches.
    let mut found: Option<usize> = None;
    for _ in 0..occurrence {
        let from = found.map_or(0, |f| f + 1);
        found = if needle.is_empty() {
            if from == 0 {
                Some(0)
            } else {
                None
            }
        } else {
            (from..tail.len().saturating_sub(needle.len()).saturating_add(1))
                .find(|&i| tail.get(i..i + needle.len()) == Some(needle.as_slice()))
        };
        if found.is_none() {
            return 0;
        }
    }
    let Some(i) = found.and_then(|i| i64::try_from(i).ok()) else {
        return 0;
    };
    let sub_len = i64::try_from(needle.len()).unwrap_or(0);
    let r = if reversed {
        len - pos - i - sub_len + 2
    } else {
        i + pos
    };
    i32::try_from(r).unwrap_or(0)
}

fn elt(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(n) = c.i(0) else { return c.null() };
    if n < 1 || n >= i64::try_from(c.len()).unwrap_or(i64::MAX) {
        return c.null();
    }
    let i = usize::try_from(n).unwrap_or(usize::MAX);
    Ok(ScalarValue::Utf8(c.s(i).map(String::from)))
}

fn field(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(s) = c.s(0) else {
        return Ok(ScalarValue::Int32(Some(0)));
    };
    let pos = (1..c.len()).find(|&i| c.s(i) == Some(s)).unwrap_or(0);
    Ok(ScalarValue::Int32(i32::try_from(pos).ok()))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{q, q1};

    #[tokio::test]
    async fn case_len_trim() {
        assert_eq!(
            q1("SELECT lcase('AbC'), ucase('AbC'), len('héllo'), len(CAST(NULL AS VARCHAR))").await,
            "abc|ABC|5|NULL"
        );
        assert_eq!(
            q1("SELECT trim('  a b \t'), initcap('  the QUICK  brown'), initcap('')").await,
            "a b|The Quick  Brown|"
        );
        assert_eq!(q1("SELECT arrow_typeof(len('a'))").await, "Int32");
    }

    #[tokio::test]
    async fn substring_ksql_semantics() {
        assert_eq!(q1("SELECT substring('some string', 0, 2), substring('prefixr0', 7, 2), substring('abc', 2)").await, "so|r0|bc");
        assert_eq!(q1("SELECT substring('abcdef', -3), substring('abcdef', -3, 2), substring('abc', 10), substring('abc', 2, -1)").await, "def|de||");
        assert_eq!(
            q1("SELECT substring('abc', CAST(NULL AS INT)), substr('hello', 2, 3)").await,
            "NULL|ell"
        );
        assert_eq!(q1("SELECT SUBSTRING('Mr Bugalicious', 2, 1)").await, "r");
    }

    #[tokio::test]
    async fn concat_pad_replace() {
        assert_eq!(q1("SELECT concat('a', NULL, 'b'), concat_ws('-', 'a', NULL, 'c'), concat_ws(NULL, 'a')").await, "ab|a-c|NULL");
        assert_eq!(q1("SELECT lpad('abc', 6, 'xy'), rpad('abc', 6, 'xy'), lpad('abcdef', 3, 'x'), rpad('a', 2, '')").await, "xyxabc|abcxyx|abc|NULL");
        assert_eq!(
            q1("SELECT replace('aXbX', 'X', '--'), lpad('a', -1, 'x')").await,
            "a--b--|NULL"
        );
    }

    #[tokio::test]
    async fn regexes() {
        assert_eq!(q1("SELECT regexp_extract('.*_(\\w+)', 'key_abc'), regexp_extract('(\\d+)-(\\d+)', 'x 12-34', 2), regexp_extract('a', 'b')").await, "key_abc|34|NULL");
        assert_eq!(
            q1("SELECT regexp_extract('(a', 'a'), regexp_extract('(a)', 'a', 2)").await,
            "NULL|NULL"
        );
        assert_eq!(q1("SELECT regexp_extract_all('\\d+', 'a1b22c333'), regexp_replace('a1b22', '(\\d+)', '<$1>x')").await, "[1, 22, 333]|a<1>xb<22>x");
        assert_eq!(
            q1("SELECT regexp_split_to_array('a1b22c', '\\d+'), regexp_split_to_array('ab', '')")
                .await,
            "[a, b, c]|[a, b]"
        );
    }

    #[tokio::test]
    async fn split_family() {
        assert_eq!(
            q1("SELECT split('a,b,,c', ','), split('abc', ''), split(NULL, ',')").await,
            "[a, b, , c]|[a, b, c]|NULL"
        );
        assert_eq!(
            q1("SELECT split_to_map('a=1;b=2;;c;a=3', ';', '=')").await,
            "{a: 3, b: 2}"
        );
        assert_eq!(q1("SELECT split_to_map('a=1', '=', '=')").await, "NULL");
    }

    #[tokio::test]
    async fn instr_elt_field() {
        assert_eq!(q1("SELECT instr('CORPORATE FLOOR', 'OR'), instr('CORPORATE FLOOR', 'OR', 3), instr('CORPORATE FLOOR', 'OR', 3, 2)").await, "2|5|14");
        assert_eq!(q1("SELECT instr('CORPORATE FLOOR', 'OR', -3), instr('CORPORATE FLOOR', 'OR', -3, 2), instr(NULL, 'a'), instr('a', 'b')").await, "5|2|0|0");
        assert_eq!(q1("SELECT elt(2, 'a', 'b'), elt(3, 'a', 'b'), elt(0, 'a'), field('b', 'a', 'b'), field('z', 'a'), field(NULL, 'a')").await, "b|NULL|NULL|2|0|0");
    }

    #[tokio::test]
    async fn as_value_and_errors() {
        assert_eq!(q1("SELECT as_value(5), as_value('x')").await, "5|x");
        let err = q("SELECT lcase(1)").await.unwrap_err().to_string();
        assert!(err.contains("LCASE"), "{err}");
        let err = q("SELECT len(1)").await.unwrap_err().to_string();
        assert!(err.contains("LEN"), "{err}");
        let err = q("SELECT lpad('a', 'b', 'c')")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("LPAD"), "{err}");
    }
}
