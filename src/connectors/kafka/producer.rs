//! Sending records and waiting for their acknowledgements, once per call.
//!
//! A call ([`send_all`]) queues every record on the producer with the
//! call's [`Acks`] as the record's delivery opaque (a reference count, no
//! allocation and no future per record), then waits once. librdkafka
//! reports each record's delivery on the producer's polling thread
//! ([`Deliveries`]): the report counts the record and keeps the first
//! error; the last report wakes the caller. So a call returns when every
//! record it queued is acknowledged, or with the first error reported,
//! and never before every record of the call is settled (none is still in
//! flight behind a failed call).
//!
//! A full local queue (`QueueFull`) is not an error: the call waits for
//! deliveries to make room and queues the record again. An error queueing
//! a record (one larger than the producer sends) stops the call: what was
//! queued before it is still waited for, then that error is returned.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::{broker, ZERO_TIME_HEADER};
use crate::connectors::topic::{OutRecord, TopicError};

/// The producers' type: deliveries reported on a thread of their own.
pub(super) type Producer = ThreadedProducer<Deliveries>;

/// The largest record Sluice's producers send (`message.max.bytes`):
/// above every broker's default (1 MiB), so the topic's own
/// `max.message.bytes` is what limits a record (see
/// [`Topics::max_record_bytes`](crate::connectors::topic::Topics::max_record_bytes)).
pub(super) const MAX_BYTES: usize = 32 << 20;

/// Settings of the producers: idempotent, every replica acknowledges,
/// batches wait up to 5 ms to fill.
/// (`message.max.bytes` is [`MAX_BYTES`], set by [`new`].)
const SETTINGS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "60000"),
];

/// A producer with client settings `base`, the producers' [`SETTINGS`],
/// and `extra` over them.
pub(super) fn new(
    base: &[(String, String)],
    extra: &[(&str, &str)],
) -> Result<Producer, TopicError> {
    let max_bytes = MAX_BYTES.to_string();
    let mut settings = SETTINGS.to_vec();
    settings.push(("message.max.bytes", &max_bytes));
    settings.extend_from_slice(extra);
    super::client_config(base, &settings)
        .create_with_context(Deliveries)
        .map_err(broker)
}

/// How long a call waits for its acknowledgements at most: past the
/// producers' `message.timeout.ms` (60 s), after which librdkafka reports
/// every record still unacknowledged as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a call waits before queueing a record again when the local
/// queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

/// The producers' context: counts each delivery report into its call's
/// [`Acks`].
pub(super) struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        match result {
            Ok(m) => {
                acks.partition.store(m.partition(), Ordering::Relaxed);
                acks.offset.store(m.offset(), Ordering::Relaxed);
            }
            Err((e, _)) => acks.fail(broker(e.clone())),
        }
        acks.reported();
    }
}

/// One call's acknowledgements.
pub(super) struct Acks {
    /// Records reported (acknowledged or failed).
    reported: AtomicUsize,
    /// Records queued, once the call has queued them all (until then
    /// `usize::MAX`).
    expected: AtomicUsize,
    /// Where the last acknowledged record was written (for a call of one
    /// record: its partition and offset).
    partition: AtomicI32,
    offset: AtomicI64,
    state: Mutex<Outcome>,
    settled: Condvar,
}

#[derive(Default)]
struct Outcome {
    /// The first error reported.
    error: Option<TopicError>,
    /// Every record queued is reported.
    done: bool,
}

impl Acks {
    fn new() -> Self {
        Acks {
            reported: AtomicUsize::new(0),
            expected: AtomicUsize::new(usize::MAX),
            partition: AtomicI32::new(-1),
            offset: AtomicI64::new(-1),
            state: Mutex::new(Outcome::default()),
            settled: Condvar::new(),
        }
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, error: TopicError) {
        let mut outcome = self.outcome();
        if outcome.error.is_none() {
            outcome.error = Some(error);
        }
    }

    /// One more record reported; the last one wakes the caller. (The
    /// counter and `expected` are sequentially consistent, so either the
    /// last report sees `expected` or the caller sees every report.)
    fn reported(&self) {
        let n = self.reported.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.expected.load(Ordering::SeqCst) {
            self.outcome().done = true;
            self.settled.notify_all();
        }
    }

    /// Wait until all `sent` records are reported; the first error, if any.
    fn wait(&self, sent: usize) -> Result<(), TopicError> {
        self.wait_until(sent, Instant::now() + ACK_TIMEOUT)
            .unwrap_or_else(|| {
                Err(TopicError::Broker(format!(
                    "{} of {sent} records were not acknowledged within {ACK_TIMEOUT:?}",
                    sent - self.reported.load(Ordering::SeqCst)
                )))
            })
    }

