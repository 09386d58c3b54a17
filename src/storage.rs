//! Locations: a URL or local path turned into an object store plus a prefix, and the few
//! store calls the pipeline needs (conditional create, optional get, listing).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::error::{Error, Result};

/// Server-side encryption of the objects written to S3 (SPEC 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3: keys managed by S3 (`AES256`).
    Aes256,
    /// SSE-KMS: a KMS key (the bucket's default, or the one given as the KMS key id).
    Kms,
    /// DSSE-KMS: dual-layer encryption with a KMS key.
    DsseKms,
}

impl Sse {
    /// The value S3 takes in `x-amz-server-side-encryption`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms => "aws:kms",
            Sse::DsseKms => "aws:kms:dsse",
        }
    }

    /// Whether a KMS key id applies.
    pub fn uses_kms(self) -> bool {
        matches!(self, Sse::Kms | Sse::DsseKms)
    }
}

impl fmt::Display for Sse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sse {
    type Err = Error;

    /// `aes256`, `aws:kms` or `aws:kms:dsse`, in any case.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "aes256" => Ok(Sse::Aes256),
            "aws:kms" => Ok(Sse::Kms),
            "aws:kms:dsse" => Ok(Sse::DsseKms),
            _ => Err(Error::StorageOption {
                key: SSE_KEY.into(),
                reason: format!(
                    "unknown server-side encryption {s:?}: expected aes256, aws:kms or aws:kms:dsse"
                ),
            }),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Sse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

const SSE_KEY: &str = "aws_server_side_encryption";
const KMS_KEY_ID_KEY: &str = "aws_sse_kms_key_id";
const BUCKET_KEY_KEY: &str = "aws_sse_bucket_key_enabled";

/// Settings of the object store behind a location, as object_store configuration keys
/// (`aws_endpoint`, `aws_region`, `aws_server_side_encryption`, `aws_sse_kms_key_id`, ...).
/// They are applied over the standard environment (`AWS_*` variables, instance and task
/// roles), to `s3://` locations. Values may be credentials, so `Debug` prints the keys only,
/// and no error message carries a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// No settings beyond the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one configuration key (lower-case object_store name, e.g. `aws_endpoint`),
    /// unchecked; see [`StorageOptions::with_option`] for keys from users.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Sets one S3 configuration key given by a user (`aws_endpoint`, `endpoint`,
    /// `AWS_REGION`, ...), stored under its canonical name so later settings of the same key
    /// replace it. An unknown key is an [`Error::StorageOption`] naming the key only.
    pub fn with_option(self, key: &str, value: impl Into<String>) -> Result<Self> {
        let canonical = canonical_key(key).ok_or_else(|| Error::StorageOption {
            key: key.to_string(),
            reason: "not an S3 storage option (object_store keys such as aws_endpoint, \
                     aws_region, aws_server_side_encryption, aws_sse_kms_key_id)"
                .into(),
        })?;
        Ok(self.with(canonical, value))
    }

    /// Server-side encryption of every object written. SSE-S3 takes no KMS key: choosing
    /// it drops a KMS key id and bucket-key setting set before.
    pub fn with_sse(mut self, sse: Sse) -> Self {
        if !sse.uses_kms() {
            self.0.remove(KMS_KEY_ID_KEY);
            self.0.remove(BUCKET_KEY_KEY);
        }
        self.with(SSE_KEY, sse.as_str())
    }

    /// The KMS key (id, ARN or `alias/...`) of SSE-KMS / DSSE-KMS.
    pub fn with_sse_kms_key_id(self, key_id: impl Into<String>) -> Self {
        self.with(KMS_KEY_ID_KEY, key_id)
    }

