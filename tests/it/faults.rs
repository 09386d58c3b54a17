//! Crash safety and concurrency: a store that fails at the Nth write, kill -9 of the real
//! binary, and two runs racing for the same lake. Each ends in the lake an uninterrupted,
//! sequential run gives.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::process::Command;
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
use fineo_batch::Compact;

use crate::harness::*;

/// Passes reads through; the `fail_at`-th write request (0-based) and every later one fail,
/// as if the process had died there.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    writes: AtomicU64,
    fail_at: u64,
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore({})", self.fail_at)
    }
}

impl FailingStore {
    fn check(&self) -> object_store::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.fail_at {
            return Err(object_store::Error::Generic {
                store: "FailingStore",
                source: "injected failure".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        if let Err(e) = self.check() {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

fn failing_lake(dir: &Path, fail_at: u64) -> (Location, Arc<FailingStore>) {
    let plain = Location::parse(s(dir)).unwrap();
    let store = Arc::new(FailingStore {
        inner: plain.store().clone(),
        writes: AtomicU64::new(0),
        fail_at,
    });
    let loc = Location::with_store(store.clone(), plain.prefix().clone(), plain.url().clone());
    (loc, store)
}

async fn run(
    sample: &Path,
    lake: Location,
) -> fineo_batch::Result<fineo_batch::report::CompactReport> {
    run_with(sample, lake, &sample.join("catalog")).await
}

async fn run_with(
    sample: &Path,
    lake: Location,
    catalog: &Path,
) -> fineo_batch::Result<fineo_batch::report::CompactReport> {
    Compact::new(Location::parse(s(&sample.join("staged"))).unwrap(), lake)
        .with_catalog(Some(Location::parse(s(catalog)).unwrap()))
        .execute()
        .await
}

/// Every data file a reader could meet, by path and content hash, plus each Delta table's
/// active files. Deterministic file names make a recovered lake byte-identical.
fn snapshot(lake: &Path) -> BTreeMap<String, String> {
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
            || rel == "_fineo/catalog-applied.json";
        if keep {
            let h = xxhash_rust::xxh3::xxh3_64(&std::fs::read(&f).unwrap());
            out.insert(rel, format!("{h:016x}"));
        }
    }
    for (p, live) in active {
        if live {
            out.insert(format!("delta-active:{p}"), String::new());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_then_rerun_gives_the_uninterrupted_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 600, "mixed", 9, 1);
    let reference = tmp.path().join("reference");
    let (loc, counter) = failing_lake(&reference, u64::MAX);
    run(&sample, loc).await.unwrap();
    let writes = counter.writes.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    assert!(
        writes > 20 && expected.len() > 10,
        "{writes} writes, {} files",
        expected.len()
    );
    // Every write request of the run: data files, staging, the commit, every publish step.
    let points: Vec<u64> = (0..writes).collect();
    for &fail_at in &points {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        let (loc, _) = failing_lake(&lake, fail_at);
        assert!(
            run(&sample, loc).await.is_err(),
            "write #{fail_at} was injected to fail"
        );
        let report = run(&sample, Location::parse(s(&lake)).unwrap())
            .await
            .unwrap();
        assert!(report.conservation_ok);
        assert_eq!(
            snapshot(&lake),
            expected,
            "after a failure at write #{fail_at} of {writes}"
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!("fault points tried: {} of {writes} writes", points.len());
    // One recovered lake read by other engines, whole.
    let lake = tmp.path().join("lake-mid");
    let (loc, _) = failing_lake(&lake, writes / 2);
    assert!(run(&sample, loc).await.is_err());
    run(&sample, Location::parse(s(&lake)).unwrap())
        .await
        .unwrap();
    assert_eq!(lake_content(&lake), lake_content(&reference));
}

/// A re-typing run (the catalog learned a field and a metric alias) cut at every write, then
/// rerun: the lake the uninterrupted re-typing run gives, with no record lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_of_a_retyping_run_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 400, "mixed", 21, 1);
    let before = tmp.path().join("catalog-before");
    copy_tree(&sample.join("catalog"), &before);
    let doc_path = before.join("t01.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    doc["metrics"]["boiler"]["fields"]
        .as_object_mut()
        .unwrap()
        .shift_remove("site");
    doc["metrics"]["boiler"]["aliases"] = serde_json::json!(["machine1"]);
    std::fs::write(&doc_path, doc.to_string()).unwrap();
    let base = tmp.path().join("base");
    run_with(&sample, Location::parse(s(&base)).unwrap(), &before)
        .await
        .unwrap();
    let reference = tmp.path().join("reference");
    copy_tree(&base, &reference);
    let (loc, counter) = failing_lake(&reference, u64::MAX);
    let report = run(&sample, loc).await.unwrap();
    // t01's boiler partition re-typed, and machine1b's emptied into it.
    assert_eq!(report.retype.partitions, 2, "{:?}", report.retype);
    assert!(report.retype.records > 10, "{:?}", report.retype);
    let writes = counter.writes.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    for fail_at in 0..writes {
        let lake = tmp.path().join(format!("retype-{fail_at}"));
        copy_tree(&base, &lake);
        let (loc, _) = failing_lake(&lake, fail_at);
        assert!(run(&sample, loc).await.is_err(), "write #{fail_at}");
        let report = run(&sample, Location::parse(s(&lake)).unwrap())
            .await
            .unwrap();
        assert!(report.conservation_ok);
        assert_eq!(
            snapshot(&lake),
            expected,
            "after a failure at write #{fail_at} of {writes} of the re-typing run"
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!("re-typing fault points tried: {writes}");
    assert_eq!(lake_content(&reference)["typed"], {
        let scratch = tmp.path().join("scratch");
        run(&sample, Location::parse(s(&scratch)).unwrap())
            .await
            .unwrap();
        lake_content(&scratch)["typed"].clone()
    });
}

#[test]
fn kill_9_at_random_moments_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 40000, "mixed", 13, 3);
    let (staged, catalog) = (sample.join("staged"), sample.join("catalog"));
    let reference = tmp.path().join("reference");
    compact(&staged, &reference, Some(&catalog), &[]);
    let expected = snapshot(&reference);
    for (i, delay_ms) in [15u64, 60, 120, 200, 300, 450].into_iter().enumerate() {
        let lake = tmp.path().join(format!("lake-{i}"));
        let mut child = spawn_compact(&staged, &lake, &catalog);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        compact(&staged, &lake, Some(&catalog), &[]);
        assert_eq!(snapshot(&lake), expected, "after kill -9 at {delay_ms} ms");
    }
}

fn spawn_compact(staged: &Path, lake: &Path, catalog: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_fineo-batch"))
        .args(compact_args(staged, lake, Some(catalog)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Exit codes and stderr of racing runs: success, or a clean failure naming the conflict.
fn check_racer(out: std::process::Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => true,
        Some(1) => {
            assert!(err.contains("concurrent commit"), "unclear failure: {err}");
            false
        }
        other => panic!("racing run exited {other:?}: {err}"),
    }
}

#[test]
fn concurrent_runs_same_input_equal_a_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 8000, "mixed", 21, 3);
    let (staged, catalog) = (sample.join("staged"), sample.join("catalog"));
    let reference = tmp.path().join("reference");
    compact(&staged, &reference, Some(&catalog), &[]);
    for round in 0..3 {
        let lake = tmp.path().join(format!("lake-{round}"));
        let (a, b) = (
            spawn_compact(&staged, &lake, &catalog),
            spawn_compact(&staged, &lake, &catalog),
        );
        let ok = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()].map(check_racer);
        assert!(ok.iter().any(|x| *x), "at least one run succeeds");
        compact(&staged, &lake, Some(&catalog), &[]);
        assert_eq!(snapshot(&lake), snapshot(&reference), "round {round}");
    }
}

#[test]
fn concurrent_runs_disjoint_inputs_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 8000, "mixed", 22, 3);
    let keys = deliveries(&truth);
    let catalog = sample.join("catalog");
    let halves = [tmp.path().join("a"), tmp.path().join("b")];
    copy_objects(&sample, keys.iter().step_by(2), &halves[0]);
    copy_objects(&sample, keys.iter().skip(1).step_by(2), &halves[1]);
    let sequential = tmp.path().join("sequential");
    compact(&halves[0], &sequential, Some(&catalog), &[]);
    compact(&halves[1], &sequential, Some(&catalog), &[]);
    let lake = tmp.path().join("lake");
    let (a, b) = (
        spawn_compact(&halves[0], &lake, &catalog),
        spawn_compact(&halves[1], &lake, &catalog),
    );
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let ok = outs.map(check_racer);
    // A run that gave up is simply run again, as the scheduler would.
    for (i, done) in ok.iter().enumerate() {
        if !done {
            compact(&halves[i], &lake, Some(&catalog), &[]);
        }
    }
    let got = lake_content(&lake);
    assert_eq!(got, lake_content(&sequential));
    let rows: usize = got["typed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert_eq!(
        rows as u64,
        truth["typed_rows"].as_u64().unwrap(),
        "no record lost or doubled"
    );
}
