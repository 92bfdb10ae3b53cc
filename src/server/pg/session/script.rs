//! A script as the wire brings it: split into statements at the `;`s
//! outside quotes and comments, and positions in a statement made
//! positions in the script.

use crate::error::{Error, Position};

/// One statement's byte range in a script (without its `;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(super) start: usize,
    pub(super) end: usize,
}

/// Split a script at the `;`s outside quotes and comments; empty
/// statements are dropped.
pub(crate) fn split(script: &str) -> Vec<Chunk> {
    let bytes = script.as_bytes();
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |chunks: &mut Vec<Chunk>, s: usize, e: usize| {
        let text = &script[s..e];
        let lead = text.len() - text.trim_start().len();
        let trail = text.len() - text.trim_end().len();
        if !strip_comments(text).trim().is_empty() {
            chunks.push(Chunk {
                start: s + lead,
                end: e - trail,
            });
        }
    };
    while i < bytes.len() {
        if let Some(end) = skip_quoted(bytes, i) {
            i = end + 1;
            continue;
        }
        if bytes[i] == b';' {
            push(&mut chunks, start, i);
            start = i + 1;
        }
        i += 1;
    }
    if start < bytes.len() {
        push(&mut chunks, start, bytes.len());
    }
    chunks
}

/// If a quoted string or name (`'...'`, `"..."`, `` `...` ``; a doubled
/// quote inside is an escaped one) or a comment (`--` to the end of the
/// line, `/* */`) starts at byte `i`, the index of its last byte (past the
/// end when it is not closed).
pub(crate) fn skip_quoted(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    match *bytes.get(i)? {
        q @ (b'\'' | b'"' | b'`') => {
            j += 1;
            while j < bytes.len() {
                if bytes[j] == q {
                    if bytes.get(j + 1) == Some(&q) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
        }
        b'-' if bytes.get(i + 1) == Some(&b'-') => {
            while j < bytes.len() && bytes[j] != b'\n' {
                j += 1;
            }
        }
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            j += 2;
            while j + 1 < bytes.len() && !(bytes[j] == b'*' && bytes[j + 1] == b'/') {
                j += 1;
            }
            j += 1;
        }
        _ => return None,
    }
    Some(j)
}

/// The text without `--` and `/* */` comments (outside quotes).
pub(super) fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut kept) = (0, 0);
    while i < bytes.len() {
        let Some(end) = skip_quoted(bytes, i) else {
            i += 1;
            continue;
        };
        let end = (end + 1).min(bytes.len());
        if matches!(bytes[i], b'-' | b'/') {
            // A comment: what came before it stays, it goes.
            out.push_str(&text[kept..i]);
            kept = end;
        }
        i = end;
    }
    out.push_str(&text[kept..]);
    out
}

/// The line and column (1-based, in characters) of a byte offset.
pub(super) fn position_of(script: &str, offset: usize) -> Position {
    let before = &script[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() as u64 + 1)
        .unwrap_or(1);
    Position { line, column }
}

/// A position in a statement made a position in the script it starts at
/// `start` in.
pub(super) fn shift(e: Error, start: Position) -> Error {
    let Some(p) = e.position() else {
        return e;
    };
    let moved = if p.line == 1 {
        Position {
            line: start.line,
            column: start.column + p.column - 1,
        }
    } else {
        Position {
            line: start.line + p.line - 1,
            column: p.column,
        }
    };
    e.replace_position(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<&str> {
        split(script)
            .into_iter()
            .map(|c| &script[c.start..c.end])
            .collect()
    }

    #[test]
    fn scripts_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            texts("SELECT ';' ; -- a; comment\nSET x = 'a;b';; /* ; */ SHOW y"),
            vec![
                "SELECT ';'",
                "-- a; comment\nSET x = 'a;b'",
                "/* ; */ SHOW y"
            ]
        );
        assert_eq!(texts(" ; -- only a comment\n ;"), Vec::<&str>::new());
        assert_eq!(
            texts("INSERT INTO s VALUES ('it''s;')"),
            vec!["INSERT INTO s VALUES ('it''s;')"]
        );
    }

    #[test]
    fn comments_go_and_quoted_text_stays() {
        assert_eq!(
            strip_comments("SELECT '--x' /* c */, a -- tail\nFROM \"/*t*/\" --"),
            "SELECT '--x' , a FROM \"/*t*/\" "
        );
        assert_eq!(strip_comments("/* open"), "");
        assert_eq!(strip_comments("'open -- quote"), "'open -- quote");
        assert_eq!(
            super::super::select_kind("/* x */ select 1 -- EMIT CHANGES"),
            Some(false)
        );
    }

    #[test]
    fn positions_move_by_where_the_statement_starts() {
        let script = "SET x = 1;\n  CREATE STREAM";
        let start = position_of(script, 13);
        assert_eq!(start, Position { line: 2, column: 3 });
        let e = Error::syntax("bad", Some(Position { line: 1, column: 8 }));
        assert_eq!(
            shift(e, start).position(),
            Some(Position {
                line: 2,
                column: 10
            })
        );
        let e = Error::syntax("bad", Some(Position { line: 2, column: 4 }));
        assert_eq!(
            shift(e, start).position(),
            Some(Position { line: 3, column: 4 })
        );
    }
}
