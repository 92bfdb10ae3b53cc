//! The embedded broker: librdkafka's in-memory mock cluster, for
//! `sluice server` without a Kafka cluster.
//!
//! Any Kafka client can use its bootstrap address. It keeps nothing across
//! restarts and has no admin API for topics (a `DeleteTopics` request gets
//! no answer: the client waits out its timeout), so topics are created and
//! deleted through the mock cluster itself. The cluster lives on its own
//! thread (it is not shareable between threads); requests go there over a
//! channel, and the thread, with the broker, ends when the last handle is
//! dropped.
//!
//! The mock cluster cannot remove a topic. A deleted topic is made unknown
//! instead: its metadata answers `UNKNOWN_TOPIC_OR_PART`, so clients, which
//! find a topic's partitions through the metadata, no longer see it (the
//! mock cluster itself still serves its records to a client that asks a
//! partition directly). Its name cannot be used again
//! until the server restarts (a topic created under it would show the old
//! records): creating it again is refused with a message that says so.

use std::collections::HashSet;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;

use super::super::topic::TopicError;

enum Request {
    Create {
        topic: String,
        partitions: i32,
        reply: Sender<Result<(), String>>,
    },
    Delete {
        topic: String,
        reply: Sender<Result<(), String>>,
    },
}

/// A running embedded broker.
pub(crate) struct EmbeddedKafka {
    bootstrap: String,
    requests: Mutex<Sender<Request>>,
    /// Topics deleted since the broker started (their names stay taken).
    deleted: Mutex<HashSet<String>>,
}

impl EmbeddedKafka {
    /// Start a one-broker mock cluster.
    pub(crate) fn start() -> Result<Self, TopicError> {
        let (ready_tx, ready_rx) = channel::<Result<String, String>>();
        let (tx, rx) = channel::<Request>();
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
                    match req {
                        Request::Create {
                            topic,
                            partitions,
                            reply,
                        } => {
                            let result = cluster
                                .create_topic(&topic, partitions.max(1), 1)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(result);
                        }
                        Request::Delete { topic, reply } => {
                            let result = cluster
                                .topic_error(
                                    &topic,
                                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                )
                                .map_err(|e| e.to_string());
                            let _ = reply.send(result);
                        }
                    }
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
            deleted: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Send a request to the cluster's thread and wait for its answer.
    fn ask(
        &self,
        request: impl FnOnce(Sender<Result<(), String>>) -> Request,
    ) -> Result<(), String> {
        let stopped = || "the embedded broker has stopped".to_string();
        let (reply, answer) = channel();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(request(reply))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Create a topic with `partitions` partitions.
    pub(crate) fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        if self.deleted().contains(topic) {
            return Err(TopicError::Broker(format!(
                "cannot create topic '{topic}': a topic of that name was deleted on the embedded broker, \
                 which cannot reuse the name until the server restarts (use another topic name, or a Kafka cluster)"
            )));
        }
        self.ask(|reply| Request::Create {
            topic: topic.to_string(),
            partitions,
            reply,
        })
        .map_err(|e| TopicError::Broker(format!("cannot create topic '{topic}': {e}")))
    }

    /// Delete a topic: from now on it is unknown to every client.
    pub(crate) fn delete_topic(&self, topic: &str) -> Result<(), TopicError> {
        self.ask(|reply| Request::Delete {
            topic: topic.to_string(),
            reply,
        })
        .map_err(|e| TopicError::Broker(format!("cannot delete topic '{topic}': {e}")))?;
        self.deleted().insert(topic.to_string());
        Ok(())
    }

    fn deleted(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.deleted.lock().unwrap_or_else(|e| e.into_inner())
    }
}
