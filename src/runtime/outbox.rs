//! The outbox: a checkpoint's output records, kept in RocksDB with the state
//! and offsets that produced them until they are delivered to Kafka.
//!
//! The encoding is private to this module and only has to round-trip:
//! a count, then per record the topic, partition (or -1), key, value,
//! timestamp and headers, each byte string length-prefixed (a length of
//! `u32::MAX` is a null).

use std::sync::Arc;

use crate::connectors::OutRecord;
use crate::error::{Error, Result};

/// Where a query's undelivered outputs are kept.
pub(crate) fn outbox_key(query_id: &str) -> Vec<u8> {
    format!("s/{query_id}/outbox").into_bytes()
}

const NULL: u32 = u32::MAX;

pub(crate) fn encode(records: &[OutRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        put_bytes(&mut out, Some(r.topic.as_bytes()));
        out.extend_from_slice(&r.partition.unwrap_or(-1).to_be_bytes());
        put_bytes(&mut out, r.key.as_deref());
        put_bytes(&mut out, r.value.as_deref());
        out.extend_from_slice(&r.timestamp.to_be_bytes());
        out.extend_from_slice(&(r.headers.len() as u32).to_be_bytes());
        for (k, v) in &r.headers {
            put_bytes(&mut out, Some(k.as_bytes()));
            put_bytes(&mut out, v.as_deref());
        }
    }
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<OutRecord>> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()?;
    let mut records = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let topic = r.string()?;
        let partition = i32::from_be_bytes(r.array()?);
        let key = r.bytes()?;
        let value = r.bytes()?;
        let timestamp = i64::from_be_bytes(r.array()?);
        let n_headers = r.u32()?;
        let mut headers = Vec::new();
        for _ in 0..n_headers {
            headers.push((r.string()?, r.bytes()?));
        }
        records.push(OutRecord {
            topic,
            partition: (partition >= 0).then_some(partition),
            key,
            value,
            timestamp,
            headers,
        });
    }
    if r.at != bytes.len() {
        return Err(Error::internal("the outbox has trailing bytes"));
    }
    Ok(records)
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&NULL.to_be_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::internal("the outbox is truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        s.try_into()
            .map_err(|_| Error::internal("the outbox is truncated"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<Option<Arc<[u8]>>> {
        match self.u32()? {
            NULL => Ok(None),
            n => Ok(Some(Arc::from(self.take(n as usize)?))),
        }
    }

    fn string(&mut self) -> Result<String> {
        let b = self.bytes()?.unwrap_or_else(|| Arc::from(&b""[..]));
        String::from_utf8(b.to_vec()).map_err(|_| Error::internal("the outbox holds a bad name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = vec![
            OutRecord {
                topic: "out".into(),
                partition: None,
                key: Some(Arc::from(&b"k"[..])),
                value: None,
                timestamp: 0,
                headers: vec![],
            },
            OutRecord {
                topic: "log".into(),
                partition: Some(3),
                key: None,
                value: Some(Arc::from(&b"{\"a\":1}"[..])),
                timestamp: -5,
                headers: vec![("h".into(), None), ("i".into(), Some(Arc::from(&b""[..])))],
            },
        ];
        let bytes = encode(&records);
        assert_eq!(decode(&bytes).unwrap(), records);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        let err = decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.to_string(), "internal error: the outbox is truncated");
    }
}
