//! What the parts share: random column types, and mutations of bytes and
//! of statement text.

use crate::cases::Rng;
use crate::catalog::types::SqlType;

/// A random column type; `depth` bounds ARRAY, MAP and STRUCT nesting.
pub(super) fn random_type(rng: &mut Rng, depth: u32) -> SqlType {
    let nested = depth > 0 && rng.chance(0.25);
    if nested {
        return match rng.below(3) {
            0 => SqlType::Array(Box::new(random_type(rng, depth - 1))),
            1 => SqlType::Map(
                Box::new(SqlType::String),
                Box::new(random_type(rng, depth - 1)),
            ),
            _ => {
                let n = 1 + rng.below(3) as usize;
                SqlType::Struct(
                    (0..n)
                        .map(|i| (format!("F{i}"), random_type(rng, depth - 1)))
                        .collect(),
                )
            }
        };
    }
    match rng.below(11) {
        0 => SqlType::Boolean,
        1 | 2 => SqlType::Int,
        3 => SqlType::Bigint,
        4 => SqlType::Double,
        5 => {
            let p = 1 + rng.below(38) as u8;
            SqlType::Decimal(p, rng.below(p as u64 + 1) as i8)
        }
        6 | 7 => SqlType::String,
        8 => SqlType::Bytes,
        9 => SqlType::Timestamp,
        _ => match rng.below(2) {
            0 => SqlType::Date,
            _ => SqlType::Time,
        },
    }
}

/// Text that is odd for a tokenizer: control characters, bidi marks,
/// combining marks, surrogate-range escapes, astral characters.
pub(super) const ODD_TEXT: &[&str] = &[
    "\u{0}",
    "\u{7}",
    "\u{202e}",
    "\u{200d}",
    "\u{feff}",
    "\u{301}\u{301}\u{301}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "😀",
    "ﬀ",
    "İ",
    "ß",
    "\\u0000",
    "\\ud800",
    "\r\n",
    "\t",
    "''",
    "\"",
    "`",
    "--",
    "/*",
    "*/",
    "$1",
    "$65536",
    "?",
    "\\",
    ";",
];

/// A byte string, mutated in place a few times: bit flips, byte
/// replacements, deletions, insertions, duplications of a slice,
/// truncation, and interesting values at random places.
pub(super) fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, max_len: usize) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = bytes.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                bytes[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                let n = 1 + rng.below((len - i) as u64) as usize;
                bytes.drain(i..i + n.min(8));
            }
            3 => {
                let i = rng.below(len as u64 + 1) as usize;
                let n = 1 + rng.below(8) as usize;
                let fresh: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                bytes.splice(i..i, fresh);
            }
            4 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                let n = 1 + rng.below((len - i) as u64) as usize;
                let slice = bytes[i..i + n].to_vec();
                let times = 1 + rng.below(16) as usize;
                for _ in 0..times {
                    bytes.splice(i..i, slice.iter().copied());
                }
            }
            5 if len > 0 => {
                let n = rng.below(len as u64) as usize;
                bytes.truncate(n);
            }
            6 => {
                let interesting: &[&[u8]] = &[
                    &[0],
                    &[0xff],
                    &[0x7f, 0xff, 0xff, 0xff],
                    &[0x80, 0, 0, 0],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    b"\xc3\x28",
                    b"\xed\xa0\x80",
                    b"\xf4\x90\x80\x80",
                    b"\"",
                    b",",
                    b"{",
                    b"[",
                    b"\\u",
                    b"1e999999",
                    b"-0",
                    b"NaN",
                    b"99999999999999999999999999999999999999999",
                ];
                let v = interesting[rng.below(interesting.len() as u64) as usize];
                let i = rng.below(len as u64 + 1) as usize;
                if rng.chance(0.5) && i + v.len() <= len {
                    bytes[i..i + v.len()].copy_from_slice(v);
                } else {
                    bytes.splice(i..i, v.iter().copied());
                }
            }
            7 => {
                let i = rng.below(len as u64 + 1) as usize;
                let open = if rng.chance(0.5) { b'[' } else { b'{' };
                let n = 1 + rng.below(200) as usize;
                bytes.splice(i..i, std::iter::repeat_n(open, n));
            }
            _ => {
                let n = rng.below(32) as usize;
                bytes.extend((0..n).map(|_| rng.next_u64() as u8));
            }
        }
    }
    bytes.truncate(max_len);
}

