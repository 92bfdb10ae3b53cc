//! Who may connect, and over what: trust when no users are configured
//! (the default, for a server on loopback), SCRAM-SHA-256 passwords when
//! they are, and TLS when a certificate and key are.
//!
//! Passwords are never kept: at start each one is salted (16 random bytes)
//! and hashed (PBKDF2, 4096 rounds, as Postgres does), and SCRAM proves the
//! client knows it without it crossing the wire. Over TLS, SCRAM also
//! offers channel binding (`SCRAM-SHA-256-PLUS`).
//!
//! A user name that is not configured goes through the same exchange as a
//! known one with a wrong password (as Postgres's mock authentication
//! does): a salt derived from the name with a key made at start (so the
//! same name always gets the same salt, as a real user does), the same
//! iteration count, and at the end the same error, FATAL 28P01 `password
//! authentication failed for user "..."`. Nothing before that tells the
//! two apart. Failed logins slow further ones down ([`backoff`](super::backoff)).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::backoff::{Admission, LoginBackoff, LoginBackoffSettings};
use crate::error::{Error, Result};

/// How connections authenticate.
pub(crate) enum Startup {
    /// Anyone who reaches the address (no users configured).
    Trust(Trust),
    /// SCRAM-SHA-256 against the configured users: `plain` for
    /// connections without TLS, `tls` (which also offers channel binding)
    /// for those with it. A client must not be offered channel binding
    /// without TLS: libpq refuses to go on.
    Scram {
        plain: Box<Sasl>,
        tls: Option<Box<Sasl>>,
        backoff: LoginBackoff,
    },
}

type Sasl = SASLAuthStartupHandler<DefaultServerParameterProvider>;

pub(crate) struct Trust;

#[async_trait]
impl NoopStartupHandler for Trust {
    /// pgwire's trusting startup reports its own `server_version`; this
    /// reports Sluice's after it (a client keeps the last value).
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        client
            .feed(PgWireBackendMessage::ParameterStatus(
                pgwire::messages::startup::ParameterStatus::new(
                    "server_version".into(),
                    crate::server::pg::session::SERVER_VERSION.into(),
                ),
            ))
            .await?;
        Ok(())
    }
}

/// What a SCRAM startup reports: Sluice's `server_version`.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = crate::server::pg::session::SERVER_VERSION.into();
    params
}

impl Startup {
    /// Trust when `users` is empty, else SCRAM-SHA-256 with their
    /// passwords; `certificate` (PEM) enables channel binding.
    pub(crate) fn new(
        users: &BTreeMap<String, String>,
        certificate: Option<&[u8]>,
        login: LoginBackoffSettings,
    ) -> Result<Self> {
        if users.is_empty() {
            return Ok(Startup::Trust(Trust));
        }
        let mut salted = HashMap::new();
        for (user, password) in users {
            let salt = random::<SALT_LEN>()?;
            let hash = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
            salted.insert(user.clone(), (salt.to_vec(), hash));
        }
        let users: Arc<Users> = Arc::new(Users {
            salted,
            mock_key: random::<32>()?.iter().map(|b| format!("{b:02x}")).collect(),
            mock_hash: random::<32>()?.to_vec(),
        });
        let handler = |certificate: Option<&[u8]>| -> Result<Box<Sasl>> {
            let mut scram = ScramAuth::new(users.clone());
            scram.set_iterations(SCRAM_ITERATIONS);
            if let Some(pem) = certificate {
                scram
                    .configure_certificate(pem)
                    .map_err(|e| Error::semantic(format!("TLS certificate for SCRAM: {e}")))?;
            }
            let params = Arc::new(server_parameters());
            Ok(Box::new(
                SASLAuthStartupHandler::new(params).with_scram(scram),
            ))
        };
        Ok(Startup::Scram {
            plain: handler(None)?,
            tls: certificate.map(|pem| handler(Some(pem))).transpose()?,
            backoff: LoginBackoff::new(login),
        })
    }
}

/// The length of a password's salt.
const SALT_LEN: usize = 16;

