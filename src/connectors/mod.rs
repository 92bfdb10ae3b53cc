//! Connectors: where records come from and go to, and how they are encoded.
//!
//! The runtime reads and writes topics only through [`Topics`]; this issue
//! implements it in memory ([`memory::MemoryTopics`]); the Kafka implementation
//! slots in behind the same trait. Record formats live in [`formats`].

pub(crate) mod formats;
pub(crate) mod memory;
mod topic;

pub(crate) use topic::{Record, Topics};
