//! JSON records straight into column buffers.
//!
//! The same reading as [`super::json::decode`] (same coercions, same error
//! texts), without the owned tree and without a `ScalarValue` per cell:
//! the document is parsed into a tree that borrows from the record's bytes
//! ([`Node`]), and each column's member is coerced straight into its
//! [`Column`]. Nested types (ARRAY, MAP, STRUCT) still go through the
//! scalar coercion.
//!
//! Member names are matched as ksqlDB's struct reader does: the last member
//! named exactly as the column, else the last whose upper-cased name is the
//! column's. Which column a member name goes to is worked out once per
//! spelling and position, not per record: records of one topic almost
//! always list the same names in the same order, so a member is matched by
//! comparing its name with the one seen at its position last time.

use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};

use super::columns::Column;
use super::json::{as_text, coerce, jackson_long, CoerceError};
use super::jsontree::{self, Node};
use super::text::{base64_decode, parse_java_double, parse_java_int, parse_java_long, DecimalText};
use crate::catalog::types::display_arrow;

/// Where a member name goes: the column it names exactly, and the column
/// its upper-cased spelling names.
#[derive(Debug, Clone)]
struct Match {
    name: Box<str>,
    exact: Option<usize>,
    upper: Option<usize>,
}

/// A JSON decoder for one list of columns.
#[derive(Debug)]
pub(super) struct JsonColumns {
    fields: Vec<FieldRef>,
    unwrapped: bool,
    /// The match of the member name last seen at each position.
    seen: Vec<Match>,
    /// Per column, the chosen member of the current record.
    exact: Vec<Option<usize>>,
    upper: Vec<Option<usize>>,
}

/// `key.to_uppercase() == name`, without allocating (Rust upper-cases a
/// string one character at a time, so this is the same comparison).
fn upper_eq(key: &str, name: &str) -> bool {
    if key.is_ascii() && name.is_ascii() {
        return key.len() == name.len()
            && key
                .bytes()
                .zip(name.bytes())
                .all(|(k, n)| k.to_ascii_uppercase() == n);
    }
    key.chars().flat_map(char::to_uppercase).eq(name.chars())
}

impl JsonColumns {
    pub(super) fn new(fields: &[FieldRef], unwrapped: bool) -> JsonColumns {
        JsonColumns {
            fields: fields.to_vec(),
            unwrapped,
            seen: Vec::new(),
            exact: vec![None; fields.len()],
            upper: vec![None; fields.len()],
        }
    }

    fn resolve(&mut self, position: usize, key: &str) -> (Option<usize>, Option<usize>) {
        if let Some(m) = self.seen.get(position) {
            if *m.name == *key {
                return (m.exact, m.upper);
            }
        }
        let m = Match {
            name: key.into(),
            exact: self.fields.iter().position(|f| f.name() == key),
            upper: self.fields.iter().position(|f| upper_eq(key, f.name())),
        };
        let found = (m.exact, m.upper);
        if position < self.seen.len() {
            self.seen[position] = m;
        } else if position == self.seen.len() && position < 4 * self.fields.len() + 16 {
            self.seen.push(m);
        }
        found
    }

    /// Decodes one record into `cols` (one per field); `Ok(false)` for a
    /// wrapped record that is `null` (nothing is appended). On an error
    /// some columns may have a value appended: the caller truncates.
    pub(super) fn decode(&mut self, bytes: &[u8], cols: &mut [Column]) -> Result<bool, String> {
        let node = jsontree::parse_borrowed(bytes)?;
        if self.unwrapped {
            coerce_into(&node, self.fields[0].data_type(), &mut cols[0])
                .map_err(CoerceError::finish)?;
            return Ok(true);
        }
        let members = match node {
            Node::Null => return Ok(false),
            Node::Object(members) => members,
            other => {
                let row = DataType::Struct(self.fields.iter().cloned().collect());
                return Err(
                    CoerceError::convert_kind(other.jackson_kind(), &display_arrow(&row)).finish(),
                );
            }
        };
        self.exact.fill(None);
        self.upper.fill(None);
        for (i, (k, _)) in members.iter().enumerate() {
            let (exact, upper) = self.resolve(i, k);
            if let Some(c) = exact {
                self.exact[c] = Some(i);
            }
            if let Some(c) = upper {
                self.upper[c] = Some(i);
            }
        }
        for (c, (f, col)) in self.fields.iter().zip(cols.iter_mut()).enumerate() {
            let member = self.exact[c]
                .or(self.upper[c])
                .map_or(&Node::Null, |i| &members[i].1);
            coerce_into(member, f.data_type(), col)
                .map_err(|e| e.under(&format!(".{}", f.name())).finish())?;
        }
        Ok(true)
    }
}

