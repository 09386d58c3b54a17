//! A pass-through object store that asks a hook before each request; the hook that fails the
//! Nth request (an error for good, once, or a process abort); and lake snapshots that compare
//! a recovered lake file by file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use fineo_batch::storage::Location;

use crate::harness::*;

/// A request a [`TapStore`] is about to pass on.
#[derive(Clone, Copy, Debug)]
pub enum Req<'a> {
    Put(&'a StorePath),
    Multipart(&'a StorePath),
    /// A copy, by its target.
    Copy(&'a StorePath),
    /// The start of a delete request (its paths follow as [`Req::Delete`]).
    DeleteStream,
    Delete(&'a StorePath),
    Get,
    List,
}

impl Req<'_> {
    fn is_write(&self) -> bool {
        !matches!(self, Req::Get | Req::List)
    }
}

/// What a [`TapStore`] does before each request: note it, or fail it.
pub trait Hook: fmt::Debug + Send + Sync + 'static {
    fn before(&self, req: Req<'_>) -> object_store::Result<()>;
}

/// Passes every request through to `inner`, after asking its hook.
#[derive(Debug)]
pub struct TapStore<H: Hook> {
    inner: Arc<dyn ObjectStore>,
    hook: Arc<H>,
}

impl<H: Hook> fmt::Display for TapStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TapStore({:?} over {})", self.hook, self.inner)
    }
}

/// `plain` with its store wrapped in a [`TapStore`] asking `hook`.
pub fn tap<H: Hook>(plain: &Location, hook: H) -> (Location, Arc<H>) {
    let hook = Arc::new(hook);
    let store = Arc::new(TapStore {
        inner: plain.store().clone(),
        hook: hook.clone(),
    });
    let loc = Location::with_store(store, plain.prefix().clone(), plain.url().clone());
    (loc, hook)
}

fn failed<T: Send + 'static>(
    e: object_store::Error,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move { Err(e) }).boxed()
}

#[async_trait::async_trait]
impl<H: Hook> ObjectStore for TapStore<H> {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.hook.before(Req::Put(location))?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.hook.before(Req::Multipart(location))?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.hook.before(Req::Get)?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        if let Err(e) = self.hook.before(Req::DeleteStream) {
            return failed(e);
        }
        let hook = self.hook.clone();
        let noted = locations
            .map(move |r| {
                let p = r?;
                hook.before(Req::Delete(&p))?;
                Ok(p)
            })
            .boxed();
        self.inner.delete_stream(noted)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.hook.before(Req::List) {
            return failed(e);
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.hook.before(Req::List)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.hook.before(Req::Copy(to))?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// Which requests are counted (and can fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Puts, multipart starts, copies and delete requests.
    Writes,
    /// Every request, reads and listings included.
    All,
}

/// What happens at the chosen request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// It and every later counted request fail: the process lost its connection for good.
    Dead,
    /// Only it fails (a flaky network); later requests succeed.
    Transient,
    /// The process aborts there (SIGABRT), mid-run, with nothing cleaned up.
    Abort,
}

/// The hook that fails the `fail_at`-th counted request (0-based).
#[derive(Debug)]
pub struct Faults {
    scope: Scope,
    mode: Mode,
    fail_at: u64,
    /// Counted requests so far.
    pub count: AtomicU64,
}

