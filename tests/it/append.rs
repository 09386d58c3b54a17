//! Appends: a run whose records all come after a partition's own adds a typed file and an
//! index row group to it instead of rewriting it. The lake reads as one run over the same
//! objects (deltalake, DuckDB, the content fingerprint), a partition holds at most
//! `MAX_APPENDS + 1` typed files before it is written whole again, a late record rewrites it
//! whole, and a run cut at any write of an append, then rerun, ends in the uninterrupted lake.
//! Tail rewrites: records reaching back into a partition's last 6-hour window rewrite that
//! window only, and the same holds of them.

use std::path::Path;
use std::sync::atomic::Ordering;

use fineo_batch::ops::compact::MAX_APPENDS;
use fineo_batch::ops::PipelineOptions;
use fineo_batch::storage::Location;
use fineo_batch::Compact;
use serde_json::Value;

use crate::fault_store::*;
use crate::harness::*;

/// 2026-01-01T00:00:00Z in ms.
const DAY: i64 = 1_767_225_600_000;

/// Writes one staged object delivered at minute `minute` of 2026-01-01 holding records at the
/// given seconds of the day: temperatures, some sent through the alias, some with a field the
/// catalog does not know (the same second, the same line); a bad line in the first object.
pub(crate) fn object(staged: &Path, minute: u32, seconds: &[i64], value: f64) -> String {
    let (h, m) = (minute / 60, minute % 60);
    let rel = format!(
        "2026/01/01/{h:02}/fineo-1-2026-01-01-{h:02}-{m:02}-00-aaaaaaaa-0000-4000-8000-{minute:012}.json"
    );
    let mut text = String::new();
    for s in seconds {
        let metric = if s % 3 == 1 { "machine1" } else { "boiler" };
        let fw = if s % 4 == 2 { ",\"fw\":\"v2\"" } else { "" };
        text.push_str(&format!(
            "{{\"tenant\":\"t1\",\"metric\":\"{metric}\",\"timestamp\":{},\"temperature\":{}{fw}}}\n",
            DAY + s * 1000,
            value + *s as f64
        ));
    }
    if minute == 0 {
        text.push_str("{\"tenant\":\"t1\",\"metric\":\"boiler\",\"timestamp\":\"soon\"}\n");
    }
    let path = staged.join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    rel
}

pub(crate) fn catalog() -> std::path::PathBuf {
    testdata("fixtures/dedup/catalog")
}

