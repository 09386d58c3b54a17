//! A partition larger than its share of the memory budget is merged through sorted runs on
//! local disk: the lake is byte for byte the one the in-memory merge writes, through a first
//! run, new input with corrections into it, and a catalog change that re-types the stored
//! records and moves an alias's partitions into its metric.

use std::path::Path;

use serde_json::{json, Value};

use crate::fault_store::{assert_same, snapshot};
use crate::harness::*;

/// The archive's first `n` objects, as a staged tree of their own.
fn first_objects(staged: &Path, n: usize, to: &Path) {
    let mut files = walk(staged);
    files.sort();
    for f in files.into_iter().take(n) {
        let dest = to.join(f.strip_prefix(staged).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
}

/// The generated catalog with t01's `boiler` missing a field and its alias (the full catalog
/// declares them: the second run re-types `boiler` and moves `boiler_legacy` into it).
fn reduced_catalog(full: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in walk(full) {
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    let path = to.join("t01.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let boiler = &mut doc["metrics"]["boiler"];
    boiler["fields"]
        .as_object_mut()
        .unwrap()
        .shift_remove("site");
    boiler["aliases"] = json!([]);
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

fn merged_on_disk_gives_the_same_bytes(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate_with(
        &sample,
        30_000,
        "jsonl-gz",
        5,
        2,
        &["--tenants", "2", "--metrics", "2"],
    );
    let half = site.scratch().join("half");
    first_objects(&sample.join("staged"), 25, &half);
    let (reduced, full) = (site.scratch().join("reduced"), sample.join("catalog"));
    reduced_catalog(&full, &reduced);
    let steps = [
        ("half", &half, &reduced),
        ("all", &sample.join("staged"), &full),
    ];
    for (step, staged, catalog) in steps {
        let staged = site.put_tree(staged, "staged");
        let memory = compact(&staged, site.url("memory"), Some(catalog), &[]);
        // A 1 MiB budget gives each partition 64 KiB: every one is larger.
        let disk = compact(
            &staged,
            site.url("disk"),
            Some(catalog),
            &["--memory-budget-mb", "1"],
        );
        let touched = memory["output"]["partitions_touched"].as_u64().unwrap();
        assert!(touched >= 4, "{step}: {touched} partitions");
        assert_eq!(memory["output"]["partitions_merged_on_disk"], 0, "{step}");
        // Every partition but a small one the alias change empties, and those whose new records
        // reach back only into their last window (a tail rewrite, whatever the budget).
        let count = |r: &Value, what: &str| r["output"][what].as_u64().unwrap();
        let on_disk = count(&disk, "partitions_merged_on_disk");
        let tails = count(&disk, "partitions_tail_rewritten");
        assert!(
            on_disk + tails + 1 >= touched && on_disk >= 4,
            "{step}: {on_disk} and {tails} of {touched}"
        );
        for what in ["partitions_tail_rewritten", "partitions_appended"] {
            assert_eq!(count(&memory, what), count(&disk, what), "{step}: {what}");
        }
        for part in ["records", "retype"] {
            assert_eq!(memory[part], disk[part], "{step}: {part}");
        }
        if step == "all" {
            assert!(disk["retype"]["records"].as_u64().unwrap() > 0, "{disk}");
            let replaced = disk["records"]["lake_records_replaced"].as_u64().unwrap();
            assert!(replaced > 0, "corrections replace stored records");
        }
        assert_same(
            &snapshot(&site.local("disk")),
            &snapshot(&site.local("memory")),
            &format!("after {step}"),
        );
    }
    let disk = lake_content(&site.local("disk"));
    assert!(disk["typed"].as_object().is_some_and(|t| !t.is_empty()));
    assert_eq!(disk, lake_content(&site.local("memory")));
}
crate::both_backends! { fn merged_on_disk_gives_the_same_bytes; }
