//! `replay` and `diff` (SPEC 12) through the real binary, on a local directory and on S3:
//! replaying the whole archive changes nothing; an hour rebuilds exactly the partitions its
//! objects fed, each from all of its objects; a catalog fix replayed equals a fresh
//! compaction; a dark launch into another lake leaves the source untouched and `diff` reports
//! exactly the changed columns; a gone object, an empty window and a backwards window are
//! refused or said.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use crate::backup::{content, files, index_records, json_run};
use crate::harness::*;

/// A site with a generated 2-day archive compacted into `lake` with the sample's catalog.
fn compacted(backend: Backend, records: u64) -> (Site, String) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, records, "mixed", 9, 2);
    let staged = site.put_tree(&sample.join("staged"), "staged");
    compact(
        &staged,
        site.url("lake"),
        Some(&sample.join("catalog")),
        &[],
    );
    (site, staged)
}

fn catalog(site: &Site) -> std::path::PathBuf {
    site.scratch().join("sample/catalog")
}

fn replay(site: &Site, staged: &str, since: &str, until: &str, extra: &[&str]) -> Value {
    let lake = site.url("lake");
    let cat = catalog(site);
    let mut args = vec![
        "replay", "--staged", staged, "--lake", &lake, "--since", since, "--until", until,
    ];
    if !extra.contains(&"--catalog") {
        args.extend(["--catalog", s(&cat)]);
    }
    args.extend(extra);
    json_run(&args, 0)
}

fn diff(site: &Site, a: &str, b: &str, extra: &[&str], code: i32) -> Value {
    let (a, b) = (site.url(a), site.url(b));
    let mut args = vec!["diff", "--lake", &a, "--lake", &b];
    args.extend(extra);
    json_run(&args, code)
}

fn copy_location(site: &Site, from: &str, to: &str) {
    let (a, b) = (site.location(from), site.location(to));
    block_on(async {
        for m in a.list("").await.unwrap() {
            let bytes = a.get_path(&m.location).await.unwrap();
            b.put(&a.relative(&m.location), bytes).await.unwrap();
        }
    });
}

/// Partitions (`tenant/metric/date`) whose index holds a record of one of `objects`, or
/// remembers one of them in its footer as having fed it (all its records lost).
fn partitions_fed_by(lake: &Path, objects: &BTreeSet<String>) -> BTreeSet<String> {
    let dir = lake.join("_fineo/index");
    let also_fed = |rel: &str| -> Vec<String> {
        let bytes = std::fs::read(dir.join(rel)).unwrap();
        fineo_batch::write::index::decode(rel, bytes.into())
            .unwrap()
            .1
            .also_fed
    };
    index_records(lake)
        .into_iter()
        .filter(|(rel, recs)| {
            recs.iter().any(|r| {
                objects
                    .iter()
                    .any(|o| r.contains(&format!("source: \"{o}\"")))
            }) || also_fed(rel).iter().any(|o| objects.contains(o))
        })
        .map(|(path, _)| {
            let p = path.trim_end_matches(".parquet");
            let parts: Vec<&str> = p.split('/').collect();
            format!(
                "{}/{}/{}",
                parts[0].trim_start_matches("tenant="),
                parts[1].trim_start_matches("metric="),
                parts[2].trim_start_matches("date=")
            )
        })
        .collect()
}

