//! Crash anywhere in a replay (a failure at every write request, then a rerun, gives the
//! uninterrupted replay's lake file for file), a compaction committing between a replay's
//! plan and its commit, and a replay racing a compaction as processes: no record is lost.

use std::path::Path;
use std::sync::atomic::Ordering;

use fineo_batch::ops::{PipelineOptions, Replay};
use fineo_batch::storage::Location;

use crate::backup::content;
use crate::fault_store::*;
use crate::harness::*;
use crate::restore_faults::CompactFirst;

fn plain(dir: &Path) -> Location {
    Location::parse(s(dir)).unwrap()
}

const HOUR: (i64, i64) = (1_767_261_600_000, 1_767_265_200_000); // 2026-01-01T10:00Z .. 11:00Z

async fn replay(
    sample: &Path,
    lake: Location,
) -> fineo_batch::Result<fineo_batch::report::RunReport> {
    Replay::new(plain(&sample.join("staged")), lake, HOUR.0, HOUR.1)?
        .with_catalog(Some(plain(&sample.join("catalog"))))
        .execute()
        .await
}

/// A dead store at every write of a replay of one hour, then a clean rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_write_of_a_replay_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    generate(&sample, 500, "mixed", 17, 1);
    let base = tmp.path().join("base");
    compact(
        sample.join("staged"),
        &base,
        Some(&sample.join("catalog")),
        &[],
    );
    let reference = tmp.path().join("reference");
    copy_tree(&base, &reference);
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    let report = replay(&sample, loc).await.unwrap();
    assert!(report.committed_version.is_some(), "{}", report.message);
    let writes = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    assert!(writes > 10, "{writes} writes");
    for fail_at in 0..writes {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        copy_tree(&base, &lake);
        let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, fail_at);
        assert!(replay(&sample, loc).await.is_err(), "write #{fail_at}");
        replay(&sample, plain(&lake)).await.unwrap();
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after a failure at write #{fail_at} of {writes}"),
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
    eprintln!("replay fault points tried: {writes} writes");
}

/// A compaction of new objects commits between a replay's plan and its commit: the replay
/// plans again, reads those objects too, and the lake equals "compact, then replay".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_committing_during_a_replay_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 1500, "mixed", 23, 1);
    let catalog = sample.join("catalog");
    let halves = halves(&sample, &truth, tmp.path());
    let lake = tmp.path().join("lake");
    compact(&halves[0], &lake, Some(&catalog), &[]);
    let sequential = tmp.path().join("sequential");
    copy_tree(&lake, &sequential);
    compact(&halves[1], &sequential, Some(&catalog), &[]);
    replay(&sample, plain(&sequential)).await.unwrap();
    let hook = CompactFirst {
        staged: halves[1].clone(),
        lake: lake.clone(),
        catalog: Some(catalog.clone()),
        done: Default::default(),
    };
    let (loc, hook) = tap(&plain(&lake), hook);
    let report = replay(&sample, loc).await.unwrap();
    assert!(hook.done.load(Ordering::SeqCst));
    assert_eq!(report.attempts, 2, "the replay lost the first race");
    let (got, want) = (lake_dump(&lake), lake_dump(&sequential));
    assert_eq!(typed_rows(&got), typed_rows(&want));
    assert_eq!(untyped_lines(&got), untyped_lines(&want));
    let rows: usize = typed_rows(&got).values().map(Vec::len).sum();
    assert_eq!(
        rows as u64,
        truth["typed_rows"].as_u64().unwrap(),
        "no record lost or doubled"
    );
}

/// A replay and a compaction of new objects started at once as processes: each succeeds or
/// gives up cleanly (and is run again); the lake equals the sequential runs'.
fn replay_racing_a_compaction_loses_nothing(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let truth = generate(
        &sample,
        if backend == Backend::Fs { 3000 } else { 1500 },
        "mixed",
        29,
        1,
    );
    let keys = deliveries(&truth);
    let catalog = sample.join("catalog");
    let all = site.put_tree(&sample.join("staged"), "all");
    let a = site.put_objects(&sample, keys.iter().step_by(2), "a");
    let b = site.put_objects(&sample, keys.iter().skip(1).step_by(2), "b");
    compact(&a, site.url("sequential"), Some(&catalog), &[]);
    compact(&b, site.url("sequential"), Some(&catalog), &[]);
    let expected = content(&site, "sequential");
    let lake = site.url("lake");
    compact(&a, &lake, Some(&catalog), &[]);
    let replay_args: Vec<String> = [
        "replay",
        "--staged",
        &all,
        "--lake",
        &lake,
        "--catalog",
        s(&catalog),
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T12:00:00Z",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let compact_args = compact_args(&b, &lake, Some(&catalog));
    let (r, c) = (spawn_fineo(&replay_args), spawn_fineo(&compact_args));
    let outs = [r.wait_with_output().unwrap(), c.wait_with_output().unwrap()];
    for (out, args) in outs.iter().zip([&replay_args, &compact_args]) {
        if !raced(out) {
            fineo_ok(args, 0);
        }
    }
    assert_eq!(content(&site, "lake"), expected);
}
crate::both_backends! { fn replay_racing_a_compaction_loses_nothing; }