/// Typed files of the one table's one partition, by the Delta readers.
fn typed_files(lake: &Path) -> u64 {
    let dump = lake_dump(lake);
    let tables = dump["typed"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{dump}");
    tables[0]["files"].as_u64().unwrap()
}

/// Compacts `staged` (a local directory) into a fresh lake named `name` in one run.
fn one_run(site: &Site, staged: &Path, name: &str) -> Value {
    let url = site.put_tree(staged, &format!("{name}-staged"));
    compact(&url, site.url(name), Some(&catalog()), &[])
}

fn appended_then_rewritten_read_as_one_run(backend: Backend) {
    let site = Site::new(backend);
    let src = site.scratch().join("src");
    let staged = site.url("staged");
    let lake = site.url("inc");
    object(&src, 0, &(0..40).collect::<Vec<_>>(), 10.0);
    site.put_tree(&src, "staged");
    let r = compact(&staged, &lake, Some(&catalog()), &[]);
    assert_eq!(r["output"]["partitions_appended"], 0);
    assert_eq!(r["records"]["errors"], 1);

    // Each later object brings 10 later records (two of them the same record twice): appended,
    // until the partition holds MAX_APPENDS appends and the next run writes it whole again.
    for run in 1..=MAX_APPENDS + 1 {
        let start = 40 + 10 * run as i64;
        let mut secs: Vec<i64> = (start..start + 10).collect();
        secs.push(start + 9);
        object(&src, run * 5, &secs, 100.0 * run as f64);
        site.put_tree(&src, "staged");
        let r = compact(&staged, &lake, Some(&catalog()), &[]);
        let appended = run <= MAX_APPENDS;
        assert_eq!(
            r["output"]["partitions_appended"],
            u64::from(appended),
            "run {run}: {r}"
        );
        assert_eq!(r["records"]["records_in"], 11, "run {run}");
        assert_eq!(r["records"]["duplicates"]["exact"], 1, "run {run}");
        assert_eq!(r["records"]["lake_records_replaced"], 0, "run {run}");
        assert_eq!(
            r["output"]["files_removed"],
            if appended { 0 } else { MAX_APPENDS as u64 + 1 },
            "run {run}"
        );
        if run == 2 {
            assert_eq!(typed_files(&site.local("inc")), 3);
            let one = one_run(&site, &src, "one-2");
            assert_eq!(one["records"]["written"], 40 + 20);
            assert_eq!(
                lake_content(&site.local("inc")),
                lake_content(&site.local("one-2")),
                "two appends differ from one run"
            );
            if backend == Backend::Fs {
                assert_eq!(
                    manifest(&site.local("inc")).content,
                    manifest(&site.local("one-2")).content
                );
                assert_eq!(manifest(&site.local("inc")).appends, 2);
                // The joined index, read by pyarrow: every record, one row group per write,
                // timestamps in order.
                let index = site.local("inc").join(INDEX);
                let out = python_ok(&["-c", PYARROW_INDEX, s(&index)]);
                assert_eq!(String::from_utf8_lossy(&out).trim(), "60 3 True");
            }
        }
    }
    assert_eq!(
        typed_files(&site.local("inc")),
        1,
        "written whole after MAX_APPENDS"
    );
    let mut distinct = 40 + 10 * (MAX_APPENDS as u64 + 1);

    // Two appends (the first without an untyped field: the partition's untyped file stays),
    // then a correction of an early record: the partition is rewritten whole, and reads as
    // one run over every object.
    for run in MAX_APPENDS + 2..=MAX_APPENDS + 3 {
        let start = 40 + 10 * run as i64;
        let typed_only = run == MAX_APPENDS + 2;
        let secs: Vec<i64> = (start..start + 10)
            .filter(|s| !typed_only || s % 4 != 2)
            .collect();
        object(&src, run * 5, &secs, 7.0);
        site.put_tree(&src, "staged");
        let r = compact(&staged, &lake, Some(&catalog()), &[]);
        assert_eq!(r["output"]["partitions_appended"], 1);
        assert_eq!(r["output"]["untyped_lines"] == 0, typed_only, "{r}");
        distinct += secs.len() as u64;
    }
    assert_eq!(typed_files(&site.local("inc")), 3);
    object(&src, 600, &[5, 1000], -1.0);
    site.put_tree(&src, "staged");
    let r = compact(&staged, &lake, Some(&catalog()), &[]);
    assert_eq!(r["output"]["partitions_appended"], 0);
    assert_eq!(r["records"]["lake_records_replaced"], 1);
    assert_eq!(typed_files(&site.local("inc")), 1);
    let one = one_run(&site, &src, "one-all");
    assert_eq!(
        lake_content(&site.local("inc")),
        lake_content(&site.local("one-all")),
        "appends and a rewrite differ from one run"
    );
    assert_eq!(one["records"]["written"], distinct + 1);
    if backend == Backend::Fs {
        assert_eq!(
            manifest(&site.local("inc")).content,
            manifest(&site.local("one-all")).content
        );
    }
}
crate::both_backends! { fn appended_then_rewritten_read_as_one_run; }

/// The index of the one partition.
const INDEX: &str = "_fineo/index/tenant=t1/metric=boiler/date=2026-01-01.parquet";

/// Prints an index file's rows, row groups, and whether its timestamps are sorted.
const PYARROW_INDEX: &str = "import sys, pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1]); ts = f.read().column('timestamp').to_pylist()
print(f.metadata.num_rows, f.metadata.num_row_groups, ts == sorted(ts))";

/// The manifest of the one partition of `lake` (a local directory).
fn manifest(lake: &Path) -> fineo_batch::write::index::PartitionManifest {
    let bytes = std::fs::read(lake.join(INDEX)).unwrap();
    fineo_batch::write::index::decode(INDEX, bytes.into())
        .unwrap()
        .1
}

/// Seconds of the day every 30 minutes (and a second more each) from 00:00 to 22:00: records
/// in each of the day's four windows, some with an untyped field in each.
fn day_seconds() -> Vec<i64> {
    (0..45).map(|k| k * 1800 + k).collect()
}

/// Records reaching back into the last window (a new key with an untyped field, a new key
/// without, a correction of a stored record) and two later ones.
const LATE: [i64; 5] = [73_807, 74_002, 40 * 1800 + 40, 82_800, 82_801];

fn a_late_hour_rewrites_the_last_window_only(backend: Backend) {
    let site = Site::new(backend);
    let src = site.scratch().join("src");
    let (staged, lake) = (site.url("staged"), site.url("inc"));
    object(&src, 0, &day_seconds(), 10.0);
    site.put_tree(&src, "staged");
    compact(&staged, &lake, Some(&catalog()), &[]);
    assert_eq!(typed_files(&site.local("inc")), 4, "one file per window");
    let before = site.scratch().join("before");
    copy_tree(&site.local("inc"), &before);

    object(&src, 23 * 60, &LATE, 500.0);
    site.put_tree(&src, "staged");
    let r = compact(&staged, &lake, Some(&catalog()), &[]);
    assert_eq!(r["output"]["partitions_tail_rewritten"], 1, "{r}");
    assert_eq!(r["output"]["partitions_appended"], 0);
    assert_eq!(
        r["output"]["files_removed"], 1,
        "only the last window's file"
    );
    assert_eq!(r["records"]["lake_records_replaced"], 1);
    assert_eq!(
        r["records"]["written"],
        4 + 1,
        "the new records and the correction"
    );
    assert_eq!(typed_files(&site.local("inc")), 4);
    let one = one_run(&site, &src, "one-late");
    assert_eq!(one["records"]["written"], 45 + 4);
    assert_eq!(
        lake_content(&site.local("inc")),
        lake_content(&site.local("one-late")),
        "a tail rewrite differs from one run"
    );
    if backend == Backend::Fs {
        let m = manifest(&site.local("inc"));
        assert_eq!(m.content, manifest(&site.local("one-late")).content);
        assert_eq!(m.appends, 1);
        // The joined index, read by pyarrow: every record, the three kept windows' row groups
        // and the rewritten one, timestamps in order.
        let index = site.local("inc").join(INDEX);
        let out = python_ok(&["-c", PYARROW_INDEX, s(&index)]);
        assert_eq!(String::from_utf8_lossy(&out).trim(), "49 4 True");
        // With no memory to spare, the index and untyped file are cut on local disk: the same
        // files.
        let tiny = site.scratch().join("tiny");
        copy_tree(&before, &tiny);
        let r = compact(
            &staged,
            s(&tiny),
            Some(&catalog()),
            &["--memory-budget-mb", "0"],
        );
        assert_eq!(r["output"]["partitions_tail_rewritten"], 1, "{r}");
        assert_same(
            &snapshot(&tiny),
            &snapshot(&site.local("inc")),
            "tiny budget",
        );
    }

    // A correction in the first window: the partition is written whole again.
    object(&src, 23 * 60 + 30, &[1], -1.0);
    site.put_tree(&src, "staged");
    let r = compact(&staged, &lake, Some(&catalog()), &[]);
    assert_eq!(r["output"]["partitions_tail_rewritten"], 0, "{r}");
    assert_eq!(r["output"]["files_removed"], 4);
    assert_eq!(typed_files(&site.local("inc")), 4);
    one_run(&site, &src, "one-all");
    assert_eq!(
        lake_content(&site.local("inc")),
        lake_content(&site.local("one-all")),
        "a tail rewrite, then a whole one, differ from one run"
    );
}
crate::both_backends! { fn a_late_hour_rewrites_the_last_window_only; }

async fn run(
    staged: &Path,
    lake: Location,
) -> fineo_batch::Result<fineo_batch::report::CompactReport> {
    Compact::new(Location::parse(s(staged)).unwrap(), lake)
        .with_catalog(Some(Location::parse(s(&catalog())).unwrap()))
        .execute()
        .await
}

/// A dead store at every write of an append run, then a clean rerun: the lake the
/// uninterrupted append gives, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_cut_at_every_write_then_rerun_gives_the_uninterrupted_lake() {
    let base: Vec<i64> = (0..40).collect();
    let next: Vec<i64> = (40..60).collect();
    cut_at_every_write(&base, &next, |r| {
        assert_eq!(r.output.partitions_appended, 1)
    })
    .await;
}

