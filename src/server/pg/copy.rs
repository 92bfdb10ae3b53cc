//! `COPY` as Postgres has it: `COPY (query) TO STDOUT` and `COPY name
//! [(columns)] TO STDOUT` send a pull or push query's rows as COPY data;
//! `COPY name [(columns)] FROM STDIN` writes the rows the client sends into
//! a stream or table (the bulk path: one send for the whole COPY, see
//! `crate::engine` and its `insert` module).
//!
//! Options, in either of Postgres' forms (`WITH (FORMAT csv, HEADER)` or
//! `CSV HEADER`): `FORMAT text | csv | binary` (binary out only),
//! `HEADER`, `DELIMITER`, `NULL`, `QUOTE`, `ESCAPE`, `ENCODING 'UTF8'`.
//! Text format: one row per line, values separated by a tab, `\N` for NULL,
//! backslash escapes; csv: RFC 4180 with Postgres' rules (an unquoted empty
//! value is NULL, a quoted one is the empty string).
//!
//! COPY data in is kept until the client's CopyDone, up to [`COPY_LIMIT`]
//! bytes, then read whole: a bad row anywhere writes nothing, and the error
//! names its line and column.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident,
    Statement as SqlStatement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use futures::StreamExt;
use pgwire::api::results::{CopyEncoder, CopyResponse, FieldInfo, Response};
use pgwire::messages::copy::CopyData;

use super::results::{fitting, Rows};
use super::session::skip_quoted;
use crate::error::{Error, Result};

/// The most COPY data one `COPY ... FROM STDIN` may send.
pub(crate) const COPY_LIMIT: usize = 512 << 20;

/// How COPY data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Csv,
    Binary,
}

/// A COPY's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub format: Format,
    pub header: bool,
    pub delimiter: char,
    pub null: String,
    pub quote: char,
    pub escape: char,
}

/// A COPY statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Copy {
    /// Rows of a query (a SELECT, with or without EMIT) to the client; `at`:
    /// the query's byte offset in the statement.
    Out {
        query: String,
        at: usize,
        options: Options,
    },
    /// Rows from the client into a stream or table (`columns`: None, all
    /// of them).
    In {
        target: String,
        columns: Option<Vec<String>>,
        options: Options,
    },
}

/// The COPY statement `text` is (None: not one).
pub(crate) fn statement(text: &str) -> Result<Option<Copy>> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    if !t.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("COPY"))
        || t[4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return Ok(None);
    }
    let rest = t[4..].trim_start();
    if rest.starts_with('(') {
        // The query is Sluice's SQL, which sqlparser does not read: only
        // what follows it is parsed as Postgres'.
        let open = t.len() - rest.len();
        let close = closing_paren(t, open).ok_or_else(|| {
            Error::syntax("COPY (query): the query's parenthesis is not closed", None)
        })?;
        let tail = parse(&format!("COPY copied {}", &t[close + 1..]))?;
        let (to, target, options) = tail;
        if !to || target != CopyTarget::Stdout {
            return Err(Error::Unsupported(
                "COPY (query) to anything but STDOUT".into(),
            ));
        }
        return Ok(Some(Copy::Out {
            query: t[open + 1..close].to_string(),
            at: lead + open + 1,
            options,
        }));
    }
    let parsed = SqlParser::parse_sql(&PostgreSqlDialect {}, t)
        .map_err(|e| Error::syntax(format!("COPY: {e}"), None))?;
    let [SqlStatement::Copy {
        source: CopySource::Table {
            table_name,
            columns,
        },
        to,
        target,
        options,
        legacy_options,
        ..
    }] = parsed.as_slice()
    else {
        return Err(Error::syntax("COPY: expected one COPY statement", None));
    };
    let options = options_of(options, legacy_options)?;
    let Some(name) = table_name.0.last().and_then(|p| p.as_ident()) else {
        return Err(Error::syntax("COPY: expected a stream or table name", None));
    };
    let target_name = folded(name);
    let columns: Option<Vec<String>> =
        (!columns.is_empty()).then(|| columns.iter().map(folded).collect());
    match (to, target) {
        (true, CopyTarget::Stdout) => {
            let list = match &columns {
                Some(c) => c.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", "),
                None => "*".into(),
            };
            Ok(Some(Copy::Out {
                query: format!("SELECT {list} FROM {}", quoted(&target_name)),
                at: lead,
                options,
            }))
        }
        (false, CopyTarget::Stdin) if options.format != Format::Binary => Ok(Some(Copy::In {
            target: target_name,
            columns,
            options,
        })),
        (false, CopyTarget::Stdin) => Err(Error::Unsupported("COPY FROM STDIN in binary format".into())),
        _ => Err(Error::Unsupported(
            "COPY to or from a file or a program on the server (use STDIN or STDOUT: psql's \\copy reads and writes files on the client)".into(),
        )),
    }
}

