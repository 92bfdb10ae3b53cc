//! Cancel requests: psql's Ctrl-C opens a second connection carrying the
//! first one's process id and secret key; the statement running on the
//! first connection stops with SQLSTATE 57014.
//!
//! Every connection that runs a query registers a counter under its
//! (process id, secret key); a cancel request bumps it, and the running
//! statement, which watches it, ends. A request that names no running
//! statement does nothing (Postgres answers cancels with nothing either).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::ClientInfo;
use pgwire::messages::cancel::CancelRequest;
use tokio::sync::watch;

type Key = (i32, Vec<u8>);

/// The connections that can be cancelled.
#[derive(Default)]
pub(crate) struct Cancels {
    by_key: Mutex<HashMap<Key, watch::Sender<u64>>>,
}

/// A connection's entry: removed when the connection ends; its receiver
/// is what each of the connection's statements watches (a clone).
struct Registration {
    key: Key,
    cancels: Arc<Cancels>,
    receiver: watch::Receiver<u64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancels.map().remove(&self.key);
    }
}

impl Cancels {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Sender<u64>>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes when this connection's statement is
    /// cancelled from now on (an earlier cancel is not seen). Registered
    /// at the connection's first statement; later ones clone its receiver.
    pub(crate) fn watch(
        self: &Arc<Self>,
        client: &(impl ClientInfo + ?Sized),
    ) -> watch::Receiver<u64> {
        let mut receiver = match client.session_extensions().get::<Registration>() {
            Some(registered) => registered.receiver.clone(),
            None => {
                let (pid, secret) = client.pid_and_secret_key();
                let key = (pid, secret.to_bytes().to_vec());
                let mut map = self.map();
                let sender = map
                    .entry(key.clone())
                    .or_insert_with(|| watch::channel(0).0);
                let receiver = sender.subscribe();
                client.session_extensions().insert(Registration {
                    key,
                    cancels: self.clone(),
                    receiver: receiver.clone(),
                });
                receiver
            }
        };
        receiver.mark_unchanged();
        receiver
    }

    fn cancel(&self, pid: i32, secret: &[u8]) -> bool {
        match self.map().get(&(pid, secret.to_vec())) {
            Some(sender) => {
                sender.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }
}

/// Resolves when the watched connection's statement is cancelled.
pub(crate) async fn cancelled(mut receiver: watch::Receiver<u64>) {
    if receiver.changed().await.is_err() {
        // The connection is gone: nothing will cancel this statement.
        std::future::pending::<()>().await;
    }
}

pub(crate) struct Canceller(pub Arc<Cancels>);

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let found = self.0.cancel(request.pid, &request.secret_key.to_bytes());
        tracing::info!(pid = request.pid, found, "cancel request");
    }
}
