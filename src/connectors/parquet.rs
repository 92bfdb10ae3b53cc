//! Parquet files under a location: a local directory or an object store
//! bucket (`s3://bucket/prefix`, any S3-compatible service). The storage of
//! the analytics sink ([`crate::runtime::file_sink`]).
//!
//! A file is encoded whole in memory and stored with one `put`, which is
//! atomic: an object store never shows part of an object, and the local
//! store writes a staging file (`name#n`) and renames it into place. A
//! reader listing `*.parquet` therefore sees complete files or nothing.
//!
//! Where the files may go is decided before a store is opened
//! ([`super::location`]): under a root of the server's configuration, with
//! S3 credentials from that configuration only. A location belongs to one
//! sink: [`ParquetStore::claim`] takes a new or empty one by writing a
//! marker file (`.sluice-sink`, holding the sink's name), and refuses one
//! that holds other files, so no foreign file is ever read as a sink's.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::location::{create_below, Base, Location, S3Access};
use crate::error::{Error, Result};

/// Where a sink's files are, and how to reach them.
pub(crate) struct ParquetStore {
    store: Arc<dyn ObjectStore>,
    /// The location's path inside the store (files are below it).
    root: StorePath,
    /// The location as a URL DataFusion lists (`file:///dir/`, `s3://b/p/`).
    url: String,
    /// The store's own URL (`s3://bucket`), to register with DataFusion;
    /// None for the local file system, which DataFusion knows.
    store_url: Option<String>,
}

/// The file that marks a directory as a sink's own (its content: the
/// sink's name).
pub(crate) const MARKER: &str = ".sluice-sink";