impl Hook for Faults {
    fn before(&self, req: Req<'_>) -> object_store::Result<()> {
        // A delete request counts once, not per path.
        let counted = match req {
            Req::Delete(_) => false,
            r => r.is_write() || self.scope == Scope::All,
        };
        if !counted {
            return Ok(());
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let hit = match self.mode {
            Mode::Dead => n >= self.fail_at,
            Mode::Transient | Mode::Abort => n == self.fail_at,
        };
        if !hit {
            return Ok(());
        }
        if n == self.fail_at {
            // Shown with a failing test's output: which request the fault met.
            eprintln!("fault {:?} at request #{n}: {req:?}", self.mode);
        }
        if self.mode == Mode::Abort {
            std::process::abort();
        }
        Err(object_store::Error::Generic {
            store: "FaultStore",
            source: format!("injected failure at request #{n}").into(),
        })
    }
}

/// `plain` with its store failing the `fail_at`-th request of `scope` as `mode` says.
pub fn faulty(plain: &Location, scope: Scope, mode: Mode, fail_at: u64) -> (Location, Arc<Faults>) {
    let faults = Faults {
        scope,
        mode,
        fail_at,
        count: AtomicU64::new(0),
    };
    tap(plain, faults)
}

/// Every data file a reader could meet, by path and content hash, plus each Delta table's
/// active files. Deterministic file names make a recovered lake byte-identical.
pub fn snapshot(lake: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut active: BTreeMap<String, bool> = BTreeMap::new();
    for f in walk(lake) {
        let rel = f.strip_prefix(lake).unwrap().to_str().unwrap().to_string();
        if rel.contains('#') {
            // object_store's local temp file of a write cut short by kill -9: never renamed
            // into place, so no reader (Delta log, *.jsonl glob) can meet it.
            continue;
        }
        if rel.contains("/_delta_log/") && rel.ends_with(".json") {
            let table = rel.split("/_delta_log/").next().unwrap().to_string();
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                let a: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(p) = a["add"]["path"].as_str() {
                    active.insert(format!("{table}/{p}"), true);
                }
                if let Some(p) = a["remove"]["path"].as_str() {
                    active.insert(format!("{table}/{p}"), false);
                }
            }
            continue;
        }
        let keep = rel.starts_with("typed/") && rel.ends_with(".parquet")
            || rel.starts_with("untyped/")
            || rel.starts_with("errors/")
            || rel.starts_with("_fineo/index/")
            || rel.starts_with("_proposals/")
            || rel.starts_with("_catalog/")
            || rel == "_fineo/catalog-applied.json";
        if keep {
            let h = xxhash_rust::xxh3::xxh3_64(&std::fs::read(&f).unwrap());
            out.insert(without_run_day(rel), format!("{h:016x}"));
        }
    }
    for (p, live) in active {
        if live {
            out.insert(format!("delta-active:{p}"), String::new());
        }
    }
    out
}

/// A quarantine file's path without its run day (`errors/tenant=t/date=<today>/..`): the day
/// is the clock's, and a reference run before midnight meets a rerun after it.
fn without_run_day(rel: String) -> String {
    let parts: Vec<&str> = rel.splitn(4, '/').collect();
    match parts.as_slice() {
        ["errors", tenant, day, rest] if day.starts_with("date=") => {
            format!("errors/{tenant}/date=<run day>/{rest}")
        }
        _ => rel,
    }
}

/// Two snapshots are equal; the panic names only the entries that differ (a whole snapshot
/// is too long for a CI log).
pub fn assert_same(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>, what: &str) {
    let diff: Vec<_> = got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(diff.is_empty(), "{what}: got vs want differ in {diff:#?}");
}

/// The fault points of an S3 run: `k` write points spread over its `writes` plus its last
/// `last` writes (the commit and every publish step), dead; and `k` request points spread over
/// its `requests`, transient.
pub fn s3_fault_points(writes: u64, requests: u64, k: u64, last: u64) -> Vec<(Scope, Mode, u64)> {
    let spread = |n: u64| -> Vec<u64> { (0..k).map(|i| i * n / k).collect() };
    let mut write_points = spread(writes);
    write_points.extend(writes.saturating_sub(last)..writes);
    write_points.sort_unstable();
    write_points.dedup();
    write_points
        .into_iter()
        .map(|p| (Scope::Writes, Mode::Dead, p))
        .chain(
            spread(requests)
                .into_iter()
                .map(|p| (Scope::All, Mode::Transient, p)),
        )
        .collect()
}