/// `N` bytes from the system's secure random source.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::internal("no system randomness for password salts"))?;
    Ok(bytes)
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (plain, tls, backoff) = match self {
            Startup::Trust(t) => return t.on_startup(client, message).await,
            Startup::Scram {
                plain,
                tls,
                backoff,
            } => (plain, tls, backoff),
        };
        let address = client.socket_addr().ip();
        // A new login waits its turn when its address or user failed
        // repeatedly (before anything is answered).
        if let PgWireFrontendMessage::Startup(startup) = &message {
            let user = startup.parameters.get("user").map_or("", String::as_str);
            match backoff.admit(address, user, Instant::now()) {
                Admission::Wait(wait) if !wait.is_zero() => {
                    tracing::debug!(%address, user, wait_ms = wait.as_millis() as u64, "login delayed after failed logins");
                    tokio::time::sleep(wait).await;
                }
                Admission::Wait(_) => {}
                Admission::Refuse => {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(),
                        format!("too many failed logins from {address}: try again later"),
                    ))))
                }
            }
        }
        let handler = match tls {
            Some(tls) if client.is_secure() => tls,
            _ => plain,
        };
        let result = handler.on_startup(client, message).await;
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        match &result {
            Err(_) => backoff.failed(address, &user, Instant::now()),
            Ok(()) if matches!(client.state(), PgWireConnectionState::ReadyForQuery) => {
                backoff.succeeded(address, &user)
            }
            Ok(()) => {}
        }
        result
    }
}

/// The users' salted password hashes, and what a name that is not a
/// user's gets instead.
struct Users {
    salted: HashMap<String, (Vec<u8>, Vec<u8>)>,
    /// Derives an unknown name's salt (random, made at start).
    mock_key: String,
    /// An unknown name's "hash": random, so no proof matches it.
    mock_hash: Vec<u8>,
}

impl Users {
    /// The salt and hash SCRAM runs with for `user`: a configured user's,
    /// else a salt derived from the name (HMAC-SHA-256 keyed with
    /// `mock_key`: the same for the same name, unrelated across names) and
    /// a hash no password gives.
    fn secret(&self, user: &str) -> (Vec<u8>, Vec<u8>) {
        match self.salted.get(user) {
            Some((salt, hash)) => (salt.clone(), hash.clone()),
            None => {
                // PBKDF2 with one round is one HMAC of the name.
                let mut salt = gen_salted_password(&self.mock_key, user.as_bytes(), 1);
                salt.truncate(SALT_LEN);
                (salt, self.mock_hash.clone())
            }
        }
    }
}

impl Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.salted.keys()).finish()
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let (salt, hash) = self.secret(login.user().unwrap_or_default());
        Ok(Password::new(Some(salt), hash))
    }
}

/// TLS with the certificate chain and private key in these PEM files.
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::semantic(format!("TLS {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("certificate", cert, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(bad("certificate", cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::semantic(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("certificate and key", cert, &e))?;
    // Postgres 17 clients may open TLS directly; they ask for this ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let mut salted = HashMap::new();
        salted.insert("alice".to_string(), (vec![7u8; SALT_LEN], vec![1u8; 32]));
        Users {
            salted,
            mock_key: "k".repeat(64),
            mock_hash: vec![9u8; 32],
        }
    }

    #[test]
    fn an_unknown_name_gets_a_stable_salt_of_a_users_length() {
        let u = users();
        assert_eq!(u.secret("alice"), (vec![7u8; SALT_LEN], vec![1u8; 32]));
        let (salt, hash) = u.secret("nobody");
        assert_eq!(salt.len(), SALT_LEN);
        assert_eq!(hash, vec![9u8; 32]);
        assert_eq!(u.secret("nobody").0, salt);
        assert_ne!(u.secret("nobody2").0, salt);
        // Keyed: another server's key gives another salt for the name.
        let other = Users {
            mock_key: "j".repeat(64),
            ..users()
        };
        assert_ne!(other.secret("nobody").0, salt);
    }
}
