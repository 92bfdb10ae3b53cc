//! The ksqlDB statement parser.
//!
//! Text is tokenized by sqlparser (with [`KsqlDialect`]: backtick and double
//! quoted identifiers, `->` binding tighter than any other operator), then
//! statements are parsed here by recursive descent. Expressions inside them
//! are parsed by sqlparser's own `parse_expr` over the same tokens, so every
//! SQL expression form (CASE, CAST, IN, BETWEEN, LIKE, subscripts, function
//! calls) comes from one well-kept parser.
//!
//! Every error names what was wrong and where (line:column); nothing here
//! panics on any input.

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, SelectItem, WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::dialect::{Dialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser as SqlParser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use super::ast::*;
use crate::catalog::types::SqlType;
use crate::error::{Error, Position, Result};

/// sqlparser dialect for ksqlDB expressions.
#[derive(Debug, Default)]
pub(crate) struct KsqlDialect;

impl Dialect for KsqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '@' || ch == '$'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '@' || ch == '$'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn get_next_precedence(&self, parser: &SqlParser) -> Option<Result<u8, ParserError>> {
        // `->` is ksqlDB's struct dereference: it binds like a subscript.
        match parser.peek_token_ref().token {
            Token::Arrow => Some(Ok(self.prec_value(Precedence::DoubleColon))),
            _ => None,
        }
    }
}

/// ksqlDB's dialect where `$1`, `$2`, ... are parameters (the extended
/// protocol's), not names: pull queries, which the Postgres wire server
/// prepares with their parameters.
#[derive(Debug)]
pub(crate) struct PullDialect;

impl Dialect for PullDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch != '$' && KsqlDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        KsqlDialect.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        KsqlDialect.is_delimited_identifier_start(ch)
    }

    fn get_next_precedence(&self, parser: &SqlParser) -> Option<Result<u8, ParserError>> {
        KsqlDialect.get_next_precedence(parser)
    }
}

/// One parsed statement with its own text.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub statement: Statement,
    pub text: String,
    /// Where the statement starts in the script.
    pub start: Position,
}

impl Parsed {
    /// The position in the script of the first whole-word, case-insensitive
    /// occurrence of `name` in this statement.
    pub(crate) fn find(&self, name: &str) -> Option<Position> {
        if name.is_empty() {
            return None;
        }
        let hay = self.text.to_uppercase();
        let needle = name.to_uppercase();
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let mut from = 0;
        while let Some(i) = hay
            .get(from..)
            .and_then(|h| h.find(&needle))
            .map(|i| i + from)
        {
            let before = hay[..i].chars().next_back();
            let after = hay[i + needle.len()..].chars().next();
            if !is_word(before) && !is_word(after) {
                let prefix = &self.text[..i.min(self.text.len())];
                let line = prefix.matches('\n').count() as u64;
                let column = match prefix.rfind('\n') {
                    Some(nl) => prefix[nl + 1..].chars().count() as u64 + 1,
                    None => self.start.column + prefix.chars().count() as u64,
                };
                return Some(Position {
                    line: self.start.line + line,
                    column,
                });
            }
            from = i + needle.len();
        }
        None
    }
}

/// Parse a script of `;`-separated statements.
pub(crate) fn parse(sql: &str) -> Result<Vec<Parsed>> {
    super::limits::check_size(sql)?;
    let tokens = tokenize(sql)?;
    super::limits::check_tokens(&tokens)?;
    let index = TextIndex::new(sql);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        let end_of_stmt = matches!(t.token, Token::SemiColon | Token::EOF);
        if !end_of_stmt {
            continue;
        }
        if i > start {
            let mut toks: Vec<TokenWithSpan> = tokens[start..i].to_vec();
            let eof_span = t.span;
            toks.push(TokenWithSpan::new(Token::EOF, eof_span));
            let text = index
                .slice(tokens[start].span.start, t.span.start)
                .trim()
                .to_string();
            let mut p = Parser {
                toks,
                i: 0,
                index: &index,
            };
            let statement = p.statement()?;
            p.expect_end()?;
            let loc = tokens[start].span.start;
            let start_pos = Position {
                line: loc.line.max(1),
                column: loc.column.max(1),
            };
            out.push(Parsed {
                statement,
                text,
                start: start_pos,
            });
        }
        start = i + 1;
    }
    Ok(out)
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    let dialect = KsqlDialect;
    let raw = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            Error::syntax(
                format!("Syntax Error: {}", e.message),
                Some(Position {
                    line: e.location.line,
                    column: e.location.column,
                }),
            )
        })?;
    let mut toks: Vec<TokenWithSpan> = raw
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    if !matches!(toks.last().map(|t| &t.token), Some(Token::EOF)) {
        let end = toks
            .last()
            .map(|t| t.span.end)
            .unwrap_or(Location { line: 1, column: 1 });
        toks.push(TokenWithSpan::new(Token::EOF, Span::new(end, end)));
    }
    Ok(toks)
}

