//! Backup bundles and restore (SPEC 11) through the real binary, on a local directory and on
//! S3: deterministic bundles written only for changed tenant-days, verification that names
//! every kind of damage, restores that equal the source lake (into an empty lake, into the same
//! lake after loss or a bad run, at a point in time, as archive objects) and after which
//! compaction goes on normally.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fineo_batch::bundle::Manifest;
use fineo_batch::write::index;
use serde_json::{json, Value};

use crate::harness::*;

/// A lake compacted from a generated 2-day sample whose catalog was imported into the lake's
/// catalog store, so bundles carry catalog versions.
pub struct Source {
    pub site: Site,
    pub sample: PathBuf,
    pub staged: String,
}

pub fn source(backend: Backend, records: u64) -> Source {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    generate(&sample, records, "mixed", 3, 2);
    let staged = site.put_tree(&sample.join("staged"), "staged");
    let catalog = sample.join("catalog");
    fineo_ok(
        &["schema", "import", "--lake", &site.url("lake"), s(&catalog)],
        0,
    );
    compact(&staged, site.url("lake"), None, &[]);
    Source {
        site,
        sample,
        staged,
    }
}

/// Runs the binary with `--json`, requires exit `code`, returns the report.
pub fn json_run(args: &[&str], code: i32) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    serde_json::from_str(&fineo_ok(&all, code)).expect("report json")
}

fn backup(site: &Site, lake: &str, to: &str, extra: &[&str]) -> Value {
    let (lake, to) = (site.url(lake), site.url(to));
    let mut args = vec!["backup", "--lake", &lake, "--to", &to];
    args.extend(extra);
    json_run(&args, 0)
}

fn restore(site: &Site, from: &str, lake: &str, extra: &[&str]) -> Value {
    let (from, lake) = (site.url(from), site.url(lake));
    let mut args = vec!["restore", "--from", &from, "--lake", &lake];
    args.extend(extra);
    json_run(&args, 0)
}

/// Typed rows and untyped lines of a lake, as deltalake and the JSON files give them.
pub fn content(site: &Site, lake: &str) -> Value {
    let dump = site.dump(lake);
    json!({"typed": typed_rows(&dump), "untyped": untyped_lines(&dump)})
}

/// The part of [`content`] of one tenant-day.
fn day_of(content: &Value, tenant: &str, date: &str) -> Value {
    let mut typed = serde_json::Map::new();
    for (table, rows) in content["typed"].as_object().unwrap() {
        if table.starts_with(&format!("{tenant}/")) {
            let rows: Vec<Value> = rows
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["date"] == date)
                .cloned()
                .collect();
            if !rows.is_empty() {
                typed.insert(table.clone(), Value::Array(rows));
            }
        }
    }
    let untyped: serde_json::Map<String, Value> = content["untyped"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{tenant}/")) && k.ends_with(&format!("/{date}")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({"typed": typed, "untyped": untyped})
}

/// Every record of every partition index (sorted), with its provenance and the fields as sent.
pub fn index_records(lake: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let dir = lake.join("_fineo/index");
    for f in walk(&dir) {
        let rel = f.strip_prefix(&dir).unwrap().to_str().unwrap().to_string();
        let (recs, _) = index::decode(&rel, std::fs::read(&f).unwrap().into()).unwrap();
        let mut lines: Vec<String> = recs
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {} {:x} {:?}",
                    r.ts, r.arrival, r.metric_sent, r.hash, r.raw
                )
            })
            .collect();
        lines.sort();
        out.insert(rel, lines);
    }
    out
}

