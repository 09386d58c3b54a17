//! Test sites: one test body run against a local directory or a unique prefix of the real S3
//! server (moto, started by `scripts/with-moto.sh`, which `make test` wraps the suite in).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use fineo_batch::storage::{Location, StorageOptions};

/// Where a test's staged archive and lake live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A local temp directory.
    Fs,
    /// A unique prefix in the moto bucket, reached over HTTP as `s3://`.
    S3,
}

/// Generates `fs` and `s3` test functions calling `body(Backend)`: the same test body, once
/// per backend.
#[macro_export]
macro_rules! both_backends {
    ($(#[$attr:meta])* fn $name:ident;) => {
        mod $name {
            #[test]
            $(#[$attr])*
            fn fs() {
                super::$name($crate::harness::Backend::Fs)
            }
            #[test]
            $(#[$attr])*
            fn s3() {
                super::$name($crate::harness::Backend::S3)
            }
        }
    };
}

/// The moto server's endpoint and bucket (set by `scripts/with-moto.sh`).
pub fn s3_server() -> (String, String) {
    let endpoint = std::env::var("FINEO_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("FINEO_S3_ENDPOINT is not set: run the suite under scripts/with-moto.sh (make test does)")
    });
    let bucket = std::env::var("FINEO_S3_BUCKET").unwrap_or_else(|_| "fineo-test".into());
    (endpoint, bucket)
}

/// Test credentials for moto; the values are checked never to appear in logs or reports.
pub const S3_ACCESS_KEY: &str = "AKIAFINEOTESTKEY0001";
pub const S3_SECRET_KEY: &str = "fineo/SECRET/do-not-log/0123456789abcdef";

/// The AWS environment a child process needs to reach moto.
pub fn s3_env() -> Vec<(&'static str, String)> {
    let Ok(endpoint) = std::env::var("FINEO_S3_ENDPOINT") else {
        return Vec::new();
    };
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// The same settings as library storage options, for in-process runs.
pub fn s3_options() -> StorageOptions {
    let (endpoint, _) = s3_server();
    StorageOptions::new()
        .with("aws_endpoint", endpoint)
        .with("aws_access_key_id", S3_ACCESS_KEY)
        .with("aws_secret_access_key", S3_SECRET_KEY)
        .with("aws_region", "us-east-1")
}

/// A test's workspace: a local scratch directory, and named locations (`staged`, `lake`, ...)
/// on the chosen backend.
pub struct Site {
    pub backend: Backend,
    tmp: tempfile::TempDir,
    prefix: String,
}

static SITES: AtomicU64 = AtomicU64::new(0);

impl Site {
    pub fn new(backend: Backend) -> Site {
        let tmp = tempfile::tempdir().expect("tempdir");
        let n = SITES.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("site-{}-{n}-{nanos:x}", std::process::id());
        if backend == Backend::S3 {
            s3_server();
        }
        Site {
            backend,
            tmp,
            prefix,
        }
    }

    /// Local scratch space (samples are generated here).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Location `name` as the CLI takes it: a local path or `s3://bucket/prefix/name`.
    pub fn url(&self, name: &str) -> String {
        match self.backend {
            Backend::Fs => self.tmp.path().join(name).to_str().unwrap().to_string(),
            Backend::S3 => format!("s3://{}/{}/{name}", s3_server().1, self.prefix),
        }
    }

    /// Location `name` for in-process library runs.
    pub fn location(&self, name: &str) -> Location {
        match self.backend {
            Backend::Fs => Location::parse(&self.url(name)).unwrap(),
            Backend::S3 => Location::parse_with(&self.url(name), &s3_options()).unwrap(),
        }
    }

    /// Puts every file below the local directory `from` into location `name` (same relative
    /// keys); returns the location's URL.
    pub fn put_tree(&self, from: &Path, name: &str) -> String {
        let files: Vec<(PathBuf, String)> = crate::harness::walk(from)
            .into_iter()
            .map(|f| {
                let rel = f.strip_prefix(from).unwrap().to_str().unwrap().to_string();
                (f, rel)
            })
            .collect();
        self.put_files(&files, name)
    }

    /// Puts the sample's staged objects `keys` into location `name`; returns its URL.
    pub fn put_objects<'a>(
        &self,
        sample: &Path,
        keys: impl IntoIterator<Item = &'a String>,
        name: &str,
    ) -> String {
        let files: Vec<(PathBuf, String)> = keys
            .into_iter()
            .map(|k| (sample.join("staged").join(k), k.clone()))
            .collect();
        self.put_files(&files, name)
    }

    fn put_files(&self, files: &[(PathBuf, String)], name: &str) -> String {
        let dest = self.location(name);
        block_on(async {
            for (file, rel) in files {
                let bytes = std::fs::read(file).unwrap();
                dest.put(rel, bytes.into()).await.unwrap();
            }
        });
        self.url(name)
    }

    /// The lake `name` as other engines read it ([`crate::harness::lake_dump`]); on S3 read
    /// from a local mirror, and every Delta table also straight from S3 by deltalake.
    pub fn dump(&self, name: &str) -> serde_json::Value {
        let local = self.local(name);
        match self.backend {
            Backend::Fs => crate::harness::lake_dump(&local),
            Backend::S3 => {
                let dump = crate::harness::lake_dump_with(&local, &["--s3-lake", &self.url(name)]);
                let tables = dump["typed"].as_array().unwrap().len();
                assert!(tables > 0, "no typed table to read on S3");
                assert_eq!(dump["s3_tables_checked"], tables, "tables read on S3");
                dump
            }
        }
    }

    /// A local directory with the content of location `name`: the directory itself on the
    /// local backend, a fresh mirror (same keys, written through the local store) on S3.
    pub fn local(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        if self.backend == Backend::Fs {
            return dir;
        }
        let mirror = self.tmp.path().join(".mirror").join(name);
        if mirror.exists() {
            std::fs::remove_dir_all(&mirror).unwrap();
        }
        let from = self.location(name);
        let to = Location::parse(mirror.to_str().unwrap()).unwrap();
        block_on(async {
            let objects: Vec<_> = from
                .store()
                .list(Some(from.prefix()))
                .try_collect()
                .await
                .unwrap();
            for meta in objects {
                let bytes = from.get_path(&meta.location).await.unwrap();
                to.store()
                    .put(&to.path(&from.relative(&meta.location)), bytes.into())
                    .await
                    .unwrap();
            }
        });
        mirror
    }
}

/// Runs a future to completion on a fresh runtime in its own thread (callable from sync
/// tests and from inside a tokio test alike).
pub fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join()
        .unwrap()
    })
}

/// `(x-amz-server-side-encryption, KMS key id)` of every object below each key prefix, as
/// HEAD answers it (boto3, straight to the server).
pub fn head_objects(prefixes: &[String]) -> BTreeMap<String, (Option<String>, Option<String>)> {
    const SCRIPT: &str = r#"
import json, os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["FINEO_S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="head", aws_secret_access_key="head")
bucket = os.environ.get("FINEO_S3_BUCKET", "fineo-test")
out = {}
for prefix in sys.argv[1:]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            h = s3.head_object(Bucket=bucket, Key=o["Key"])
            out[o["Key"]] = [h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")]
print(json.dumps(out))
"#;
    let out = Command::new(crate::harness::python())
        .arg("-c")
        .arg(SCRIPT)
        .args(prefixes)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("head json")
}