impl ParquetStore {
    /// Open a resolved location (`location`: as the statement wrote it, for
    /// errors): a local directory (created, links refused) or a prefix of
    /// an S3 bucket.
    pub(crate) fn open(place: &Location, s3: &S3Access, location: &str) -> Result<Self> {
        match &place.base {
            Base::S3 { bucket, prefix } => {
                let refuse = |why: String| Error::semantic(format!("LOCATION '{location}': {why}"));
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_allow_http(s3.allow_http);
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                match (&s3.access_key_id, &s3.secret_access_key) {
                    (Some(id), Some(secret)) => {
                        builder = builder
                            .with_access_key_id(id)
                            .with_secret_access_key(secret);
                        if let Some(token) = &s3.session_token {
                            builder = builder.with_token(token);
                        }
                    }
                    (None, None) if s3.instance_metadata => {}
                    _ => {
                        return Err(refuse(
                            "the server has no S3 credentials: set s3.access_key_id and s3.secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in its configuration, or s3.instance_metadata = true to use the instance's own".into(),
                        ))
                    }
                }
                let store = builder.build().map_err(|e| refuse(e.to_string()))?;
                let mut root = StorePath::from(prefix.as_str());
                for part in &place.below {
                    root = root.clone().join(part.as_str());
                }
                Ok(Self {
                    store: Arc::new(store),
                    root,
                    url: place.url(),
                    store_url: Some(format!("s3://{bucket}")),
                })
            }
            Base::Dir(dir) => {
                create_below(dir, &place.below, location)?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::semantic(format!("LOCATION '{location}': {e}")))?;
                let mut root = StorePath::default();
                for part in &place.below {
                    root = root.clone().join(part.as_str());
                }
                Ok(Self {
                    store: Arc::new(store),
                    root,
                    url: place.url(),
                    store_url: None,
                })
            }
        }
    }

    /// Take the location for sink `name`: a new or empty location gets the
    /// sink's marker; one with the sink's own marker is its own (a
    /// restart, or the sink made again after DROP SINK). A location with
    /// other files, or inside another sink's (a marker in a directory
    /// above it), is refused.
    pub(crate) fn claim(&self, name: &str) -> Result<()> {
        let mut ancestor = self.root.clone();
        let mut parents = Vec::new();
        while let Some(parent) = parent_of(&ancestor) {
            parents.push(parent.clone());
            ancestor = parent;
        }
        for parent in parents {
            if let Some(owner) = self.read_marker(&parent.clone().join(MARKER))? {
                return Err(Error::semantic(format!(
                    "LOCATION '{}' is inside the location of sink {owner}: a sink's files are not another's",
                    self.url
                )));
            }
        }
        let marker = self.root.clone().join(MARKER);
        let files = self.list()?;
        // New or empty; or written by this sink before sinks marked their
        // locations (every file one of its own, by name and place).
        if files.iter().all(|f| is_sinks_file(name, f)) {
            let store = self.store.clone();
            let body = PutPayload::from(name.as_bytes().to_vec());
            return run(async move { store.put(&marker, body).await })
                .map(|_| ())
                .map_err(|e| self.failed("write", MARKER, e));
        }
        match self.read_marker(&marker)? {
            Some(owner) if owner == name => Ok(()),
            Some(owner) => Err(Error::semantic(format!(
                "LOCATION '{}' holds the files of sink {owner}: a sink writes to a new or empty directory, or to its own",
                self.url
            ))),
            None => Err(Error::semantic(format!(
                "LOCATION '{}' already holds {} file(s) (such as {}): a sink writes to a new or empty directory, or to its own, so that no other file is read as its records",
                self.url,
                files.len(),
                files[0]
            ))),
        }
    }

    /// The sink named in a marker file, if there is one.
    fn read_marker(&self, path: &StorePath) -> Result<Option<String>> {
        let store = self.store.clone();
        let at = path.clone();
        let got = run(async move {
            match store.get(&at).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.failed("read", MARKER, e))?;
        Ok(got.map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// The location as a URL (a directory: ends with `/`).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The object store and the URL to register it under with DataFusion
    /// (None: the local file system, registered by default).
    pub(crate) fn registration(&self) -> Option<(String, Arc<dyn ObjectStore>)> {
        self.store_url
            .as_ref()
            .map(|u| (u.clone(), self.store.clone()))
    }

    fn path(&self, relative: &str) -> StorePath {
        let mut path = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// Encode batches as one Parquet file and store it at `relative`
    /// (complete, or not at all). Returns the file's size in bytes.
    pub(crate) fn write(&self, relative: &str, batches: &[RecordBatch]) -> Result<usize> {
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), first.schema(), Some(props))
            .map_err(|e| Error::internal(format!("cannot encode Parquet: {e}")))?;
        for b in batches {
            writer
                .write(b)
                .map_err(|e| Error::internal(format!("cannot encode Parquet: {e}")))?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| Error::internal(format!("cannot encode Parquet: {e}")))?;
        let size = bytes.len();
        let path = self.path(relative);
        let store = self.store.clone();
        run(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map_err(|e| self.failed("write", relative, e))?;
        Ok(size)
    }

    /// Every file under the location (relative paths, sorted).
    pub(crate) fn list(&self) -> Result<Vec<String>> {
        let store = self.store.clone();
        let root = self.root.clone();
        let metas = run(async move { store.list(Some(&root)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.failed("list", "", e))?;
        let mut files: Vec<String> = metas
            .into_iter()
            .filter_map(|m| {
                m.location.prefix_match(&self.root).map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Remove a file (absent: nothing to do).
    pub(crate) fn delete(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        let store = self.store.clone();
        match run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", relative, e)),
        }
    }

    fn failed(&self, what: &str, relative: &str, e: object_store::Error) -> Error {
        Error::Io(std::io::Error::other(format!(
            "cannot {what} {}{relative}: {e}",
            self.url
        )))
    }
}

/// A file as sink `name` writes it: `dt=.../hour=.../NAME-<flush>.parquet`.
fn is_sinks_file(name: &str, file: &str) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    let [dt, hour, base] = parts.as_slice() else {
        return false;
    };
    dt.starts_with("dt=")
        && hour.starts_with("hour=")
        && base
            .strip_prefix(name)
            .and_then(|b| b.strip_prefix('-'))
            .and_then(|b| b.strip_suffix(".parquet"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// The path one level up (None at the store's root).
fn parent_of(path: &StorePath) -> Option<StorePath> {
    let parts: Vec<_> = path.parts().collect();
    if parts.is_empty() {
        return None;
    }
    Some(StorePath::from_iter(
        parts[..parts.len() - 1].iter().cloned(),
    ))
}

/// Run an object store call on the stores' own runtime (its HTTP
/// connections live there between calls), from any thread that is not
/// itself running async code (the engine's callers: the server loop and
/// the wire sessions' blocking threads).
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-store")
            .enable_all()
            .build()
            .ok()
    });
    match runtime {
        Some(rt) => rt.block_on(f),
        None => futures::executor::block_on(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ID", DataType::Int64, true),
            Field::new("NAME", DataType::Utf8, true),
        ]));
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn local(root: &std::path::Path, location: &str) -> Result<ParquetStore> {
        let policy = super::super::location::SinkPolicy {
            root: root.to_string_lossy().to_string(),
            allowed: Vec::new(),
            s3: S3Access::default(),
        };
        ParquetStore::open(&policy.resolve(location)?, &policy.s3, location)
    }

    #[test]
    fn files_are_written_listed_and_deleted_under_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("archive");
        let store = local(dir.path(), "archive").unwrap();
        assert_eq!(store.url(), format!("file://{}/", location.display()));
        store.claim("ARCHIVE").unwrap();
        let size = store
            .write(
                "dt=2026-11-22/hour=11/a.parquet",
                &[batch(&[1, 2]), batch(&[3])],
            )
            .unwrap();
        assert!(size > 0);
        store
            .write("dt=2026-11-22/hour=12/b.parquet", &[batch(&[4])])
            .unwrap();
        assert_eq!(
            store.list().unwrap(),
            vec![
                MARKER.to_string(),
                "dt=2026-11-22/hour=11/a.parquet".to_string(),
                "dt=2026-11-22/hour=12/b.parquet".to_string()
            ]
        );
        // What was written reads back whole.
        let file = std::fs::File::open(location.join("dt=2026-11-22/hour=11/a.parquet")).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
                .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 3);
        store.delete("dt=2026-11-22/hour=11/a.parquet").unwrap();
        store.delete("dt=2026-11-22/hour=11/a.parquet").unwrap();
        assert_eq!(
            store.list().unwrap(),
            vec![
                MARKER.to_string(),
                "dt=2026-11-22/hour=12/b.parquet".to_string()
            ]
        );
    }

    #[test]
    fn a_location_is_one_sinks_own_and_never_holds_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = local(dir.path(), "a").unwrap();
        a.claim("A").unwrap();
        // Its own again (a restart, or CREATE after DROP SINK).
        local(dir.path(), "a").unwrap().claim("A").unwrap();
        let url = |l: &str| format!("file://{}/{l}/", dir.path().display());
        assert_eq!(
            local(dir.path(), "a").unwrap().claim("B").unwrap_err().to_string(),
            format!(
                "LOCATION '{}' holds the files of sink A: a sink writes to a new or empty directory, or to its own",
                url("a")
            )
        );
        assert_eq!(
            local(dir.path(), "a/inner")
                .unwrap()
                .claim("C")
                .unwrap_err()
                .to_string(),
            format!(
                "LOCATION '{}' is inside the location of sink A: a sink's files are not another's",
                url("a/inner")
            )
        );
        // A sink's own files from before sinks marked their locations: its
        // own, and marked now; not another sink's.
        std::fs::create_dir_all(dir.path().join("old/dt=2026-01-01/hour=00")).unwrap();
        std::fs::write(
            dir.path()
                .join("old/dt=2026-01-01/hour=00/OLD-0000000003.parquet"),
            b"PAR1",
        )
        .unwrap();
        assert_eq!(
            local(dir.path(), "old").unwrap().claim("OLDER").unwrap_err().to_string(),
            format!(
                "LOCATION '{}' already holds 1 file(s) (such as dt=2026-01-01/hour=00/OLD-0000000003.parquet): a sink writes to a new or empty directory, or to its own, so that no other file is read as its records",
                url("old")
            )
        );
        local(dir.path(), "old").unwrap().claim("OLD").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("old").join(MARKER)).unwrap(),
            "OLD"
        );
        std::fs::create_dir_all(dir.path().join("foreign/x")).unwrap();
        std::fs::write(dir.path().join("foreign/x/data.parquet"), b"PAR1").unwrap();
        assert_eq!(
            local(dir.path(), "foreign").unwrap().claim("D").unwrap_err().to_string(),
            format!(
                "LOCATION '{}' already holds 1 file(s) (such as x/data.parquet): a sink writes to a new or empty directory, or to its own, so that no other file is read as its records",
                url("foreign")
            )
        );
    }

    #[test]
    fn s3_is_reached_only_with_the_configured_credentials() {
        let policy = super::super::location::SinkPolicy {
            root: "s3://lake/sluice".to_string(),
            allowed: Vec::new(),
            s3: S3Access::default(),
        };
        let place = policy.resolve("clicks").unwrap();
        // No keys and no permission to ask the instance: refused before
        // any request (the instance-metadata service is never asked).
        let err = ParquetStore::open(&place, &policy.s3, "clicks")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(err, "LOCATION 'clicks': the server has no S3 credentials: set s3.access_key_id and s3.secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in its configuration, or s3.instance_metadata = true to use the instance's own");
        let keys = S3Access {
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..S3Access::default()
        };
        let store = ParquetStore::open(&place, &keys, "clicks").unwrap();
        assert_eq!(store.url(), "s3://lake/sluice/clicks/");
        assert_eq!(
            store.registration().map(|(u, _)| u),
            Some("s3://lake".to_string())
        );
        let imds = S3Access {
            instance_metadata: true,
            ..S3Access::default()
        };
        assert!(ParquetStore::open(&place, &imds, "clicks").is_ok());
        assert_eq!(
            format!("{keys:?}"),
            "S3Access { region: None, endpoint: None, access_key_id: Some(\"id\"), secret_access_key: Some(\"<redacted>\"), session_token: None, allow_http: false, instance_metadata: false }"
        );
    }
}
