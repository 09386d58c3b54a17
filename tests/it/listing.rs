//! A scheduled run's cost follows its new input: the listing starts from the last run's
//! watermark (with a lookback), the ledger is read only for the directories listed, and a
//! reconcile finds what arrived later than the lookback; on a local directory and S3.

use std::path::Path;

use serde_json::Value;

use crate::harness::*;

/// Staged objects per hour of the synthetic archives.
const PER_HOUR: usize = 2;

/// The Firehose key of the `n`th object delivered in `hour` (`YYYY/MM/DD/HH`).
fn key(hour: &str, n: usize) -> String {
    let dashed = hour.replace('/', "-");
    format!("{hour}/fineo-staged-1-{dashed}-{n:02}-00-{n:08x}-0000-4000-8000-{n:012x}.gz")
}

/// The hours of `days` days ending with 2026-03-21 23:00, oldest first.
fn hours(days: u32) -> Vec<String> {
    let end = chrono::NaiveDate::from_ymd_opt(2026, 3, 21)
        .unwrap()
        .and_hms_opt(23, 0, 0)
        .unwrap();
    (0..days * 24)
        .rev()
        .map(|h| {
            (end - chrono::Duration::hours(h.into()))
                .format("%Y/%m/%d/%H")
                .to_string()
        })
        .collect()
}

/// Puts `keys` into location `name`, each with the content of one of the sample's objects in
/// turn (records repeat: exact duplicates the lake keeps once).
fn put(site: &Site, templates: &[Vec<u8>], keys: &[String], name: &str) {
    let dest = site.location(name);
    block_on(async {
        for (i, k) in keys.iter().enumerate() {
            let body = templates[i % templates.len()].clone();
            dest.put(k, body.into()).await.unwrap();
        }
    });
}

fn count(r: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(r, |v, p| &v[*p])
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {r}"))
}

/// What an hourly run over one archive size cost, and the lake it left.
struct Hourly {
    listed: u64,
    requests: Requests,
}

/// An hourly run's requests and the Delta tables it touched.
#[derive(Clone, Copy, Debug)]
struct Requests {
    list: u64,
    get: u64,
    delta_log_get: u64,
    tables: u64,
}

fn hourly_run(site: &Site, sample: &Path, days: u32, name: &str) -> Hourly {
    let catalog = sample.join("catalog");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(sample.join("truth.json")).unwrap()).unwrap();
    // Fewer templates than the small archive has objects: both archives hold every record.
    let templates: Vec<Vec<u8>> = deliveries(&truth)
        .iter()
        .take(24)
        .map(|k| std::fs::read(sample.join("staged").join(k)).unwrap())
        .collect();
    let (staged, lake) = (format!("{name}-staged"), format!("{name}-lake"));
    let archive: Vec<String> = hours(days)
        .iter()
        .flat_map(|h| (0..PER_HOUR).map(move |n| key(h, n)))
        .collect();
    put(site, &templates, &archive, &staged);
    let first = compact(site.url(&staged), site.url(&lake), Some(&catalog), &[]);
    assert_eq!(count(&first, &["objects", "read"]), archive.len() as u64);
    assert!(
        first["objects"]["listed_after"].is_null(),
        "a new lake lists everything"
    );

    // The next hour arrives, with one object delivered late into an hour already compacted.
    let new = [
        key("2026/03/22/00", 0),
        key("2026/03/22/00", 1),
        key("2026/03/21/22", 7),
    ];
    put(site, &templates, &new, &staged);
    let r = compact(site.url(&staged), site.url(&lake), Some(&catalog), &[]);
    assert_eq!(count(&r, &["objects", "read"]), 3, "{r}");
    // The watermark was the last key of 23:00; the listing starts three hours before that.
    assert_eq!(r["objects"]["listed_after"], "2026/03/21/20", "{r}");
    let listed = count(&r, &["objects", "listed"]);
    assert_eq!(listed, (4 * PER_HOUR + new.len()) as u64, "{r}");
    let requests = Requests {
        list: count(&r, &["requests", "list"]),
        get: count(&r, &["requests", "get"]),
        delta_log_get: count(&r, &["requests", "delta_log_get"]),
        tables: count(&r, &["output", "tables_touched"]),
    };

    // Later than the lookback: the hourly listing does not reach it, a reconcile does.
    let late = [key("2026/03/20/05", 9)];
    put(site, &templates, &late, &staged);
    let r = compact(site.url(&staged), site.url(&lake), Some(&catalog), &[]);
    assert_eq!(count(&r, &["objects", "read"]), 0, "{r}");
    assert_eq!(r["objects"]["listed_after"], "2026/03/21/21", "{r}");
    let r = compact(
        site.url(&staged),
        site.url(&lake),
        Some(&catalog),
        &["--reconcile"],
    );
    assert_eq!(count(&r, &["objects", "read"]), 1, "{r}");
    let all = archive.len() + new.len() + late.len();
    assert_eq!(count(&r, &["objects", "listed"]), all as u64);
    assert_eq!(count(&r, &["objects", "already_processed"]), all as u64 - 1);
    assert!(r["objects"]["listed_after"].is_null());
    Hourly { listed, requests }
}

