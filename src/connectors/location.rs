//! Where a sink may write: its `LOCATION` resolved under a root the
//! server's configuration names, never outside one.
//!
//! The roots are the analytics root (`analytics`: a directory or an
//! `s3://bucket/prefix`) and the further roots of `analytics_allow`. A
//! relative location is under the analytics root; an absolute directory, a
//! `file://` URL or an `s3://` URL must be under one of the roots (a
//! directory of its own, not a root itself). Resolution is lexical and
//! strict: `.` and empty segments are dropped, a `..` segment is refused
//! (nothing climbs), and a segment holds letters, digits and `_ - . =` only
//! (no percent escapes a URL parser would decode into `..`). Creating a
//! local directory does not follow symbolic links below its root
//! ([`create_below`]).
//!
//! S3 is reached only with what the server's configuration gives
//! ([`S3Access`]): its keys, region and endpoint. Without keys a location
//! in S3 is refused, unless the configuration allows the instance's own
//! credentials (`s3.instance_metadata`); nothing asks the instance-metadata
//! service otherwise.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// How the server reaches S3 (and S3-compatible services): only what its
/// configuration says (`[s3]` in the server's TOML file).
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Access {
    pub region: Option<String>,
    /// An S3-compatible service (MinIO, ...), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Plain HTTP to the endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Without keys, take the instance's credentials from its metadata
    /// service (off unless configured).
    #[serde(default)]
    pub instance_metadata: bool,
}

impl fmt::Debug for S3Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Access")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret(&self.secret_access_key))
            .field("session_token", &secret(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("instance_metadata", &self.instance_metadata)
            .finish()
    }
}

/// Where sinks may write, from the server's configuration (no statement
/// changes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SinkPolicy {
    /// The analytics root: a directory or `s3://bucket/prefix`.
    pub root: String,
    /// Further roots an absolute or URL location may be under.
    pub allowed: Vec<String>,
    pub s3: S3Access,
}

/// A root, or a location: a base and the segments below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// An absolute local directory (lexically normalised).
    Dir(PathBuf),
    /// A bucket and a prefix (segments joined by `/`, maybe empty).
    S3 { bucket: String, prefix: String },
}

/// A sink's resolved location: the root it is under and its own segments
/// below it (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub base: Base,
    pub below: Vec<String>,
}

impl Location {
    /// The location as a URL DataFusion lists (ends with `/`).
    pub(crate) fn url(&self) -> String {
        let below = self.below.join("/");
        match &self.base {
            Base::Dir(dir) => format!("file://{}/{below}/", dir.display()),
            Base::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{below}/"),
            Base::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{below}/"),
        }
    }
}

/// Characters a segment of a location may hold besides letters and digits.
const SEGMENT_PUNCTUATION: [char; 4] = ['_', '-', '.', '='];

impl SinkPolicy {
    /// The policy of an engine without a server: sinks under
    /// `data_dir/analytics`, nothing else, no S3 credentials.
    pub(crate) fn local(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("analytics").to_string_lossy().to_string(),
            allowed: Vec::new(),
            s3: S3Access::default(),
        }
    }

    /// Resolve a sink's `LOCATION` (errors name the option and the value).
    pub(crate) fn resolve(&self, location: &str) -> Result<Location> {
        let root = parse_root(&self.root, "analytics")?;
        let refuse = |why: String| Error::semantic(format!("LOCATION '{location}' {why}"));
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(refuse(
                    "names no bucket: expected s3://bucket/prefix".into(),
                ));
            }
            let parts = segments(path).map_err(&refuse)?;
            return self.under_a_root(location, &root, |base| match base {
                Base::S3 { bucket: b, prefix } if b == bucket => below(&split(prefix), &parts),
                _ => None,
            });
        }
        let path = match location.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => return Err(refuse("is not a file:///absolute/directory URL".into())),
            None if location.contains("://") => {
                return Err(refuse(
                    "is neither a directory, a file:// URL nor an s3:// URL".into(),
                ))
            }
            None => location,
        };
        if !path.starts_with('/') {
            let parts = segments(path).map_err(&refuse)?;
            check_names(&parts).map_err(&refuse)?;
            if parts.is_empty() {
                return Err(refuse(
                    "names the analytics root itself: a sink needs a directory of its own under it"
                        .into(),
                ));
            }
            return Ok(Location {
                base: root,
                below: parts,
            });
        }
        let parts = segments(path).map_err(&refuse)?;
        self.under_a_root(location, &root, |base| match base {
            Base::Dir(dir) => {
                let dir: Vec<String> = dir
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().to_string()),
                        _ => None,
                    })
                    .collect();
                below(&dir, &parts)
            }
            Base::S3 { .. } => None,
        })
    }

    /// The location under the first root (the analytics root, then the
    /// allowed ones) that `inside` places it under.
    fn under_a_root(
        &self,
        location: &str,
        root: &Base,
        inside: impl Fn(&Base) -> Option<Vec<String>>,
    ) -> Result<Location> {
        let mut roots = vec![root.clone()];
        for allowed in &self.allowed {
            roots.push(parse_root(allowed, "analytics_allow")?);
        }
        for base in roots {
            match inside(&base) {
                Some(below) if below.is_empty() => {
                    return Err(Error::semantic(format!(
                        "LOCATION '{location}' names a root sinks write under, not a directory of its own under it"
                    )))
                }
                Some(below) => {
                    check_names(&below).map_err(|why| {
                        Error::semantic(format!("LOCATION '{location}' {why}"))
                    })?;
                    return Ok(Location { base, below });
                }
                None => {}
            }
        }
        let mut names = vec![self.root.clone()];
        names.extend(self.allowed.iter().cloned());
        Err(Error::semantic(format!(
            "LOCATION '{location}' is outside the locations sinks may write: a relative directory (under the analytics root), or a location under {} (the server's analytics and analytics_allow settings)",
            names.join(", ")
        )))
    }
}

