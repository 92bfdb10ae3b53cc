//! Parquet files under a location: a local directory or an object store
//! bucket (`s3://bucket/prefix`, any S3-compatible service). The storage of
//! the analytics sink ([`crate::runtime::file_sink`]).
//!
//! A file is encoded whole in memory and stored with one `put`, which is
//! atomic: an object store never shows part of an object, and the local
//! store writes a staging file (`name#n`) and renames it into place. A
//! reader listing `*.parquet` therefore sees complete files or nothing.
//!
//! S3 settings come from the environment, as the AWS tools read them:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT` (an S3-compatible service such as MinIO) and
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

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

impl ParquetStore {
    /// Open a location: an absolute directory (created if absent), or a
    /// `file://` or `s3://` URL.
    pub(crate) fn open(location: &str) -> Result<Self> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Err(Error::semantic(format!(
                    "LOCATION '{location}' names no bucket: expected s3://bucket/prefix"
                )));
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| Error::semantic(format!("LOCATION '{location}': {e}")))?;
            let prefix = rest[bucket.len()..].trim_matches('/');
            return Ok(Self {
                store: Arc::new(store),
                root: StorePath::from(prefix),
                url: format!(
                    "s3://{bucket}/{prefix}{}",
                    if prefix.is_empty() { "" } else { "/" }
                ),
                store_url: Some(format!("s3://{bucket}")),
            });
        }
        let dir = match location.strip_prefix("file://") {
            Some(path) => std::path::PathBuf::from(path),
            None if location.contains("://") => {
                return Err(Error::semantic(format!(
                    "LOCATION '{location}': expected a directory, a file:// URL or an s3:// URL"
                )))
            }
            None => std::path::PathBuf::from(location),
        };
        if !dir.is_absolute() {
            return Err(Error::semantic(format!(
                "LOCATION '{location}' is not an absolute directory"
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::semantic(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::semantic(format!("LOCATION '{location}': {e}")))?;
        let mut url = format!("file://{}", dir.display());
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(Self {
            store: Arc::new(store),
            root: StorePath::default(),
            url,
            store_url: None,
        })
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

    #[test]
    fn files_are_written_listed_and_deleted_under_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("archive");
        let store = ParquetStore::open(location.to_str().unwrap()).unwrap();
        assert_eq!(store.url(), format!("file://{}/", location.display()));
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
            vec!["dt=2026-11-22/hour=12/b.parquet".to_string()]
        );
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        let e = |l: &str| ParquetStore::open(l).err().map(|e| e.to_string());
        assert_eq!(
            e("relative/dir"),
            Some("LOCATION 'relative/dir' is not an absolute directory".to_string())
        );
        assert_eq!(
            e("ftp://host/x"),
            Some(
                "LOCATION 'ftp://host/x': expected a directory, a file:// URL or an s3:// URL"
                    .to_string()
            )
        );
        assert_eq!(
            e("s3:///prefix"),
            Some(
                "LOCATION 's3:///prefix' names no bucket: expected s3://bucket/prefix".to_string()
            )
        );
    }
}
