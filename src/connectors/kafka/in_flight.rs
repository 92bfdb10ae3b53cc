//! What a produce call tells the rest of the client once its records are
//! settled, and a query's outputs still on their way
//! ([`Topics::send_all`](crate::connectors::Topics::send_all)).
//!
//! Once a call's records are acknowledged (or the call failed), the
//! readers are told to look at the ends of the topics written again
//! (`fetcher::Hints`); a failed call also forgets the topics' record size
//! limits, which are asked for again (a topic's `max.message.bytes` may
//! have changed under it). A call that waits does this when it returns;
//! one in flight when its owner first finds it settled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fetcher::Hints;
use super::producer::Queued;
use crate::connectors::{Settle, TopicError};

/// The largest record each topic takes, as the broker last said.
pub(super) type RecordLimits = Arc<Mutex<HashMap<String, usize>>>;

/// The topics one call wrote, and whom to tell.
pub(super) struct Written {
    pub hints: Arc<Hints>,
    pub limits: RecordLimits,
    pub topics: Vec<String>,
}

impl Written {
    pub(super) fn settled<T>(&self, result: &Result<T, TopicError>) {
        for t in &self.topics {
            self.hints.wrote(t);
        }
        if result.is_err() {
            self.limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }
}

/// A call's records in flight.
pub(super) struct InFlight {
    pub queued: Queued,
    pub written: Written,
}

impl Settle for InFlight {
    fn settled(&mut self, limit: Option<Duration>) -> Option<Result<(), TopicError>> {
        let result = match limit {
            Some(limit) => self.queued.settled(limit)?,
            None => self.queued.wait(),
        }
        .map(|_| ());
        self.written.settled(&result);
        Some(result)
    }
}