/// The same of a tail rewrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_rewrite_cut_at_every_write_then_rerun_gives_the_uninterrupted_lake() {
    cut_at_every_write(&day_seconds(), &LATE, |r| {
        assert_eq!(r.output.partitions_tail_rewritten, 1)
    })
    .await;
}

/// Compacts an object of records at `base` seconds, then cuts the run of a second one (records
/// at `next`, its report checked by `check`) at every write, and reruns it.
async fn cut_at_every_write(
    base_secs: &[i64],
    next: &[i64],
    check: impl Fn(&fineo_batch::report::CompactReport),
) {
    let tmp = tempfile::tempdir().unwrap();
    let staged = tmp.path().join("staged");
    let plain = |p: &Path| Location::parse(s(p)).unwrap();
    object(&staged, 0, base_secs, 10.0);
    let base = tmp.path().join("base");
    run(&staged, plain(&base)).await.unwrap();
    object(&staged, 23 * 60, next, 1.0);
    let reference = tmp.path().join("reference");
    copy_tree(&base, &reference);
    let (loc, counter) = faulty(&plain(&reference), Scope::Writes, Mode::Dead, u64::MAX);
    let report = run(&staged, loc).await.unwrap();
    check(&report);
    let writes = counter.count.load(Ordering::SeqCst);
    let expected = snapshot(&reference);
    assert!(writes > 5, "{writes} writes");
    for fail_at in 0..writes {
        let lake = tmp.path().join(format!("lake-{fail_at}"));
        copy_tree(&base, &lake);
        let (loc, _) = faulty(&plain(&lake), Scope::Writes, Mode::Dead, fail_at);
        assert!(
            run(&staged, loc).await.is_err(),
            "write #{fail_at} was injected to fail"
        );
        let report = run(&staged, plain(&lake)).await.unwrap();
        assert!(report.conservation_ok);
        assert_same(
            &snapshot(&lake),
            &expected,
            &format!("after a failure at write #{fail_at} of {writes} of an append"),
        );
        std::fs::remove_dir_all(&lake).unwrap();
    }
}
