//! Server settings: a TOML file, then environment variables, then command
//! line flags, each overriding the one before.
//!
//! ```toml
//! service_id = "sluice"          # names consumer groups and internal topics
//! listen = "127.0.0.1:5433"      # the Postgres wire protocol
//! data_dir = "/var/lib/sluice"   # RocksDB state and the catalog
//! statements = "queries.sql"     # run once, when the data dir is new
//!
//! analytics = "s3://lake/sluice" # where CREATE SINK ... LOCATION='relative' lands
//!                                # (a directory or an s3:// URL; default data_dir/analytics)
//! analytics_allow = ["/srv/exports", "s3://archive/sluice"]
//!                                # further roots a sink's absolute or URL LOCATION may be
//!                                # under (default: none; nothing outside the roots is written)
//!
//! [s3]                           # how sinks reach S3: only these, never the environment's
//! region = "eu-west-1"           # other AWS settings nor (unless instance_metadata) the
//! endpoint = "http://minio:9000" # instance-metadata service
//! access_key_id = "..."
//! secret_access_key = "..."
//! session_token = "..."
//! allow_http = false             # plain HTTP to the endpoint
//! instance_metadata = false      # without keys: the instance's own credentials
//!
//! [limits]
//! value_bytes = 67108864         # the largest value a function builds (REPEAT, LPAD,
//!                                # CONCAT, ARRAY_REPEAT, ...; default 64 MiB)
//! batch_bytes = 268435456        # all values one call builds for a batch (default 256 MiB)
//! pull_query_memory = 536870912  # one pull query's memory and result (default 512 MiB)
//! state_cache = 268435456        # RocksDB's block cache: state and views read from
//!                                # memory, key lookups without decompressing (default 256 MiB)
//!
//! [kafka]
//! bootstrap = "localhost:9092"   # absent: an embedded in-memory broker
//! topic_prefix = "staging."      # prepended to every topic name the server uses
//!
//! [kafka.client]                 # any librdkafka setting
//! "security.protocol" = "plaintext"
//!
//! [tls]                          # both: Postgres clients may use TLS
//! cert = "server.crt"            # PEM certificate chain
//! key = "server.key"             # PEM private key
//!
//! [users]                        # any: SCRAM-SHA-256 passwords required
//! alice = "secret"               # none: trust (keep `listen` on loopback)
//!
//! [login]                        # back-off after failed logins, per client
//! free_failures = 5              #   address and per user: failures that cost nothing,
//! delay_ms = 250                 #   then the wait before a login is answered,
//! max_delay_ms = 10000           #   doubled per further failure, at most this
//!
//! [properties]                   # engine properties, as SET would
//! "ksql.timestamp.throw.on.invalid" = "false"
//! "processing.guarantee" = "exactly_once"   # default: at_least_once
//! "commit.interval.ms" = "100"   # the longest between checkpoints under load
//! "cache.max.bytes.buffering" = "0"  # a table's updates of a key per commit
//!                                #   coalesced; default 10000000 (ksqlDB's), 0: off
//! ```
//!
//! Environment: `SLUICE_SERVICE_ID`, `SLUICE_LISTEN`, `SLUICE_DATA_DIR`,
//! `SLUICE_STATEMENTS`, `SLUICE_KAFKA_BOOTSTRAP`, `SLUICE_TOPIC_PREFIX`,
//! `SLUICE_ANALYTICS`, `SLUICE_ANALYTICS_ALLOW` (comma-separated),
//! `SLUICE_TLS_CERT`, `SLUICE_TLS_KEY`; for `[s3]` the AWS tools' names
//! `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, and
//! `SLUICE_S3_INSTANCE_METADATA`; for `[limits]`
//! `SLUICE_LIMITS_VALUE_BYTES`, `SLUICE_LIMITS_BATCH_BYTES`,
//! `SLUICE_LIMITS_PULL_QUERY_MEMORY`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Where Postgres clients connect by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";

