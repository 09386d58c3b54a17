//! The Delta log of a table the hourly runs commit to: checkpointed at the table's interval, and
//! cleaned of expired commits with a checkpoint (as Spark does), never on the runs between.
//! Readers see every row throughout. (That the runs between skip the cleanup's LIST is not
//! asserted: the Delta library's default would remove the same files.)

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::append::{catalog, object};
use crate::harness::*;

/// Checkpoint interval set on the table (the Delta default is 100).
const INTERVAL: u64 = 4;

/// Version numbers of the commit files and of the checkpoints in a `_delta_log`.
fn log_files(log: &Path) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (mut commits, mut checkpoints) = (BTreeSet::new(), BTreeSet::new());
    for e in std::fs::read_dir(log).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let version = |s: &str| s.parse::<u64>().unwrap();
        if let Some(v) = name.strip_suffix(".checkpoint.parquet") {
            checkpoints.insert(version(v));
        } else if let Some(v) = name.strip_suffix(".json") {
            if v.len() == 20 {
                commits.insert(version(v));
            }
        }
    }
    (commits, checkpoints)
}

/// Makes every file of the log older than the default log retention (30 days).
fn expire(log: &Path) {
    let old = SystemTime::now() - Duration::from_secs(40 * 86_400);
    for e in std::fs::read_dir(log).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(e.unwrap().path())
            .unwrap();
        f.set_modified(old).unwrap();
    }
}

#[test]
fn expired_commits_are_removed_only_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (staged, lake) = (tmp.path().join("staged"), tmp.path().join("lake"));
    object(&staged, 0, &[0, 2, 3], 10.0);
    compact(&staged, &lake, Some(&catalog()), &[]);
    let table = lake.join("typed/tenant=t1/metric=boiler");
    let log = table.join("_delta_log");
    let set_interval = format!(
        "from deltalake import DeltaTable\n\
         DeltaTable({:?}).alter.set_table_properties({{'delta.checkpointInterval': '{INTERVAL}'}})",
        s(&table)
    );
    python_ok(&["-c", &set_interval]);
    let mut seen = 0;
    for run in 1..=9u32 {
        expire(&log);
        let (before, _) = log_files(&log);
        let second = 60 * i64::from(run);
        object(&staged, run, &[second, second + 2], 20.0);
        compact(&staged, &lake, Some(&catalog()), &[]);
        let (after, checkpoints) = log_files(&log);
        let v = *after.last().unwrap();
        assert_eq!(v, before.last().unwrap() + 1, "run {run}: one commit");
        if (v + 1) % INTERVAL == 0 {
            assert!(checkpoints.contains(&v), "run {run}: checkpoint at {v}");
            assert_eq!(
                after,
                BTreeSet::from([v]),
                "run {run}: expired commits removed"
            );
            seen += 1;
        } else {
            let mut expect = before.clone();
            expect.insert(v);
            assert_eq!(after, expect, "run {run}: the log kept whole");
        }
    }
    assert_eq!(
        seen, 3,
        "versions 3, 7 and 11 checkpointed (0 created it, 2 set the interval)"
    );
    let one = tmp.path().join("one");
    compact(&staged, &one, Some(&catalog()), &[]);
    assert_eq!(lake_content(&lake), lake_content(&one));
    let rows = typed_rows(&lake_dump(&lake));
    assert_eq!(rows["t1/boiler"].len(), 3 + 2 * 9, "{rows:?}");
}
