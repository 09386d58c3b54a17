//! Real processes: kill -9 of the binary at moments spread over a run, and two runs racing
//! for the same lake; on a local directory and on S3. Each ends in the lake an uninterrupted,
//! sequential run gives, never a lost or doubled record.

use std::process::{Child, Output};
use std::time::Instant;

use crate::fault_store::{assert_same, snapshot};
use crate::harness::*;

/// Records of a racing test's sample: moto answers a request in milliseconds, so the S3
/// variants use a smaller archive with the same shape (3 days, every format).
fn race_records(backend: Backend) -> u64 {
    match backend {
        Backend::Fs => 8000,
        Backend::S3 => 3000,
    }
}

fn spawn_compact(staged: &str, lake: &str, catalog: &std::path::Path) -> Child {
    spawn_fineo(&compact_args(staged, lake, Some(catalog)))
}

fn kill_9_at_moments_spread_over_a_run_then_rerun(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let records = match backend {
        Backend::Fs => 40_000,
        Backend::S3 => 6_000,
    };
    generate(&sample, records, "mixed", 13, 3);
    let catalog = sample.join("catalog");
    let staged = site.put_tree(&sample.join("staged"), "staged");
    let started = Instant::now();
    compact(&staged, site.url("reference"), Some(&catalog), &[]);
    let elapsed = started.elapsed();
    let expected = snapshot(&site.local("reference"));
    // Moments from the listing to the last publish step of the uninterrupted run.
    for (i, percent) in [3u32, 15, 35, 55, 75, 90, 97].into_iter().enumerate() {
        let lake = site.url(&format!("lake-{i}"));
        let mut child = spawn_compact(&staged, &lake, &catalog);
        std::thread::sleep(elapsed * percent / 100);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        compact(&staged, &lake, Some(&catalog), &[]);
        assert_same(
            &snapshot(&site.local(&format!("lake-{i}"))),
            &expected,
            &format!("after kill -9 at {percent}% of {elapsed:?}"),
        );
    }
}
crate::both_backends! { fn kill_9_at_moments_spread_over_a_run_then_rerun; }

/// Exit codes and stderr of racing runs: success, or a clean failure naming the conflict.
fn check_racer(out: Output) -> bool {
    raced(&out)
}

fn concurrent_runs_same_input_equal_a_single_run(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, race_records(backend), "mixed", 21, 3);
    let catalog = sample.join("catalog");
    let staged = site.put_tree(&sample.join("staged"), "staged");
    compact(&staged, site.url("reference"), Some(&catalog), &[]);
    let expected = snapshot(&site.local("reference"));
    for round in 0..3 {
        let lake = site.url(&format!("lake-{round}"));
        let (a, b) = (
            spawn_compact(&staged, &lake, &catalog),
            spawn_compact(&staged, &lake, &catalog),
        );
        let ok = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()].map(check_racer);
        assert!(ok.iter().any(|x| *x), "at least one run succeeds");
        compact(&staged, &lake, Some(&catalog), &[]);
        let got = snapshot(&site.local(&format!("lake-{round}")));
        assert_same(&got, &expected, &format!("round {round}"));
    }
}
crate::both_backends! { fn concurrent_runs_same_input_equal_a_single_run; }

fn concurrent_runs_disjoint_inputs_lose_nothing(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, race_records(backend), "mixed", 22, 3);
    let keys = deliveries(&truth);
    let catalog = sample.join("catalog");
    let halves = [
        site.put_objects(&sample, keys.iter().step_by(2), "a"),
        site.put_objects(&sample, keys.iter().skip(1).step_by(2), "b"),
    ];
    let sequential = site.url("sequential");
    compact(&halves[0], &sequential, Some(&catalog), &[]);
    compact(&halves[1], &sequential, Some(&catalog), &[]);
    let lake = site.url("lake");
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
    let got = lake_content(&site.local("lake"));
    assert_eq!(got, lake_content(&site.local("sequential")));
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
crate::both_backends! { fn concurrent_runs_disjoint_inputs_lose_nothing; }