/// The settings a server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Names the queries' consumer groups and transactional ids
    /// (`{service_id}-{query id}`); the engine sees it as `ksql.service.id`.
    pub service_id: String,
    /// Where Postgres clients connect.
    pub listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    /// A statements file run when the data directory holds no catalog yet.
    pub statements: Option<PathBuf>,
    /// Kafka bootstrap servers; None starts the embedded broker.
    pub kafka: Option<String>,
    /// Prepended to every topic name (several servers, or test runs, share
    /// one cluster without seeing each other's topics).
    pub topic_prefix: String,
    /// The root that sinks' relative locations are under: a directory or
    /// an object store URL (`s3://bucket/prefix`).
    pub analytics: String,
    /// Further roots a sink's absolute or URL location may be under.
    pub analytics_allow: Vec<String>,
    /// How sinks reach S3.
    pub s3: S3Settings,
    /// Bounds on values and pull queries.
    pub limits: Limits,
    /// Further librdkafka client settings.
    pub kafka_client: BTreeMap<String, String>,
    /// Engine properties.
    pub properties: BTreeMap<String, String>,
    /// TLS certificate chain and private key (PEM files), both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Users and their passwords; none: trust.
    pub users: BTreeMap<String, String>,

    /// The back-off after failed logins (`[login]`).
    pub login: LoginBackoffSettings,
}

/// The back-off after failed logins (`[login]`; see the server's
/// `backoff` module): per client address and per user name, the first
/// `free_failures` failures cost nothing; then each new login waits
/// before it is answered, `delay` doubled per further failure, at most
/// `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoffSettings {
    pub free_failures: u32,
    pub delay: std::time::Duration,
    pub max_delay: std::time::Duration,
}

impl Default for LoginBackoffSettings {
    fn default() -> Self {
        Self {
            free_failures: 5,
            delay: std::time::Duration::from_millis(250),
            max_delay: std::time::Duration::from_secs(10),
        }
    }
}

/// How sinks reach S3 (`[s3]`): these settings only (the connectors'
/// own type, so that what the file says is what the sinks get).
pub use crate::connectors::location::S3Access as S3Settings;

/// Bounds on what one statement may build (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The most bytes one value a function builds may take.
    pub value_bytes: u64,
    /// The most bytes the values of one function call (a batch) may take.
    pub batch_bytes: u64,
    /// The most bytes one pull query may hold.
    pub pull_query_memory: u64,
    /// RocksDB's block cache (state and views), in bytes.
    pub state_cache: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            value_bytes: crate::functions::limits::DEFAULT_VALUE_BYTES,
            batch_bytes: crate::functions::limits::DEFAULT_BATCH_BYTES,
            pull_query_memory: crate::engine::DEFAULT_PULL_QUERY_MEMORY,
            state_cache: crate::runtime::DEFAULT_BLOCK_CACHE,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogin {
    free_failures: Option<u32>,
    delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
}

impl FileLogin {
    fn settings(self) -> Result<LoginBackoffSettings> {
        let d = LoginBackoffSettings::default();
        let ms = std::time::Duration::from_millis;
        let s = LoginBackoffSettings {
            free_failures: self.free_failures.unwrap_or(d.free_failures),
            delay: self.delay_ms.map(ms).unwrap_or(d.delay),
            max_delay: self.max_delay_ms.map(ms).unwrap_or(d.max_delay),
        };
        if s.free_failures == 0 {
            return Err(Error::semantic(
                "login.free_failures must be at least 1 (the first failed login is never delayed)",
            ));
        }
        if s.delay > s.max_delay {
            return Err(Error::semantic(format!(
                "login.delay_ms ({}) is more than login.max_delay_ms ({})",
                s.delay.as_millis(),
                s.max_delay.as_millis()
            )));
        }
        Ok(s)
    }
}

