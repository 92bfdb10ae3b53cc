//! The consumers that commit consumer groups' offsets (one per group, see
//! [`KafkaTopics`](super::KafkaTopics)): commits are asynchronous, and
//! each consumer counts its commits still under way, so that a read of the
//! group's offsets can wait for them first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;

/// The context of a consumer that commits a group's offsets: counts its
/// asynchronous commits still under way.
#[derive(Default)]
pub(super) struct GroupContext {
    pub(super) pending: AtomicUsize,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        if let Err(e) = result {
            tracing::warn!(error = %e, partitions = offsets.count(), "cannot commit a consumer group's offsets");
        }
    }
}

impl GroupContext {
    fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Serve the results of commits that have finished, without waiting
    /// (each poll serves at most one).
    pub(super) fn served(&self, consumer: &BaseConsumer<GroupContext>) {
        for _ in 0..self.pending() {
            let before = self.pending();
            let _ = consumer.poll(Duration::ZERO);
            if self.pending() == before {
                break;
            }
        }
    }

    /// Wait (serving results) until every commit made is finished, at most
    /// `timeout`.
    pub(super) fn settle(&self, consumer: &BaseConsumer<GroupContext>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pending() > 0 && Instant::now() < deadline {
            let _ = consumer.poll(Duration::from_millis(10));
        }
        if self.pending() > 0 {
            tracing::warn!(
                pending = self.pending(),
                "a consumer group's commits did not finish in time"
            );
        }
    }
}