    /// These settings, then `over`'s (which win).
    pub fn merged(mut self, over: &StorageOptions) -> Self {
        for (k, v) in over.iter() {
            self.0.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// The value of a key, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no setting is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The credential values among the settings (access key id, secret key, session token,
    /// SSE-C key): what must never be printed.
    pub fn credentials(&self) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(|(k, _)| is_credential_key(k))
            .map(|(_, v)| v)
    }

    /// Checks the settings as an `s3://` location would use them (over the environment):
    /// a known server-side encryption, and a KMS key id only with SSE-KMS or DSSE-KMS.
    pub fn check(&self) -> Result<()> {
        s3_builder(self).map(|_| ())
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl TryFrom<BTreeMap<String, String>> for StorageOptions {
    type Error = Error;

    /// Keys checked as by [`StorageOptions::with_option`].
    fn try_from(map: BTreeMap<String, String>) -> Result<Self> {
        map.into_iter()
            .try_fold(StorageOptions::new(), |o, (k, v)| o.with_option(&k, v))
    }
}

impl<'de> serde::Deserialize<'de> for StorageOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        StorageOptions::try_from(map).map_err(serde::de::Error::custom)
    }
}

/// The canonical object_store name of an S3 configuration key (`endpoint` ->
/// `aws_endpoint`), `None` when object_store does not know it.
fn canonical_key(key: &str) -> Option<String> {
    let key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().ok()?;
    Some(key.as_ref().to_string())
}

/// Whether an S3 configuration key (any spelling object_store accepts, e.g. an `AWS_*`
/// variable name) holds a credential.
pub fn is_credential_key(key: &str) -> bool {
    canonical_key(key).is_some_and(|k| {
        [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "aws_sse_customer_key_base64",
        ]
        .contains(&k.as_str())
    })
}

/// A place in an object store: the store, the prefix inside it, and the URL it came from.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: Url,
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
        Ok(Location { store, prefix, url })
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
        Location { store, prefix, url }
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

