//! Who may connect, and over what: trust when no users are configured
//! (the default, for a server on loopback), SCRAM-SHA-256 passwords when
//! they are, and TLS when a certificate and key are.
//!
//! Passwords are never kept: at start each one is salted (16 random bytes)
//! and hashed (PBKDF2, 4096 rounds, as Postgres does), and SCRAM proves the
//! client knows it without it crossing the wire. Over TLS, SCRAM also
//! offers channel binding (`SCRAM-SHA-256-PLUS`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    },
}

type Sasl = SASLAuthStartupHandler<DefaultServerParameterProvider>;

pub(crate) struct Trust;

impl NoopStartupHandler for Trust {}

impl Startup {
    /// Trust when `users` is empty, else SCRAM-SHA-256 with their
    /// passwords; `certificate` (PEM) enables channel binding.
    pub(crate) fn new(
        users: &BTreeMap<String, String>,
        certificate: Option<&[u8]>,
    ) -> Result<Self> {
        if users.is_empty() {
            return Ok(Startup::Trust(Trust));
        }
        let mut salted = HashMap::new();
        for (user, password) in users {
            let mut salt = [0u8; 16];
            rustls::crypto::ring::default_provider()
                .secure_random
                .fill(&mut salt)
                .map_err(|_| Error::internal("no system randomness for password salts"))?;
            let hash = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
            salted.insert(user.clone(), (salt.to_vec(), hash));
        }
        let users: Arc<Users> = Arc::new(Users(salted));
        let handler = |certificate: Option<&[u8]>| -> Result<Box<Sasl>> {
            let mut scram = ScramAuth::new(users.clone());
            scram.set_iterations(SCRAM_ITERATIONS);
            if let Some(pem) = certificate {
                scram
                    .configure_certificate(pem)
                    .map_err(|e| Error::semantic(format!("TLS certificate for SCRAM: {e}")))?;
            }
            let params = Arc::new(DefaultServerParameterProvider::default());
            Ok(Box::new(
                SASLAuthStartupHandler::new(params).with_scram(scram),
            ))
        };
        Ok(Startup::Scram {
            plain: handler(None)?,
            tls: certificate.map(|pem| handler(Some(pem))).transpose()?,
        })
    }
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
        match self {
            Startup::Trust(t) => t.on_startup(client, message).await,
            Startup::Scram { plain, tls } => match tls {
                Some(tls) if client.is_secure() => tls.on_startup(client, message).await,
                _ => plain.on_startup(client, message).await,
            },
        }
    }
}

/// The users' salted password hashes.
struct Users(HashMap<String, (Vec<u8>, Vec<u8>)>);

impl Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let (salt, hash) = self
            .0
            .get(user)
            .ok_or_else(|| PgWireError::InvalidPassword(user.to_owned()))?;
        Ok(Password::new(Some(salt.clone()), hash.clone()))
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
