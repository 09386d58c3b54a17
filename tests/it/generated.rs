//! A generated archive compacted and checked against the generator's ground truth, with the
//! typed tables read back by deltalake and DuckDB; on a local directory and on S3.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::harness::*;

fn check_against_truth(backend: Backend, keep: &str, policy: &str) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, 20_000, "mixed", 3, 3);
    compact_and_check(&site, &sample, &truth, keep, policy);
}

/// Compacts the archive under `sample` into `lake` and checks the report and the lake as
/// deltalake and DuckDB read it against the generator's `truth`.
fn compact_and_check(
    site: &Site,
    sample: &std::path::Path,
    truth: &Value,
    keep: &str,
    policy: &str,
) {
    let staged = site.put_tree(&sample.join("staged"), "staged");
    let catalog = site.put_tree(&sample.join("catalog"), "catalog");
    let report = compact(
        &staged,
        site.url("lake"),
        None,
        &["--catalog", &catalog, "--keep", keep],
    );
    let rec = &report["records"];
    assert_eq!(rec["records_in"], truth["records"], "every record read");
    assert_eq!(rec["written"], truth["distinct_keys"]);
    assert_eq!(rec["duplicates"]["exact"], truth[policy]["exact"]);
    assert_eq!(
        rec["duplicates"]["conflicting"],
        truth[policy]["conflicting"]
    );
    let errors: BTreeMap<String, u64> =
        serde_json::from_value(rec["errors_by_reason"].clone()).unwrap();
    let want: BTreeMap<String, u64> = serde_json::from_value(truth["errors"].clone()).unwrap();
    assert_eq!(errors, want, "errors by reason");
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(
        n(&rec["records_in"]),
        n(&rec["written"])
            + n(&rec["duplicates"]["exact"])
            + n(&rec["duplicates"]["conflicting"])
            + n(&rec["errors"]),
        "conservation"
    );
    assert_eq!(report["conservation_ok"], true);
    assert_eq!(report["output"]["typed_rows"], truth["typed_rows"]);
    assert_eq!(
        report["output"]["untyped_lines"],
        truth[policy]["untyped_lines"]
    );

    let dump = site.dump("lake");
    assert_eq!(
        dump["totals"]["typed_rows"], truth["typed_rows"],
        "rows as deltalake/DuckDB read them"
    );
    assert_eq!(
        dump["totals"]["untyped_lines"],
        truth[policy]["untyped_lines"]
    );
    assert_eq!(n(&dump["totals"]["error_lines"]), n(&rec["errors"]));
    let typed = typed_rows(&dump);
    let by_table: BTreeMap<String, u64> = typed
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as u64))
        .collect();
    let want: BTreeMap<String, u64> =
        serde_json::from_value(truth["typed_rows_by_table"].clone()).unwrap();
    assert_eq!(by_table, want, "typed rows per table");
    for (table, rows) in &typed {
        let keys: BTreeSet<i64> = rows
            .iter()
            .map(|r| r["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(keys.len(), rows.len(), "a key appears twice in {table}");
    }
    // No record is both a typed row and in another partition's untyped file, and untyped
    // lines never repeat a key.
    for (part, lines) in untyped_lines(&dump) {
        let keys: BTreeSet<i64> = lines
            .iter()
            .map(|l| l["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(
            keys.len(),
            lines.len(),
            "a key appears twice in untyped {part}"
        );
    }
}

fn generated_archive_matches_ground_truth(backend: Backend) {
    check_against_truth(backend, "latest", "latest");
}
crate::both_backends! { fn generated_archive_matches_ground_truth; }

fn generated_archive_keep_first_matches_ground_truth(backend: Backend) {
    check_against_truth(backend, "first", "first");
}
crate::both_backends! { fn generated_archive_keep_first_matches_ground_truth; }

/// The production-shaped world of `generate --tenants`: many tenants and tables, wide records;
/// compacted to the truth, and the lake (typed + untyped + index) smaller than 1.5 times the
/// gzip archive it came from.
#[test]
fn a_multi_tenant_archive_matches_ground_truth_and_the_lake_costs_less_than_the_archive() {
    let site = Site::new(Backend::Fs);
    let sample = site.scratch().join("sample");
    let more = ["--tenants", "6", "--metrics", "3", "--fields", "10"];
    let truth = generate_with(&sample, 40_000, "jsonl-gz", 5, 1, &more);
    let tables: BTreeSet<String> = truth["typed_rows_by_table"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(tables.len(), 18, "6 tenants x 3 metrics, every one typed");
    assert_eq!(truth["typed_rows"], truth["distinct_keys"]);
    compact_and_check(&site, &sample, &truth, "latest", "latest");
    let archive = dir_bytes(&sample.join("staged"), &|_| true);
    let lake = site.local("lake");
    let data = dir_bytes(&lake.join("typed"), &|p| p.ends_with(".parquet"))
        + dir_bytes(&lake.join("untyped"), &|_| true)
        + dir_bytes(&lake.join("_fineo/index"), &|_| true);
    assert!(
        data * 2 <= archive * 3,
        "lake data {data} bytes for a {archive}-byte archive"
    );
}

/// Bytes of the files below `dir` whose path `keep` accepts.
fn dir_bytes(dir: &std::path::Path, keep: &dyn Fn(&str) -> bool) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            total += dir_bytes(&path, keep);
        } else if keep(&path.to_string_lossy()) {
            total += std::fs::metadata(&path).unwrap().len();
        }
    }
    total
}

fn tiny_memory_budget_spills_and_gives_the_same_lake(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, 5_000, "jsonl-gz", 11, 3);
    let staged = site.put_tree(&sample.join("staged"), "staged");
    let cat = sample.join("catalog");
    let ra = compact(&staged, site.url("a"), Some(&cat), &[]);
    let rb = compact(
        &staged,
        site.url("b"),
        Some(&cat),
        &["--memory-budget-mb", "0", "--fetch-concurrency", "1"],
    );
    assert_eq!(ra["spilled_bytes"], 0);
    assert!(
        rb["spilled_bytes"].as_u64().unwrap() > 0,
        "budget 0 must spill"
    );
    assert_eq!(ra["records"], rb["records"]);
    assert_eq!(
        lake_content(&site.local("a")),
        lake_content(&site.local("b"))
    );
}
crate::both_backends! { fn tiny_memory_budget_spills_and_gives_the_same_lake; }