/// Every file of a location (through a local mirror on S3) but run reports: path -> bytes.
pub fn files(site: &Site, name: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = site.local(name);
    walk(&dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(&dir).unwrap().to_str().unwrap().to_string(),
                f,
            )
        })
        .filter(|(rel, _)| !rel.starts_with("_runs/") && !rel.contains('#'))
        .map(|(rel, f)| (rel, std::fs::read(f).unwrap()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// One JSON Lines staged object delivered at `hh:mm` on 2026-01-03, with these records.
fn put_object(site: &Site, staged: &str, hhmm: &str, name: &str, lines: &[Value]) -> String {
    let (hh, mm) = hhmm.split_once(':').unwrap();
    let key = format!("2026/01/03/{hh}/fineo-staged-1-2026-01-03-{hh}-{mm}-00-{name}.json");
    let body: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    site.location(staged).put_blocking(&key, body.into_bytes());
    key
}

trait PutBlocking {
    fn put_blocking(&self, rel: &str, bytes: Vec<u8>);
}

impl PutBlocking for fineo_batch::storage::Location {
    fn put_blocking(&self, rel: &str, bytes: Vec<u8>) {
        block_on(async { self.put(rel, bytes.into()).await.unwrap() });
    }
}

/// A typed row of `t01/boiler` on `date` from a content dump: (timestamp, temperature).
fn boiler_row(content: &Value, date: &str) -> (i64, Value) {
    let row = content["typed"]["t01/boiler"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["date"] == date && !r["temperature"].is_null())
        .expect("a boiler row with a temperature")
        .clone();
    (
        row["timestamp"].as_i64().unwrap(),
        row["temperature"].clone(),
    )
}

fn temperature_at(content: &Value, ts: i64) -> Value {
    content["typed"]["t01/boiler"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["timestamp"] == ts)
        .map(|r| r["temperature"].clone())
        .unwrap_or(Value::Null)
}

const DAYS: [(&str, &str); 8] = [
    ("t01", "2026-01-01"),
    ("t01", "2026-01-02"),
    ("t02", "2026-01-01"),
    ("t02", "2026-01-02"),
    ("t03", "2026-01-01"),
    ("t03", "2026-01-02"),
    ("t04", "2026-01-01"),
    ("t04", "2026-01-02"),
];

/// Backup writes one bundle per tenant-day with the same bytes every time and nothing when
/// nothing changed; restore into an empty lake gives the source's typed rows, untyped lines,
/// partition index and catalog; compaction then goes on from the restored lake.
fn backup_and_restore_round_trip(backend: Backend) {
    let src = source(backend, 3000);
    let site = &src.site;
    let b = backup(site, "lake", "bk", &[]);
    assert_eq!(b["command"], "backup");
    let counts = &b["backup"];
    let dirs: Vec<String> = DAYS
        .iter()
        .map(|(t, d)| format!("tenant={t}/date={d}/00000000000000000001"))
        .collect();
    assert_eq!(strings(&counts["written"]), dirs);
    assert_eq!(counts["tenant_days"], 8);
    assert_eq!(counts["lake_version"], 1);
    let stored: usize = index_records(&site.local("lake"))
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(
        counts["records"], stored,
        "every record of the lake is in a bundle"
    );
    let first = files(site, "bk");
    let manifests = first
        .keys()
        .filter(|k| k.ends_with("/manifest.json"))
        .count();
    assert_eq!(manifests, 8);
    // Deterministic: the same lake state gives the same bytes, file for file.
    backup(site, "lake", "bk2", &[]);
    assert_eq!(
        files(site, "bk2"),
        first,
        "two backups of one lake state differ"
    );
    // Nothing changed: nothing written.
    let again = backup(site, "lake", "bk", &[]);
    assert_eq!(again["backup"]["written"], json!([]));
    assert_eq!(again["backup"]["bytes_written"], 0);
    assert_eq!(files(site, "bk"), first);
    // Verified without restoring, checksums and deep.
    for deep in [false, true] {
        let from = site.url("bk");
        let mut args = vec!["backup", "verify", "--from", &from];
        if deep {
            args.extend(["--deep", "--concurrency", "1"]);
        }
        let v = json_run(&args, 0);
        assert_eq!(
            (v["verify"]["bundles"].clone(), v["verify"]["ok"].clone()),
            (json!(8), json!(8))
        );
    }
    // Into an empty lake: the same content, index and catalog (one tenant-day at a time).
    let r = restore(site, "bk", "restored", &["--concurrency", "1"]);
    assert_eq!(r["committed_version"], 1);
    let partitions = index_records(&site.local("lake")).len();
    assert_eq!(r["restore"]["partitions_copied"], partitions);
    assert_eq!(r["restore"]["partitions_rebuilt"], 0);
    assert_eq!(r["restore"]["records"], counts["records"]);
    let expected = content(site, "lake");
    assert_eq!(content(site, "restored"), expected);
    let (lake, restored) = (site.local("lake"), site.local("restored"));
    assert_eq!(index_records(&restored), index_records(&lake));
    for t in ["t01", "t02", "t03"] {
        let v = format!("_catalog/{t}/v00000001.json");
        assert_eq!(
            std::fs::read(restored.join(&v)).unwrap(),
            std::fs::read(lake.join(&v)).unwrap(),
            "{v}"
        );
    }
    assert_eq!(
        std::fs::read(restored.join("_fineo/catalog-applied.json")).unwrap(),
        std::fs::read(lake.join("_fineo/catalog-applied.json")).unwrap()
    );
    // A rerun is a no-op.
    let rerun = restore(site, "bk", "restored", &[]);
    assert_eq!(
        (rerun["noop"].clone(), rerun["committed_version"].clone()),
        (json!(true), Value::Null)
    );
    // Compaction goes on: re-reading the archive doubles nothing, a correction wins.
    let c = compact(&src.staged, site.url("restored"), None, &[]);
    assert_eq!(
        c["records"]["written"], 0,
        "every record is already represented"
    );
    assert_eq!(content(site, "restored"), expected);
    let (ts, old) = boiler_row(&expected, "2026-01-02");
    let fixed = json!({"tenant": "t01", "metric": "boiler", "timestamp": ts, "temperature": 99.25});
    put_object(site, "staged", "05:00", "correction", &[fixed]);
    compact(&src.staged, site.url("restored"), None, &[]);
    let after = content(site, "restored");
    assert_ne!(old, json!(99.25));
    assert_eq!(temperature_at(&after, ts), json!(99.25));
}
crate::both_backends! { fn backup_and_restore_round_trip; }

/// After a compaction that touched two days of one tenant, exactly those two bundles are new;
/// `--tenant/--since/--until` narrow a backup.
fn backup_writes_only_changed_days(backend: Backend) {
    let src = source(backend, 2000);
    let site = &src.site;
    backup(site, "lake", "bk", &[]);
    let before = files(site, "bk");
    let day = |d: &str, s: u32| {
        json!({"tenant": "t01", "metric": "boiler",
        "timestamp": format!("{d}T10:00:{s:02}.000Z"), "temperature": 1.5})
    };
    put_object(
        site,
        "staged",
        "01:00",
        "late",
        &[day("2026-01-01", 1), day("2026-01-02", 2)],
    );
    let c = compact(&src.staged, site.url("lake"), None, &[]);
    assert_eq!(c["committed_version"], 2);
    let b = backup(site, "lake", "bk", &[]);
    let new = vec![
        "tenant=t01/date=2026-01-01/00000000000000000002".to_string(),
        "tenant=t01/date=2026-01-02/00000000000000000002".to_string(),
    ];
    assert_eq!(strings(&b["backup"]["written"]), new);
    assert_eq!(b["backup"]["unchanged"], 6);
    let after = files(site, "bk");
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(!added.is_empty());
    for k in &added {
        assert!(
            new.iter().any(|d| k.starts_with(d.as_str())),
            "unexpected new file {k}"
        );
    }
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    // Narrowed: one tenant, one day.
    let n = backup(
        site,
        "lake",
        "bk3",
        &[
            "--tenant",
            "t02",
            "--since",
            "2026-01-02",
            "--until",
            "2026-01-03",
        ],
    );
    assert_eq!(
        strings(&n["backup"]["written"]),
        ["tenant=t02/date=2026-01-02/00000000000000000002"]
    );
    assert_eq!(n["backup"]["tenant_days"], 1);
}
crate::both_backends! { fn backup_writes_only_changed_days; }

/// Into the same lake: a day whose files were lost comes back; a day a bad run overwrote
/// comes back (and the report names the objects whose records it replaced); `--as-of` picks
/// older bundles.
fn restore_into_the_same_lake_and_as_of(backend: Backend) {
    let src = source(backend, 2000);
    let site = &src.site;
    backup(site, "lake", "bk", &[]);
    let original = content(site, "lake");
    // Lost: every file of t01 on 2026-01-01 (the Delta log still names the typed files).
    let lake = site.location("lake");
    block_on(async {
        for m in lake.list("").await.unwrap() {
            let rel = lake.relative(&m.location);
            let day_file = rel.contains("tenant=t01/")
                && rel.contains("date=2026-01-01")
                && !rel.contains("_delta_log");
            if day_file {
                lake.delete_path(&m.location).await.unwrap();
            }
        }
    });
    let r = restore(
        site,
        "bk",
        "lake",
        &[
            "--tenant",
            "t01",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-02",
        ],
    );
    assert_eq!(
        strings(&r["restore"]["bundles"]),
        ["tenant=t01/date=2026-01-01/00000000000000000001"]
    );
    assert_eq!(content(site, "lake"), original, "the lost day is back");
    // A bad run: later deliveries overwrite t01's boiler on 2026-01-02 with wrong values.
    let bad: Vec<Value> = original["typed"]["t01/boiler"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["date"] == "2026-01-02")
        .map(|r| json!({"tenant": "t01", "metric": "boiler", "timestamp": r["timestamp"], "temperature": -999.0}))
        .collect();
    let key = put_object(site, "staged", "06:00", "bad", &bad);
    compact(&src.staged, site.url("lake"), None, &[]);
    let broken = content(site, "lake");
    assert_ne!(
        day_of(&broken, "t01", "2026-01-02"),
        day_of(&original, "t01", "2026-01-02")
    );
    let day2 = [
        "--tenant",
        "t01",
        "--since",
        "2026-01-02",
        "--until",
        "2026-01-03",
    ];
    // The day holds records of an object processed after the bundle: no silent choice.
    let before = files(site, "lake");
    let (from, lake_url) = (site.url("bk"), site.url("lake"));
    let mut args = vec!["restore", "--from", &from, "--lake", &lake_url];
    args.extend(day2);
    let out = fineo(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to restore") && err.contains(&key) && err.contains("--newer keep"),
        "{err}"
    );
    assert_eq!(
        files(site, "lake"),
        before,
        "a refused restore writes nothing"
    );
    let mut dry = day2.to_vec();
    dry.push("--dry-run");
    let d = restore(site, "bk", "lake", &dry);
    assert_eq!(d["restore"]["newer_records"], bad.len());
    assert_eq!(d["restore"]["days"][0]["newer_records"], bad.len());
    assert_eq!(files(site, "lake"), before, "a dry run writes nothing");
    // keep: merged on top of the bundle, the later (bad) arrivals still win.
    let mut keep = day2.to_vec();
    keep.extend(["--newer", "keep"]);
    restore(site, "bk", "lake", &keep);
    assert_eq!(content(site, "lake"), broken);
    // requeue: the day is back, and the next compaction reads the object again.
    let mut requeue = day2.to_vec();
    requeue.extend(["--newer", "requeue"]);
    let r = restore(site, "bk", "lake", &requeue);
    assert_eq!(r["restore"]["requeued_objects"], 1);
    assert_eq!(
        content(site, "lake"),
        original,
        "the overwritten day is back"
    );
    let c = compact(&src.staged, site.url("lake"), None, &[]);
    assert_eq!(c["objects"]["read"], 1, "the requeued object is read again");
    assert_eq!(content(site, "lake"), broken);
    // drop: the day is back for good.
    let mut drop = day2.to_vec();
    drop.extend(["--newer", "drop"]);
    let r = restore(site, "bk", "lake", &drop);
    assert_eq!(r["restore"]["newer_records"], bad.len());
    assert_eq!(strings(&r["restore"]["newer_objects"]), [key]);
    assert_eq!(
        content(site, "lake"),
        original,
        "the overwritten day is back"
    );
    let c = compact(&src.staged, site.url("lake"), None, &[]);
    assert_eq!(c["noop"], true);
    // Point in time: t02's 2026-01-01 changes and is backed up again; --as-of 1 takes the old.
    let v = json!({"tenant": "t02", "metric": "boiler", "timestamp": "2026-01-01T12:00:00.000Z", "temperature": 5.0});
    put_object(site, "staged", "07:00", "t02", &[v]);
    let c = compact(&src.staged, site.url("lake"), None, &[]);
    let version = c["committed_version"].as_u64().unwrap();
    let b = backup(site, "lake", "bk", &[]);
    let written = strings(&b["backup"]["written"]);
    assert!(
        written.contains(&format!("tenant=t02/date=2026-01-01/{version:020}")),
        "{written:?}"
    );
    assert!(
        written
            .iter()
            .all(|w| w.starts_with("tenant=t01/") || w.starts_with("tenant=t02/date=2026-01-01/")),
        "{written:?}"
    );
    // No memory for verified bytes: every bundle file is read and checked again when copied.
    let pit_args = ["--tenant", "t02", "--as-of", "1", "--memory-budget-mb", "0"];
    restore(site, "bk", "pit", &pit_args);
    let pit = content(site, "pit");
    assert_eq!(
        day_of(&pit, "t02", "2026-01-01"),
        day_of(&original, "t02", "2026-01-01")
    );
    assert_eq!(
        day_of(&pit, "t02", "2026-01-02"),
        day_of(&original, "t02", "2026-01-02")
    );
    restore(site, "bk", "latest", &["--tenant", "t02"]);
    let latest = content(site, "latest");
    assert_eq!(
        day_of(&latest, "t02", "2026-01-01"),
        day_of(&content(site, "lake"), "t02", "2026-01-01")
    );
    assert_ne!(
        day_of(&latest, "t02", "2026-01-01"),
        day_of(&pit, "t02", "2026-01-01")
    );
    // The listing shows both versions of that day.
    let from = site.url("bk");
    let list: Value = serde_json::from_str(&fineo_ok(
        &[
            "restore", "--list", "--from", &from, "--tenant", "t02", "--json",
        ],
        0,
    ))
    .unwrap();
    let versions: Vec<(String, u64, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["date"].as_str().unwrap().to_string(),
                b["version"].as_u64().unwrap(),
                b["latest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("2026-01-01".to_string(), 1, false),
            ("2026-01-01".to_string(), version, true),
            ("2026-01-02".to_string(), 1, true)
        ]
    );
}
crate::both_backends! { fn restore_into_the_same_lake_and_as_of; }

/// `restore --staged` writes archive objects that compact into the same lake content;
/// `--format dynamodb-json` writes items that boto3's TypeDeserializer reads back to the
/// lake's typed values.
fn restore_as_archive_objects(backend: Backend) {
    let src = source(backend, 1500);
    let site = &src.site;
    let b = backup(site, "lake", "bk", &[]);
    let records = b["backup"]["records"].as_u64().unwrap();
    let from = site.url("bk");
    let out = site.url("reload");
    let r = json_run(&["restore", "--from", &from, "--staged", &out], 0);
    assert_eq!(r["restore"]["records"], records);
    assert!(r["restore"]["objects_written"].as_u64().unwrap() >= 8);
    // A rerun writes nothing new.
    let again = json_run(&["restore", "--from", &from, "--staged", &out], 0);
    assert_eq!(again["restore"]["objects_written"], 0);
    assert_eq!(
        again["restore"]["objects_existing"],
        r["restore"]["objects_written"]
    );
    let catalog = src.sample.join("catalog");
    let c = compact(&out, site.url("rebuilt"), Some(&catalog), &[]);
    assert_eq!(c["records"]["records_in"], records);
    assert_eq!(c["records"]["written"], records);
    assert_eq!(content(site, "rebuilt"), content(site, "lake"));
    // DynamoDB import format.
    let dynamo = site.url("dynamo");
    let d = json_run(
        &[
            "restore",
            "--from",
            &from,
            "--staged",
            &dynamo,
            "--format",
            "dynamodb-json",
        ],
        0,
    );
    assert_eq!(d["restore"]["target"], "dynamodb-json");
    let script = r#"
import gzip, json, os, sys
from boto3.dynamodb.types import TypeDeserializer
des = TypeDeserializer()
items = []
for root, _, names in os.walk(sys.argv[1]):
    for n in sorted(names):
        if n.endswith(".json.gz"):
            for line in gzip.open(os.path.join(root, n), "rt"):
                item = json.loads(line)["Item"]
                items.append({k: (str(v) if not isinstance(v, (bool, str)) else v)
                              for k, v in ((k, des.deserialize(a)) for k, a in item.items())})
print(json.dumps(items))
"#;
    let dir = site.local("dynamo");
    let items: Vec<Value> = serde_json::from_slice(&python_ok(&["-c", script, s(&dir)])).unwrap();
    assert_eq!(items.len() as u64, records);
    let lake = content(site, "lake");
    let mut checked = 0;
    for row in lake["typed"]["t01/boiler"].as_array().unwrap() {
        let ts = row["timestamp"].as_i64().unwrap();
        let item = items
            .iter()
            .find(|i| {
                i["pk"] == "t01#boiler" && i["timestamp"].as_str() == Some(ts.to_string().as_str())
            })
            .unwrap_or_else(|| panic!("no item for t01/boiler at {ts}"));
        assert_eq!(item["tenant"], "t01");
        if let Some(t) = row["temperature"].as_f64() {
            let got: f64 = item["temperature"].as_str().unwrap().parse().unwrap();
            assert_eq!(got, t, "temperature at {ts}");
            checked += 1;
        }
        if let Some(r) = row["running"].as_bool() {
            assert_eq!(item["running"], r);
        }
    }
    assert!(checked > 50, "{checked} values checked");
}
crate::both_backends! { fn restore_as_archive_objects; }

/// Rewrites a manifest with `edit` applied and its checksum made right again (a careful liar).
fn relie(site: &Site, name: &str, rel: &str, edit: impl Fn(&mut Manifest)) {
    let loc = site.location(name);
    let bytes = block_on(async { loc.get_opt(rel).await.unwrap().unwrap() });
    let mut m: Manifest = serde_json::from_slice(&bytes).unwrap();
    edit(&mut m);
    block_on(async { loc.put(rel, m.to_bytes().into()).await.unwrap() });
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

/// Every kind of damage is refused by `backup verify` and by `restore`, naming the bundle and
/// the file, and the target lake stays byte for byte as it was.
fn damaged_bundles_are_refused(backend: Backend) {
    let src = source(backend, 1200);
    let site = &src.site;
    backup(site, "lake", "bk", &[]);
    restore(site, "bk", "target", &["--tenant", "t03"]);
    let target_before = files(site, "target");
    let bundle = "tenant=t01/date=2026-01-01/00000000000000000001";
    let typed = format!("{bundle}/metric=boiler/typed-00000.parquet");
    let index = format!("{bundle}/metric=boiler/index.parquet");
    let manifest = format!("{bundle}/manifest.json");
    type Damage = Box<dyn Fn(&Site, &str)>;
    let cases: Vec<(&str, Damage, &str, &str)> = vec![
        (
            "flipped byte",
            Box::new({
                let typed = typed.clone();
                move |site, name| {
                    let loc = site.location(name);
                    block_on(async {
                        let mut b = loc.get_opt(&typed).await.unwrap().unwrap().to_vec();
                        let at = b.len() / 2;
                        b[at] ^= 0x01;
                        loc.put(&typed, b.into()).await.unwrap();
                    })
                }
            }),
            "metric=boiler/typed-00000.parquet",
            "SHA-256",
        ),
        (
            "truncated",
            Box::new({
                let index = index.clone();
                move |site, name| {
                    let loc = site.location(name);
                    block_on(async {
                        let b = loc.get_opt(&index).await.unwrap().unwrap();
                        loc.put(&index, b.slice(..b.len() - 100)).await.unwrap();
                    })
                }
            }),
            "metric=boiler/index.parquet",
            "bytes, the manifest says",
        ),
        (
            "missing file",
            Box::new({
                let typed = typed.clone();
                move |site, name| {
                    block_on(async { site.location(name).delete(&typed).await.unwrap() })
                }
            }),
            "metric=boiler/typed-00000.parquet",
            "missing",
        ),
        (
            "lying count",
            Box::new({
                let manifest = manifest.clone();
                move |site, name| {
                    relie(site, name, &manifest, |m| {
                        m.metrics.get_mut("boiler").unwrap().records += 1;
                        m.records += 1;
                    })
                }
            }),
            "metric=boiler/index.parquet",
            "rows, the manifest says",
        ),
        (
            "lying checksum",
            Box::new({
                let manifest = manifest.clone();
                move |site, name| {
                    relie(site, name, &manifest, |m| {
                        let f = m
                            .files
                            .iter_mut()
                            .find(|f| f.path.ends_with("boiler/index.parquet"))
                            .unwrap();
                        f.sha256 = "0".repeat(64);
                    })
                }
            }),
            "metric=boiler/index.parquet",
            "SHA-256",
        ),
        (
            "edited manifest",
            Box::new({
                let manifest = manifest.clone();
                move |site, name| {
                    let loc = site.location(name);
                    block_on(async {
                        let b = loc.get_opt(&manifest).await.unwrap().unwrap();
                        let text = String::from_utf8(b.to_vec()).unwrap().replacen(
                            "\"records\": ",
                            "\"records\": 1",
                            1,
                        );
                        loc.put(&manifest, text.into_bytes().into()).await.unwrap();
                    })
                }
            }),
            "manifest.json",
            "checksum mismatch",
        ),
        (
            "another tenant's bundle",
            Box::new(|site, name| {
                let loc = site.location(name);
                block_on(async {
                    let from = "tenant=t02/date=2026-01-01/00000000000000000001";
                    let to = "tenant=t01/date=2026-01-01/00000000000000000001";
                    for m in loc.list(to).await.unwrap() {
                        loc.delete_path(&m.location).await.unwrap();
                    }
                    for m in loc.list(from).await.unwrap() {
                        let rel = loc.relative(&m.location);
                        let bytes = loc.get_path(&m.location).await.unwrap();
                        loc.put(&rel.replacen(from, to, 1), bytes).await.unwrap();
                    }
                })
            }),
            "",
            "is tenant \"t02\"'s, but the bundle is under tenant=t01",
        ),
        (
            "newer format",
            Box::new({
                let manifest = manifest.clone();
                move |site, name| relie(site, name, &manifest, |m| m.format_version = 2)
            }),
            "manifest.json",
            "format version 2 is newer than this fineo-batch reads (1)",
        ),
    ];
    for (i, (what, damage, file, problem)) in cases.iter().enumerate() {
        let name = format!("bk-damaged-{i}");
        copy_location(site, "bk", &name);
        damage(site, &name);
        let from = site.url(&name);
        let v = json_run(&["backup", "verify", "--from", &from], 1);
        let found = v["verify"]["damage"].as_array().unwrap();
        let hit = found.iter().any(|d| {
            d["bundle"] == bundle
                && (file.is_empty() || d["file"] == *file)
                && d["problem"].as_str().unwrap().contains(problem)
        });
        assert!(hit, "{what}: verify found {found:?}");
        let text = fineo_ok(&["backup", "verify", "--from", &from], 1);
        assert!(
            text.contains(&format!("DAMAGED {bundle}")),
            "{what}: {text}"
        );
        let target = site.url("target");
        let out = fineo(&["restore", "--from", &from, "--lake", &target]);
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to restore") && err.contains(bundle) && err.contains(problem),
            "{what}: {err}"
        );
        assert_eq!(
            files(site, "target"),
            target_before,
            "{what}: the target lake changed"
        );
    }
    // The newest bundle of a day lost its manifest: never a silent fall back to an older one.
    copy_location(site, "bk", "bk-no-manifest");
    backup(site, "lake", "bk-no-manifest", &[]);
    block_on(async {
        site.location("bk-no-manifest")
            .delete(&manifest)
            .await
            .unwrap()
    });
    let from = site.url("bk-no-manifest");
    let v = json_run(&["backup", "verify", "--from", &from], 1);
    assert_eq!(strings(&v["verify"]["incomplete"]), [bundle]);
    let target = site.url("target");
    let out = fineo(&["restore", "--from", &from, "--lake", &target]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{bundle}/manifest.json: missing in the newest bundle"
        )),
        "{err}"
    );
    assert_eq!(files(site, "target"), target_before);
}
crate::both_backends! { fn damaged_bundles_are_refused; }