/// Maps sqlparser locations (line, column in chars) back to text.
struct TextIndex<'a> {
    sql: &'a str,
    /// Byte offset of each line start.
    line_starts: Vec<usize>,
}

impl<'a> TextIndex<'a> {
    fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        for (i, c) in sql.char_indices() {
            if c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Self { sql, line_starts }
    }

    fn offset(&self, loc: Location) -> usize {
        if loc.line == 0 {
            return self.sql.len();
        }
        let Some(&line_start) = self.line_starts.get(loc.line as usize - 1) else {
            return self.sql.len();
        };
        let line = &self.sql[line_start..];
        line.char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map(|(i, _)| line_start + i)
            .unwrap_or(self.sql.len())
    }

    fn slice(&self, from: Location, to: Location) -> &'a str {
        let a = self.offset(from);
        let b = self.offset(to).max(a);
        &self.sql[a..b]
    }
}

/// Keywords that end a select item or a source reference; never aliases.
const RESERVED: &[&str] = &[
    "FROM",
    "WHERE",
    "GROUP",
    "HAVING",
    "WINDOW",
    "EMIT",
    "PARTITION",
    "LIMIT",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
    "AS",
    "SELECT",
    "BY",
    "AND",
    "OR",
    "NOT",
];

struct Parser<'a> {
    toks: Vec<TokenWithSpan>,
    i: usize,
    index: &'a TextIndex<'a>,
}