/// `COPY name ...`'s direction, target and options.
fn parse(text: &str) -> Result<(bool, CopyTarget, Options)> {
    let parsed = SqlParser::parse_sql(&PostgreSqlDialect {}, text)
        .map_err(|e| Error::syntax(format!("COPY: {e}"), None))?;
    match parsed.as_slice() {
        [SqlStatement::Copy {
            to,
            target,
            options,
            legacy_options,
            ..
        }] => Ok((*to, target.clone(), options_of(options, legacy_options)?)),
        _ => Err(Error::syntax("COPY: expected one COPY statement", None)),
    }
}

/// A name as Sluice reads it: unquoted, in upper case.
fn folded(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_uppercase(),
    }
}

/// A name quoted for Sluice's SQL.
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The byte index of the parenthesis closing the one at `open` (quotes and
/// comments skipped).
fn closing_paren(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, open);
    while i < bytes.len() {
        if let Some(end) = skip_quoted(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The options of either form, over the format's defaults.
fn options_of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Options> {
    let mut format = Format::Text;
    let (mut header, mut delimiter, mut null, mut quote, mut escape) =
        (false, None, None, None, None);
    let unsupported = |what: String| Err(Error::Unsupported(format!("COPY option {what}")));
    for o in options {
        match o {
            CopyOption::Format(f) => {
                format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => Format::Text,
                    "csv" => Format::Csv,
                    "binary" => Format::Binary,
                    other => {
                        return Err(Error::BadParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )))
                    }
                }
            }
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("UTF8") || e.eq_ignore_ascii_case("UTF-8") => {}
            other => return unsupported(other.to_string()),
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => format = Format::Binary,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(s) => null = Some(s.clone()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                format = Format::Csv;
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        other => return unsupported(other.to_string()),
                    }
                }
            }
            other => return unsupported(other.to_string()),
        }
    }
    let csv = format == Format::Csv;
    if !csv && (quote.is_some() || escape.is_some()) {
        return Err(Error::BadParameter(
            "COPY QUOTE and ESCAPE are available only in CSV mode".into(),
        ));
    }
    if header && format == Format::Binary {
        return Err(Error::BadParameter(
            "cannot specify HEADER in BINARY mode".into(),
        ));
    }
    let quote = quote.unwrap_or('"');
    let options = Options {
        format,
        header,
        delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
        null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
        quote,
        escape: escape.unwrap_or(quote),
    };
    if matches!(options.delimiter, '\r' | '\n' | '\\') || (csv && options.delimiter == quote) {
        return Err(Error::BadParameter(format!(
            "COPY delimiter cannot be {:?}",
            options.delimiter
        )));
    }
    Ok(options)
}

/// Rows as COPY data in `options`' format (the header line first, when
/// asked for).
pub(crate) fn copy_response(
    fields: Arc<Vec<FieldInfo>>,
    rows: Rows,
    options: &Options,
) -> Response {
    let columns = fields.len();
    if options.format == Format::Binary {
        let mut encoder = CopyEncoder::new_binary(fields);
        let data = rows.map(move |row| {
            for cell in &fitting(row, columns)? {
                encoder.encode_field(cell)?;
            }
            Ok(encoder.take_copy())
        });
        return Response::CopyOut(CopyResponse::new(1, columns, data));
    }
    let header = options.header.then(|| {
        let names: Vec<Option<String>> =
            fields.iter().map(|f| Some(f.name().to_string())).collect();
        Ok(CopyData::new(line(&names, options).into()))
    });
    let options = options.clone();
    let data = rows.map(move |row| {
        let cells: Vec<Option<String>> = fitting(row, columns)?.iter().map(|v| v.text()).collect();
        Ok(CopyData::new(line(&cells, &options).into()))
    });
    let data = futures::stream::iter(header).chain(data);
    Response::CopyOut(CopyResponse::new(0, columns, data))
}

/// One row of COPY data in text or csv (None: NULL), with its line end.
fn line(cells: &[Option<String>], options: &Options) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(options.delimiter);
        }
        match (cell, options.format) {
            (None, _) => out.push_str(&options.null),
            (Some(c), Format::Csv) => csv_cell(c, &mut out, options),
            (Some(c), _) => text_cell(c, &mut out, options),
        }
    }
    out.push('\n');
    out
}

