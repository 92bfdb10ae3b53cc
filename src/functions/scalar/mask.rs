//! Masking of personal data: MASK, MASK_KEEP_LEFT, MASK_KEEP_RIGHT,
//! MASK_LEFT, MASK_RIGHT.
//!
//! Each character is replaced by class: upper-case letters by `X`, lower-case
//! by `x`, digits by `n`, anything else by `-`. The optional trailing
//! arguments `(upper, lower, digit, other)` override the replacement per
//! class; a NULL there leaves that class unmasked. A replacement that is not
//! exactly one character, or a negative count, makes the result NULL (ksqlDB
//! raises a function error, which becomes NULL).

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{ret_str, utf8, Arg::*, Call, Params, RowUdf};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "MASK",
        "Masks every character: upper X, lower x, digit n, other -",
    ),
    ("MASK_KEEP_LEFT", "Masks all but the first N characters"),
    ("MASK_KEEP_RIGHT", "Masks all but the last N characters"),
    ("MASK_LEFT", "Masks the first N characters"),
    ("MASK_RIGHT", "Masks the last N characters"),
];

#[derive(Clone, Copy)]
enum Part {
    All,
    KeepLeft,
    KeepRight,
    Left,
    Right,
}

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const WITH_N: Params = Params::Fixed(&[&[Str, Int], &[Str, Int, Str, Str, Str, Str]]);
    vec![
        RowUdf::new(
            "mask",
            Params::Fixed(&[&[Str], &[Str, Str, Str, Str, Str]]),
            ret_str,
            |c| mask(c, Part::All),
        )
        .lenient()
        .build(),
        RowUdf::new("mask_keep_left", WITH_N, ret_str, |c| {
            mask(c, Part::KeepLeft)
        })
        .lenient()
        .build(),
        RowUdf::new("mask_keep_right", WITH_N, ret_str, |c| {
            mask(c, Part::KeepRight)
        })
        .lenient()
        .build(),
        RowUdf::new("mask_left", WITH_N, ret_str, |c| mask(c, Part::Left))
            .lenient()
            .build(),
        RowUdf::new("mask_right", WITH_N, ret_str, |c| mask(c, Part::Right))
            .lenient()
            .build(),
    ]
}

/// Replacement per class; `None` leaves the class as it is.
struct Masker {
    upper: Option<char>,
    lower: Option<char>,
    digit: Option<char>,
    other: Option<char>,
}

impl Masker {
    fn mask_char(&self, c: char) -> char {
        let m = if c.is_uppercase() {
            self.upper
        } else if c.is_lowercase() {
            self.lower
        } else if c.is_numeric() {
            self.digit
        } else {
            self.other
        };
        m.unwrap_or(c)
    }
}

/// One mask character from an argument: NULL means "no mask"; `Err` if it is
/// not exactly one character.
fn mask_char(c: &Call<'_>, i: usize) -> std::result::Result<Option<char>, ()> {
    match c.s(i) {
        None => Ok(None),
        Some(s) => {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(ch), None) => Ok(Some(ch)),
                _ => Err(()),
            }
        }
    }
}

fn mask(c: &mut Call<'_>, part: Part) -> Result<ScalarValue> {
    let (n, first_mask) = match part {
        Part::All => (0, 1),
        _ => match c.i(1) {
            Some(n) if n >= 0 => (usize::try_from(n).unwrap_or(usize::MAX), 2),
            _ => return c.null(),
        },
    };
    let masker = if c.len() > first_mask {
        let chars = (0..4)
            .map(|k| mask_char(c, first_mask + k))
            .collect::<std::result::Result<Vec<_>, ()>>();
        let Ok(chars) = chars else { return c.null() };
        Masker {
            upper: chars.first().copied().flatten(),
            lower: chars.get(1).copied().flatten(),
            digit: chars.get(2).copied().flatten(),
            other: chars.get(3).copied().flatten(),
        }
    } else {
        Masker {
            upper: Some('X'),
            lower: Some('x'),
            digit: Some('n'),
            other: Some('-'),
        }
    };
    let Some(input) = c.s(0) else { return c.null() };
    let len = input.chars().count();
    // The half-open range of character positions that get masked.
    let (from, to) = match part {
        Part::All => (0, len),
        Part::KeepLeft => (n.min(len), len),
        Part::KeepRight => (0, len.saturating_sub(n)),
        Part::Left => (0, n.min(len)),
        Part::Right => (len.saturating_sub(n), len),
    };
    let out: String = input
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            if i >= from && i < to {
                masker.mask_char(ch)
            } else {
                ch
            }
        })
        .collect();
    Ok(utf8(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[tokio::test]
    async fn default_masks() {
        assert_eq!(
            q1("SELECT mask('AbCd#$123xy Z'), mask(NULL)").await,
            "XxXx--nnnxx-X|NULL"
        );
        assert_eq!(
            q1("SELECT mask_keep_left('AbCd#$123', 3), mask_keep_right('AbCd#$123', 3)").await,
            "AbCx--nnn|XxXx--123"
        );
        assert_eq!(
            q1("SELECT mask_left('AbCd#$123', 3), mask_right('AbCd#$123', 3), mask_left('ab', 10)")
                .await,
            "XxXd#$123|AbCd#$nnn|xx"
        );
    }

    #[tokio::test]
    async fn custom_masks_and_edge_cases() {
        assert_eq!(
            q1("SELECT mask('AbC-12', '*', NULL, '#', NULL)").await,
            "*b*-##"
        );
        assert_eq!(
            q1("SELECT mask_left('AbC-12', 4, 'U', 'l', 'd', 'o')").await,
            "UlUo12"
        );
        assert_eq!(q1("SELECT mask('abc', 'XX', 'x', 'n', '-'), mask_left('abc', -1), mask_left('abc', NULL)").await, "NULL|NULL|NULL");
    }
}