impl Parser<'_> {
    // ---- token helpers -------------------------------------------------

    fn peek(&self) -> &Token {
        self.peek_nth(0)
    }

    fn peek_nth(&self, n: usize) -> &Token {
        self.toks
            .get(self.i + n)
            .or_else(|| self.toks.last())
            .map(|t| &t.token)
            .unwrap_or(&Token::EOF)
    }

    fn pos(&self) -> Position {
        let loc = self
            .toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map(|t| t.span.start)
            .unwrap_or(Location { line: 1, column: 1 });
        Position {
            line: loc.line.max(1),
            column: loc.column.max(1),
        }
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_nth(n), Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, k)| self.is_kw_at(n, k)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{kw}'")))
        }
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == t {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token) -> Result<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{t}'")))
        }
    }

    fn unexpected(&self, expecting: &str) -> Error {
        let found = match self.peek() {
            Token::EOF => "<EOF>".to_string(),
            t => format!("'{t}'"),
        };
        Error::syntax(
            format!("Syntax Error: mismatched input {found} expecting {expecting}"),
            Some(self.pos()),
        )
    }

    fn expect_end(&mut self) -> Result<()> {
        match self.peek() {
            Token::EOF => Ok(()),
            _ => Err(self.unexpected("end of statement")),
        }
    }

    /// An identifier: unquoted names are upper-cased, quoted ones kept.
    fn ident(&mut self) -> Result<String> {
        match self.peek().clone() {
            Token::Word(w) => {
                self.i += 1;
                Ok(match w.quote_style {
                    Some(_) => w.value,
                    None => w.value.to_uppercase(),
                })
            }
            _ => Err(self.unexpected("an identifier")),
        }
    }

    fn string_lit(&mut self) -> Result<String> {
        match self.peek().clone() {
            Token::SingleQuotedString(s) => {
                self.i += 1;
                Ok(s)
            }
            _ => Err(self.unexpected("a string literal")),
        }
    }

    fn integer(&mut self) -> Result<i64> {
        let pos = self.pos();
        let negative = self.eat(&Token::Minus);
        match self.advance() {
            Token::Number(n, _) => {
                let v: i64 = n.parse().map_err(|_| {
                    Error::syntax(format!("'{n}' is not a valid integer"), Some(pos))
                })?;
                Ok(if negative { -v } else { v })
            }
            _ => {
                self.i -= 1;
                Err(self.unexpected("an integer"))
            }
        }
    }

    /// An expression, parsed by sqlparser from the current token on.
    fn expr(&mut self) -> Result<Expr> {
        let rest: Vec<TokenWithSpan> = self.toks[self.i..self.expr_end()].to_vec();
        let dialect = KsqlDialect;
        let mut p = SqlParser::new(&dialect).with_tokens_with_locations(rest);
        let e = p.parse_expr().map_err(|e| self.sql_error(e))?;
        self.i += p.index();
        Ok(e)
    }

    /// Where the expression at the cursor ends at the latest: just past
    /// the first `,` or `;` outside brackets, or the bracket closing one it
    /// is in (no expression holds either). Its tokens are all sqlparser
    /// needs: handing it the rest of the statement for each expression made
    /// a long `VALUES` list quadratic.
    fn expr_end(&self) -> usize {
        let mut depth = 0usize;
        for (j, t) in self.toks[self.i..].iter().enumerate() {
            match &t.token {
                Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
                Token::RParen | Token::RBracket | Token::RBrace if depth == 0 => {
                    return self.i + j + 1
                }
                Token::RParen | Token::RBracket | Token::RBrace => depth -= 1,
                Token::Comma | Token::SemiColon if depth == 0 => return self.i + j + 1,
                _ => {}
            }
        }
        self.toks.len()
    }

    fn sql_error(&self, e: ParserError) -> Error {
        let msg = match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => "expression nested too deeply".to_string(),
        };
        // sqlparser appends " at Line: l, Column: c"; turn that into a position.
        if let Some(idx) = msg.rfind(" at Line: ") {
            let tail = &msg[idx + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            if let (Some(l), Some(c)) = (parts.next(), parts.next()) {
                if let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse()) {
                    return Error::syntax(
                        format!("Syntax Error: {}", &msg[..idx]),
                        Some(Position { line, column }),
                    );
                }
            }
        }
        Error::syntax(format!("Syntax Error: {msg}"), Some(self.pos()))
    }

    // ---- statements ----------------------------------------------------

    fn statement(&mut self) -> Result<Statement> {
        let pos = self.pos();
        if self.is_kw("CREATE") {
            return self.create();
        }
        if self.is_kw("INSERT") {
            return self.insert();
        }
        if self.is_kw("SELECT") {
            return Ok(Statement::Select(self.query()?));
        }
        if self.eat_kw("ALTER") {
            let kind = self.source_kind()?;
            let name = self.ident()?;
            let mut columns = Vec::new();
            loop {
                self.expect_kw("ADD")?;
                self.eat_kw("COLUMN");
                let col = self.ident()?;
                let ty = self.data_type()?;
                columns.push((col, ty));
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
            return Ok(Statement::Alter {
                kind,
                name,
                columns,
            });
        }
        if self.eat_kw("DROP") {
            if self.eat_kw("SINK") {
                let if_exists = self.eat_kws(&["IF", "EXISTS"]);
                let name = self.ident()?;
                return Ok(Statement::DropSink { name, if_exists });
            }
            let kind = self.source_kind()?;
            let if_exists = self.eat_kws(&["IF", "EXISTS"]);
            let name = self.ident()?;
            let delete_topic = self.eat_kws(&["DELETE", "TOPIC"]);
            return Ok(Statement::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            });
        }
        if self.eat_kw("TERMINATE") {
            if self.eat_kw("ALL") {
                return Ok(Statement::Terminate { query_id: None });
            }
            let id = self.ident()?;
            return Ok(Statement::Terminate { query_id: Some(id) });
        }
        if self.eat_kw("SHOW") || self.eat_kw("LIST") {
            return self.show();
        }
        if self.eat_kw("DESCRIBE") {
            if self.eat_kw("FUNCTION") {
                return Ok(Statement::DescribeFunction(self.ident()?));
            }
            let extended = self.eat_kw("EXTENDED");
            if self.is_kw("STREAMS") || self.is_kw("TABLES") {
                let what = if self.eat_kw("STREAMS") {
                    ShowWhat::Streams
                } else {
                    self.advance();
                    ShowWhat::Tables
                };
                let extended = extended || self.eat_kw("EXTENDED");
                return Ok(Statement::Show { what, extended });
            }
            let name = self.ident()?;
            let extended = extended || self.eat_kw("EXTENDED");
            return Ok(Statement::Describe { name, extended });
        }
        if self.eat_kw("EXPLAIN") {
            let starts_statement = ["CREATE", "INSERT", "SELECT"].iter().any(|k| self.is_kw(k));
            if starts_statement {
                return Ok(Statement::Explain(Box::new(self.statement()?)));
            }
            return Ok(Statement::ExplainQuery(self.ident()?));
        }
        if self.eat_kw("SET") {
            let name = self.string_lit()?;
            self.expect(&Token::Eq)?;
            let value = self.string_lit()?;
            return Ok(Statement::Set { name, value });
        }
        if self.eat_kw("UNSET") {
            let name = self.string_lit()?;
            return Ok(Statement::Unset { name });
        }
        if self.eat_kw("PRINT") {
            let topic = match self.peek().clone() {
                Token::SingleQuotedString(s) => {
                    self.i += 1;
                    s
                }
                Token::Word(w) => {
                    self.i += 1;
                    w.value
                }
                _ => return Err(self.unexpected("a topic name")),
            };
            let from_beginning = self.eat_kws(&["FROM", "BEGINNING"]);
            let mut limit = None;
            loop {
                if self.eat_kw("LIMIT") {
                    limit = Some(self.integer()?.max(0) as u64);
                } else if self.eat_kw("INTERVAL") || self.eat_kw("SAMPLE") {
                    self.integer()?;
                } else {
                    break;
                }
            }
            return Ok(Statement::Print {
                topic,
                from_beginning,
                limit,
            });
        }
        let found = match self.peek() {
            Token::Word(w) => w.value.to_uppercase(),
            t => t.to_string(),
        };
        Err(Error::syntax(
            format!("Syntax Error: unknown statement '{found}'"),
            Some(pos),
        ))
    }

    fn source_kind(&mut self) -> Result<SourceKind> {
        if self.eat_kw("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_kw("TABLE") {
            Ok(SourceKind::Table)
        } else {
            Err(self.unexpected("STREAM or TABLE"))
        }
    }

    fn show(&mut self) -> Result<Statement> {
        let what = if self.eat_kw("STREAMS") {
            ShowWhat::Streams
        } else if self.eat_kw("TABLES") {
            ShowWhat::Tables
        } else if self.eat_kw("QUERIES") {
            ShowWhat::Queries
        } else if self.eat_kw("TOPICS") || self.eat_kws(&["ALL", "TOPICS"]) {
            ShowWhat::Topics
        } else if self.eat_kw("FUNCTIONS") {
            ShowWhat::Functions
        } else if self.eat_kw("PROPERTIES") {
            ShowWhat::Properties
        } else if self.eat_kw("SINKS") {
            ShowWhat::Sinks
        } else {
            return Err(
                self.unexpected("STREAMS, TABLES, QUERIES, TOPICS, FUNCTIONS, PROPERTIES or SINKS")
            );
        };
        let extended = self.eat_kw("EXTENDED");
        Ok(Statement::Show { what, extended })
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect_kw("CREATE")?;
        if self.eat_kw("SINK") {
            let if_not_exists = self.eat_kws(&["IF", "NOT", "EXISTS"]);
            let name = self.ident()?;
            self.expect_kw("FROM")?;
            let source = self.ident()?;
            self.expect_kw("WITH")?;
            let with = self.with_options()?;
            return Ok(Statement::CreateSink(CreateSink {
                name,
                if_not_exists,
                source,
                with,
            }));
        }
        let or_replace = self.eat_kws(&["OR", "REPLACE"]);
        let is_source = self.eat_kw("SOURCE");
        let kind = self.source_kind()?;
        let if_not_exists = self.eat_kws(&["IF", "NOT", "EXISTS"]);
        let name = self.ident()?;
        let columns = if self.peek() == &Token::LParen {
            self.column_defs()?
        } else {
            Vec::new()
        };
        let with = if self.eat_kw("WITH") {
            self.with_options()?
        } else {
            Default::default()
        };
        if self.eat_kw("AS") {
            if is_source {
                return Err(Error::syntax(
                    "CREATE SOURCE STREAM|TABLE cannot be used with AS SELECT",
                    Some(self.pos()),
                ));
            }
            if !columns.is_empty() {
                return Err(Error::syntax(
                    "Column definitions are not allowed with AS SELECT: the query defines the schema",
                    Some(self.pos()),
                ));
            }
            let query = self.query()?;
            return Ok(Statement::CreateAs(CreateAs {
                kind,
                name,
                or_replace,
                if_not_exists,
                with,
                query,
            }));
        }
        Ok(Statement::CreateSource(CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            is_source,
            columns,
            with,
        }))
    }

    fn column_defs(&mut self) -> Result<Vec<ColumnDef>> {
        self.expect(&Token::LParen)?;
        let mut cols = Vec::new();
        if self.eat(&Token::RParen) {
            return Ok(cols);
        }
        loop {
            let position = self.pos();
            let name = self.ident()?;
            let ty = self.data_type()?;
            let mut key = None;
            let mut header = None;
            loop {
                if self.eat_kws(&["PRIMARY", "KEY"]) {
                    key = Some(KeyKind::PrimaryKey);
                } else if self.eat_kw("KEY") {
                    key = Some(KeyKind::Key);
                } else if self.eat_kw("HEADERS") {
                    header = Some(HeaderSpec::All);
                } else if self.eat_kw("HEADER") {
                    self.expect(&Token::LParen)?;
                    let k = self.string_lit()?;
                    self.expect(&Token::RParen)?;
                    header = Some(HeaderSpec::Key(k));
                } else {
                    break;
                }
            }
            cols.push(ColumnDef {
                name,
                ty,
                key,
                header,
                position,
            });
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(cols);
        }
    }

    /// A ksqlDB type: `INT`, `DECIMAL(4, 2)`, `ARRAY<STRING>`, `STRUCT<A INT>`...
    fn data_type(&mut self) -> Result<SqlType> {
        let pos = self.pos();
        let name = match self.advance() {
            Token::Word(w) => w.value.to_uppercase(),
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a type"));
            }
        };
        Ok(match name.as_str() {
            "BOOLEAN" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::Bigint,
            "DOUBLE" => SqlType::Double,
            "STRING" => SqlType::String,
            "VARCHAR" => {
                if self.eat(&Token::LParen) {
                    self.integer()?;
                    self.expect(&Token::RParen)?;
                }
                SqlType::String
            }
            "BYTES" => SqlType::Bytes,
            "TIMESTAMP" => SqlType::Timestamp,
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "DECIMAL" => {
                self.expect(&Token::LParen)?;
                let p = self.integer()?;
                self.expect(&Token::Comma)?;
                let s = self.integer()?;
                self.expect(&Token::RParen)?;
                if !(1..=38).contains(&p) || s < 0 || s > p {
                    return Err(Error::syntax(
                        format!("Invalid DECIMAL({p}, {s}): precision must be 1 to 38 and scale 0 to precision"),
                        Some(pos),
                    ));
                }
                SqlType::Decimal(p as u8, s as i8)
            }
            "ARRAY" => {
                self.open_angle()?;
                let t = self.data_type()?;
                self.close_angle()?;
                SqlType::Array(Box::new(t))
            }
            "MAP" => {
                self.open_angle()?;
                let k = self.data_type()?;
                self.expect(&Token::Comma)?;
                let v = self.data_type()?;
                self.close_angle()?;
                SqlType::Map(Box::new(k), Box::new(v))
            }
            "STRUCT" => {
                // `STRUCT<>` tokenizes as `<>`.
                if self.eat(&Token::Neq) {
                    return Ok(SqlType::Struct(Vec::new()));
                }
                self.open_angle()?;
                let mut fields = Vec::new();
                if !self.is_close_angle() {
                    loop {
                        let n = self.ident()?;
                        let t = self.data_type()?;
                        fields.push((n, t));
                        if !self.eat(&Token::Comma) {
                            break;
                        }
                    }
                }
                self.close_angle()?;
                SqlType::Struct(fields)
            }
            other => {
                return Err(Error::syntax(
                    format!("Syntax Error: unknown type {other}"),
                    Some(pos),
                ));
            }
        })
    }

    fn open_angle(&mut self) -> Result<()> {
        self.expect(&Token::Lt)
    }

    fn is_close_angle(&self) -> bool {
        matches!(self.peek(), Token::Gt | Token::ShiftRight)
    }

    /// `>`, splitting a `>>` token in two.
    fn close_angle(&mut self) -> Result<()> {
        match self.peek() {
            Token::Gt => {
                self.i += 1;
                Ok(())
            }
            Token::ShiftRight => {
                if let Some(t) = self.toks.get_mut(self.i) {
                    t.token = Token::Gt;
                }
                Ok(())
            }
            _ => Err(self.unexpected("'>'")),
        }
    }

    fn with_options(&mut self) -> Result<WithOptions> {
        self.expect(&Token::LParen)?;
        let mut out = WithOptions::new();
        loop {
            let pos = self.pos();
            let name = self.ident()?.to_uppercase();
            self.expect(&Token::Eq)?;
            let value = match self.advance() {
                Token::SingleQuotedString(s) => OptionValue::String(s),
                Token::Number(n, _) => OptionValue::Number(n),
                Token::Minus => match self.advance() {
                    Token::Number(n, _) => OptionValue::Number(format!("-{n}")),
                    _ => return Err(self.unexpected("a number")),
                },
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("true") =>
                {
                    OptionValue::Bool(true)
                }
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("false") =>
                {
                    OptionValue::Bool(false)
                }
                Token::Word(w) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => {
                    OptionValue::String(w.value)
                }
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("a literal value"));
                }
            };
            if out.insert(name.clone(), (value, pos)).is_some() {
                return Err(Error::syntax(
                    format!("Duplicate property name: {name}"),
                    Some(pos),
                ));
            }
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(out);
        }
    }

    fn insert(&mut self) -> Result<Statement> {
        self.expect_kw("INSERT")?;
        self.expect_kw("INTO")?;
        let target = self.ident()?;
        let mut columns = None;
        if self.peek() == &Token::LParen {
            self.i += 1;
            let mut cols = Vec::new();
            loop {
                cols.push(self.ident()?);
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
            self.expect(&Token::RParen)?;
            columns = Some(cols);
        }
        let position = self.pos();
        if self.eat_kw("VALUES") {
            let mut rows = Vec::new();
            loop {
                self.expect(&Token::LParen)?;
                let mut values = Vec::new();
                if !self.eat(&Token::RParen) {
                    loop {
                        values.push(self.expr()?);
                        if !self.eat(&Token::Comma) {
                            break;
                        }
                    }
                    self.expect(&Token::RParen)?;
                }
                rows.push(values);
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
            return Ok(Statement::InsertValues {
                target,
                columns,
                rows,
                position,
            });
        }
        if columns.is_some() {
            return Err(self.unexpected("VALUES"));
        }
        if self.eat_kw("WITH") {
            // ksqlDB accepts WITH (QUERY_ID='...') here; the options name the query.
            self.with_options()?;
        }
        let query = self.query()?;
        Ok(Statement::InsertInto { target, query })
    }

    // ---- SELECT --------------------------------------------------------

    fn query(&mut self) -> Result<Query> {
        let start = self.toks.get(self.i).map(|t| t.span.start);
        self.expect_kw("SELECT")?;
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let from = self.source_ref()?;
        let mut joins = Vec::new();
        while let Some(join_type) = self.join_type() {
            let position = self.pos();
            let right = self.source_ref()?;
            let within = if self.eat_kw("WITHIN") {
                Some(self.within()?)
            } else {
                None
            };
            self.expect_kw("ON")?;
            let on = self.expr()?;
            joins.push(Join {
                join_type,
                right,
                within,
                on,
                position,
            });
        }
        let window = if self.eat_kw("WINDOW") {
            Some(self.window()?)
        } else {
            None
        };
        let selection = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_kws(&["GROUP", "BY"]) {
            group_by = self.expr_list()?;
        }
        let mut partition_by = Vec::new();
        if self.eat_kws(&["PARTITION", "BY"]) {
            if self.peek() == &Token::LParen && self.peek_nth(1) == &Token::RParen {
                return Err(Error::syntax(
                    "PARTITION BY requires at least one expression",
                    Some(self.pos()),
                ));
            }
            partition_by = self.expr_list()?;
        }
        let having = if self.eat_kw("HAVING") {
            Some(self.expr()?)
        } else {
            None
        };
        let emit = if self.eat_kw("EMIT") {
            if self.eat_kw("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat_kw("FINAL") {
                Some(Emit::Final)
            } else {
                return Err(self.unexpected("CHANGES or FINAL"));
            }
        } else {
            None
        };
        let limit = if self.eat_kw("LIMIT") {
            let pos = self.pos();
            let n = self.integer()?;
            if n < 0 {
                return Err(Error::syntax("LIMIT must not be negative", Some(pos)));
            }
            Some(n as u64)
        } else {
            None
        };
        let end = self.toks.get(self.i).map(|t| t.span.start);
        let text = match (start, end) {
            (Some(a), Some(b)) => self.index.slice(a, b).trim().to_string(),
            _ => String::new(),
        };
        Ok(Query {
            items,
            from,
            joins,
            window,
            selection,
            group_by,
            partition_by,
            having,
            emit,
            limit,
            text,
        })
    }

    fn expr_list(&mut self) -> Result<Vec<Expr>> {
        // ksqlDB allows `GROUP BY (a, b)` as well as `GROUP BY a, b`.
        let mut out = Vec::new();
        loop {
            out.push(self.expr()?);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        if out.len() == 1 {
            if let Expr::Tuple(items) = &out[0] {
                return Ok(items.clone());
            }
        }
        Ok(out)
    }

    fn select_item(&mut self) -> Result<SelectItem> {
        if self.eat(&Token::Mul) {
            return Ok(SelectItem::Wildcard(WildcardAdditionalOptions::default()));
        }
        if matches!(self.peek(), Token::Word(_))
            && self.peek_nth(1) == &Token::Period
            && self.peek_nth(2) == &Token::Mul
        {
            let q = self.ident()?;
            self.i += 2;
            return Ok(SelectItem::QualifiedWildcard(
                datafusion::sql::sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(
                    ObjectName::from(vec![Ident::with_quote('"', q)]),
                ),
                WildcardAdditionalOptions::default(),
            ));
        }
        let expr = self.expr()?;
        if self.eat_kw("AS") {
            let alias = self.alias_ident()?;
            return Ok(SelectItem::ExprWithAlias { expr, alias });
        }
        if let Token::Word(w) = self.peek() {
            let reserved =
                w.quote_style.is_none() && RESERVED.iter().any(|r| w.value.eq_ignore_ascii_case(r));
            if !reserved {
                let alias = self.alias_ident()?;
                return Ok(SelectItem::ExprWithAlias { expr, alias });
            }
        }
        Ok(SelectItem::UnnamedExpr(expr))
    }

    fn alias_ident(&mut self) -> Result<Ident> {
        let name = self.ident()?;
        Ok(Ident::with_quote('"', name))
    }

    fn source_ref(&mut self) -> Result<SourceRef> {
        let position = self.pos();
        let name = self.ident()?;
        let alias = if self.eat_kw("AS") {
            Some(self.ident()?)
        } else {
            match self.peek() {
                Token::Word(w)
                    if w.quote_style.is_some()
                        || !RESERVED.iter().any(|r| w.value.eq_ignore_ascii_case(r)) =>
                {
                    Some(self.ident()?)
                }
                _ => None,
            }
        };
        Ok(SourceRef {
            name,
            alias,
            position,
        })
    }

    fn join_type(&mut self) -> Option<JoinType> {
        if self.eat_kw("JOIN") || self.eat_kws(&["INNER", "JOIN"]) {
            Some(JoinType::Inner)
        } else if self.eat_kws(&["LEFT", "JOIN"]) || self.eat_kws(&["LEFT", "OUTER", "JOIN"]) {
            Some(JoinType::Left)
        } else if self.eat_kws(&["RIGHT", "JOIN"]) || self.eat_kws(&["RIGHT", "OUTER", "JOIN"]) {
            Some(JoinType::Right)
        } else if self.eat_kws(&["FULL", "JOIN"])
            || self.eat_kws(&["FULL", "OUTER", "JOIN"])
            || self.eat_kws(&["OUTER", "JOIN"])
        {
            Some(JoinType::Full)
        } else {
            None
        }
    }

    /// A duration: `<n> <unit>`, in milliseconds.
    fn duration(&mut self) -> Result<i64> {
        let pos = self.pos();
        let n = self.integer()?;
        let unit = match self.advance() {
            Token::Word(w) => w.value.to_uppercase(),
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a time unit"));
            }
        };
        let ms: i64 = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1,
            "SECOND" => 1_000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            "WEEK" => 7 * 86_400_000,
            _ => {
                return Err(Error::syntax(
                    format!("Unknown time unit: {unit}"),
                    Some(pos),
                ));
            }
        };
        n.checked_mul(ms)
            .ok_or_else(|| Error::syntax("Duration is too large", Some(pos)))
    }

    fn within(&mut self) -> Result<Within> {
        let (before, after) = if self.eat(&Token::LParen) {
            let b = self.duration()?;
            self.expect(&Token::Comma)?;
            let a = self.duration()?;
            self.expect(&Token::RParen)?;
            (b, a)
        } else {
            let d = self.duration()?;
            (d, d)
        };
        let grace = if self.eat_kws(&["GRACE", "PERIOD"]) {
            Some(self.duration()?)
        } else {
            None
        };
        Ok(Within {
            before,
            after,
            grace,
        })
    }

    fn window(&mut self) -> Result<WindowSpec> {
        let pos = self.pos();
        let kind = match self.advance() {
            Token::Word(w) => w.value.to_uppercase(),
            _ => String::new(),
        };
        self.expect(&Token::LParen)?;
        let (mut size, mut advance, mut gap) = (None, None, None);
        let (mut grace, mut retention) = (None, None);
        loop {
            if self.eat_kw("SIZE") {
                size = Some(self.duration()?);
            } else if self.eat_kws(&["ADVANCE", "BY"]) {
                advance = Some(self.duration()?);
            } else if self.eat_kw("RETENTION") {
                retention = Some(self.duration()?);
            } else if self.eat_kws(&["GRACE", "PERIOD"]) {
                grace = Some(self.duration()?);
            } else if kind == "SESSION" && gap.is_none() {
                gap = Some(self.duration()?);
            } else {
                return Err(self.unexpected("SIZE, ADVANCE BY, RETENTION or GRACE PERIOD"));
            }
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(&Token::RParen)?;
        let missing =
            |what: &str| Error::syntax(format!("{kind} window requires {what}"), Some(pos));
        Ok(match kind.as_str() {
            "TUMBLING" => WindowSpec::Tumbling {
                size: size.ok_or_else(|| missing("SIZE"))?,
                grace,
                retention,
            },
            "HOPPING" => WindowSpec::Hopping {
                size: size.ok_or_else(|| missing("SIZE"))?,
                advance: advance.ok_or_else(|| missing("ADVANCE BY"))?,
                grace,
                retention,
            },
            "SESSION" => WindowSpec::Session {
                gap: gap.ok_or_else(|| missing("a gap"))?,
                grace,
                retention,
            },
            _ => {
                return Err(Error::syntax(
                    format!("Unknown window type '{kind}': expecting TUMBLING, HOPPING or SESSION"),
                    Some(pos),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse(sql).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).statement
    }

    #[test]
    fn create_stream_with_columns_and_options() {
        let s = one("CREATE STREAM s (id INT KEY, `Name` STRING, m MAP<STRING, ARRAY<INT>>) WITH (kafka_topic='t', value_format='JSON', partitions=2);");
        let Statement::CreateSource(c) = s else {
            panic!("{s:?}")
        };
        assert_eq!(c.name, "S");
        assert_eq!(c.columns[0].name, "ID");
        assert_eq!(c.columns[0].key, Some(KeyKind::Key));
        assert_eq!(c.columns[1].name, "Name");
        assert_eq!(
            c.columns[2].ty,
            SqlType::Map(
                Box::new(SqlType::String),
                Box::new(SqlType::Array(Box::new(SqlType::Int)))
            )
        );
        assert_eq!(c.with["KAFKA_TOPIC"].0, OptionValue::String("t".into()));
        assert_eq!(c.with["PARTITIONS"].0, OptionValue::Number("2".into()));
    }

    #[test]
    fn create_table_as_select_with_window() {
        let s = one("CREATE TABLE out AS SELECT id, COUNT(*) AS c FROM s WINDOW HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS, GRACE PERIOD 1 MINUTE) WHERE x->y > 1 GROUP BY id HAVING COUNT(*) > 2 EMIT FINAL");
        let Statement::CreateAs(c) = s else { panic!() };
        assert_eq!(
            c.query.window,
            Some(WindowSpec::Hopping {
                size: 30_000,
                advance: 10_000,
                grace: Some(60_000),
                retention: None
            })
        );
        assert_eq!(c.query.emit, Some(Emit::Final));
        assert_eq!(c.query.items.len(), 2);
        assert_eq!(c.query.group_by.len(), 1);
        assert!(c.query.having.is_some());
        assert_eq!(c.query.from.name, "S");
        assert!(c.query.text.starts_with("SELECT id"));
    }

    #[test]
    fn arrow_binds_tighter_than_arithmetic() {
        let s = one("SELECT a->b + 1 FROM s");
        let Statement::Select(q) = s else { panic!() };
        let SelectItem::UnnamedExpr(Expr::BinaryOp { op, .. }) = &q.items[0] else {
            panic!("{:?}", q.items[0])
        };
        assert_eq!(op.to_string(), "+");
    }

    #[test]
    fn aliases_without_as_and_joins() {
        let s = one("SELECT EXPLODE(arr) v, t.x FROM s t LEFT JOIN r ON t.id = r.id WHERE t.x > 0 PARTITION BY t.x EMIT CHANGES LIMIT 3");
        let Statement::Select(q) = s else { panic!() };
        assert!(
            matches!(&q.items[0], SelectItem::ExprWithAlias { alias, .. } if alias.value == "V")
        );
        assert_eq!(q.from.alias.as_deref(), Some("T"));
        assert_eq!(q.joins[0].join_type, JoinType::Left);
        assert_eq!(q.partition_by.len(), 1);
        assert_eq!(q.limit, Some(3));
    }

    #[test]
    fn errors_say_where() {
        let e =
            parse("CREATE STREAM s (id INT KEY,\n  x FOO) WITH (kafka_topic='t');").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Syntax Error: unknown type FOO (at line 2:5)"
        );
        let e = parse("SELEC * FROM x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Syntax Error: unknown statement 'SELEC' (at line 1:1)"
        );
        let e = parse("SELECT * FROM x WINDOW TUMBLING (SIZE 1 FORTNIGHT)").unwrap_err();
        assert!(
            e.to_string().contains("Unknown time unit: FORTNIGHT"),
            "{e}"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            ";",
            "CREATE",
            "CREATE STREAM",
            "CREATE STREAM x (",
            "SELECT",
            "SELECT * FROM",
            "INSERT INTO x VALUES (",
            "DROP TABLE",
            "SELECT a[ FROM x",
            "CREATE TABLE t (a STRUCT<",
            "CREATE TABLE t (a ARRAY<ARRAY<INT>>) WITH (x=1)",
            "PRINT",
            "EXPLAIN",
            "SET 'a'",
            "'unterminated",
            "SELECT `x FROM y",
            "DESCRIBE",
            "SELECT * FROM x WINDOW SESSION (",
        ] {
            let _ = parse(s);
        }
    }

    #[test]
    fn several_statements() {
        let v = parse("SHOW STREAMS; LIST TABLES;\nTERMINATE ALL;").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].text, "LIST TABLES");
    }

    #[test]
    fn random_token_soup_never_panics() {
        // Deterministic pseudo-random statements built from ksqlDB's
        // vocabulary: the parser must return Ok or Err, never panic.
        const WORDS: &[&str] = &[
            "CREATE",
            "STREAM",
            "TABLE",
            "AS",
            "SELECT",
            "FROM",
            "WHERE",
            "GROUP",
            "BY",
            "PARTITION",
            "WINDOW",
            "TUMBLING",
            "HOPPING",
            "SESSION",
            "SIZE",
            "ADVANCE",
            "GRACE",
            "PERIOD",
            "EMIT",
            "CHANGES",
            "FINAL",
            "LIMIT",
            "KEY",
            "PRIMARY",
            "WITH",
            "INSERT",
            "INTO",
            "VALUES",
            "JOIN",
            "LEFT",
            "ON",
            "WITHIN",
            "DROP",
            "IF",
            "EXISTS",
            "CASE",
            "WHEN",
            "THEN",
            "ELSE",
            "END",
            "CAST",
            "STRUCT",
            "ARRAY",
            "MAP",
            "INT",
            "STRING",
            "DECIMAL",
            "x",
            "`q`",
            "'s'",
            "1",
            "-2",
            "3.5",
            "(",
            ")",
            "<",
            ">",
            ",",
            ";",
            "->",
            "[",
            "]",
            "*",
            "=",
            "+",
            ":=",
            "=>",
            "SECONDS",
            "NULL",
            "TRUE",
            "EXPLAIN",
            "DESCRIBE",
            "SHOW",
            "PRINT",
            "SET",
            "ALTER",
            "ADD",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..5000 {
            let n = 1 + next() % 24;
            let sql: Vec<&str> = (0..n).map(|_| WORDS[next() % WORDS.len()]).collect();
            let _ = parse(&sql.join(" "));
        }
    }
}
