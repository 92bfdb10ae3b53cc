//! Limits on what one statement may ask of the planner, checked on its text
//! and tokens before anything recurses over it.
//!
//! Parsers, planners, optimizers and evaluators walk expression trees
//! recursively, and so does dropping them. sqlparser bounds nesting
//! (`((((x))))`, `f(f(f(x)))`), but a flat chain such as `1+1+...+1` parses
//! in a loop into a left-deep tree as deep as the chain is long, which then
//! overflows the stack of whatever walks it next. So before a statement is
//! parsed at all, this module counts, for every expression in it, an upper
//! bound on the depth of the tree it can become:
//!
//! - every operator token (`+`, `=`, `->`, `::`, `AND`, `IS`, `LIKE`, ...)
//!   adds one level to the expression it stands in;
//! - a bracketed group adds its own deepest comma-separated item plus one to
//!   the expression around it;
//! - a comma ends an item: `f(a+b, c+d)` counts two levels inside, not four;
//! - `CASE ... END` is a group whose items `WHEN`, `THEN` and `ELSE` divide,
//!   as sqlparser keeps its branches in a flat list.
//!
//! - `FROM`, `WHERE`, `GROUP`, ... start a clause: a new tree.
//!
//! The bound only ever overcounts, so nothing under the limits can build a
//! deeper tree. A statement
//! over a limit is refused with SQLSTATE 54001 ("statement too complex"),
//! naming the limit and where it was passed. The thread stacks that plan and
//! evaluate statements are sized for trees of `MAX_EXPRESSION_DEPTH`
//! (see `crate::server` and `crate::engine`).

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::parser::KsqlDialect;

use crate::error::{Error, Position, Result};

/// The longest statement text accepted, in bytes.
pub(crate) const MAX_STATEMENT_BYTES: usize = 1 << 20;
/// The deepest expression tree a statement may build (operators in one
/// chain plus levels of nesting).
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// The deepest nesting of brackets and of `ARRAY<`, `MAP<`, `STRUCT<` types.
pub(crate) const MAX_NESTING: usize = 64;
/// The most joins in one statement (a chain of joins is a tree as deep).
pub(crate) const MAX_JOINS: usize = 64;
/// The deepest nesting of calls of keyword forms (`CAST(`, `SUBSTRING(`,
/// `EXTRACT(`, `ARRAY[`, ...): sqlparser tries such a form one way and then
/// another, so its time grows about twofold with each level (24 levels of
/// `SUBSTRING ( CAST (` take seconds, 60 never end; so do 29 of `ARRAY [`).
pub(crate) const MAX_CALL_NESTING: usize = 16;

/// Refuse a statement text longer than [`MAX_STATEMENT_BYTES`], before it is
/// tokenized.
pub(crate) fn check_size(sql: &str) -> Result<()> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(Error::too_complex(
            format!(
                "statement too long: {} bytes, at most {MAX_STATEMENT_BYTES}",
                sql.len()
            ),
            None,
        ));
    }
    Ok(())
}

/// What opened a level.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Opener {
    /// The statement itself, `(`, `[` or `{`.
    #[default]
    Bracket,
    /// `<` after ARRAY, MAP or STRUCT.
    Angle,
    /// `CASE`, closed by `END`.
    Case,
    /// `(` right after a keyword: a call of a keyword form, `CAST(`.
    Call,
}

/// Check a statement text that is parsed elsewhere (pull queries, the
/// Postgres catalog): its size, then its tokens.
pub(crate) fn check(sql: &str) -> Result<()> {
    check_size(sql)?;
    let tokens = Tokenizer::new(&KsqlDialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            let at = Position {
                line: e.location.line,
                column: e.location.column,
            };
            Error::syntax(format!("Syntax Error: {}", e.message), Some(at))
        })?;
    check_tokens(&tokens)
}

