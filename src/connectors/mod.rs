//! Connectors: where records come from and go to, and how they are encoded.
//!
//! The runtime reads and writes topics only through [`Topics`], implemented
//! in memory ([`memory::MemoryTopics`]) and on Kafka ([`kafka::KafkaTopics`]).
//! Record formats live in [`formats`].

pub(crate) mod formats;
pub(crate) mod kafka;
pub(crate) mod location;
pub(crate) mod memory;
pub(crate) mod namespaced;
pub(crate) mod parquet;
mod topic;

#[cfg(test)]
pub(crate) use topic::forward_topics;
pub(crate) use topic::{
    GroupOffset, OutRecord, Record, Sending, Settle, TopicError, TopicSpec, Topics,
    TransactionalWriter,
};
