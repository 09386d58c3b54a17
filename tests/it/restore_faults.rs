//! Crash anywhere in a restore: cut at every write request (into an empty lake and over a lake
//! that holds the days already), and on S3 at write and request points; each rerun gives the
//! uninterrupted restore's lake file for file. And a compaction that commits while a restore
//! is between its plan and its commit: the restore plans again and keeps what it added.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use fineo_batch::ops::backup::Selection;
use fineo_batch::ops::CommonOptions;
use fineo_batch::storage::Location;
use fineo_batch::Restore;

use crate::backup::json_run;
use crate::fault_store::*;
use crate::harness::*;

fn plain(dir: &Path) -> Location {
    Location::parse(s(dir)).unwrap()
}

async fn restore(
    bk: &Location,
    lake: Location,
) -> fineo_batch::Result<fineo_batch::report::RunReport> {
    Restore::new(bk.clone(), lake).execute().await
}

/// The restore of tenant t01's days (every kind of write a restore makes, at a tenth of the
/// requests of all tenants).
async fn restore_t01(
    bk: &Location,
    lake: Location,
) -> fineo_batch::Result<fineo_batch::report::RunReport> {
    let selection = Selection {
        tenants: vec!["t01".into()],
        ..Default::default()
    };
    Restore::new(bk.clone(), lake)
        .with_selection(selection)
        .execute()
        .await
}

/// A sample, a lake of all of it with the catalog in its store, and its backup; and a second
/// lake of the first half of the objects (the days exist there already, with fewer records).
struct Setup {
    tmp: tempfile::TempDir,
    bk: PathBuf,
    half: PathBuf,
}

fn setup(records: u64) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, records, "mixed", 11, 2);
    let keys = deliveries(&truth);
    let catalog = sample.join("catalog");
    let (lake, half, bk) = (
        tmp.path().join("lake"),
        tmp.path().join("half"),
        tmp.path().join("bk"),
    );
    for l in [&lake, &half] {
        fineo_ok(&["schema", "import", "--lake", s(l), s(&catalog)], 0);
    }
    compact(sample.join("staged"), &lake, None, &[]);
    let first = tmp.path().join("first-half");
    copy_objects(&sample, keys.iter().take(keys.len() / 2), &first);
    compact(&first, &half, None, &[]);
    json_run(&["backup", "--lake", s(&lake), "--to", s(&bk)], 0);
    Setup { tmp, bk, half }
}

/// A dead store at every write of a restore, then a clean rerun; into an empty lake, and over
/// a lake holding fewer records of the same days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_of_a_restore_then_rerun() {
    let setup = setup(500);
    let bk = plain(&setup.bk);
    let empty = setup.tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut tried = 0;
    for (variant, base) in [("empty", &empty), ("over", &setup.half)] {
        let reference = setup.tmp.path().join(format!("reference-{variant}"));
        copy_tree(base, &reference);
        let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
        let report = restore_t01(&bk, loc).await.unwrap();
        assert!(report.committed_version.is_some());
        let writes = counter.count.load(Ordering::SeqCst);
        let expected = snapshot(&reference);
        assert!(writes > 20, "{variant}: {writes} writes");
        for fail_at in 0..writes {
            let lake = setup.tmp.path().join(format!("lake-{variant}-{fail_at}"));
            copy_tree(base, &lake);
            let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, fail_at);
            assert!(
                restore_t01(&bk, loc).await.is_err(),
                "{variant}: write #{fail_at}"
            );
            restore_t01(&bk, plain(&lake)).await.unwrap();
            assert_same(
                &snapshot(&lake),
                &expected,
                &format!("{variant}: after a failure at write #{fail_at} of {writes}"),
            );
            std::fs::remove_dir_all(&lake).unwrap();
        }
        tried += writes;
    }
    eprintln!("restore fault points tried: {tried} writes");
}

/// On S3: a dead store at write points spread over a restore of one tenant (every commit and
/// publish step included) and a transient failure at request points, then a rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failures_at_restore_write_and_request_points_then_rerun() {
    let setup = setup(300);
    let site = Site::new(Backend::S3);
    let bk = Location::parse(s(&setup.bk)).unwrap();
    let (loc, writes) = faulty(
        &site.location("reference"),
        Scope::Writes,
        Mode::Dead,
        u64::MAX,
    );
    restore_t01(&bk, loc).await.unwrap();
    let writes = writes.count.load(Ordering::SeqCst);
    let expected = snapshot(&site.local("reference"));
    let local = setup.tmp.path().join("local");
    restore_t01(&bk, plain(&local)).await.unwrap();
    assert_same(&snapshot(&local), &expected, "S3 and local restores differ");
    let (loc, requests) = faulty(&site.location("counted"), Scope::All, Mode::Dead, u64::MAX);
    restore_t01(&bk, loc).await.unwrap();
    let requests = requests.count.load(Ordering::SeqCst);
    let cases = s3_fault_points(writes, requests, 8, 10);
    let mut tried = 0;
    for (scope, mode, fail_at) in cases {
        let name = format!("lake-{scope:?}-{fail_at}");
        let (loc, _) = faulty(&site.location(&name), scope, mode, fail_at);
        let failed = restore_t01(&bk, loc).await.is_err();
        assert!(failed || mode == Mode::Transient, "write #{fail_at}");
        restore_t01(&bk, site.location(&name)).await.unwrap();
        assert_same(
            &snapshot(&site.local(&name)),
            &expected,
            &format!("after a {mode:?} failure at {scope:?} request #{fail_at}"),
        );
        tried += 1;
    }
    eprintln!("S3 restore fault points tried: {tried} ({writes} writes, {requests} requests)");
}