/// A value in text format: backslash escapes for what would end it.
fn text_cell(value: &str, out: &mut String, options: &Options) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c == options.delimiter => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// A value in csv: quoted when it holds the delimiter, a quote, a line
/// end, or could be read as NULL (`""` is the empty string).
fn csv_cell(value: &str, out: &mut String, options: &Options) {
    let special = |c: char| c == options.delimiter || c == options.quote || c == '\n' || c == '\r';
    if !value.chars().any(special) && value != options.null && value != "\\." {
        out.push_str(value);
        return;
    }
    out.push(options.quote);
    for c in value.chars() {
        if c == options.quote || c == options.escape {
            out.push(options.escape);
        }
        out.push(c);
    }
    out.push(options.quote);
}

/// The rows of COPY data in `options`' format (None: NULL), each with the
/// line it starts on; the header line, when there is one, is skipped.
pub(crate) fn read_rows(
    data: &[u8],
    options: &Options,
) -> Result<Vec<(usize, Vec<Option<String>>)>> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Format(format!(
            "COPY data, line {line}: invalid byte sequence for encoding \"UTF8\""
        ))
    })?;
    let mut rows = match options.format {
        Format::Csv => read_csv(text, options)?,
        _ => read_text(text, options)?,
    };
    if options.header && !rows.is_empty() {
        rows.remove(0);
    }
    Ok(rows)
}

/// Text format: a row per line, `\.` alone ends the data.
fn read_text(text: &str, options: &Options) -> Result<Vec<(usize, Vec<Option<String>>)>> {
    let mut rows = Vec::new();
    // The data's last line end ends its last row.
    let text = text.strip_suffix('\n').unwrap_or(text);
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        let cells = line
            .split(options.delimiter)
            .map(|raw| match raw == options.null {
                true => Ok(None),
                false => unescape(raw).map(Some),
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|why| Error::Format(format!("COPY data, line {}: {why}", i + 1)))?;
        rows.push((i + 1, cells));
    }
    Ok(rows)
}

