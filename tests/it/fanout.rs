//! A compaction fanned out over separate processes against the real S3 server: the lake is
//! the one a single process makes, whatever unit is killed and run again; the commit commits
//! once; a plan whose lake moved on is refused and planned again.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fault_store::{assert_same, snapshot};
use crate::harness::*;

const READ_UNITS: usize = 3;
const MERGE_UNITS: usize = 2;

/// Two lake snapshots are equal; the message names the entries that differ.
fn same_lake(got: &Path, want: &Path, what: &str) {
    assert_same(&snapshot(got), &snapshot(want), what);
}

/// The arguments of fan-out step `step` of run `run` (`unit` for read and merge).
fn step_args(
    step: &str,
    unit: Option<usize>,
    staged: &str,
    lake: &str,
    catalog: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = ["fanout", step, "--run", "nightly"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--staged", staged, "--lake", lake, "--catalog", s(catalog)].map(String::from));
    if let Some(u) = unit {
        args.extend(["--unit".to_string(), u.to_string()]);
    }
    if step == "plan" {
        args.extend(
            [
                "--read-units",
                &READ_UNITS.to_string(),
                "--merge-units",
                &MERGE_UNITS.to_string(),
            ]
            .map(String::from),
        );
    }
    if step == "commit" {
        args.push("--json".into());
    }
    args
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the units of one phase as parallel processes.
fn phase(step: &str, units: usize, staged: &str, lake: &str, catalog: &Path) {
    let children: Vec<_> = (0..units)
        .map(|u| spawn_fineo(&step_args(step, Some(u), staged, lake, catalog)))
        .collect();
    for (u, c) in children.into_iter().enumerate() {
        ok(c.wait_with_output().unwrap(), &format!("{step} unit {u}"));
    }
}

/// The whole fanned-out run: plan, read units and merge units in parallel, commit.
fn fan_out(staged: &str, lake: &str, catalog: &Path) -> Value {
    ok(
        fineo(&step_args("plan", None, staged, lake, catalog)),
        "plan",
    );
    phase("read", READ_UNITS, staged, lake, catalog);
    phase("merge", MERGE_UNITS, staged, lake, catalog);
    let out = ok(
        fineo(&step_args("commit", None, staged, lake, catalog)),
        "commit",
    );
    serde_json::from_str(&out).unwrap()
}

fn sample(site: &Site, records: u64) -> (std::path::PathBuf, Value, String) {
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, records, "mixed", 31, 2);
    let staged = site.put_tree(&sample.join("staged"), "staged");
    (sample.join("catalog"), truth, staged)
}

#[test]
fn a_fanned_out_run_makes_the_lake_one_process_makes_and_commits_once() {
    let site = Site::new(Backend::S3);
    let (catalog, truth, staged) = sample(&site, 4000);
    let single = compact(&staged, site.url("one"), Some(&catalog), &[]);
    let report = fan_out(&staged, &site.url("fan"), &catalog);
    assert_eq!(report["committed_version"], 1);
    for count in [
        "/records/records_in",
        "/records/written",
        "/records/duplicates/exact",
        "/records/duplicates/conflicting",
        "/records/errors",
        "/output/typed_rows",
        "/output/untyped_lines",
        "/output/partitions_touched",
        "/objects/read",
    ] {
        assert_eq!(report.pointer(count), single.pointer(count), "{count}");
    }
    assert_eq!(report["records"]["records_in"], truth["records"]);
    // File for file (deterministic names) and the Delta tables' active files.
    same_lake(&site.local("fan"), &site.local("one"), "fanned out");
    let (one, fan) = (site.dump("one"), site.dump("fan"));
    assert_eq!(
        typed_rows(&fan),
        typed_rows(&one),
        "typed rows read by deltalake on S3"
    );
    assert_eq!(untyped_lines(&fan), untyped_lines(&one));
    assert_eq!(
        lake_content(&site.local("fan")),
        lake_content(&site.local("one"))
    );

    // The commit step again: it finds its version committed and commits nothing.
    let again = fan_out_commit(&staged, &site.url("fan"), &catalog);
    assert_eq!(again["committed_version"], 1);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("committed already"),
        "{again}"
    );
    assert!(!site
        .local("fan")
        .join("_fineo/log/00000000000000000002.json")
        .exists());
    // Intermediate files are gone once committed.
    let left: Vec<_> = walk(&site.local("fan"))
        .into_iter()
        .filter(|p| p.to_str().unwrap().contains("/_fineo/fanout/nightly/v"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Nothing new: the plan is empty, the commit a no-op.
    let plan = ok(
        fineo(&step_args(
            "plan",
            None,
            &staged,
            &site.url("fan"),
            &catalog,
        )),
        "plan",
    );
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert!(plan["plan"].is_null(), "{plan}");
    let noop = fan_out_commit(&staged, &site.url("fan"), &catalog);
    assert_eq!(noop["noop"], true);
}

fn fan_out_commit(staged: &str, lake: &str, catalog: &Path) -> Value {
    let out = ok(
        fineo(&step_args("commit", None, staged, lake, catalog)),
        "commit",
    );
    serde_json::from_str(&out).unwrap()
}

/// Runs every step in turn; step `victim` is first killed (SIGKILL) `after` into its run,
/// then run again.
fn killed_then_rerun(site: &Site, lake: &str, victim: (&str, usize), after: Duration) {
    let (staged, catalog) = (site.url("staged"), site.scratch().join("sample/catalog"));
    let steps: Vec<(&str, Option<usize>)> = std::iter::once(("plan", None))
        .chain((0..READ_UNITS).map(|u| ("read", Some(u))))
        .chain((0..MERGE_UNITS).map(|u| ("merge", Some(u))))
        .chain(std::iter::once(("commit", None)))
        .collect();
    for (step, unit) in steps {
        let args = step_args(step, unit, &staged, lake, &catalog);
        if (step, unit.unwrap_or(0)) == victim {
            let mut child = spawn_fineo(&args);
            std::thread::sleep(after);
            let _ = child.kill();
            let _ = child.wait();
        }
        ok(fineo(&args), &format!("{step} {unit:?} after a kill"));
    }
}

#[test]
fn any_unit_killed_at_any_moment_and_run_again_gives_the_same_lake() {
    let site = Site::new(Backend::S3);
    let (catalog, _, staged) = sample(&site, 3000);
    compact(&staged, site.url("one"), Some(&catalog), &[]);
    let expected = snapshot(&site.local("one"));
    // How long each step takes uninterrupted, so the kills spread over its run.
    let timed = site.url("timed");
    let mut took = std::collections::BTreeMap::new();
    for (step, unit) in [
        ("plan", None),
        ("read", Some(0)),
        ("read", Some(1)),
        ("read", Some(2)),
    ]
    .into_iter()
    .chain([("merge", Some(0)), ("merge", Some(1)), ("commit", None)])
    {
        let started = Instant::now();
        ok(
            fineo(&step_args(step, unit, &staged, &timed, &catalog)),
            step,
        );
        took.insert((step, unit.unwrap_or(0)), started.elapsed());
    }
    let mut round = 0;
    for victim in [("plan", 0), ("read", 1), ("merge", 0), ("commit", 0)] {
        for percent in [25u32, 75] {
            let lake = format!("lake-{round}");
            round += 1;
            killed_then_rerun(
                &site,
                &site.url(&lake),
                victim,
                took[&victim] * percent / 100,
            );
            assert_same(
                &snapshot(&site.local(&lake)),
                &expected,
                &format!("{victim:?} killed at {percent}% of {:?}", took[&victim]),
            );
        }
    }
}

#[test]
fn a_plan_whose_lake_moved_on_is_refused_then_planned_again() {
    let site = Site::new(Backend::S3);
    let sample_dir = site.scratch().join("sample");
    let truth = generate(&sample_dir, 3000, "mixed", 33, 2);
    let catalog = sample_dir.join("catalog");
    let keys = deliveries(&truth);
    let a = site.put_objects(&sample_dir, keys.iter().step_by(2), "a");
    let b = site.put_objects(&sample_dir, keys.iter().skip(1).step_by(2), "b");
    compact(&a, site.url("sequential"), Some(&catalog), &[]);
    compact(&b, site.url("sequential"), Some(&catalog), &[]);

    let lake = site.url("lake");
    ok(fineo(&step_args("plan", None, &b, &lake, &catalog)), "plan");
    phase("read", READ_UNITS, &b, &lake, &catalog);
    phase("merge", MERGE_UNITS, &b, &lake, &catalog);
    // Another run commits before the commit step.
    compact(&a, &lake, Some(&catalog), &[]);
    let stale = fineo(&step_args("commit", None, &b, &lake, &catalog));
    assert_eq!(
        stale.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("planned on lake version 0") && err.contains("plan it again"),
        "{err}"
    );
    assert!(!site
        .local("lake")
        .join("_fineo/log/00000000000000000002.json")
        .exists());

    // Planned again on version 1, the run commits version 2: both inputs, nothing lost.
    let report = fan_out(&b, &lake, &catalog);
    assert_eq!(report["committed_version"], 2);
    same_lake(
        &site.local("lake"),
        &site.local("sequential"),
        "re-planned run",
    );
}

#[test]
fn units_spill_past_their_memory_budget_and_read_only_their_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let sample_dir = tmp.path().join("sample");
    let truth = generate(&sample_dir, 40_000, "jsonl-gz", 35, 1);
    let (staged, catalog) = (sample_dir.join("staged"), sample_dir.join("catalog"));
    let one = tmp.path().join("one");
    compact(&staged, &one, Some(&catalog), &[]);
    let lake = tmp.path().join("lake");
    let (st, lk) = (s(&staged).to_string(), s(&lake).to_string());
    let budget = |mut a: Vec<String>| {
        a.extend(["--memory-budget-mb".to_string(), "1".to_string()]);
        a
    };
    ok(
        fineo(&budget(step_args("plan", None, &st, &lk, &catalog))),
        "plan",
    );
    let objects = deliveries(&truth).len();
    let mut read = 0;
    for u in 0..READ_UNITS {
        let out = ok(
            fineo(&budget(step_args("read", Some(u), &st, &lk, &catalog))),
            "read",
        );
        let n: usize = out.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(
            n < objects,
            "a unit reads its slice, not the archive: {out}"
        );
        read += n;
    }
    assert_eq!(read, objects);
    for u in 0..MERGE_UNITS {
        ok(
            fineo(&budget(step_args("merge", Some(u), &st, &lk, &catalog))),
            "merge",
        );
    }
    let report: Value = serde_json::from_str(&ok(
        fineo(&step_args("commit", None, &st, &lk, &catalog)),
        "commit",
    ))
    .unwrap();
    assert!(
        report["spilled_bytes"].as_u64().unwrap() > 0,
        "the 1 MiB budget spilled"
    );
    // Most partitions are larger than a unit's 64 KiB share: read from the bucket files in
    // pieces and merged through runs on disk.
    let touched = report["output"]["partitions_touched"].as_u64().unwrap();
    let on_disk = report["output"]["partitions_merged_on_disk"]
        .as_u64()
        .unwrap();
    assert!(
        on_disk * 2 > touched,
        "{on_disk} of {touched} merged on disk"
    );
    same_lake(&lake, &one, "spilling units");
}
