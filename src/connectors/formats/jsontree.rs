//! A small JSON tree that keeps numbers exactly as written.
//!
//! ksqlDB reads JSON with Jackson configured for exact big decimals, so
//! `12345678987654321.2345678987654321` reaches a `DECIMAL(33, 16)` column
//! without passing through a double. `serde_json::Value` (without the
//! `arbitrary_precision` feature) cannot do that, hence this tree: numbers
//! keep their source text, objects keep every member in order (lookups take
//! the last duplicate, as Jackson's `readTree` does).
//!
//! The parser is strict RFC 8259 (no comments, no `NaN`, no leading zeros,
//! nothing but whitespace after the value), checks UTF-8 up front, and
//! bounds nesting at [`MAX_DEPTH`] (Jackson's default limit), so no input can
//! exhaust the stack.

use std::borrow::Cow;

/// Jackson's default `StreamReadConstraints` nesting limit.
pub(crate) const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonNode {
    Null,
    Bool(bool),
    /// The number's text as written, already checked to be a JSON number.
    Number(String),
    String(String),
    Array(Vec<JsonNode>),
    Object(Vec<(String, JsonNode)>),
}

impl JsonNode {
    /// The Jackson node class ksqlDB names in its coercion errors
    /// ("sourceType: TextNode").
    pub(crate) fn jackson_kind(&self) -> &'static str {
        match self {
            JsonNode::Null => "NullNode",
            JsonNode::Bool(_) => "BooleanNode",
            JsonNode::Number(n) => number_kind(n),
            JsonNode::String(_) => "TextNode",
            JsonNode::Array(_) => "ArrayNode",
            JsonNode::Object(_) => "ObjectNode",
        }
    }

    /// The member ksqlDB's struct reader picks for `name`: an exact match,
    /// else a member whose upper-cased name equals `name`.
    pub(crate) fn member(&self, name: &str) -> Option<&JsonNode> {
        let JsonNode::Object(members) = self else {
            return None;
        };
        members
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .or_else(|| members.iter().rev().find(|(k, _)| k.to_uppercase() == name))
            .map(|(_, v)| v)
    }

    /// From a `serde_json::Value` (numbers keep serde_json's text for them).
    pub(crate) fn from_serde(v: &serde_json::Value) -> JsonNode {
        match v {
            serde_json::Value::Null => JsonNode::Null,
            serde_json::Value::Bool(b) => JsonNode::Bool(*b),
            serde_json::Value::Number(n) => JsonNode::Number(n.to_string()),
            serde_json::Value::String(s) => JsonNode::String(s.clone()),
            serde_json::Value::Array(a) => {
                JsonNode::Array(a.iter().map(Self::from_serde).collect())
            }
            serde_json::Value::Object(o) => JsonNode::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Self::from_serde(v)))
                    .collect(),
            ),
        }
    }

    /// Jackson's `asText()` of a scalar node, and its compact JSON for
    /// objects (ksqlDB's STRING coercion of an object).
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            JsonNode::Null => out.push_str("null"),
            JsonNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonNode::Number(n) => out.push_str(n),
            JsonNode::String(s) => write_string(out, s),
            JsonNode::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            JsonNode::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// The Jackson node class of a number.
fn number_kind(n: &str) -> &'static str {
    if !is_integral(n) {
        return "DecimalNode";
    }
    match n.parse::<i64>() {
        Ok(v) if i32::try_from(v).is_ok() => "IntNode",
        Ok(_) => "LongNode",
        Err(_) => "BigIntegerNode",
    }
}

/// A parsed document that borrows from its input: numbers are their text,
/// strings without escapes are slices of it. Decoders read records from
/// this; [`JsonNode`] is the owned form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'_> {
    /// The owned tree.
    pub(crate) fn to_node(&self) -> JsonNode {
        match self {
            Node::Null => JsonNode::Null,
            Node::Bool(b) => JsonNode::Bool(*b),
            Node::Number(n) => JsonNode::Number(n.to_string()),
            Node::String(s) => JsonNode::String(s.to_string()),
            Node::Array(items) => JsonNode::Array(items.iter().map(Node::to_node).collect()),
            Node::Object(members) => JsonNode::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_node()))
                    .collect(),
            ),
        }
    }

    /// As [`JsonNode::jackson_kind`].
    pub(crate) fn jackson_kind(&self) -> &'static str {
        match self {
            Node::Null => "NullNode",
            Node::Bool(_) => "BooleanNode",
            Node::Number(n) => number_kind(n),
            Node::String(_) => "TextNode",
            Node::Array(_) => "ArrayNode",
            Node::Object(_) => "ObjectNode",
        }
    }
}

/// True if a JSON number's text has no fraction or exponent.
pub(crate) fn is_integral(n: &str) -> bool {
    !n.contains(['.', 'e', 'E'])
}

/// Writes `s` as a JSON string literal, escaping as Jackson does.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one JSON document. Errors are short descriptions without the
/// input (ksqlDB clears locations so record contents never reach the logs).
pub(crate) fn parse(bytes: &[u8]) -> Result<JsonNode, String> {
    parse_borrowed(bytes).map(|n| n.to_node())
}