/// Usage errors exit 2 and say why.
#[test]
fn backup_and_restore_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = s(tmp.path());
    let out = fineo(&[
        "backup",
        "--lake",
        lake,
        "--to",
        lake,
        "--since",
        "2026-01-03",
        "--until",
        "2026-01-02",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not before --until"));
    let out = fineo(&["restore", "--from", lake]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --lake L"));
    let out = fineo(&[
        "restore",
        "--from",
        lake,
        "--lake",
        lake,
        "--concurrency",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency"));
    let out = fineo(&[
        "restore",
        "--from",
        lake,
        "--lake",
        lake,
        "--since",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a date YYYY-MM-DD"));
    let out = fineo(&[
        "restore", "--from", lake, "--lake", lake, "--tenant", "../x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let empty = json_run(&["restore", "--from", lake, "--lake", lake], 0);
    assert_eq!(empty["noop"], true);
    assert!(empty["message"]
        .as_str()
        .unwrap()
        .contains("no bundle matches"));
}

/// A restore and a compaction of new objects started at once on the same lake, as processes:
/// each succeeds or gives up cleanly (and is run again), and the lake holds the restored days
/// plus every new record, as the sequential runs give it.
fn restore_racing_a_compaction_loses_nothing(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let truth = generate(
        &sample,
        if backend == Backend::Fs { 3000 } else { 1500 },
        "mixed",
        5,
        2,
    );
    let keys = deliveries(&truth);
    let catalog = sample.join("catalog");
    let a = site.put_objects(&sample, keys.iter().step_by(2), "a");
    let b = site.put_objects(&sample, keys.iter().skip(1).step_by(2), "b");
    let seeded = |name: &str| {
        fineo_ok(
            &["schema", "import", "--lake", &site.url(name), s(&catalog)],
            0,
        );
        compact(&a, site.url(name), None, &[]);
    };
    seeded("source");
    backup(&site, "source", "bk", &[]);
    seeded("sequential");
    restore(&site, "bk", "sequential", &[]);
    compact(&b, site.url("sequential"), None, &[]);
    let expected = content(&site, "sequential");
    for round in 0..2 {
        let lake = format!("lake-{round}");
        seeded(&lake);
        let restore_args: Vec<String> = [
            "restore",
            "--from",
            &site.url("bk"),
            "--lake",
            &site.url(&lake),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        let compact_args = compact_args(&b, site.url(&lake), None);
        let (r, c) = (spawn_fineo(&restore_args), spawn_fineo(&compact_args));
        let outs = [r.wait_with_output().unwrap(), c.wait_with_output().unwrap()];
        for (out, args) in outs.iter().zip([&restore_args, &compact_args]) {
            if !raced(out) {
                fineo_ok(args, 0);
            }
        }
        assert_eq!(content(&site, &lake), expected, "round {round}");
    }
    let rows: usize = expected["typed"]
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
crate::both_backends! { fn restore_racing_a_compaction_loses_nothing; }
