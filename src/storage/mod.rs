//! Locations: a URL or local path turned into an object store plus a prefix, and the few
//! store calls the pipeline needs (conditional create, optional get, listing).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::error::{Error, Result};

mod counted;
mod options;

pub use counted::{Counts, Requests};
use options::s3_builder;
pub use options::{is_credential_key, Sse, StorageOptions};

/// A place in an object store: the store, the prefix inside it, and the URL it came from.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: Url,
    /// Requests made through `store` (shared by every location over it).
    counts: Arc<Counts>,
}

/// The URL and the store's name only: a store's own `Debug` may show its configuration
/// (object_store's S3 client shows the access key id).
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url.as_str())
            .field("store", &format_args!("{}", self.store))
            .finish()
    }
}

/// Outcome of a conditional create.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The object did not exist and now holds our bytes.
    Yes,
    /// Someone else created it first; nothing was written.
    AlreadyExists,
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///abs/path`, or a plain local path (created if
    /// missing). S3 credentials, region, endpoint and SSE settings come from the standard AWS
    /// environment (`AWS_ENDPOINT_URL`, `AWS_SERVER_SIDE_ENCRYPTION`, `AWS_SSE_KMS_KEY_ID`, ...).
    pub fn parse(location: &str) -> Result<Self> {
        Self::parse_with(location, &StorageOptions::default())
    }

    /// Like [`Location::parse`], with store settings that override the environment.
    pub fn parse_with(location: &str, options: &StorageOptions) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        let url = if location.contains("://") {
            Url::parse(location).map_err(|e| invalid(e.to_string()))?
        } else {
            let path = std::path::Path::new(location);
            std::fs::create_dir_all(path).map_err(|e| invalid(e.to_string()))?;
            let abs = std::fs::canonicalize(path).map_err(|e| invalid(e.to_string()))?;
            Url::from_directory_path(&abs).map_err(|_| invalid("not an absolute path".into()))?
        };
        let (store, prefix) = build_store(&url, options).map_err(|e| match e {
            BuildError::Option(e) => e,
            BuildError::Other(reason) => invalid(reason),
        })?;
        Ok(Location::with_store(store, prefix, url))
    }

    /// Like [`Location::parse`] for inputs: a local directory must already exist (a typo in
    /// `--staged` or `--catalog` is an error, not an empty input).
    pub fn parse_existing(location: &str) -> Result<Self> {
        Self::parse_existing_with(location, &StorageOptions::default())
    }

    /// Like [`Location::parse_existing`], with store settings that override the environment.
    pub fn parse_existing_with(location: &str, options: &StorageOptions) -> Result<Self> {
        let local = match location.strip_prefix("file://") {
            Some(path) => Some(path),
            None if !location.contains("://") => Some(location),
            None => None,
        };
        if let Some(path) = local {
            if !std::path::Path::new(path).is_dir() {
                return Err(Error::InvalidLocation {
                    location: location.to_string(),
                    reason: "no such directory".into(),
                });
            }
        }
        Self::parse_with(location, options)
    }

    /// A location over an explicit store (tests wrap stores to inject faults).
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: Path, url: Url) -> Self {
        let (store, counts) = counted::wrap(store);
        Location {
            store,
            prefix,
            url,
            counts,
        }
    }

    /// The requests made through this location's store so far (by every location over it).
    pub fn requests(&self) -> Requests {
        self.counts.snapshot()
    }

    /// The store behind this location.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL this location was parsed from (always ends without a trailing slash).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The prefix inside the store.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// A child location (same store) below `rel`, which uses `/` separators of safe parts.
    pub fn child(&self, rel: &str) -> Location {
        let prefix = self.path(rel);
        let mut url = self.url.clone();
        {
            let mut segs = url.path_segments_mut().expect("base url");
            segs.pop_if_empty();
            // The URL carries each raw part percent-encoded once (`%` -> `%25`), so anything
            // that decodes the URL (delta-rs does) lands on the same key as `path`.
            for part in prefix.parts().skip(self.prefix.parts().count()) {
                segs.push(part.as_ref());
            }
        }
        Location {
            store: self.store.clone(),
            prefix,
            url,
            counts: self.counts.clone(),
        }
    }

    /// The full store path of `rel` below this location. `rel` is taken as already encoded
    /// (our names are escaped by [`crate::names::escape`], listed keys come back encoded), so
    /// it maps to the same key on every store; a part that is not a valid encoded segment is
    /// encoded by object_store instead.
    pub fn path(&self, rel: &str) -> Path {
        let rel: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let prefix = self.prefix.as_ref();
        let raw = match prefix.is_empty() {
            true => rel.join("/"),
            false => format!("{prefix}/{}", rel.join("/")),
        };
        Path::parse(&raw).unwrap_or_else(|_| {
            // Characters Path::parse refuses (control characters) are encoded by PathPart.
            rel.iter().fold(self.prefix.clone(), |path, part| {
                path.join(part.to_string())
            })
        })
    }

    /// The path of `full` relative to this location's prefix.
    pub fn relative(&self, full: &Path) -> String {
        match full.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => full.to_string(),
        }
    }

    /// Reads an object, `None` when it does not exist.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<Bytes>> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::store(&path, e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Reads an object with its metadata (size, ETag), `None` when it does not exist.
    pub async fn get_with_meta(&self, rel: &str) -> Result<Option<(Bytes, ObjectMeta)>> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r.bytes().await.map_err(|e| Error::store(&path, e))?;
                Ok(Some((bytes, meta)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// An object's metadata, `None` when it does not exist.
    pub async fn head(&self, rel: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(rel);
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// The last `n` bytes of an object (all of it when smaller) and its size; `None` when it
    /// does not exist.
    pub async fn get_suffix(&self, path: &Path, n: u64) -> Result<Option<(Bytes, u64)>> {
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Suffix(n)),
            ..Default::default()
        };
        match self.store.get_opts(path, opts).await {
            Ok(r) => {
                let size = r.meta.size;
                let b = r.bytes().await.map_err(|e| Error::store(path, e))?;
                Ok(Some((b, size)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(path, e)),
        }
    }

    /// A byte range of an object.
    pub async fn get_range(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|e| Error::store(path, e))
    }

    /// Reads an object by full path.
    pub async fn get_path(&self, path: &Path) -> Result<Bytes> {
        let r = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::store(path, e))?;
        r.bytes().await.map_err(|e| Error::store(path, e))
    }

    /// Writes (or overwrites) an object atomically.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(rel);
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| Error::store(&path, e))?;
        Ok(())
    }

    /// Writes an object made of `parts` (in order) without joining them in memory.
    pub async fn put_parts(&self, rel: &str, parts: impl IntoIterator<Item = Bytes>) -> Result<()> {
        let path = self.path(rel);
        self.store
            .put(&path, parts.into_iter().collect::<PutPayload>())
            .await
            .map_err(|e| Error::store(&path, e))?;
        Ok(())
    }

    /// Creates an object only if it does not exist (If-None-Match on S3).
    pub async fn put_create(&self, rel: &str, bytes: Bytes) -> Result<Created> {
        let path = self.path(rel);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        self.delete_path(&path).await
    }

    /// Deletes an object by full path; a missing object is not an error.
    pub async fn delete_path(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(path, e)),
        }
    }

    /// Copies an object inside this location, server-side: a CopyObject on S3 (with the SSE
    /// settings), an atomic hard link on a local filesystem. A repeated local copy is skipped:
    /// renaming a link over itself is a no-op that would leave the store's temp link behind.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from), self.path(to));
        if self.same_local_file(&src, &dst) {
            return Ok(());
        }
        match self.store.copy(&src, &dst).await {
            Ok(()) => Ok(()),
            // A local filesystem without hard links (some network mounts): read, then put.
            Err(e)
                if self.url.scheme() == "file"
                    && !matches!(e, object_store::Error::NotFound { .. }) =>
            {
                let bytes = self.get_path(&src).await?;
                self.put(to, bytes).await
            }
            Err(e) => Err(Error::store(&src, e)),
        }
    }

    /// Whether two paths of a local location are links to one file.
    fn same_local_file(&self, a: &Path, b: &Path) -> bool {
        #[cfg(unix)]
        if self.url.scheme() == "file" {
            use std::os::unix::fs::MetadataExt;
            let meta = |p: &Path| std::fs::metadata(format!("/{p}")).ok();
            if let (Some(a), Some(b)) = (meta(a), meta(b)) {
                return (a.dev(), a.ino()) == (b.dev(), b.ino());
            }
        }
        false
    }

    /// Whether an object exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        let path = self.path(rel);
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Whether any object exists below `rel` (one listing request).
    pub async fn any_below(&self, rel: &str) -> Result<bool> {
        let path = self.path(rel);
        let mut stream = self.store.list(Some(&path));
        match stream.try_next().await {
            Ok(found) => Ok(found.is_some()),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// The names of the "directories" right below `rel` (one delimited listing).
    pub async fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        match self.store.list_with_delimiter(Some(&path)).await {
            Ok(r) => Ok(r
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Lists the objects below `rel` whose full path sorts after `rel/after`: S3's StartAfter.
    /// Local stores walk directory by directory, skipping those wholly before the offset, so
    /// the cost follows what is after it there too.
    pub async fn list_after(&self, rel: &str, after: &str) -> Result<Vec<ObjectMeta>> {
        let base = self.path(rel);
        let offset = self.path(&format!("{rel}/{after}"));
        if self.url.scheme() != "file" {
            return self
                .store
                .list_with_offset(Some(&base), &offset)
                .try_collect()
                .await
                .or_else(|e| match e {
                    object_store::Error::NotFound { .. } => Ok(Vec::new()),
                    e => Err(Error::store(&base, e)),
                });
        }
        let offset = offset.as_ref();
        let mut found = Vec::new();
        let mut dirs = vec![base];
        while let Some(dir) = dirs.pop() {
            let listed = match self.store.list_with_delimiter(Some(&dir)).await {
                Ok(l) => l,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(Error::store(&dir, e)),
            };
            found.extend(
                listed
                    .objects
                    .into_iter()
                    .filter(|m| m.location.as_ref() > offset),
            );
            dirs.extend(listed.common_prefixes.into_iter().filter(|p| {
                let inside = format!("{}/", p.as_ref());
                offset.starts_with(&inside) || inside.as_str() > offset
            }));
        }
        found.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(found)
    }

    /// Lists every object below `rel` (recursively).
    pub async fn list(&self, rel: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(rel);
        let found: Vec<ObjectMeta> =
            self.store
                .list(Some(&path))
                .try_collect()
                .await
                .or_else(|e| match e {
                    object_store::Error::NotFound { .. } => Ok(Vec::new()),
                    e => Err(Error::store(&path, e)),
                })?;
        Ok(found)
    }
}

/// Why a store could not be built: a bad setting (its own error), or the location itself.
enum BuildError {
    Option(Error),
    Other(String),
}

impl From<String> for BuildError {
    fn from(reason: String) -> Self {
        BuildError::Other(reason)
    }
}

impl From<&str> for BuildError {
    fn from(reason: &str) -> Self {
        BuildError::Other(reason.to_string())
    }
}

fn build_store(
    url: &Url,
    options: &StorageOptions,
) -> std::result::Result<(Arc<dyn ObjectStore>, Path), BuildError> {
    match url.scheme() {
        "s3" | "s3a" => {
            let bucket = url.host_str().ok_or("missing bucket")?;
            let store = s3_builder(options)
                .map_err(BuildError::Option)?
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| e.to_string())?;
            let prefix = Path::from_url_path(url.path()).map_err(|e| e.to_string())?;
            Ok((Arc::new(store), prefix))
        }
        "file" => {
            let store = object_store::local::LocalFileSystem::new().with_automatic_cleanup(true);
            let path = url
                .to_file_path()
                .map_err(|_| "not a local file url".to_string())?;
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            let prefix = Path::from_absolute_path(&path).map_err(|e| e.to_string())?;
            Ok((Arc::new(store), prefix))
        }
        _ => {
            let (store, prefix) =
                object_store::parse_url_opts(url, options.iter()).map_err(|e| e.to_string())?;
            Ok((Arc::from(store), prefix))
        }
    }
}

/// A single file given as a URL or local path (`s3://bucket/dir/report.json`,
/// `out/report.json`): the location of its directory and its name.
#[derive(Clone, Debug)]
pub struct FileTarget {
    dir: Location,
    name: String,
}

impl FileTarget {
    /// Parses `dest`; a local directory is created if missing.
    pub fn parse_with(dest: &str, options: &StorageOptions) -> Result<Self> {
        let (dir, name) = match dest.rsplit_once('/') {
            Some((d, n)) if !d.is_empty() && !d.ends_with(':') && !d.ends_with("//") => {
                (d.to_string(), n.to_string())
            }
            Some(("", n)) => ("/".to_string(), n.to_string()),
            _ => (".".to_string(), dest.to_string()),
        };
        if name.is_empty() {
            return Err(Error::InvalidLocation {
                location: dest.to_string(),
                reason: "names a directory, not a file".into(),
            });
        }
        Ok(FileTarget {
            dir: Location::parse_with(&dir, options)?,
            name,
        })
    }

    /// The file's URL.
    pub fn url(&self) -> String {
        format!(
            "{}/{}",
            self.dir.url().as_str().trim_end_matches('/'),
            self.name
        )
    }

    /// Writes (or overwrites) the file.
    pub async fn put(&self, bytes: Bytes) -> Result<()> {
        self.dir.put(&self.name, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeated_local_copy_leaves_one_file_and_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let loc = Location::parse(tmp.path().to_str().unwrap()).unwrap();
        loc.put("staging/a.jsonl", Bytes::from_static(b"new"))
            .await
            .unwrap();
        loc.put("final/a.jsonl", Bytes::from_static(b"old"))
            .await
            .unwrap();
        // A publish rolled forward a second time copies the same staged file again.
        for _ in 0..2 {
            loc.copy("staging/a.jsonl", "final/a.jsonl").await.unwrap();
        }
        loc.delete("staging/a.jsonl").await.unwrap();
        let dir = tmp.path().join("final");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a.jsonl"], "no temporary link left behind");
        assert_eq!(std::fs::read(dir.join("a.jsonl")).unwrap(), b"new");
        let gone = loc.copy("staging/a.jsonl", "final/b.jsonl").await;
        assert!(matches!(gone, Err(Error::Store { .. })), "{gone:?}");
    }

    #[tokio::test]
    async fn a_file_target_is_its_directory_and_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("reports/run.json");
        let t = FileTarget::parse_with(dest.to_str().unwrap(), &StorageOptions::new()).unwrap();
        t.put(Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}");
        assert!(t.url().starts_with("file:///") && t.url().ends_with("/reports/run.json"));
        let s3 = FileTarget::parse_with("s3://bucket/r/run.json", &StorageOptions::new()).unwrap();
        assert_eq!(s3.url(), "s3://bucket/r/run.json");
        let err = FileTarget::parse_with("s3://bucket/r/", &StorageOptions::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid location \"s3://bucket/r/\": names a directory, not a file"
        );
    }
}