/// One bracket level being counted: the depth of the current item and the
/// deepest item closed at this level so far.
#[derive(Default)]
struct Level {
    current: usize,
    deepest: usize,
    opener: Opener,
}

impl Level {
    fn opened_by(opener: Opener) -> Self {
        Level {
            opener,
            ..Level::default()
        }
    }

    /// End the current item (at a comma, or a CASE's WHEN, THEN, ELSE).
    fn next_item(&mut self) {
        self.deepest = self.deepest.max(self.current);
        self.current = 0;
    }
}

/// Refuse tokens whose expressions could nest deeper than
/// [`MAX_EXPRESSION_DEPTH`] or whose brackets nest deeper than
/// [`MAX_NESTING`]. Linear in the tokens, no recursion.
pub(crate) fn check_tokens(tokens: &[TokenWithSpan]) -> Result<()> {
    let mut levels = vec![Level::default()];
    let mut previous: Option<&Token> = None;
    let mut joins = 0;
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        let at = || {
            Some(Position {
                line: t.span.start.line.max(1),
                column: t.span.start.column.max(1),
            })
        };
        match &t.token {
            Token::LParen | Token::LBracket if previous.is_some_and(is_keyword) => {
                levels.push(Level::opened_by(Opener::Call));
                let calls = levels.iter().filter(|l| l.opener == Opener::Call).count();
                if calls > MAX_CALL_NESTING {
                    return Err(Error::too_complex(
                        format!(
                            "statement too complex: calls nested more than {MAX_CALL_NESTING} deep"
                        ),
                        at(),
                    ));
                }
            }
            Token::LParen | Token::LBracket | Token::LBrace => {
                levels.push(Level::opened_by(Opener::Bracket));
            }
            Token::Lt if previous.is_some_and(opens_type) => {
                levels.push(Level::opened_by(Opener::Angle));
            }
            Token::Word(w) if w.keyword == Keyword::CASE => {
                levels.push(Level::opened_by(Opener::Case));
            }
            Token::RParen | Token::RBracket
                if levels.last().is_some_and(|l| l.opener == Opener::Call) =>
            {
                close(&mut levels, 1, Opener::Call)
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                close(&mut levels, 1, Opener::Bracket)
            }
            Token::Gt => close(&mut levels, 1, Opener::Angle),
            Token::ShiftRight => close(&mut levels, 2, Opener::Angle),
            Token::Word(w) if w.keyword == Keyword::END => close(&mut levels, 1, Opener::Case),
            Token::Word(w)
                if matches!(w.keyword, Keyword::WHEN | Keyword::THEN | Keyword::ELSE)
                    && levels.last().is_some_and(|l| l.opener == Opener::Case) =>
            {
                if let Some(l) = levels.last_mut() {
                    l.next_item();
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(l) = levels.last_mut() {
                    l.next_item();
                }
                if t.token == Token::SemiColon {
                    joins = 0;
                }
            }
            Token::Word(w) if w.keyword == Keyword::JOIN => {
                joins += 1;
                if joins > MAX_JOINS {
                    return Err(Error::too_complex(
                        format!("statement too complex: more than {MAX_JOINS} joins"),
                        at(),
                    ));
                }
            }
            Token::Word(w) if starts_clause(w.keyword) => {
                if let Some(l) = levels.last_mut() {
                    l.next_item();
                }
            }
            other if is_operator(other) => {
                if let Some(l) = levels.last_mut() {
                    l.current += 1;
                }
            }
            _ => {}
        }
        if levels.len() > MAX_NESTING + 1 {
            return Err(Error::too_complex(
                format!(
                    "statement too complex: brackets or types nested more than {MAX_NESTING} deep"
                ),
                at(),
            ));
        }
        if levels
            .last()
            .is_some_and(|l| l.current > MAX_EXPRESSION_DEPTH)
        {
            return Err(Error::too_complex(
                format!(
                    "statement too complex: an expression more than {MAX_EXPRESSION_DEPTH} operators deep"
                ),
                at(),
            ));
        }
        previous = Some(&t.token);
    }
    Ok(())
}