/// Replaying everything compacted changes no typed row, untyped line, index record or
/// quarantine line, and `diff` says the lakes before and after are equal.
fn replay_of_the_whole_archive_changes_nothing(backend: Backend) {
    let (site, staged) = compacted(backend, 2000);
    copy_location(&site, "lake", "before");
    let r = replay(&site, &staged, "2026-01-01", "2026-01-05", &[]);
    let counts = &r["replay"];
    let partitions = index_records(&site.local("lake")).len();
    assert_eq!(counts["partitions"].as_array().unwrap().len(), partitions);
    assert_eq!(counts["objects_outside_window"], 0);
    assert_eq!(r["committed_version"], 2);
    assert_eq!(content(&site, "lake"), content(&site, "before"));
    assert_eq!(
        index_records(&site.local("lake")),
        index_records(&site.local("before"))
    );
    // The replay quarantines the bad records it read again, in its own run's file; the
    // compaction's files stay as they were.
    let run = r["run_id"].as_str().unwrap();
    let errors = |name: &str, mine: bool| -> Vec<(String, Vec<u8>)> {
        files(&site, name)
            .into_iter()
            .filter(|(k, _)| k.starts_with("errors/") && k.contains(run) == mine)
            .collect()
    };
    assert_eq!(errors("lake", false), errors("before", false));
    assert!(!errors("lake", true).is_empty());
    let first = &json_run(
        &[
            "compact",
            "--staged",
            &staged,
            "--lake",
            &site.url("again"),
            "--catalog",
            s(&catalog(&site)),
        ],
        0,
    );
    assert_eq!(
        r["records"]["errors_by_reason"],
        first["records"]["errors_by_reason"]
    );
    assert_eq!(r["conservation_ok"], true);
    let d = diff(&site, "before", "lake", &[], 0);
    assert_eq!(d["diff"]["equal"], true);
    assert_eq!(d["diff"]["equal_by_fingerprint"], partitions);
}
crate::both_backends! { fn replay_of_the_whole_archive_changes_nothing; }

/// One hour of a two-day archive: only the partitions its objects fed are rebuilt, each from
/// every object that fed it (objects outside the hour are read), so corrections delivered
/// later still win and nothing changes; `--dry-run` lists the same and writes nothing.
fn replay_of_one_hour(backend: Backend) {
    let (site, staged) = compacted(backend, 3000);
    copy_location(&site, "lake", "before");
    let (since, until) = ("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z");
    let before = files(&site, "lake");
    let dry = replay(&site, &staged, since, until, &["--dry-run"]);
    assert_eq!(files(&site, "lake"), before, "a dry run writes nothing");
    let r = replay(&site, &staged, since, until, &[]);
    let counts = &r["replay"];
    assert_eq!(counts["partitions"], dry["replay"]["partitions"]);
    assert_eq!(counts["window_objects"], dry["replay"]["window_objects"]);
    let window: BTreeSet<String> = counts["window_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(!window.is_empty());
    let rebuilt: BTreeSet<String> = counts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let fed = partitions_fed_by(&site.local("before"), &window);
    assert_eq!(
        rebuilt, fed,
        "exactly the partitions the hour fed are rebuilt"
    );
    let all = index_records(&site.local("before")).len();
    assert!(
        rebuilt.len() < all,
        "{} of {all} partitions rebuilt",
        rebuilt.len()
    );
    assert!(counts["objects_outside_window"].as_u64().unwrap() > 0);
    assert!(counts["records_elsewhere"].as_u64().unwrap() > 0);
    assert_eq!(content(&site, "lake"), content(&site, "before"));
    assert_eq!(diff(&site, "before", "lake", &[], 0)["diff"]["equal"], true);
}
crate::both_backends! { fn replay_of_one_hour; }

/// One object whose records landed wrongly (its metric name was no alias of t01's boiler)
/// is replayed with the fixed catalog: the lake equals a fresh compaction under the fix.
fn replay_of_a_fix_equals_a_fresh_compaction(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, 2000, "mixed", 9, 2);
    let fixed = sample.join("catalog");
    let wrong = site.scratch().join("catalog-wrong");
    copy_tree(&fixed, &wrong);
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(fixed.join("t01.json")).unwrap()).unwrap();
    doc["metrics"]["boiler"]["aliases"]
        .as_array_mut()
        .unwrap()
        .push(json!("boiler_v2"));
    std::fs::write(fixed.join("t01.json"), doc.to_string()).unwrap();
    let lines: Vec<String> = (0..20)
        .map(|i| {
            json!({"tenant": "t01", "metric": "boiler_v2",
            "timestamp": format!("2026-01-01T12:00:{i:02}.500Z"), "temperature": 40.5 + i as f64})
            .to_string()
        })
        .collect();
    let key = "2026/01/01/13/fineo-staged-1-2026-01-01-13-20-00-fix.json";
    std::fs::create_dir_all(sample.join("staged/2026/01/01/13")).unwrap();
    std::fs::write(sample.join("staged").join(key), lines.join("\n") + "\n").unwrap();
    let staged = site.put_tree(&sample.join("staged"), "staged");
    compact(&staged, site.url("lake"), Some(&wrong), &[]);
    compact(&staged, site.url("fresh"), Some(&fixed), &[]);
    assert_ne!(content(&site, "lake"), content(&site, "fresh"));
    let lake = site.url("lake");
    let r = json_run(
        &[
            "replay",
            "--staged",
            &staged,
            "--lake",
            &lake,
            "--catalog",
            s(&fixed),
            "--since",
            "2026-01-01T13:20:00Z",
            "--until",
            "2026-01-01T13:21:00Z",
        ],
        0,
    );
    let parts = &r["replay"]["partitions"];
    assert_eq!(
        parts,
        &json!(["t01/boiler/2026-01-01", "t01/boiler_v2/2026-01-01"])
    );
    assert_eq!(
        r["replay"]["partitions_emptied"],
        json!(["t01/boiler_v2/2026-01-01"])
    );
    assert_eq!(content(&site, "lake"), content(&site, "fresh"));
}
crate::both_backends! { fn replay_of_a_fix_equals_a_fresh_compaction; }