/// An archive ten times larger costs an hourly run the same listing and the same requests;
/// what the lookback misses, a reconcile finds.
fn an_hourly_run_costs_the_same_on_a_ten_times_larger_archive(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, 400, "jsonl-gz", 23, 1);
    let small = hourly_run(&site, &sample, 1, "small");
    let large = hourly_run(&site, &sample, 10, "large");
    assert_eq!(small.listed, large.listed);
    // LIST and GET requests are exact, but for the Delta library's reads of its logs: how
    // often it reads a commit again varies with timing, by a few per table, never with the
    // archive's size.
    let (a, b) = (small.requests, large.requests);
    assert_eq!(a.list, b.list, "LIST requests, 48 vs 480 archived objects");
    assert_eq!(
        a.get - a.delta_log_get,
        b.get - b.delta_log_get,
        "GET requests besides Delta logs, 48 vs 480 archived objects: {a:?} vs {b:?}"
    );
    assert_eq!(a.tables, b.tables);
    assert!(
        a.delta_log_get.abs_diff(b.delta_log_get) <= 2 * a.tables,
        "Delta log GETs, 48 vs 480 archived objects: {a:?} vs {b:?}"
    );
    let (a, b) = (
        lake_content(&site.local("small-lake")),
        lake_content(&site.local("large-lake")),
    );
    for kind in ["typed", "untyped"] {
        assert_eq!(
            a[kind], b[kind],
            "the same records, delivered more often: {kind}"
        );
    }
}

crate::both_backends! {
    fn an_hourly_run_costs_the_same_on_a_ten_times_larger_archive;
}

/// A lake from before the ledger was kept in shards (only its log) is converted by the next
/// run, which reads nothing twice; later runs list from the watermark.
#[test]
fn a_lake_without_ledger_shards_is_converted_without_reading_anything_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 3000, "mixed", 29, 2);
    let catalog = sample.join("catalog");
    let keys = deliveries(&truth);
    let (first, second) = keys.split_at(keys.len() / 2);
    let staged = tmp.path().join("staged");
    copy_objects(&sample, first, &staged);
    let lake = tmp.path().join("lake");
    compact(&staged, &lake, Some(&catalog), &[]);
    for old in ["_fineo/ledger/shards", "_fineo/ledger/watermark"] {
        std::fs::remove_dir_all(lake.join(old)).unwrap();
    }
    copy_objects(&sample, second, &staged);
    let r = compact(&staged, &lake, Some(&catalog), &[]);
    assert_eq!(count(&r, &["objects", "read"]), second.len() as u64, "{r}");
    assert_eq!(
        count(&r, &["objects", "already_processed"]),
        first.len() as u64
    );
    assert!(
        r["objects"]["listed_after"].is_null(),
        "no watermark yet: {r}"
    );
    assert!(lake.join("_fineo/ledger/shards/_since.json").exists());

    let one = tmp.path().join("one");
    compact(sample.join("staged"), &one, Some(&catalog), &[]);
    assert_eq!(lake_content(&lake), lake_content(&one));
    let r = compact(&staged, &lake, Some(&catalog), &[]);
    assert_eq!(r["noop"], true);
    assert!(r["objects"]["listed_after"].is_string(), "{r}");
}