/// Close `n` levels opened by `opener` (a `>>` closes two angle brackets):
/// each adds its deepest item plus one to the level around it. A closer that
/// matches no opener (a `>` comparison, an unbalanced `)`) closes nothing: it
/// is counted as an operator, or left for the parser to report.
fn close(levels: &mut Vec<Level>, n: usize, opener: Opener) {
    for _ in 0..n {
        if levels.len() < 2 || levels.last().is_some_and(|l| l.opener != opener) {
            if opener == Opener::Angle {
                if let Some(l) = levels.last_mut() {
                    l.current += 1;
                }
            }
            return;
        }
        let Some(inner) = levels.pop() else { return };
        if let Some(outer) = levels.last_mut() {
            outer.current += inner.deepest.max(inner.current) + 1;
        }
    }
}

/// Keywords that start a clause: what stands before and after them are
/// separate trees (`SELECT a+b FROM s WHERE c AND d`; inside brackets,
/// `EXTRACT(YEAR FROM x)`).
fn starts_clause(k: Keyword) -> bool {
    matches!(
        k,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::WHERE
            | Keyword::GROUP
            | Keyword::HAVING
            | Keyword::WINDOW
            | Keyword::PARTITION
            | Keyword::LIMIT
            | Keyword::ON
            | Keyword::VALUES
            | Keyword::WITH
    )
}

fn is_keyword(t: &Token) -> bool {
    matches!(t, Token::Word(w) if w.keyword != Keyword::NoKeyword && w.quote_style.is_none())
}

fn opens_type(t: &Token) -> bool {
    matches!(t, Token::Word(w) if matches!(w.keyword, Keyword::ARRAY | Keyword::MAP | Keyword::STRUCT))
}