    /// Copies an object inside this location: read, then an atomic put (a server-side copy on
    /// a local filesystem hard-links, which leaves temp files behind when repeated).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let path = self.path(from);
        let bytes = self.get_path(&path).await?;
        self.put(to, bytes).await
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

/// The environment's S3 settings, then `options`, checked: an encryption S3 knows, and a
/// KMS key id only with SSE-KMS / DSSE-KMS (object_store would silently send none). A
/// plain-HTTP endpoint (a local S3-compatible server) is allowed without a separate
/// `aws_allow_http` (set on the builder, which keeps it inside the client options).
fn s3_builder(options: &StorageOptions) -> Result<AmazonS3Builder> {
    let mut builder = AmazonS3Builder::from_env();
    for (key, value) in options.iter() {
        let parsed: AmazonS3ConfigKey = key.parse().map_err(|_| Error::StorageOption {
            key: key.to_string(),
            reason: "not an S3 storage option".into(),
        })?;
        builder = builder.with_config(parsed, value);
    }
    let config = |key: &str| {
        builder.get_config_value(&key.parse::<AmazonS3ConfigKey>().expect("known S3 key"))
    };
    let sse = match config(SSE_KEY) {
        // SSE-C (a customer key) is object_store's to check; it is not offered as `--sse`.
        Some(v) if v == "sse-c" => None,
        Some(v) => Some(v.parse::<Sse>()?),
        None => None,
    };
    if config(KMS_KEY_ID_KEY).is_some() && !sse.is_some_and(Sse::uses_kms) {
        return Err(Error::StorageOption {
            key: KMS_KEY_ID_KEY.into(),
            reason: format!(
                "a KMS key id needs server-side encryption aws:kms or aws:kms:dsse, not {}",
                sse.map_or("none".to_string(), |s| s.to_string())
            ),
        });
    }
    let http = config("aws_endpoint").is_some_and(|e| e.starts_with("http://"));
    if http {
        builder = builder.with_allow_http(true);
    }
    Ok(builder)
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

    #[test]
    fn sse_modes_parse_in_any_case_and_unknown_ones_are_named() {
        for (text, sse) in [
            ("aes256", Sse::Aes256),
            ("AES256", Sse::Aes256),
            ("aws:kms", Sse::Kms),
            ("AWS:KMS:DSSE", Sse::DsseKms),
        ] {
            assert_eq!(text.parse::<Sse>().unwrap(), sse);
        }
        assert_eq!(
            "kms".parse::<Sse>().unwrap_err().to_string(),
            "storage option aws_server_side_encryption: unknown server-side encryption \"kms\": \
             expected aes256, aws:kms or aws:kms:dsse"
        );
        assert_eq!(Sse::DsseKms.to_string(), "aws:kms:dsse");
    }

    #[test]
    fn options_take_canonical_keys_and_refuse_unknown_ones_without_their_value() {
        let o = StorageOptions::new()
            .with_option("endpoint", "http://a")
            .unwrap()
            .with_option("AWS_ENDPOINT_URL", "http://b")
            .unwrap()
            .with_option("region", "eu-west-1")
            .unwrap();
        assert_eq!(
            o.iter().collect::<Vec<_>>(),
            [("aws_endpoint", "http://b"), ("aws_region", "eu-west-1")]
        );
        let err = StorageOptions::new()
            .with_option("aws_secret_acess_key", "s3cr3t-value")
            .unwrap_err();
        assert!(matches!(err, Error::StorageOption { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("storage option aws_secret_acess_key: not an S3 storage option"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t-value"));
        let err = StorageOptions::try_from(BTreeMap::from([(
            "bogus".to_string(),
            "s3cr3t-value".to_string(),
        )]))
        .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
    }

    #[test]
    fn sse_settings_and_their_precedence() {
        let kms = StorageOptions::new()
            .with_sse(Sse::Kms)
            .with_sse_kms_key_id("alias/lake")
            .with("aws_sse_bucket_key_enabled", "true");
        assert_eq!(kms.get("aws_server_side_encryption"), Some("aws:kms"));
        assert_eq!(kms.get("aws_sse_kms_key_id"), Some("alias/lake"));
        kms.check().unwrap();
        // SSE-S3 has no KMS key: choosing it drops the key id and the bucket-key setting.
        let s3 = kms.clone().with_sse(Sse::Aes256);
        assert_eq!(
            s3.iter().collect::<Vec<_>>(),
            [("aws_server_side_encryption", "AES256")]
        );
        s3.check().unwrap();
        // `merged`: the other's keys win, the rest stays.
        let over = StorageOptions::new().with_sse(Sse::DsseKms);
        let m = kms.merged(&over);
        assert_eq!(m.get("aws_server_side_encryption"), Some("aws:kms:dsse"));
        assert_eq!(m.get("aws_sse_kms_key_id"), Some("alias/lake"));
        m.check().unwrap();
    }

    #[test]
    fn inconsistent_sse_settings_are_refused() {
        let cases = [
            (
                StorageOptions::new().with_sse_kms_key_id("alias/lake"),
                "storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
                 aws:kms or aws:kms:dsse, not none",
            ),
            (
                StorageOptions::new()
                    .with_sse(Sse::Aes256)
                    .with_sse_kms_key_id("alias/lake"),
                "storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
                 aws:kms or aws:kms:dsse, not AES256",
            ),
            (
                StorageOptions::new()
                    .with_option("aws_server_side_encryption", "aws:kms2")
                    .unwrap(),
                "storage option aws_server_side_encryption: unknown server-side encryption \
                 \"aws:kms2\": expected aes256, aws:kms or aws:kms:dsse",
            ),
        ];
        for (o, msg) in cases {
            assert_eq!(o.check().unwrap_err().to_string(), msg);
            // An s3:// location with them is refused the same way.
            let err = Location::parse_with("s3://bucket/lake", &o).unwrap_err();
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn credentials_are_known_and_never_printed() {
        let o = StorageOptions::new()
            .with_option("aws_access_key_id", "AKIAUNITTESTKEY00001")
            .unwrap()
            .with_option("secret_access_key", "unit/secret/value/0123")
            .unwrap()
            .with_option("token", "unit-session-token-0123")
            .unwrap()
            .with_option("aws_region", "us-east-1")
            .unwrap();
        let mut creds: Vec<&str> = o.credentials().collect();
        creds.sort();
        assert_eq!(
            creds,
            [
                "AKIAUNITTESTKEY00001",
                "unit-session-token-0123",
                "unit/secret/value/0123"
            ]
        );
        for key in [
            "AWS_SECRET_ACCESS_KEY",
            "aws_session_token",
            "token",
            "sse_customer_key_base64",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in ["AWS_REGION", "aws_sse_kms_key_id", "endpoint", "nonsense"] {
            assert!(!is_credential_key(key), "{key}");
        }
        assert_eq!(
            format!("{o:?}"),
            "{\"aws_access_key_id\", \"aws_region\", \"aws_secret_access_key\", \"aws_session_token\"}"
        );
        // object_store's S3 client shows the access key id in its Debug; a Location does not
        // show its store's.
        let loc = Location::parse_with("s3://bucket/lake", &o).unwrap();
        assert_eq!(
            format!("{loc:?}"),
            "Location { url: \"s3://bucket/lake\", store: AmazonS3(bucket) }"
        );
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

    #[test]
    fn options_override_the_environment_and_an_http_endpoint_is_allowed() {
        let opts = StorageOptions::new()
            .with("AWS_ENDPOINT", "http://127.0.0.1:1")
            .with("aws_region", "eu-west-1");
        let builder = s3_builder(&opts).unwrap();
        let get = |k: AmazonS3ConfigKey| builder.get_config_value(&k);
        let endpoint = get(AmazonS3ConfigKey::Endpoint).unwrap();
        assert_eq!(endpoint, "http://127.0.0.1:1");
        assert_eq!(get(AmazonS3ConfigKey::Region).unwrap(), "eu-west-1");
        let allow = AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp);
        assert_eq!(get(allow).unwrap(), "true");
    }
}
