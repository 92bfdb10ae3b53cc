//! The embedded broker: librdkafka's in-memory mock cluster, for
//! `sluice server` without a Kafka cluster.
//!
//! Any Kafka client can use its bootstrap address. It keeps nothing across
//! restarts and has no admin API for topics, so topics are created through
//! the mock cluster itself. The cluster lives on its own thread (it is not
//! shareable between threads); creation requests go there over a channel,
//! and the thread, with the broker, ends when the last handle is dropped.

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

use rdkafka::mocking::MockCluster;

use super::super::topic::TopicError;

struct Create {
    topic: String,
    partitions: i32,
    reply: Sender<Result<(), String>>,
}

/// A running embedded broker.
pub(crate) struct EmbeddedKafka {
    bootstrap: String,
    requests: Mutex<Sender<Create>>,
}

impl EmbeddedKafka {
    /// Start a one-broker mock cluster.
    pub(crate) fn start() -> Result<Self, TopicError> {
        let (ready_tx, ready_rx) = channel::<Result<String, String>>();
        let (tx, rx) = channel::<Create>();
        std::thread::Builder::new()
            .name("sluice-embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                for req in rx {
                    let result = cluster
                        .create_topic(&req.topic, req.partitions.max(1), 1)
                        .map_err(|e| e.to_string());
                    let _ = req.reply.send(result);
                }
            })
            .map_err(|e| TopicError::Broker(format!("cannot start the embedded broker: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| TopicError::Broker("the embedded broker did not start".into()))?
            .map_err(|e| TopicError::Broker(format!("cannot start the embedded broker: {e}")))?;
        Ok(Self {
            bootstrap,
            requests: Mutex::new(tx),
        })
    }

    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Create a topic with `partitions` partitions.
    pub(crate) fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        let (reply, answer) = channel();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Create {
                topic: topic.to_string(),
                partitions,
                reply,
            })
            .map_err(|_| TopicError::Broker("the embedded broker has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| TopicError::Broker("the embedded broker has stopped".into()))?
            .map_err(|e| TopicError::Broker(format!("cannot create topic '{topic}': {e}")))
    }
}