/// Whether a token can join two expressions into a deeper one, or wrap one.
fn is_operator(t: &Token) -> bool {
    match t {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::RLIKE
                | Keyword::REGEXP
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::DIV
                | Keyword::OVERLAPS
                | Keyword::ESCAPE
        ),
        Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::Comma
        | Token::SemiColon
        | Token::Colon
        | Token::EOF
        | Token::Whitespace(_)
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace
        | Token::Period => false,
        // Every other symbol is an operator of some dialect: count it.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(op: &str, n: usize) -> String {
        vec!["1"; n].join(op)
    }

    #[test]
    fn a_chain_at_the_limit_passes_and_one_more_fails() {
        let at = format!(
            "SELECT {} AS x FROM s;",
            chain("+", MAX_EXPRESSION_DEPTH + 1)
        );
        assert!(check(&at).is_ok());
        let over = format!(
            "SELECT {} AS x FROM s;",
            chain("+", MAX_EXPRESSION_DEPTH + 2)
        );
        let e = check(&over).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        assert_eq!(
            e.to_string(),
            format!(
                "statement too complex: an expression more than {MAX_EXPRESSION_DEPTH} operators deep (at line 1:{})",
                // The 1,001st `+`.
                "SELECT ".len() + 2 * (MAX_EXPRESSION_DEPTH + 1)
            )
        );
    }

    #[test]
    fn items_of_a_list_count_apart_and_groups_add_up() {
        // Two items of 600 operators each: fine, they are separate trees.
        let two = format!("SELECT f({}, {}) FROM s;", chain("+", 601), chain("+", 601));
        assert!(check(&two).is_ok());
        // A group of 600 inside a chain of 600: one tree 1,201 deep.
        let nested = format!("SELECT ({}) * {} FROM s;", chain("+", 601), chain("*", 600));
        assert_eq!(check(&nested).unwrap_err().sqlstate(), "54001");
        // AND chains, IS chains and casts count as well.
        let and = format!(
            "SELECT * FROM s WHERE {};",
            vec!["a = 1"; 600].join(" AND ")
        );
        assert_eq!(check(&and).unwrap_err().sqlstate(), "54001");
        let is = format!("SELECT x{} FROM s;", " IS NULL".repeat(1_001));
        assert_eq!(check(&is).unwrap_err().sqlstate(), "54001");
    }

    #[test]
    fn nesting_is_limited() {
        let parens = format!("SELECT {}1{} FROM s;", "(".repeat(65), ")".repeat(65));
        assert_eq!(check(&parens).unwrap_err().sqlstate(), "54001");
        let ok = format!("SELECT {}1{} FROM s;", "(".repeat(40), ")".repeat(40));
        assert!(check(&ok).is_ok());
        let types = format!(
            "CREATE STREAM s (x {}INT{}) WITH (kafka_topic='t', value_format='JSON');",
            "ARRAY<".repeat(65),
            ">".repeat(65)
        );
        assert_eq!(check(&types).unwrap_err().sqlstate(), "54001");
        let types = format!(
            "CREATE STREAM s (x {}INT{}) WITH (kafka_topic='t', value_format='JSON');",
            "ARRAY<".repeat(10),
            ">>".repeat(5)
        );
        assert!(check(&types).is_ok());
    }

    #[test]
    fn long_flat_lists_are_fine() {
        let list = vec!["1"; 50_000].join(", ");
        assert!(check(&format!("SELECT * FROM s WHERE id IN ({list});")).is_ok());
        // A CASE's branches are a flat list too; its depth is its deepest branch.
        let case: String = (0..2_000)
            .map(|i| format!(" WHEN x = {i} THEN 'x'"))
            .collect();
        assert!(check(&format!("SELECT CASE{case} ELSE 'y' END + 1 FROM s;")).is_ok());
        let deep = format!("SELECT CASE WHEN {} THEN 1 END FROM s;", chain("+", 1_002));
        assert_eq!(check(&deep).unwrap_err().sqlstate(), "54001");
    }

    #[test]
    fn calls_of_keyword_forms_are_limited() {
        let calls = |n: usize| {
            format!(
                "SELECT {}x{} FROM s;",
                "CAST(".repeat(n),
                " AS INT)".repeat(n)
            )
        };
        assert!(check(&calls(MAX_CALL_NESTING)).is_ok());
        let e = check(&calls(MAX_CALL_NESTING + 1)).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        assert_eq!(
            e.message(),
            format!("statement too complex: calls nested more than {MAX_CALL_NESTING} deep")
        );
        // Unclosed, as the fuzzer wrote them: refused before sqlparser
        // backtracks through them.
        let unclosed = format!("SELECT {}x FROM s;", "SUBSTRING ( CAST ( ".repeat(30));
        assert_eq!(check(&unclosed).unwrap_err().sqlstate(), "54001");
        let arrays = format!("SELECT {}1 FROM s;", "ARRAY [ ".repeat(29));
        assert_eq!(check(&arrays).unwrap_err().sqlstate(), "54001");
        // Plain brackets and user functions are not calls of keyword forms.
        let plain = format!("SELECT {}x{} FROM s;", "f(".repeat(40), ")".repeat(40));
        assert!(check(&plain).is_ok());
    }

    #[test]
    fn joins_are_limited() {
        let joins = |n: usize| -> String {
            let js: String = (0..n)
                .map(|i| format!(" JOIN t{i} ON a = t{i}.a"))
                .collect();
            format!("SELECT * FROM s{js};")
        };
        assert!(check(&joins(MAX_JOINS)).is_ok());
        let e = check(&joins(MAX_JOINS + 1)).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        assert_eq!(
            e.message(),
            format!("statement too complex: more than {MAX_JOINS} joins")
        );
    }

    #[test]
    fn size_is_limited() {
        let big = format!("SELECT '{}' FROM s;", "a".repeat(MAX_STATEMENT_BYTES));
        let e = check(&big).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        assert!(e.to_string().starts_with("statement too long: "));
    }
}
