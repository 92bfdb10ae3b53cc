//! Windowed keys, laid out as Kafka Streams' windowed serdes write them
//! (which is what ksqlDB puts on windowed output topics):
//!
//! - time windows (`TimeWindowedSerializer`): inner key bytes, then the
//!   window start as 8 bytes big-endian. The end is not stored: readers
//!   know the window size (`end = start + size`).
//! - session windows (`SessionWindowedSerializer`): inner key bytes, then
//!   the window end, then the window start, 8 bytes big-endian each.
//!
//! The inner key is in the source's key format (KAFKA, JSON, ...).

use super::{FormatError, WindowKind};

/// Appends the window bounds to the inner key bytes.
pub(crate) fn encode_windowed_key(
    inner: &[u8],
    start_ms: i64,
    end_ms: i64,
    kind: WindowKind,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + 16);
    out.extend_from_slice(inner);
    if kind == WindowKind::Session {
        out.extend_from_slice(&end_ms.to_be_bytes());
    }
    out.extend_from_slice(&start_ms.to_be_bytes());
    out
}

/// Splits a windowed key into (inner key, start, end). For time windows the
/// end is `start + size_ms`, or `i64::MAX` when the size is unknown (as
/// Kafka Streams does).
pub(crate) fn decode_windowed_key(
    bytes: &[u8],
    kind: WindowKind,
    size_ms: Option<i64>,
) -> Result<(&[u8], i64, i64), FormatError> {
    let suffix = match kind {
        WindowKind::Time => 8,
        WindowKind::Session => 16,
    };
    if bytes.len() < suffix {
        return Err(FormatError::Deserialize {
            target: "key",
            topic: None,
            reason: format!(
                "A {} windowed key needs at least {suffix} bytes, got {}",
                match kind {
                    WindowKind::Time => "time",
                    WindowKind::Session => "session",
                },
                bytes.len()
            ),
        });
    }
    let (inner, tail) = bytes.split_at(bytes.len() - suffix);
    let read = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        i64::from_be_bytes(a)
    };
    Ok(match kind {
        WindowKind::Time => {
            let start = read(tail);
            let end = size_ms.map_or(i64::MAX, |s| start.saturating_add(s));
            (inner, start, end)
        }
        WindowKind::Session => (inner, read(&tail[8..]), read(tail)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows_store_the_start_only() {
        let b = encode_windowed_key(b"k", 30_000, 60_000, WindowKind::Time);
        assert_eq!(b, [b"k".as_slice(), &30_000i64.to_be_bytes()].concat());
        assert_eq!(
            decode_windowed_key(&b, WindowKind::Time, Some(30_000)).unwrap(),
            (&b"k"[..], 30_000, 60_000)
        );
        assert_eq!(
            decode_windowed_key(&b, WindowKind::Time, None).unwrap(),
            (&b"k"[..], 30_000, i64::MAX)
        );
    }

    #[test]
    fn session_windows_store_end_then_start() {
        let b = encode_windowed_key(&[0, 0, 0, 10], 5, 9, WindowKind::Session);
        assert_eq!(
            b,
            [&[0, 0, 0, 10][..], &9i64.to_be_bytes(), &5i64.to_be_bytes()].concat()
        );
        assert_eq!(
            decode_windowed_key(&b, WindowKind::Session, None).unwrap(),
            (&[0u8, 0, 0, 10][..], 5, 9)
        );
        // An empty inner key is fine.
        let e = encode_windowed_key(b"", -1, 0, WindowKind::Session);
        assert_eq!(
            decode_windowed_key(&e, WindowKind::Session, None).unwrap(),
            (&b""[..], -1, 0)
        );
    }

    #[test]
    fn short_input_is_an_error() {
        let err = decode_windowed_key(&[1, 2, 3], WindowKind::Session, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to deserialize key. A session windowed key needs at least 16 bytes, got 3"
        );
        assert!(decode_windowed_key(&[0; 7], WindowKind::Time, Some(1)).is_err());
    }
}