/// ksqlDB's coercion of a JSON value to a column type, appended to `col`
/// (exactly [`super::json::coerce`], which nested types still use).
fn coerce_into(node: &Node<'_>, dt: &DataType, col: &mut Column) -> Result<(), CoerceError> {
    if let Node::Null = node {
        col.push_null();
        return Ok(());
    }
    let long_of = |target: &str| -> Result<i64, CoerceError> {
        match node {
            Node::Number(n) => Ok(jackson_long(n)),
            Node::String(s) => parse_java_long(s).ok_or_else(|| CoerceError::coerce_string(target)),
            other => Err(CoerceError::convert_kind(other.jackson_kind(), target)),
        }
    };
    let convert = |required: &str| CoerceError::convert_kind(node.jackson_kind(), required);
    match dt {
        DataType::Boolean => match node {
            Node::Bool(b) => col.push_bool(*b),
            _ => return Err(convert("BOOLEAN")),
        },
        DataType::Int32 => match node {
            Node::Number(n) => col.push_i32(jackson_long(n) as i32),
            Node::String(s) => col
                .push_i32(parse_java_int(s).ok_or_else(|| CoerceError::coerce_string("INTEGER"))?),
            _ => return Err(convert("INTEGER")),
        },
        DataType::Int64 => col.push_i64(long_of("BIGINT")?),
        DataType::Float64 => match node {
            Node::Number(n) => col.push_f64(n.parse().unwrap_or(f64::NAN)),
            Node::String(s) => col.push_f64(
                parse_java_double(s).ok_or_else(|| CoerceError::coerce_string("DOUBLE"))?,
            ),
            _ => return Err(convert("DOUBLE")),
        },
        DataType::Decimal128(p, s) => {
            let text: &str = match node {
                Node::Number(n) => n,
                Node::String(n) => n,
                _ => return Err(convert(&display_arrow(dt))),
            };
            let d = DecimalText::parse(text.trim())
                .ok_or_else(|| CoerceError::coerce_string(&display_arrow(dt)))?;
            col.push_decimal(d.to_decimal128(*p, *s).map_err(CoerceError::new)?);
        }
        DataType::Utf8 => match node {
            Node::String(s) => col.push_str(s),
            // Rare (a number, object or array read as text): the scalar
            // path's coercion, over the owned tree.
            other => col.push_str(&as_text(&other.to_node())?),
        },
        DataType::Binary => match node {
            Node::String(s) => col.push_bytes(&base64_decode(s).ok_or_else(|| {
                CoerceError::new(format!("Value is not a valid Base64 encoded string: {s}"))
            })?),
            _ => return Err(convert("BYTES")),
        },
        DataType::Timestamp(TimeUnit::Millisecond, _) => col.push_i64(long_of("TIMESTAMP")?),
        DataType::Date32 => {
            let days = long_of("DATE")?;
            col.push_i32(
                i32::try_from(days)
                    .map_err(|_| CoerceError::new(format!("Date out of range: {days} days")))?,
            );
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let ms = long_of("TIME")?;
            if !(0..=86_400_000).contains(&ms) {
                return Err(CoerceError::new(
                    "Time values must use number of milliseconds greater than 0 and less than \
                     86400000.",
                ));
            }
            col.push_i32(ms as i32);
        }
        _ => col.push_scalar(coerce(&node.to_node(), dt)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_eq_is_to_uppercase_equality() {
        for (k, n) in [
            ("id", "ID"),
            ("Id", "ID"),
            ("ID", "ID"),
            ("idx", "ID"),
            ("i", "ID"),
            ("straße", "STRASSE"),
            ("ǆ", "Ǆ"),
            ("ß", "ß"),
            ("é", "É"),
            ("", ""),
        ] {
            assert_eq!(upper_eq(k, n), k.to_uppercase() == n, "{k} {n}");
        }
    }
}