/// Settings given on the command line (they win over the rest).
#[derive(Debug, Clone, Default)]
pub struct ServerFlags {
    pub config: Option<PathBuf>,
    pub kafka: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub statements: Option<PathBuf>,
    pub service_id: Option<String>,
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub topic_prefix: Option<String>,
    pub analytics: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    service_id: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    statements: Option<PathBuf>,
    analytics: Option<String>,
    analytics_allow: Option<Vec<String>>,
    s3: Option<S3Settings>,
    limits: Option<Limits>,
    kafka: Option<FileKafka>,
    tls: Option<FileTls>,
    #[serde(default)]
    users: BTreeMap<String, String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    login: Option<FileLogin>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKafka {
    bootstrap: Option<String>,
    topic_prefix: Option<String>,
    #[serde(default)]
    client: BTreeMap<String, String>,
}

impl ServerConfig {
    /// Settings from the flags' config file (if any), the environment (read
    /// through `env`) and the flags.
    pub fn load(flags: &ServerFlags, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let file = match &flags.config {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        let kafka_file = file.kafka.unwrap_or_default();
        let tls_file = file.tls.unwrap_or_default();
        let pick = |flag: Option<String>, var: &str, from_file: Option<String>| {
            flag.or_else(|| env(var).filter(|v| !v.is_empty()))
                .or(from_file)
        };
        let path = |p: Option<PathBuf>| p.map(|p| p.to_string_lossy().to_string());
        let data_dir = PathBuf::from(
            pick(
                path(flags.data_dir.clone()),
                "SLUICE_DATA_DIR",
                path(file.data_dir),
            )
            .unwrap_or_else(|| "sluice-data".to_string()),
        );
        let s3 = {
            let f = file.s3.unwrap_or_default();
            let var = |name: &str| env(name).filter(|v| !v.is_empty());
            S3Settings {
                region: var("AWS_REGION").or(f.region),
                endpoint: var("AWS_ENDPOINT").or(f.endpoint),
                access_key_id: var("AWS_ACCESS_KEY_ID").or(f.access_key_id),
                secret_access_key: var("AWS_SECRET_ACCESS_KEY").or(f.secret_access_key),
                session_token: var("AWS_SESSION_TOKEN").or(f.session_token),
                allow_http: flag(&env, "AWS_ALLOW_HTTP")?.unwrap_or(f.allow_http),
                instance_metadata: flag(&env, "SLUICE_S3_INSTANCE_METADATA")?
                    .unwrap_or(f.instance_metadata),
            }
        };
        let limits = {
            let f = file.limits.unwrap_or_default();
            let limits = Limits {
                value_bytes: bytes(&env, "SLUICE_LIMITS_VALUE_BYTES")?.unwrap_or(f.value_bytes),
                batch_bytes: bytes(&env, "SLUICE_LIMITS_BATCH_BYTES")?.unwrap_or(f.batch_bytes),
                pull_query_memory: bytes(&env, "SLUICE_LIMITS_PULL_QUERY_MEMORY")?
                    .unwrap_or(f.pull_query_memory),
                state_cache: bytes(&env, "SLUICE_LIMITS_STATE_CACHE")?.unwrap_or(f.state_cache),
            };
            for (name, v) in [
                ("value_bytes", limits.value_bytes),
                ("batch_bytes", limits.batch_bytes),
                ("pull_query_memory", limits.pull_query_memory),
                ("state_cache", limits.state_cache),
            ] {
                if v == 0 {
                    return Err(Error::semantic(format!(
                        "limits.{name} must be a positive number of bytes, not 0"
                    )));
                }
            }
            limits
        };
        Ok(Self {
            analytics: pick(flags.analytics.clone(), "SLUICE_ANALYTICS", file.analytics)
                .unwrap_or_else(|| data_dir.join("analytics").to_string_lossy().to_string()),
            analytics_allow: match env("SLUICE_ANALYTICS_ALLOW").filter(|v| !v.is_empty()) {
                Some(list) => list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => file.analytics_allow.unwrap_or_default(),
            },
            s3,
            limits,
            topic_prefix: pick(
                flags.topic_prefix.clone(),
                "SLUICE_TOPIC_PREFIX",
                kafka_file.topic_prefix,
            )
            .unwrap_or_default(),
            service_id: pick(
                flags.service_id.clone(),
                "SLUICE_SERVICE_ID",
                file.service_id,
            )
            .unwrap_or_else(|| "sluice".to_string()),
            listen: {
                let text = pick(flags.listen.clone(), "SLUICE_LISTEN", file.listen)
                    .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
                text.parse().map_err(|e| {
                    Error::semantic(format!(
                        "listen address '{text}' is not host:port (an IP address and a port): {e}"
                    ))
                })?
            },
            data_dir,
            statements: pick(
                path(flags.statements.clone()),
                "SLUICE_STATEMENTS",
                path(file.statements),
            )
            .map(PathBuf::from),
            kafka: pick(
                flags.kafka.clone(),
                "SLUICE_KAFKA_BOOTSTRAP",
                kafka_file.bootstrap,
            ),
            kafka_client: kafka_file.client,
            properties: with_server_defaults(file.properties),
            tls: match (
                pick(path(flags.tls_cert.clone()), "SLUICE_TLS_CERT", path(tls_file.cert)),
                pick(path(flags.tls_key.clone()), "SLUICE_TLS_KEY", path(tls_file.key)),
            ) {
                (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(Error::semantic(
                        "TLS needs a private key as well as the certificate (tls.key, SLUICE_TLS_KEY or --tls-key)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(Error::semantic(
                        "TLS needs a certificate as well as the private key (tls.cert, SLUICE_TLS_CERT or --tls-cert)",
                    ))
                }
            },
            users: file.users,
            login: file.login.unwrap_or_default().settings()?,
        })
    }
}

/// A true/false environment variable (None: unset or empty).
fn flag(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<bool>> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(Error::semantic(format!(
                "{name} must be true or false, not '{v}'"
            ))),
        },
    }
}