/// Runs a compaction (the real binary) the moment the restore first tries to create the next
/// lake log version: the compaction wins that version, the restore plans again.
/// Public for the replay's own interleaving test.
#[derive(Debug)]
pub struct CompactFirst {
    pub staged: PathBuf,
    pub lake: PathBuf,
    /// `--catalog` of the compaction (default: the lake's).
    pub catalog: Option<PathBuf>,
    pub done: std::sync::atomic::AtomicBool,
}

impl Hook for CompactFirst {
    fn before(&self, req: Req<'_>) -> object_store::Result<()> {
        if let Req::Put(p) = req {
            let is_log = p.as_ref().contains("_fineo/log/") && p.as_ref().ends_with(".json");
            if is_log && !self.done.swap(true, Ordering::SeqCst) {
                compact(&self.staged, &self.lake, self.catalog.as_deref(), &[]);
            }
        }
        Ok(())
    }
}

/// A compaction commits between a restore's plan and its commit: the restore plans again,
/// keeps the records the compaction added to the restored days, and the lake equals the
/// sequential "restore, then compact" run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_committing_during_a_restore_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 1500, "mixed", 5, 2);
    let catalog = sample.join("catalog");
    let halves = halves(&sample, &truth, tmp.path());
    let lake = tmp.path().join("lake");
    fineo_ok(&["schema", "import", "--lake", s(&lake), s(&catalog)], 0);
    compact(&halves[0], &lake, None, &[]);
    let bk = tmp.path().join("bk");
    json_run(&["backup", "--lake", s(&lake), "--to", s(&bk)], 0);
    let sequential = tmp.path().join("sequential");
    copy_tree(&lake, &sequential);
    restore(&plain(&bk), plain(&sequential)).await.unwrap();
    compact(&halves[1], &sequential, None, &[]);
    let hook = CompactFirst {
        staged: halves[1].clone(),
        lake: lake.clone(),
        catalog: None,
        done: Default::default(),
    };
    let (loc, hook) = tap(&plain(&lake), hook);
    let report = restore(&plain(&bk), loc).await.unwrap();
    assert!(hook.done.load(Ordering::SeqCst));
    assert_eq!(report.attempts, 2, "the restore lost the first race");
    let kept = report.restore.as_ref().unwrap().concurrent_records_kept;
    assert!(kept > 100, "{kept} records of the racing compaction kept");
    let (got, want) = (
        crate::harness::lake_dump(&lake),
        crate::harness::lake_dump(&sequential),
    );
    assert_eq!(typed_rows(&got), typed_rows(&want));
    assert_eq!(untyped_lines(&got), untyped_lines(&want));
    let rows: usize = typed_rows(&got).values().map(Vec::len).sum();
    assert_eq!(
        rows as u64,
        truth["typed_rows"].as_u64().unwrap(),
        "no record lost or doubled"
    );
}

/// Flips a byte of `file` before the first write request (after the restore verified its
/// bundles, before it copies anything).
#[derive(Debug)]
struct ChangeOnFirstWrite {
    file: PathBuf,
    done: std::sync::atomic::AtomicBool,
}

impl Hook for ChangeOnFirstWrite {
    fn before(&self, req: Req<'_>) -> object_store::Result<()> {
        if matches!(req, Req::Put(_)) && !self.done.swap(true, Ordering::SeqCst) {
            let mut bytes = std::fs::read(&self.file).unwrap();
            bytes[100] ^= 0xff;
            std::fs::write(&self.file, bytes).unwrap();
        }
        Ok(())
    }
}

/// A bundle file changed between verification and the copy: with the verified bytes kept in
/// memory (the default) the restore copies what it verified; with no memory for them it reads
/// the file again, names it as changed and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_file_changed_after_verification() {
    let setup = setup(300);
    let bk = plain(&setup.bk);
    let typed = walk(&setup.bk)
        .into_iter()
        .find(|f| s(f).contains("/tenant=t01/") && s(f).contains("/typed-"))
        .expect("a typed file of t01 in the backup");
    let reference = setup.tmp.path().join("reference");
    restore_t01(&bk, plain(&reference)).await.unwrap();
    let original = std::fs::read(&typed).unwrap();
    for budget in [None, Some(0)] {
        let lake = setup.tmp.path().join(format!("lake-{budget:?}"));
        let hook = ChangeOnFirstWrite {
            file: typed.clone(),
            done: Default::default(),
        };
        let (loc, hook) = tap(&plain(&lake), hook);
        let mut op = Restore::new(bk.clone(), loc).with_selection(Selection {
            tenants: vec!["t01".into()],
            ..Default::default()
        });
        if let Some(bytes) = budget {
            op = op.with_memory_budget(bytes);
        }
        let result = op.execute().await;
        assert!(hook.done.load(Ordering::SeqCst));
        std::fs::write(&typed, &original).unwrap();
        match budget {
            None => {
                result.unwrap();
                assert_eq!(snapshot(&lake), snapshot(&reference));
            }
            Some(_) => {
                let err = result.unwrap_err().to_string();
                let rel = typed.strip_prefix(&setup.bk).unwrap();
                assert!(
                    err.contains(s(rel)) && err.contains("changed in the backup location"),
                    "{err}"
                );
                assert!(
                    !lake.join("_fineo/log").exists() || walk(&lake.join("_fineo/log")).is_empty(),
                    "nothing committed"
                );
                assert!(!walk(&lake).iter().any(|f| s(f).contains("/_delta_log/")));
            }
        }
    }
}