/// The segments of `below` past `root`, if `below` starts with `root`.
fn below(root: &[String], below: &[String]) -> Option<Vec<String>> {
    below
        .starts_with(root)
        .then(|| below[root.len()..].to_vec())
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A location's path as segments: `.` and empty ones dropped, `..`
/// refused (the reason, for the error).
fn segments(path: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                return Err(
                    "has a '..' segment: a sink's directory never climbs out of its root".into(),
                )
            }
            s => out.push(s.to_string()),
        }
    }
    Ok(out)
}

/// The segments a location adds below its root hold only letters, digits
/// and [`SEGMENT_PUNCTUATION`] (the reason, for the error).
fn check_names(segments: &[String]) -> std::result::Result<(), String> {
    for s in segments {
        if let Some(c) = s
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !SEGMENT_PUNCTUATION.contains(c))
        {
            return Err(format!(
                "has the character {c:?}: a directory name of a sink holds letters, digits and _ - . = only"
            ));
        }
    }
    Ok(())
}

/// A configured root (`setting` names where it came from, for errors).
fn parse_root(root: &str, setting: &str) -> Result<Base> {
    let bad = |why: &str| Error::semantic(format!("the server's {setting} root '{root}' {why}"));
    if let Some(rest) = root.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("names no bucket: expected s3://bucket/prefix"));
        }
        let prefix = split(prefix);
        if prefix.iter().any(|s| s == "." || s == "..") {
            return Err(bad("has a '.' or '..' segment"));
        }
        return Ok(Base::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.join("/"),
        });
    }
    let path = root.strip_prefix("file://").unwrap_or(root);
    if path.contains("://") {
        return Err(bad("is neither a directory nor an s3:// URL"));
    }
    let absolute =
        std::path::absolute(path).map_err(|e| bad(&format!("cannot be made absolute: {e}")))?;
    // Lexically normalised, as locations are compared with it.
    let mut normal = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    Ok(Base::Dir(normal))
}