/// A number of bytes in an environment variable (None: unset or empty).
fn bytes(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<u64>> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse::<u64>().map(Some).map_err(|_| {
                Error::semantic(format!("{name} must be a number of bytes, not '{v}'"))
            })
        }
    }
}

fn parse_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::semantic(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text)
        .map_err(|e| Error::semantic(format!("config file {}: {e}", path.display())))
}

/// The server's defaults for engine properties the file does not set:
/// ksqlDB's record cache (`ksql.streams.cache.max.bytes.buffering`).
fn with_server_defaults(mut properties: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let cache = "cache.max.bytes.buffering";
    let streams_cache = format!("ksql.streams.{cache}");
    if !properties.contains_key(cache) && !properties.contains_key(&streams_cache) {
        properties.insert(
            streams_cache,
            crate::runtime::record_cache::SERVER_DEFAULT_BYTES.to_string(),
        );
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            r#"
service_id = "bank"
data_dir = "/from/file"
[kafka]
bootstrap = "file:9092"
[kafka.client]
"socket.timeout.ms" = "1000"
[properties]
"ksql.timestamp.throw.on.invalid" = "true"
"#,
        )
        .unwrap();
        let flags = ServerFlags {
            config: Some(path.clone()),
            ..ServerFlags::default()
        };
        let c = ServerConfig::load(&flags, env(&[])).unwrap();
        assert_eq!(c.service_id, "bank");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.kafka.as_deref(), Some("file:9092"));
        assert_eq!(
            c.kafka_client.get("socket.timeout.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            c.properties
                .get("ksql.timestamp.throw.on.invalid")
                .map(String::as_str),
            Some("true")
        );
        let c = ServerConfig::load(
            &flags,
            env(&[
                ("SLUICE_KAFKA_BOOTSTRAP", "env:9092"),
                ("SLUICE_DATA_DIR", "/from/env"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.as_deref(), Some("env:9092"));
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        let err = ServerConfig::load(&flags, env(&[("SLUICE_LISTEN", "localhost")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "listen address 'localhost' is not host:port (an IP address and a port): invalid socket address syntax"
        );
        let flags = ServerFlags {
            kafka: Some("flag:9092".into()),
            ..flags
        };
        let c = ServerConfig::load(&flags, env(&[("SLUICE_KAFKA_BOOTSTRAP", "env:9092")])).unwrap();
        assert_eq!(c.kafka.as_deref(), Some("flag:9092"));
    }

    #[test]
    fn defaults_and_bad_files() {
        let c = ServerConfig::load(&ServerFlags::default(), env(&[])).unwrap();
        assert_eq!(c.service_id, "sluice");
        assert_eq!(c.listen.to_string(), "127.0.0.1:5433");
        assert_eq!(c.kafka, None);
        assert_eq!(c.data_dir, PathBuf::from("sluice-data"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "kafkaa = 1\n").unwrap();
        let err = ServerConfig::load(
            &ServerFlags {
                config: Some(path.clone()),
                ..ServerFlags::default()
            },
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("config file {}: ", path.display())),
            "{err}"
        );
        assert!(err.to_string().contains("kafkaa"), "{err}");
        assert_eq!(c.tls, None);
        assert!(c.users.is_empty());
    }

    #[test]
    fn sink_roots_s3_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            r#"
analytics_allow = ["/srv/exports", "s3://archive/sluice"]
[s3]
region = "eu-west-1"
access_key_id = "id"
secret_access_key = "secret"
[limits]
value_bytes = 1000
"#,
        )
        .unwrap();
        let flags = ServerFlags {
            config: Some(path.clone()),
            ..ServerFlags::default()
        };
        let c = ServerConfig::load(&flags, env(&[])).unwrap();
        assert_eq!(
            c.analytics_allow,
            vec!["/srv/exports", "s3://archive/sluice"]
        );
        assert_eq!(
            c.s3,
            S3Settings {
                region: Some("eu-west-1".into()),
                access_key_id: Some("id".into()),
                secret_access_key: Some("secret".into()),
                ..S3Settings::default()
            }
        );
        assert!(!format!("{c:?}").contains("secret\""), "{c:?}");
        assert_eq!(
            c.limits,
            Limits {
                value_bytes: 1000,
                batch_bytes: 256 << 20,
                pull_query_memory: 512 << 20,
                state_cache: 256 << 20,
            }
        );
        let c = ServerConfig::load(
            &flags,
            env(&[
                ("SLUICE_ANALYTICS_ALLOW", "/a, /b"),
                ("AWS_ENDPOINT", "http://127.0.0.1:9000"),
                ("AWS_ALLOW_HTTP", "true"),
                ("SLUICE_S3_INSTANCE_METADATA", "true"),
                ("SLUICE_LIMITS_PULL_QUERY_MEMORY", "4096"),
                ("SLUICE_LIMITS_STATE_CACHE", "1048576"),
            ]),
        )
        .unwrap();
        assert_eq!(c.analytics_allow, vec!["/a", "/b"]);
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(c.s3.allow_http && c.s3.instance_metadata);
        assert_eq!(c.limits.pull_query_memory, 4096);
        assert_eq!(c.limits.state_cache, 1 << 20);
        assert_eq!(c.limits.value_bytes, 1000);
        let d = ServerConfig::load(&ServerFlags::default(), env(&[])).unwrap();
        assert_eq!(d.s3, S3Settings::default());
        assert!(d.analytics_allow.is_empty());
        assert_eq!(d.limits, Limits::default());
        let err = |pairs: &'static [(&'static str, &'static str)]| {
            ServerConfig::load(&ServerFlags::default(), env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("SLUICE_LIMITS_VALUE_BYTES", "64MB")]),
            "SLUICE_LIMITS_VALUE_BYTES must be a number of bytes, not '64MB'"
        );
        assert_eq!(
            err(&[("SLUICE_LIMITS_BATCH_BYTES", "0")]),
            "limits.batch_bytes must be a positive number of bytes, not 0"
        );
        assert_eq!(
            err(&[("AWS_ALLOW_HTTP", "maybe")]),
            "AWS_ALLOW_HTTP must be true or false, not 'maybe'"
        );
    }

    #[test]
    fn tls_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "[tls]\ncert = \"a.crt\"\nkey = \"a.key\"\n[users]\nalice = \"pw\"\n",
        )
        .unwrap();
        let flags = ServerFlags {
            config: Some(path.clone()),
            ..ServerFlags::default()
        };
        let c = ServerConfig::load(&flags, env(&[("SLUICE_TLS_KEY", "b.key")])).unwrap();
        assert_eq!(c.tls, Some(("a.crt".into(), "b.key".into())));
        assert_eq!(c.users.get("alice").map(String::as_str), Some("pw"));
        let only_cert = ServerFlags {
            tls_cert: Some("c.crt".into()),
            ..ServerFlags::default()
        };
        let err = ServerConfig::load(&only_cert, env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TLS needs a private key as well as the certificate (tls.key, SLUICE_TLS_KEY or --tls-key)"
        );
    }

    #[test]
    fn login_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let load = |toml: &str| {
            let path = dir.path().join("sluice.toml");
            std::fs::write(&path, toml).unwrap();
            let flags = ServerFlags {
                config: Some(path),
                ..ServerFlags::default()
            };
            ServerConfig::load(&flags, env(&[]))
        };
        assert_eq!(load("").unwrap().login, LoginBackoffSettings::default());
        let c = load("[login]\nfree_failures = 2\ndelay_ms = 100\n").unwrap();
        assert_eq!(
            c.login,
            LoginBackoffSettings {
                free_failures: 2,
                delay: std::time::Duration::from_millis(100),
                max_delay: std::time::Duration::from_secs(10),
            }
        );
        let err = load("[login]\ndelay_ms = 5000\nmax_delay_ms = 1000\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "login.delay_ms (5000) is more than login.max_delay_ms (1000)"
        );
        let err = load("[login]\nfree_failures = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "login.free_failures must be at least 1 (the first failed login is never delayed)"
        );
        let err = load("[login]\ndelay = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `delay`"), "{err}");
    }
}
