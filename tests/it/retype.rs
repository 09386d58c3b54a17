//! The schema workflow end to end: compact with a catalog that misses fields, read the
//! proposals, accept them (and rename, hide, re-type), compact again, and the lake equals one
//! built from scratch with the final catalog; only partitions holding affected fields change.

use std::path::Path;

use fineo_batch::commit::delta::Table;
use fineo_batch::storage::Location;
use serde_json::{json, Value};

use crate::harness::*;

/// `fineo-batch schema <args> --lake <lake> --tenant <tenant> --json`, parsed.
fn schema_json(lake: &Path, tenant: &str, args: &[&str]) -> Value {
    let mut all = vec!["schema"];
    all.extend(args);
    all.extend(["--lake", s(lake), "--tenant", tenant, "--json"]);
    serde_json::from_str(&fineo_ok(&all, 0)).expect("schema --json output")
}

/// `compact` against the lake's own catalog.
fn compact_lake(staged: &Path, lake: &Path) -> Value {
    compact(staged, lake, None, &[])
}

/// The generated catalog of t01, with what the test will later accept taken out.
fn reduced_t01(catalog: &Path) -> Value {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(catalog.join("t01.json")).unwrap())
        .expect("t01 catalog");
    let boiler = &mut doc["metrics"]["boiler"];
    boiler["fields"]
        .as_object_mut()
        .unwrap()
        .shift_remove("site");
    boiler["fields"]["temperature"]["aliases"] = json!(["temp"]);
    boiler["fields"]["pressure"]["type"] = json!("string");
    boiler["aliases"] = json!(["machine1"]);
    doc
}

/// Typed columns of a table as the Delta log declares them.
async fn columns(lake: &Path, table: &str) -> Vec<(String, String)> {
    let loc = Location::parse(s(&lake.join("typed").join(table))).unwrap();
    let t = Table::open(loc).await.unwrap();
    t.typed_columns()
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .map(|(n, ty)| (n.to_string(), ty.name().to_string()))
        .collect()
}