/// Split statement text into rough tokens: quoted strings and identifiers,
/// words, numbers, and single punctuation characters (whitespace dropped).
pub(super) fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '\'' || c == '"' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i = (i + 1).min(chars.len());
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
        } else {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

/// Words and symbols a mutation inserts.
const TOKEN_POOL: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "EMIT",
    "CHANGES",
    "FINAL",
    "LIMIT",
    "JOIN",
    "LEFT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
    "WINDOW",
    "TUMBLING",
    "HOPPING",
    "SESSION",
    "SIZE",
    "ADVANCE",
    "GRACE",
    "PERIOD",
    "CREATE",
    "STREAM",
    "TABLE",
    "AS",
    "WITH",
    "KEY",
    "PRIMARY",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "TERMINATE",
    "ALL",
    "SHOW",
    "DESCRIBE",
    "EXTENDED",
    "EXPLAIN",
    "SET",
    "UNSET",
    "PRINT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "ARRAY",
    "MAP",
    "STRUCT",
    "NULL",
    "NOT",
    "AND",
    "OR",
    "IS",
    "IN",
    "BETWEEN",
    "LIKE",
    "PARTITION",
    "ROWTIME",
    "ROWOFFSET",
    "WINDOWSTART",
    "HEADERS",
    "INT",
    "BIGINT",
    "STRING",
    "DECIMAL",
    "TIMESTAMP",
    "(",
    ")",
    ",",
    ";",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<",
    ">",
    "<=",
    "!=",
    "<>",
    "->",
    "=>",
    ":=",
    "[",
    "]",
    "{",
    "}",
    "'",
    "''",
    "\"",
    "0",
    "-1",
    "2147483648",
    "9223372036854775808",
    "1e308",
    "0.000",
    "$1",
    "?",
    "::",
    "||",
];

/// A statement with a few token-level mutations: deletion, duplication,
/// swaps, insertions from [`TOKEN_POOL`], odd unicode, huge literals, long
/// repeats of a fragment, and truncation.
pub(super) fn mutate_statement(rng: &mut Rng, text: &str) -> String {
    let mut toks = tokens(text);
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let n = toks.len();
        if n == 0 {
            toks.push("SELECT".into());
            continue;
        }
        let i = rng.below(n as u64) as usize;
        match rng.below(11) {
            0 => {
                toks.remove(i);
            }
            1 => {
                let t = toks[i].clone();
                toks.insert(i, t);
            }
            2 => {
                let j = rng.below(n as u64) as usize;
                toks.swap(i, j);
            }
            3 | 4 => {
                let t = TOKEN_POOL[rng.below(TOKEN_POOL.len() as u64) as usize];
                toks.insert(i, t.to_string());
            }
            5 => {
                let odd = ODD_TEXT[rng.below(ODD_TEXT.len() as u64) as usize];
                if rng.chance(0.5) {
                    toks[i].push_str(odd);
                } else {
                    toks.insert(i, format!("'{odd}'"));
                }
            }
            6 => {
                // A huge literal in place of a token.
                let n = 1 + rng.below(20_000) as usize;
                toks[i] = match rng.below(3) {
                    0 => "9".repeat(n),
                    1 => format!("'{}'", "x".repeat(n)),
                    _ => format!("{}.{}", "1".repeat(n / 2 + 1), "0".repeat(n / 2 + 1)),
                };
            }
            7 => {
                // A fragment repeated: long chains of what was there.
                let end = (i + 1 + rng.below(4) as usize).min(n);
                let frag: Vec<String> = toks[i..end].to_vec();
                let times = 1 + rng.below(64) as usize;
                for _ in 0..times {
                    toks.splice(end..end, frag.iter().cloned());
                }
            }
            8 => {
                // Nesting around a token.
                let d = 1 + rng.below(80) as usize;
                toks[i] = format!("{}{}{}", "(".repeat(d), toks[i], ")".repeat(d));
            }
            9 => {
                toks.truncate(i);
            }
            _ => {
                let t = toks[i].clone();
                toks[i] = t.to_lowercase();
            }
        }
    }
    toks.join(" ")
}