/// Parses one JSON document into a tree that borrows from `bytes`; the
/// same checks and errors as [`parse`].
pub(crate) fn parse_borrowed(bytes: &[u8]) -> Result<Node<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "Invalid UTF-8 in JSON".to_string())?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    p.skip_ws();
    if p.pos == p.s.len() {
        return Err("No content to map due to end-of-input".into());
    }
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "Unexpected character after the JSON value at offset {}",
            p.pos
        ));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        if self.pos >= self.s.len() {
            Err(format!("Unexpected end-of-input: {what}"))
        } else {
            Err(format!("{what} at offset {}", self.pos))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, String> {
        if depth >= MAX_DEPTH {
            return Err(format!(
                "Document nesting depth exceeds the maximum allowed ({MAX_DEPTH})"
            ));
        }
        match self.s.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Node::String(self.string()?)),
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("Unexpected character, expected a JSON value"),
        }
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Result<Node<'a>, String> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(node)
        } else {
            self.err("Unrecognized token")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Node<'a>, String> {
        let start = self.pos;
        if self.s[self.pos] == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.digits() {
            0 => return self.err("Invalid number: expected a digit"),
            n if n > 1 && self.s[int_start] == b'0' => {
                return self.err("Invalid number: leading zeroes not allowed")
            }
            _ => {}
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("Invalid number: expected a digit after the decimal point");
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("Invalid number: expected a digit in the exponent");
            }
        }
        let text: &'a str = self.text;
        Ok(Node::Number(&text[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.text.get(self.pos..self.pos + 4) else {
            return self.err("Invalid unicode escape");
        };
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err("Invalid unicode escape");
        }
        let v = u32::from_str_radix(h, 16).or_else(|_| self.err("Invalid unicode escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.pos += 1; // opening quote
        let text: &'a str = self.text;
        // The common case: no escapes, the string is a slice of the input.
        let first = self.pos;
        while let Some(&b) = self.s.get(self.pos) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            self.pos += 1;
        }
        if self.s.get(self.pos) == Some(&b'"') {
            self.pos += 1;
            return Ok(Cow::Borrowed(&text[first..self.pos - 1]));
        }
        self.pos = first;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.s.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.s.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.err("Unterminated escape");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0C}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi)
                                && self.s[self.pos..].starts_with(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                } else {
                                    self.pos = save;
                                    None
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            // Lone surrogates have no Rust `char`.
                            out.push(c.unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return self.err("Unrecognized character escape");
                        }
                    }
                }
                Some(_) => return self.err("Illegal unquoted control character in string"),
                None => return self.err("Unterminated string"),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node<'a>, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Node::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Array(items));
                }
                _ => return self.err("Expected ',' or ']' in array"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node<'a>, String> {
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Node::Object(members));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return self.err("Expected a field name in double quotes");
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                return self.err("Expected ':' after a field name");
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Object(members));
                }
                _ => return self.err("Expected ',' or '}' in object"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> JsonNode {
        JsonNode::Number(s.into())
    }

    #[test]
    fn parses_and_keeps_numbers_exact() {
        let v = parse(br#" {"a": [1, -2.50, 1e400, null, true], "b": "x\u00e9\n\ud83d\ude00"} "#)
            .unwrap();
        assert_eq!(
            v,
            JsonNode::Object(vec![
                (
                    "a".into(),
                    JsonNode::Array(vec![
                        num("1"),
                        num("-2.50"),
                        num("1e400"),
                        JsonNode::Null,
                        JsonNode::Bool(true)
                    ])
                ),
                ("b".into(), JsonNode::String("xé\n😀".into())),
            ])
        );
        let mut out = String::new();
        v.write(&mut out);
        assert_eq!(out, "{\"a\":[1,-2.50,1e400,null,true],\"b\":\"xé\\n😀\"}");
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        for bad in [
            &b""[..],
            b"   ",
            b"{",
            b"[1,",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b"tru",
            b"NaN",
            b"{\"a\" 1}",
            b"{a:1}",
            b"\"abc",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"\x01\"",
            b"1 2",
            b"\xff\xfe",
            b"\"\xc3\"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bounds_nesting() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(parse(deep.as_bytes()).is_ok());
        let too_deep = "[".repeat(100_000);
        assert!(parse(too_deep.as_bytes())
            .unwrap_err()
            .contains("nesting depth"));
    }

    #[test]
    fn member_lookup_prefers_exact_then_upper_case() {
        let v = parse(br#"{"foo": 1, "FOO": 2, "bar": 3, "Bar": 4}"#).unwrap();
        assert_eq!(v.member("FOO"), Some(&num("2")));
        assert_eq!(v.member("foo"), Some(&num("1")));
        assert_eq!(v.member("BAR"), Some(&num("4")));
        assert_eq!(v.member("bar"), Some(&num("3")));
        assert_eq!(v.member("baz"), None);
    }

    #[test]
    fn names_jackson_node_kinds() {
        assert_eq!(num("1").jackson_kind(), "IntNode");
        assert_eq!(num("3000000000").jackson_kind(), "LongNode");
        assert_eq!(num("99999999999999999999").jackson_kind(), "BigIntegerNode");
        assert_eq!(num("1.0").jackson_kind(), "DecimalNode");
        assert_eq!(JsonNode::String("".into()).jackson_kind(), "TextNode");
    }
}