fn untyped_keys(content: &Value, prefix: &str) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    for (k, lines) in content["untyped"].as_object().unwrap() {
        if k.starts_with(prefix) {
            for l in lines.as_array().unwrap() {
                keys.extend(l.as_object().unwrap().keys().cloned());
            }
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_proposals_retype_the_lake_as_if_the_catalog_had_been_there() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 20_000, "mixed", 11, 3);
    let staged = sample.join("staged");
    let seed = tmp.path().join("seed");
    copy_tree(&sample.join("catalog"), &seed);
    std::fs::write(seed.join("t01.json"), reduced_t01(&seed).to_string()).unwrap();

    // 1. A lake built with the reduced catalog (imported into the lake's catalog store).
    let lake = tmp.path().join("lake");
    fineo_ok(&["schema", "import", "--lake", s(&lake), s(&seed)], 0);
    let first = compact_lake(&staged, &lake);
    assert_eq!(first["records"]["records_in"], truth["records"]);
    let before = lake_content(&lake);
    assert!(untyped_keys(&before, "t01/boiler/").contains("site"));
    assert!(untyped_keys(&before, "t01/machine1b/").contains("temperature"));

    // 2. The proposals say what the catalog misses.
    let p = schema_json(&lake, "t01", &["proposals"]);
    let boiler = &p["metrics"]["boiler"]["fields"];
    assert_eq!(
        boiler["site"]["suggestion"],
        json!({"action": "new_field", "name": "site", "type": "string"})
    );
    assert_eq!(
        boiler["tmp"]["suggestion"],
        json!({"action": "alias", "field": "temperature"})
    );
    // `tmp` carries a few "n/a" like every numeric field of the sample: the inferred type that
    // fits every value is string, and it is still suggested as the alias it is.
    assert_eq!(boiler["tmp"]["inferred_type"], "string");
    let counts = &boiler["tmp"]["type_counts"];
    assert!(counts["double"].as_u64().unwrap() > 20 * counts["string"].as_u64().unwrap());
    assert!(boiler["site"]["count"].as_u64().unwrap() > 100);
    assert_eq!(p["metrics"]["machine1b"]["known"], false);

    // 3. Accept them, and change the catalog in the other ways a user can.
    for args in [
        vec!["accept", "--metric", "boiler", "--field", "site"],
        vec!["accept", "--metric", "boiler", "--field", "tmp"],
        vec!["accept-metric", "--metric", "machine1b", "--as", "boiler"],
        vec![
            "set-type", "--metric", "boiler", "--field", "pressure", "--type", "long",
        ],
        vec![
            "rename",
            "--metric",
            "door",
            "--field",
            "count",
            "--to",
            "door_count",
        ],
        vec!["hide", "--metric", "meter", "--field", "voltage"],
    ] {
        schema_json(&lake, "t01", &args);
    }
    let history = schema_json(&lake, "t01", &["history"]);
    assert_eq!(history["versions"].as_array().unwrap().len(), 7);

    // 4. The next compact has no new input, and re-types what the changes touch.
    let second = compact_lake(&staged, &lake);
    assert_eq!(second["records"]["records_in"], 0);
    assert_eq!(second["conservation_ok"], true);
    assert_eq!(second["retype"]["tenants"], json!(["t01"]));
    let rebuilt = second["retype"]["partitions"].as_u64().unwrap();
    assert!(rebuilt > 0, "{second}");
    let after = lake_content(&lake);
    assert!(!untyped_keys(&after, "t01/boiler/").contains("site"));
    assert!(!untyped_keys(&after, "t01/machine1b/").contains("temperature"));
    assert!(after["untyped"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with("t01/machine1b/")));

    // 5. The same archive compacted from scratch with the final catalog gives the same lake.
    let fin = tmp.path().join("final");
    std::fs::create_dir_all(&fin).unwrap();
    for t in ["t01", "t02", "t03"] {
        let out = fin.join(format!("{t}.json"));
        fineo_ok(
            &[
                "schema",
                "export",
                "--lake",
                s(&lake),
                "--tenant",
                t,
                "--out",
                s(&out),
            ],
            0,
        );
    }
    let scratch = tmp.path().join("scratch");
    fineo_ok(&["schema", "import", "--lake", s(&scratch), s(&fin)], 0);
    compact_lake(&staged, &scratch);
    let expected = lake_content(&scratch);
    assert_eq!(after["typed"], expected["typed"]);
    assert_eq!(after["untyped"], expected["untyped"]);
    assert_eq!(after["errors"], expected["errors"]);
    assert_eq!(after["ledger"], expected["ledger"]);
    for table in [
        "tenant=t01/metric=boiler",
        "tenant=t01/metric=door",
        "tenant=t01/metric=meter",
    ] {
        assert_eq!(
            columns(&lake, table).await,
            columns(&scratch, table).await,
            "{table}"
        );
    }
    assert_eq!(
        columns(&lake, "tenant=t01/metric=boiler").await,
        [
            ("temperature", "double"),
            ("pressure", "long"),
            ("running", "boolean"),
            ("site", "string")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // 6. Nothing more to do: the next run is a no-op, and the proposals forgot what was accepted.
    let third = compact_lake(&staged, &lake);
    assert_eq!(third["noop"], true, "{third}");
    let p = schema_json(&lake, "t01", &["proposals"]);
    assert!(
        p["metrics"]["boiler"]["fields"].get("site").is_none(),
        "{p}"
    );
    assert!(p["metrics"].get("machine1b").is_none(), "{p}");
}

/// `staged` and `lake` below `dir`, the lake's catalog store seeded with `doc`.
fn tenant_lake(dir: &Path, doc: &Value) -> (std::path::PathBuf, std::path::PathBuf) {
    let (staged, lake) = (dir.join("staged"), dir.join("lake"));
    let seed = dir.join("seed.json");
    std::fs::write(&seed, doc.to_string()).unwrap();
    fineo_ok(&["schema", "import", "--lake", s(&lake), s(&seed)], 0);
    (staged, lake)
}

/// One staged JSON Lines object.
fn put_object(staged: &Path, key: &str, lines: &[Value]) {
    let p = staged.join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(p, text).unwrap();
}

#[test]
fn only_partitions_that_hold_an_accepted_field_are_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = json!({"tenant": "tx", "metrics": {"boiler": {"fields": {"temperature": {"type": "double"}}}}});
    let (staged, lake) = tenant_lake(tmp.path(), &doc);
    let day = 86_400_000i64;
    let rec = |d: i64, extra: Value| {
        let mut r = json!({"tenant": "tx", "metric": "boiler", "timestamp": d * day + 5, "temperature": 20.5});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    // Day 0 and 1 hold `humidity_pct`; day 2 does not.
    put_object(
        &staged,
        "2026/01/01/00/s-1-2026-01-01-00-00-00-a",
        &[
            rec(0, json!({"humidity_pct": 40})),
            rec(1, json!({"humidity_pct": "41.5"})),
            rec(2, json!({"note": "x"})),
        ],
    );
    let first = compact(&staged, &lake, None, &[]);
    assert_eq!(first["output"]["partitions_touched"], 3);
    let p = schema_json(&lake, "tx", &["proposals"]);
    assert_eq!(
        p["metrics"]["boiler"]["fields"]["humidity_pct"]["suggestion"],
        json!({"action": "new_field", "name": "humidity_pct", "type": "double"})
    );
    schema_json(
        &lake,
        "tx",
        &["accept", "--metric", "boiler", "--field", "humidity_pct"],
    );
    let day2_index = lake.join("_fineo/index/tenant=tx/metric=boiler/date=1970-01-03.parquet");
    let day2_before = std::fs::read(&day2_index).unwrap();
    let second = compact(&staged, &lake, None, &[]);
    assert_eq!(second["retype"]["partitions"], 2, "{second}");
    assert_eq!(second["retype"]["records"], 2);
    assert_eq!(second["output"]["partitions_touched"], 2);
    assert_eq!(
        std::fs::read(&day2_index).unwrap(),
        day2_before,
        "day 2 untouched"
    );
    let rows = typed_rows(&lake_dump(&lake));
    let humidity: Vec<Value> = rows["tx/boiler"]
        .iter()
        .map(|r| r["humidity_pct"].clone())
        .collect();
    assert_eq!(humidity, [json!(40.0), json!(41.5), Value::Null]);
}

#[test]
fn hide_drops_a_column_and_unhide_brings_the_stored_values_back() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = json!({"tenant": "tx", "metrics": {"boiler": {"fields": {
        "temperature": {"type": "double", "aliases": ["temp"]}, "site": {"type": "string"}}}}});
    let (staged, lake) = tenant_lake(tmp.path(), &doc);
    put_object(
        &staged,
        "2026/01/01/00/s-1-2026-01-01-00-00-00-a",
        &[
            json!({"tenant": "tx", "metric": "boiler", "timestamp": 1000, "temp": "20.5", "site": "a"}),
            json!({"tenant": "tx", "metric": "boiler", "timestamp": 2000, "temperature": 21, "site": "b", "x": 1}),
        ],
    );
    compact(&staged, &lake, None, &[]);
    let original = lake_content(&lake);
    schema_json(
        &lake,
        "tx",
        &["hide", "--metric", "boiler", "--field", "temperature"],
    );
    let hidden = compact(&staged, &lake, None, &[]);
    assert_eq!(hidden["retype"]["partitions"], 1, "{hidden}");
    let rows = &typed_rows(&lake_dump(&lake))["tx/boiler"];
    let sites: Vec<&Value> = rows.iter().map(|r| &r["site"]).collect();
    assert_eq!(sites, [&json!("a"), &json!("b")]);
    for r in rows {
        let mut cols: Vec<&String> = r.as_object().unwrap().keys().collect();
        cols.sort();
        assert_eq!(cols, ["date", "site", "timestamp"], "no temperature column");
    }
    let untyped = untyped_lines(&lake_dump(&lake));
    assert_eq!(
        untyped["tx/boiler/1970-01-01"],
        [json!({"timestamp": 2000, "x": "1"})]
    );
    schema_json(
        &lake,
        "tx",
        &["unhide", "--metric", "boiler", "--field", "temperature"],
    );
    compact(&staged, &lake, None, &[]);
    assert_eq!(
        lake_content(&lake),
        original,
        "unhide restores the stored values"
    );
}

#[test]
fn renaming_a_metric_moves_its_rows_to_the_new_table() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = json!({"tenant": "tx", "metrics": {"boiler": {"aliases": ["machine1"], "fields": {
        "temperature": {"type": "double"}}}}});
    let (staged, lake) = tenant_lake(tmp.path(), &doc);
    put_object(
        &staged,
        "2026/01/01/00/s-1-2026-01-01-00-00-00-a",
        &[
            json!({"tenant": "tx", "metric": "boiler", "timestamp": 1000, "temperature": 20.5}),
            json!({"tenant": "tx", "metric": "machine1", "timestamp": 2000, "temperature": 21, "x": 1}),
        ],
    );
    compact(&staged, &lake, None, &[]);
    schema_json(
        &lake,
        "tx",
        &["rename", "--metric", "boiler", "--to", "heater"],
    );
    let report = compact(&staged, &lake, None, &[]);
    assert_eq!(report["retype"]["partitions"], 2, "{report}");
    let dump = lake_dump(&lake);
    let rows = typed_rows(&dump);
    let temps: Vec<&Value> = rows["tx/heater"]
        .iter()
        .map(|r| &r["temperature"])
        .collect();
    assert_eq!(temps, [&json!(20.5), &json!(21.0)]);
    assert_eq!(
        rows.get("tx/boiler").map_or(0, Vec::len),
        0,
        "old table has no rows"
    );
    let untyped = untyped_lines(&dump);
    assert_eq!(
        untyped["tx/heater/1970-01-01"],
        [json!({"timestamp": 2000, "x": "1"})]
    );
    assert!(!untyped.contains_key("tx/boiler/1970-01-01"));
    assert!(!lake
        .join("_fineo/index/tenant=tx/metric=boiler/date=1970-01-01.parquet")
        .exists());
}
