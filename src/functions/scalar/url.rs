//! URL functions: URL_EXTRACT_{HOST,PATH,PORT,PROTOCOL,QUERY,FRAGMENT,PARAMETER},
//! URL_ENCODE_PARAM, URL_DECODE_PARAM.
//!
//! A URL is split as `java.net.URI` does: `scheme:` `//authority` `path`
//! `?query` `#fragment`; path, query and fragment are percent-decoded. A
//! missing part is NULL; text that is not a valid URI gives NULL (ksqlDB
//! raises a function error). Parameter encoding is HTML form encoding
//! (space as `+`), as Guava's `urlFormParameterEscaper` and `URLDecoder`.

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{ret_i32, ret_str, utf8, Arg::*, Call, Params, RowUdf};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "URL_DECODE_PARAM",
        "Decodes an application/x-www-form-urlencoded value",
    ),
    (
        "URL_ENCODE_PARAM",
        "Encodes a value as application/x-www-form-urlencoded",
    ),
    ("URL_EXTRACT_FRAGMENT", "The fragment of a URL"),
    ("URL_EXTRACT_HOST", "The host of a URL"),
    (
        "URL_EXTRACT_PARAMETER",
        "The value of a query parameter of a URL",
    ),
    ("URL_EXTRACT_PATH", "The path of a URL"),
    ("URL_EXTRACT_PORT", "The port of a URL"),
    ("URL_EXTRACT_PROTOCOL", "The protocol (scheme) of a URL"),
    ("URL_EXTRACT_QUERY", "The query string of a URL"),
];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const S: Params = Params::Fixed(&[&[Str]]);
    fn part(c: &mut Call<'_>, f: fn(&Url) -> Option<String>) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(
            c.s(0).and_then(Url::parse).and_then(|u| f(&u)),
        ))
    }
    vec![
        RowUdf::new("url_extract_host", S, ret_str, |c| {
            part(c, |u| u.host.clone())
        })
        .build(),
        RowUdf::new("url_extract_path", S, ret_str, |c| {
            part(c, |u| u.path.clone())
        })
        .build(),
        RowUdf::new("url_extract_protocol", S, ret_str, |c| {
            part(c, |u| u.scheme.clone())
        })
        .build(),
        RowUdf::new("url_extract_query", S, ret_str, |c| {
            part(c, |u| u.query.clone())
        })
        .build(),
        RowUdf::new("url_extract_fragment", S, ret_str, |c| {
            part(c, |u| u.fragment.clone())
        })
        .build(),
        RowUdf::new("url_extract_port", S, ret_i32, |c| {
            Ok(ScalarValue::Int32(
                c.s(0).and_then(Url::parse).and_then(|u| u.port),
            ))
        })
        .build(),
        RowUdf::new(
            "url_extract_parameter",
            Params::Fixed(&[&[Str, Str]]),
            ret_str,
            |c| {
                let (Some(url), Some(name)) = (c.s(0), c.s(1)) else {
                    return c.null();
                };
                let query = Url::parse(url).and_then(|u| u.query);
                Ok(ScalarValue::Utf8(query.and_then(|q| param(&q, name))))
            },
        )
        .build(),
        RowUdf::new("url_encode_param", S, ret_str, |c| match c.s(0) {
            Some(s) => Ok(utf8(form_encode(s))),
            None => c.null(),
        })
        .build(),
        RowUdf::new("url_decode_param", S, ret_str, |c| {
            Ok(ScalarValue::Utf8(
                c.s(0).and_then(|s| percent_decode(s, true)),
            ))
        })
        .build(),
    ]
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Url {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<i32>,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
}

impl Url {
    fn parse(s: &str) -> Option<Url> {
        if s.chars()
            .any(|c| c.is_whitespace() || "\"<>\\^`{|}".contains(c))
        {
            return None;
        }
        let mut u = Url::default();
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        u.fragment = match fragment {
            Some(f) => Some(percent_decode(f, false)?),
            None => None,
        };
        // A scheme: letters, digits, + - . up to the first ':' before any '/'.
        let mut rest = rest;
        if let Some((scheme, after)) = rest.split_once(':') {
            let valid = scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if valid {
                u.scheme = Some(scheme.to_string());
                rest = after;
            }
        }
        let (hier, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        u.query = match query {
            Some(q) => Some(percent_decode(q, false)?),
            None => None,
        };
        let path = if let Some(after) = hier.strip_prefix("//") {
            let (authority, path) = match after.find('/') {
                Some(i) => after.split_at(i),
                None => (after, ""),
            };
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = match host_port.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || host_port.starts_with('[') => (h, Some(p)),
                _ => (host_port, None),
            };
            if !host.is_empty() {
                u.host = Some(host.to_string());
            }
            u.port = match port {
                Some("") | None => None,
                Some(p) => Some(p.parse::<i32>().ok()?),
            };
            path
        } else {
            hier
        };
        // An opaque URI (mailto:x) has no path in java.net.URI.
        let opaque = u.scheme.is_some() && !hier.starts_with('/');
        if !opaque {
            u.path = Some(percent_decode(path, false)?);
        }
        Some(u)
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    for p in query.split('&') {
        match p.split_once('=') {
            None if p == name => return Some(String::new()),
            Some((k, v)) if k == name => return Some(v.to_string()),
            _ => {}
        }
    }
    None
}

fn hex_val(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Percent-decode (and `+` to space for form values); `None` if malformed.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi * 16 + lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[tokio::test]
    async fn extracts_parts() {
        let u = "'http://user@www.test.com:8080/nested/p%20ath?query=val&flag&x=1#frag'";
        assert_eq!(
            q1(&format!("SELECT url_extract_host({u}), url_extract_port({u}), url_extract_path({u}), url_extract_protocol({u})")).await,
            "www.test.com|8080|/nested/p ath|http"
        );
        assert_eq!(
            q1(&format!("SELECT url_extract_query({u}), url_extract_fragment({u}), url_extract_parameter({u}, 'x'), url_extract_parameter({u}, 'flag'), url_extract_parameter({u}, 'no')")).await,
            "query=val&flag&x=1|frag|1||NULL"
        );
        assert_eq!(q1("SELECT url_extract_port('http://a.com/'), url_extract_host('not a url'), url_extract_path('mailto:me@x.com')").await, "NULL|NULL|NULL");
    }

    #[tokio::test]
    async fn encodes_params() {
        assert_eq!(q1("SELECT url_encode_param('a b&c=d/é'), url_decode_param('a+b%26c%3Dd'), url_decode_param('%zz')").await, "a+b%26c%3Dd%2F%C3%A9|a b&c=d|NULL");
    }
}