/// Create a location's local directory below its root, one segment at a
/// time, refusing a symbolic link or a file on the way (so nothing a link
/// points to outside the root is ever written). Returns the directory.
pub(crate) fn create_below(root: &Path, below: &[String], location: &str) -> Result<PathBuf> {
    let fail = |what: String| Error::semantic(format!("LOCATION '{location}': {what}"));
    std::fs::create_dir_all(root).map_err(|e| {
        fail(format!(
            "cannot create the analytics root {}: {e}",
            root.display()
        ))
    })?;
    let mut dir = root.to_path_buf();
    for segment in below {
        dir.push(segment);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail(format!(
                    "{} is a symbolic link; a sink does not follow links",
                    dir.display()
                )))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(fail(format!("{} is not a directory", dir.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(fail(format!(
                            "cannot create the directory {}: {e}",
                            dir.display()
                        )))
                    }
                }
                // Created by another hand in between as a link: refused.
                if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                    return Err(fail(format!("{} is not a directory", dir.display())));
                }
            }
            Err(e) => return Err(fail(format!("cannot read {}: {e}", dir.display()))),
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(root: &str, allowed: &[&str]) -> SinkPolicy {
        SinkPolicy {
            root: root.to_string(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            s3: S3Access::default(),
        }
    }

    fn dir(root: &str, below: &[&str]) -> Location {
        Location {
            base: Base::Dir(PathBuf::from(root)),
            below: below.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_location_resolves_under_the_analytics_root_or_an_allowed_one() {
        let p = policy("/data/analytics", &["/srv/exports", "s3://lake/sluice"]);
        assert_eq!(
            p.resolve("clicks").unwrap(),
            dir("/data/analytics", &["clicks"])
        );
        assert_eq!(
            p.resolve("./a//b/").unwrap(),
            dir("/data/analytics", &["a", "b"])
        );
        assert_eq!(
            p.resolve("/data/analytics/x").unwrap(),
            dir("/data/analytics", &["x"])
        );
        assert_eq!(
            p.resolve("file:///srv/exports/y/dt=1").unwrap(),
            dir("/srv/exports", &["y", "dt=1"])
        );
        let s3 = p.resolve("s3://lake/sluice/z").unwrap();
        assert_eq!(
            s3,
            Location {
                base: Base::S3 {
                    bucket: "lake".into(),
                    prefix: "sluice".into()
                },
                below: vec!["z".into()],
            }
        );
        assert_eq!(s3.url(), "s3://lake/sluice/z/");
        assert_eq!(
            p.resolve("clicks").unwrap().url(),
            "file:///data/analytics/clicks/"
        );
        let on_s3 = policy("s3://lake/", &[]);
        assert_eq!(on_s3.resolve("c").unwrap().url(), "s3://lake/c/");
    }

    #[test]
    fn a_location_outside_every_root_is_refused_with_the_option_and_the_value() {
        let p = policy("/data/analytics", &["s3://lake/sluice"]);
        let e = |l: &str| p.resolve(l).unwrap_err().to_string();
        let outside = |l: &str| {
            format!("LOCATION '{l}' is outside the locations sinks may write: a relative directory (under the analytics root), or a location under /data/analytics, s3://lake/sluice (the server's analytics and analytics_allow settings)")
        };
        let climbs = |l: &str| {
            format!("LOCATION '{l}' has a '..' segment: a sink's directory never climbs out of its root")
        };
        assert_eq!(e("../../../../tmp/x"), climbs("../../../../tmp/x"));
        assert_eq!(e(".."), climbs(".."));
        assert_eq!(e("a/../../b"), climbs("a/../../b"));
        assert_eq!(
            e("/data/analytics/../state"),
            climbs("/data/analytics/../state")
        );
        assert_eq!(e("/tmp/x"), outside("/tmp/x"));
        assert_eq!(e("/data/analyticsx/y"), outside("/data/analyticsx/y"));
        assert_eq!(e("file:///tmp/x"), outside("file:///tmp/x"));
        assert_eq!(e("s3://any-bucket/x"), outside("s3://any-bucket/x"));
        assert_eq!(e("s3://lake/other/x"), outside("s3://lake/other/x"));
        assert_eq!(
            e("s3://lake/sluice"),
            "LOCATION 's3://lake/sluice' names a root sinks write under, not a directory of its own under it"
        );
        assert_eq!(
            e("/data/analytics/"),
            "LOCATION '/data/analytics/' names a root sinks write under, not a directory of its own under it"
        );
        assert_eq!(
            e("."),
            "LOCATION '.' names the analytics root itself: a sink needs a directory of its own under it"
        );
        assert_eq!(
            e("%2e%2e/x"),
            "LOCATION '%2e%2e/x' has the character '%': a directory name of a sink holds letters, digits and _ - . = only"
        );
        assert_eq!(
            e("file://host/x"),
            "LOCATION 'file://host/x' is not a file:///absolute/directory URL"
        );
        assert_eq!(
            e("ftp://host/x"),
            "LOCATION 'ftp://host/x' is neither a directory, a file:// URL nor an s3:// URL"
        );
        assert_eq!(
            e("s3:///prefix"),
            "LOCATION 's3:///prefix' names no bucket: expected s3://bucket/prefix"
        );
    }

    #[test]
    fn creating_a_directory_never_follows_a_link_below_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("analytics");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let below = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = create_below(&root, &below(&["link", "x"]), "link/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "LOCATION 'link/x': {} is a symbolic link; a sink does not follow links",
                root.join("link").display()
            )
        );
        assert!(!outside.join("x").exists());
        let made = create_below(&root, &below(&["a", "b"]), "a/b").unwrap();
        assert_eq!(made, root.join("a/b"));
        assert!(made.is_dir());
    }
}