/// A text-format value without its backslash escapes.
fn unescape(raw: &str) -> Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            return Err("a backslash at the end of a value".into());
        };
        match e {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut n = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            n = n * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(n).ok_or("an octal escape that is no character")?);
            }
            'x' => {
                let mut n = 0;
                let mut digits = 0;
                while digits < 2 {
                    match chars.peek().and_then(|d| d.to_digit(16)) {
                        Some(d) => {
                            n = n * 16 + d;
                            chars.next();
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push('x');
                } else {
                    out.push(char::from_u32(n).ok_or("a hex escape that is no character")?);
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// CSV: records separated by line ends outside quotes.
fn read_csv(text: &str, options: &Options) -> Result<Vec<(usize, Vec<Option<String>>)>> {
    let (q, esc, delim) = (options.quote, options.escape, options.delimiter);
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut was_quoted = false;
        let mut in_quotes = false;
        loop {
            let Some(c) = chars.next() else {
                if in_quotes {
                    return Err(Error::Format(format!(
                        "COPY data, line {start}: unterminated CSV quoted field"
                    )));
                }
                break;
            };
            if in_quotes {
                let next = chars.peek().copied();
                let escaped = next == Some(q) || (esc != q && next == Some(esc));
                if c == esc && escaped {
                    // An escaped quote (`""`, or the ESCAPE character's).
                    chars.next();
                    cell.extend(next);
                } else if c == q {
                    in_quotes = false;
                } else {
                    if c == '\n' {
                        line += 1;
                    }
                    cell.push(c);
                }
                continue;
            }
            match c {
                c if c == q => {
                    in_quotes = true;
                    was_quoted = true;
                }
                c if c == delim => {
                    cells.push(csv_value(std::mem::take(&mut cell), was_quoted, options));
                    was_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => {
                    line += 1;
                    break;
                }
                c => cell.push(c),
            }
        }
        // `\.` alone on a line ends the data, as in Postgres.
        if cells.is_empty() && !was_quoted && cell == "\\." {
            break;
        }
        cells.push(csv_value(cell, was_quoted, options));
        rows.push((start, cells));
    }
    Ok(rows)
}

/// A CSV value: the NULL string unquoted is NULL.
fn csv_value(cell: String, quoted: bool, options: &Options) -> Option<String> {
    (quoted || cell != options.null).then_some(cell)
}

/// A `COPY ... FROM STDIN` under way: where its rows go, and the data
/// received so far.
#[derive(Debug)]
pub(crate) struct CopyIn {
    pub target: String,
    pub columns: Option<Vec<String>>,
    pub options: Options,
    data: Vec<u8>,
    too_large: bool,
}

impl CopyIn {
    pub(crate) fn new(target: String, columns: Option<Vec<String>>, options: Options) -> Self {
        Self {
            target,
            columns,
            options,
            data: Vec::new(),
            too_large: false,
        }
    }

    /// Data from the client (past [`COPY_LIMIT`], dropped: the COPY fails
    /// at its end).
    pub(crate) fn receive(&mut self, data: &[u8]) {
        if self.too_large || self.data.len() + data.len() > COPY_LIMIT {
            self.too_large = true;
            self.data = Vec::new();
            return;
        }
        self.data.extend_from_slice(data);
    }

    /// The rows received, with their lines.
    pub(crate) fn rows(&self) -> Result<Vec<(usize, Vec<Option<String>>)>> {
        if self.too_large {
            return Err(Error::ResourceLimit(format!(
                "COPY {} FROM STDIN sent more than {} MiB: send it in parts",
                self.target,
                COPY_LIMIT >> 20
            )));
        }
        read_rows(&self.data, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(text: &str) -> Options {
        match statement(text).unwrap().unwrap() {
            Copy::Out { options, .. } | Copy::In { options, .. } => options,
        }
    }

    #[test]
    fn copy_statements_in_both_forms() {
        assert_eq!(
            statement("COPY (SELECT a, ')' FROM t) TO STDOUT WITH (FORMAT csv, HEADER)").unwrap(),
            Some(Copy::Out {
                query: "SELECT a, ')' FROM t".into(),
                at: 6,
                options: Options {
                    format: Format::Csv,
                    header: true,
                    delimiter: ',',
                    null: String::new(),
                    quote: '"',
                    escape: '"',
                }
            })
        );
        assert_eq!(
            options("COPY (SELECT 1) TO STDOUT CSV HEADER"),
            options("COPY (SELECT 1) TO STDOUT (FORMAT csv, HEADER true)")
        );
        let text = options("COPY (SELECT 1) TO STDOUT WITH DELIMITER '|' NULL 'nil'");
        assert_eq!(
            (text.format, text.delimiter, text.null.as_str()),
            (Format::Text, '|', "nil")
        );
        assert_eq!(
            statement("copy orders (id, \"Who\") from stdin with (format csv)").unwrap(),
            Some(Copy::In {
                target: "ORDERS".into(),
                columns: Some(vec!["ID".into(), "Who".into()]),
                options: options("COPY t FROM STDIN CSV"),
            })
        );
        assert_eq!(
            statement("COPY orders TO STDOUT").unwrap(),
            Some(Copy::Out {
                query: "SELECT * FROM `ORDERS`".into(),
                at: 0,
                options: options("COPY (SELECT 1) TO STDOUT"),
            })
        );
        assert_eq!(statement("COPYRIGHT").unwrap(), None);
        assert_eq!(
            statement("COPY orders FROM '/etc/passwd'")
                .unwrap_err()
                .sqlstate(),
            "0A000"
        );
        assert_eq!(
            statement("COPY (SELECT 1) TO STDOUT (FORMAT xml)")
                .unwrap_err()
                .to_string(),
            "COPY format \"xml\" not recognized"
        );
    }

    #[test]
    fn text_rows_unescape_and_know_null() {
        let o = options("COPY t FROM STDIN");
        let rows = read_rows(b"1\ta\\tb\t\\N\n2\t\\\\x\t\\101\n\\.\n", &o).unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec![Some("1".into()), Some("a\tb".into()), None]),
                (
                    2,
                    vec![Some("2".into()), Some("\\x".into()), Some("A".into())]
                ),
            ]
        );
    }

    #[test]
    fn csv_rows_quote_span_lines_and_skip_the_header() {
        let o = options("COPY t FROM STDIN (FORMAT csv, HEADER)");
        let data = "id,who,note\r\n1,\"a, b\",\n2,\"\",\"two\nlines \"\"quoted\"\"\"\n3,c,x";
        assert_eq!(
            read_rows(data.as_bytes(), &o).unwrap(),
            vec![
                (2, vec![Some("1".into()), Some("a, b".into()), None]),
                (
                    3,
                    vec![
                        Some("2".into()),
                        Some(String::new()),
                        Some("two\nlines \"quoted\"".into())
                    ]
                ),
                (
                    5,
                    vec![Some("3".into()), Some("c".into()), Some("x".into())]
                ),
            ]
        );
        assert_eq!(
            read_rows(b"1,\"open", &o).unwrap_err().to_string(),
            "COPY data, line 1: unterminated CSV quoted field"
        );
    }
}