    /// As [`Acks::wait`], but None if a record is still unreported at
    /// `deadline`.
    fn wait_until(&self, sent: usize, deadline: Instant) -> Option<Result<(), TopicError>> {
        self.expected.store(sent, Ordering::SeqCst);
        let mut outcome = self.outcome();
        while !outcome.done && self.reported.load(Ordering::SeqCst) < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            outcome = self
                .settled
                .wait_timeout(outcome, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(match outcome.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }
}

/// Queue `records` (each to the partition `place` gives it), then wait
/// for every acknowledgement (order within a partition is kept by the
/// idempotent producer). Returns the partition and offset of the last
/// record acknowledged (for one record: its own). `queue_full` counts the
/// waits for room in the local queue.
pub(super) fn send_all(
    producer: &Producer,
    records: &[OutRecord],
    place: impl FnMut(&OutRecord) -> Result<i32, TopicError>,
    queue_full: &AtomicU64,
) -> Result<(i32, i64), TopicError> {
    queue_all(producer, records, place, queue_full).wait()
}

/// Queue `records` as [`send_all`] does, without waiting: the answer
/// tells when they are acknowledged.
pub(super) fn queue_all(
    producer: &Producer,
    records: &[OutRecord],
    mut place: impl FnMut(&OutRecord) -> Result<i32, TopicError>,
    queue_full: &AtomicU64,
) -> Queued {
    let acks = Arc::new(Acks::new());
    let mut sent = 0;
    let mut refused = None;
    for r in records {
        let queued = place(r).and_then(|p| send(producer, r, p, &acks, queue_full));
        match queued {
            Ok(()) => sent += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    // From here on the last report wakes a waiter.
    acks.expected.store(sent, Ordering::SeqCst);
    Queued {
        acks,
        sent,
        refused,
    }
}

/// One call's records, queued: their acknowledgements to come.
pub(super) struct Queued {
    acks: Arc<Acks>,
    sent: usize,
    /// The error that stopped the call queueing (what was queued before
    /// it is still waited for).
    refused: Option<TopicError>,
}

impl Queued {
    /// What [`Queued::wait`] returns, if every record is reported within
    /// `limit`; else None. Answers once.
    pub(super) fn settled(&mut self, limit: Duration) -> Option<Result<(i32, i64), TopicError>> {
        let delivered = self.acks.wait_until(self.sent, Instant::now() + limit)?;
        Some(self.outcome(delivered))
    }

    /// Wait for every acknowledgement; the refusal, else the first error
    /// reported, else where the last record went.
    pub(super) fn wait(&mut self) -> Result<(i32, i64), TopicError> {
        let delivered = self.acks.wait(self.sent);
        self.outcome(delivered)
    }

    fn outcome(&mut self, delivered: Result<(), TopicError>) -> Result<(i32, i64), TopicError> {
        if let Some(e) = self.refused.take() {
            return Err(e);
        }
        delivered?;
        Ok((
            self.acks.partition.load(Ordering::Relaxed),
            self.acks.offset.load(Ordering::Relaxed),
        ))
    }
}

/// Queue one record on `partition`, waiting while the local queue is full.
fn send(
    producer: &Producer,
    r: &OutRecord,
    partition: i32,
    acks: &Arc<Acks>,
    queue_full: &AtomicU64,
) -> Result<(), TopicError> {
    let mut record: BaseRecord<'_, [u8], [u8], Arc<Acks>> =
        BaseRecord::with_opaque_to(&r.topic, acks.clone())
            .partition(partition)
            .timestamp(r.timestamp);
    // Headers cost an allocation in librdkafka: only when there are any.
    if !r.headers.is_empty() || r.timestamp == 0 {
        let mut hs = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
        for (k, v) in &r.headers {
            hs = hs.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        if r.timestamp == 0 {
            hs = hs.insert(Header {
                key: ZERO_TIME_HEADER,
                value: None::<&[u8]>,
            });
        }
        record = record.headers(hs);
    }
    if let Some(k) = r.key.as_deref() {
        record = record.key(k);
    }
    if let Some(v) = r.value.as_deref() {
        record = record.payload(v);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // Deliveries (on the polling thread) make room.
                queue_full.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(QUEUE_FULL_WAIT);
                record = back;
            }
            Err((e, _)) => return Err(broker(e)),
        }
    }
}
