//! Crash anywhere: a run cut at every write request (dead store), at every request (one
//! transient failure), and by a real process abort at write points, on a local lake and on
//! S3; each rerun ends in the lake an uninterrupted run gives, byte for byte.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

use fineo_batch::ops::PipelineOptions;
use fineo_batch::storage::Location;
use fineo_batch::Compact;

use crate::fault_store::*;
use crate::harness::*;

/// A local lake directory as a plain location.
fn plain(dir: &Path) -> Location {
    Location::parse(s(dir)).unwrap()
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

/// A dead store at every write request of a run (data files, staging, the commit, every
/// publish step), then a clean rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_then_rerun_gives_the_uninterrupted_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 600, "mixed", 9, 1);
    let reference = tmp.path().join("reference");
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    run(&sample, loc).await.unwrap();
    let writes = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    assert!(
        writes > 20 && expected.len() > 10,
        "{writes} writes, {} files",
        expected.len()
    );
    for fail_at in 0..writes {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, fail_at);
        assert!(
            run(&sample, loc).await.is_err(),
            "write #{fail_at} was injected to fail"
        );
        let report = run(&sample, plain(&lake)).await.unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after a failure at write #{fail_at} of {writes}"),
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!("dead-store fault points tried: {writes} of {writes} writes");
    // One recovered lake read by other engines, whole.
    let lake = tmp.path().join("lake-mid");
    let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, writes / 2);
    assert!(run(&sample, loc).await.is_err());
    run(&sample, plain(&lake)).await.unwrap();
    assert_eq!(lake_content(&lake), lake_content(&reference));
}

/// One transient failure at every request of a run, reads and listings included (a flaky
/// network), then a rerun: the lake of an uninterrupted run, nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_at_every_request_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 150, "mixed", 19, 1);
    let reference = tmp.path().join("reference");
    let (loc, counter) = faulty(&plain(&reference), Scope::All, Mode::Transient, u64::MAX);
    run(&sample, loc).await.unwrap();
    let requests = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    let mut failed_runs = 0;
    for fail_at in 0..requests {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        let (loc, _) = faulty(&plain(&lake), Scope::All, Mode::Transient, fail_at);
        // A failure the run can absorb (a cleanup delete, say) may let it succeed.
        failed_runs += run(&sample, loc).await.is_err() as u64;
        let report = run(&sample, plain(&lake)).await.unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after a transient failure at request #{fail_at} of {requests}"),
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!("transient fault points tried: {requests} requests, {failed_runs} runs failed");
    // About half of a run's requests fail it (160-168 of 321 seen); the others are absorbed
    // (a best-effort cleanup, an optional read retried on the next step), and which request
    // gets number N varies with task timing. A third is the floor that still shows the faults
    // land on requests that matter.
    assert!(
        failed_runs * 3 > requests,
        "a third of requests matter to a run"
    );
}

/// The test binary itself, run as a child process that aborts at a write request.
fn abort_in_child(sample: &Path, lake: &Path, fail_at: u64) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "faults::abort_child", "--ignored", "--nocapture"])
        .env(
            "FINEO_ABORT_CHILD",
            format!("{}\n{}\n{fail_at}", s(sample), s(lake)),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// Not a test of its own: the child process of `an_abort_at_write_points_then_rerun` (it
/// does nothing unless that test sets FINEO_ABORT_CHILD).
#[tokio::test]
#[ignore = "child process entry of an_abort_at_write_points_then_rerun"]
async fn abort_child() {
    let Ok(spec) = std::env::var("FINEO_ABORT_CHILD") else {
        return;
    };
    let parts: Vec<&str> = spec.lines().collect();
    let (sample, lake, fail_at) = (Path::new(parts[0]), parts[1], parts[2].parse().unwrap());
    let plain = Location::parse(lake).unwrap();
    let (loc, _) = faulty(&plain, Scope::Writes, Mode::Abort, fail_at);
    let _ = run(sample, loc).await;
    unreachable!("write #{fail_at} should have aborted the process");
}

/// The process aborts (no unwinding, no cleanup) at write points spread over a run, then a
/// clean rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_at_write_points_then_rerun() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 600, "mixed", 9, 1);
    let reference = tmp.path().join("reference");
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    run(&sample, loc).await.unwrap();
    let writes = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    let points: Vec<u64> = (0..writes).step_by(3).collect();
    for &fail_at in &points {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        let status = abort_in_child(&sample, &lake, fail_at);
        assert_eq!(status.signal(), Some(6), "write #{fail_at}: {status:?}");
        let report = run(&sample, plain(&lake)).await.unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after an abort at write #{fail_at} of {writes}"),
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!(
        "abort fault points tried: {} of {writes} writes",
        points.len()
    );
}

/// On S3: a dead store at write points spread over the run (every publish step included), and
/// a transient failure at request points, then a rerun; the recovered lake equals the
/// uninterrupted S3 run's, which equals the local-directory run's byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failures_at_write_and_request_points_then_rerun() {
    let site = Site::new(Backend::S3);
    let sample = site.scratch().join("sample");
    generate(&sample, 300, "mixed", 9, 1);
    let local = site.scratch().join("local");
    run(&sample, Location::parse(s(&local)).unwrap())
        .await
        .unwrap();
    let (loc, writes) = faulty(
        &site.location("reference"),
        Scope::Writes,
        Mode::Dead,
        u64::MAX,
    );
    run(&sample, loc).await.unwrap();
    let writes = writes.count.load(Ordering::SeqCst);
    let expected = snapshot(&site.local("reference"));
    assert_same(&snapshot(&local), &expected, "S3 and local lakes differ");
    let (loc, requests) = faulty(&site.location("counted"), Scope::All, Mode::Dead, u64::MAX);
    run(&sample, loc).await.unwrap();
    let requests = requests.count.load(Ordering::SeqCst);
    let cases = s3_fault_points(writes, requests, 12, 12);
    let mut tried = 0;
    for (scope, mode, fail_at) in cases {
        let name = format!("lake-{scope:?}-{fail_at}");
        let (loc, _) = faulty(&site.location(&name), scope, mode, fail_at);
        let failed = run(&sample, loc).await.is_err();
        assert!(failed || mode == Mode::Transient, "write #{fail_at}");
        let report = run(&sample, site.location(&name)).await.unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&site.local(&name)),
            &expected,
            &format!("after a {mode:?} failure at {scope:?} request #{fail_at}"),
        );
        tried += 1;
    }
    eprintln!("S3 fault points tried: {tried} ({writes} writes, {requests} requests per run)");
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
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    let report = run(&sample, loc).await.unwrap();
    // t01's boiler partition re-typed, and machine1b's emptied into it.
    assert_eq!(report.retype.partitions, 2, "{:?}", report.retype);
    assert!(report.retype.records > 10, "{:?}", report.retype);
    let writes = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    for fail_at in 0..writes {
        let lake = tmp.path().join(format!("retype-{fail_at}"));
        copy_tree(&base, &lake);
        let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, fail_at);
        assert!(run(&sample, loc).await.is_err(), "write #{fail_at}");
        let report = run(&sample, Location::parse(s(&lake)).unwrap())
            .await
            .unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after a failure at write #{fail_at} of {writes} of the re-typing run"),
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