/// A dark launch: `replay --to` writes into another lake and leaves the source as it was,
/// byte for byte; `diff` says equal for the same catalog, and for a catalog that types `fw` of
/// t01's boiler reports exactly that column moving from untyped to typed, with examples.
fn dark_launch_and_diff(backend: Backend) {
    let (site, staged) = compacted(backend, 2000);
    let before = files(&site, "lake");
    let (lake, l2, l3) = (site.url("lake"), site.url("l2"), site.url("l3"));
    let cat = catalog(&site);
    let window = ["--since", "2026-01-01", "--until", "2026-01-05"];
    let mut args = vec![
        "replay",
        "--staged",
        &staged,
        "--lake",
        &lake,
        "--to",
        &l2,
        "--catalog",
        s(&cat),
    ];
    args.extend(window);
    let r = json_run(&args, 0);
    assert!(
        r["replay"]["to"].as_str().unwrap().contains("/l2"),
        "{}",
        r["replay"]["to"]
    );
    assert_eq!(files(&site, "lake"), before, "the source lake is untouched");
    let d = diff(&site, "lake", "l2", &[], 0);
    assert_eq!(d["diff"]["equal"], true);
    // The new release types boiler.fw for t01.
    let cat3 = site.scratch().join("catalog3");
    copy_tree(&cat, &cat3);
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(cat3.join("t01.json")).unwrap()).unwrap();
    doc["metrics"]["boiler"]["fields"]["fw"] = json!({"type": "string", "aliases": []});
    std::fs::write(cat3.join("t01.json"), doc.to_string()).unwrap();
    let mut args = vec![
        "replay",
        "--staged",
        &staged,
        "--lake",
        &lake,
        "--to",
        &l3,
        "--catalog",
        s(&cat3),
    ];
    args.extend(window);
    json_run(&args, 0);
    assert_eq!(files(&site, "lake"), before, "the source lake is untouched");
    let d = diff(&site, "lake", "l3", &[], 3);
    let differing = d["diff"]["differing"].as_array().unwrap();
    let names: Vec<&str> = differing
        .iter()
        .map(|p| p["partition"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t01/boiler/2026-01-01", "t01/boiler/2026-01-02"]);
    for p in differing {
        assert_eq!(
            (p["rows_only_in_a"].clone(), p["rows_only_in_b"].clone()),
            (json!(0), json!(0))
        );
        let cols: Vec<&String> = p["columns"].as_object().unwrap().keys().collect();
        assert_eq!(cols, ["fw", "untyped:fw"]);
        let n = p["rows_changed"].as_u64().unwrap();
        assert_eq!(p["columns"]["fw"], n);
        let date = p["partition"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let typed_fw = content(&site, "l3")["typed"]["t01/boiler"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["date"] == date.as_str() && !r["fw"].is_null())
            .count();
        assert!(
            n > 0 && n == typed_fw as u64,
            "{n} changed rows, {typed_fw} typed fw values"
        );
        let e = &p["examples"][0];
        assert_eq!(e["kind"], "changed");
        assert!(
            e["a"].is_null() && e["b"].is_string() && e["timestamp"].is_i64(),
            "{e}"
        );
    }
    // Narrowed to one day, and as a human summary.
    let d = diff(
        &site,
        "lake",
        "l3",
        &[
            "--tenant",
            "t01",
            "--since",
            "2026-01-02",
            "--until",
            "2026-01-03",
        ],
        3,
    );
    assert_eq!(d["diff"]["differing"].as_array().unwrap().len(), 1);
    let text = fineo_ok(
        &["diff", "--lake", &lake, "--lake", &l3, "--tenant", "t02"],
        0,
    );
    assert!(text.contains("equal:"), "{text}");
}
crate::both_backends! { fn dark_launch_and_diff; }

/// An archived object the lake remembers but the archive no longer holds stops the replay
/// with its key, and nothing is replaced; a window without objects says so and writes
/// nothing; a backwards window is a usage error.
fn replay_refuses_what_it_cannot_do(backend: Backend) {
    let (site, staged) = compacted(backend, 1500);
    let before = files(&site, "lake");
    let none = replay(&site, &staged, "2027-01-01", "2027-01-02", &[]);
    assert_eq!(none["noop"], true);
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .contains("holds no archived object"),
        "{none}"
    );
    assert_eq!(files(&site, "lake"), before);
    let lake = site.url("lake");
    let out = fineo(&[
        "replay",
        "--staged",
        &staged,
        "--lake",
        &lake,
        "--since",
        "2026-01-02",
        "--until",
        "2026-01-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not before --until"));
    // The first object of the archive feeds the first hour's partitions; delete it and
    // replay the next hour.
    let listed: Vec<String> = {
        let loc = site.location("staged");
        let mut keys: Vec<String> = block_on(async { loc.list("").await.unwrap() })
            .iter()
            .map(|m| loc.relative(&m.location))
            .collect();
        keys.sort();
        keys
    };
    let gone = listed
        .iter()
        .find(|k| k.starts_with("2026/01/01/00/"))
        .unwrap()
        .clone();
    block_on(async { site.location("staged").delete(&gone).await.unwrap() });
    let out = fineo(&[
        "replay",
        "--staged",
        &staged,
        "--lake",
        &lake,
        "--catalog",
        s(&catalog(&site)),
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T02:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gone from the archive") && err.contains(&gone),
        "{err}"
    );
    assert_eq!(files(&site, "lake"), before, "nothing replaced");
}
crate::both_backends! { fn replay_refuses_what_it_cannot_do; }

/// A replay with a memory budget far below its input spills to local disk and gives the
/// same lake; the job file's [replay] table supplies the locations.
#[test]
fn replay_with_a_small_memory_budget_and_a_job_file() {
    let (site, staged) = compacted(Backend::Fs, 3000);
    copy_location(&site, "lake", "before");
    let job = site.scratch().join("replay.toml");
    std::fs::write(
        &job,
        format!(
            "[replay]\nstaged = {staged:?}\nlake = {:?}\ncatalog = {:?}\nmemory_budget_mb = 0\n",
            site.url("lake"),
            s(&catalog(&site))
        ),
    )
    .unwrap();
    let r = json_run(
        &[
            "replay",
            "--job",
            s(&job),
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-04",
        ],
        0,
    );
    assert!(
        r["spilled_bytes"].as_u64().unwrap() > 0,
        "{}",
        r["spilled_bytes"]
    );
    // A zero budget leaves no partition a share of memory: every one is rebuilt on disk.
    assert_eq!(
        r["output"]["partitions_merged_on_disk"], r["output"]["partitions_touched"],
        "{r}"
    );
    assert_eq!(content(&site, "lake"), content(&site, "before"));
}
