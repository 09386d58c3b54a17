//! Hand-written fixtures (testdata/fixtures) with exact expected rows, lines and error codes.

use std::path::Path;

use serde_json::Value;

use crate::harness::*;

fn expected(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(testdata(rel)).unwrap()).unwrap()
}

/// Checks the lake and report against an expected document.
fn check(lake: &Path, report: &Value, exp: &Value) {
    assert_subset(&report["records"], &exp["report"], "report.records");
    let dump = lake_dump(lake);
    let typed = typed_rows(&dump);
    let exp_typed = exp["typed"].as_object().unwrap();
    assert_eq!(
        typed.len(),
        exp_typed.len(),
        "typed tables: {:?}",
        typed.keys()
    );
    for (table, rows) in exp_typed {
        assert_eq!(
            &Value::Array(typed[table].clone()),
            rows,
            "typed rows of {table}"
        );
    }
    let untyped = untyped_lines(&dump);
    let exp_untyped = exp["untyped"].as_object().unwrap();
    assert_eq!(
        untyped.len(),
        exp_untyped.len(),
        "untyped partitions: {:?}",
        untyped.keys()
    );
    for (part, lines) in exp_untyped {
        let mut got = untyped[part].clone();
        let mut want = lines.as_array().unwrap().clone();
        got.sort_by_key(|v| v["timestamp"].as_i64());
        want.sort_by_key(|v| v["timestamp"].as_i64());
        assert_eq!(got, want, "untyped lines of {part}");
    }
    let mut errors: Vec<(i64, String)> = dump["errors"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["position"]["line"].as_i64().unwrap_or(-1),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    errors.sort();
    let want: Vec<(i64, String)> = exp["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(errors, want, "quarantined records");
    let total = dump["totals"]["typed_rows"].as_u64().unwrap();
    assert_eq!(
        total,
        report["output"]["typed_rows"].as_u64().unwrap(),
        "typed rows: readers vs report"
    );
}

fn resolution_rules_exact_rows(backend: Backend) {
    let site = Site::new(backend);
    let fx = testdata("fixtures/resolution");
    let staged = site.put_tree(&fx.join("staged"), "staged");
    let report = compact(&staged, site.url("lake"), Some(&fx.join("catalog")), &[]);
    let lake = site.local("lake");
    check(
        &lake,
        &report,
        &expected("fixtures/resolution/expected.json"),
    );
    // Quarantine lines name the object, the position and keep the raw record.
    let dump = lake_dump(&lake);
    let bad_json = dump["errors"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["reason"] == "bad_json")
        .unwrap()
        .clone();
    assert!(bad_json["object"].as_str().unwrap().ends_with(".json"));
    assert_eq!(bad_json["raw"], r#"{"tenant":"t1","metric":"boiler","#);
    assert_eq!(bad_json["position"]["record"], 11);
    // Bad tenants never become a path: they land under _unknown.
    assert!(lake.join("errors/tenant=_unknown").is_dir());
    assert!(lake.join("errors/tenant=t1").is_dir());
}
crate::both_backends! { fn resolution_rules_exact_rows; }

#[test]
fn fail_on_error_exits_3_but_keeps_the_good_records() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = testdata("fixtures/resolution");
    let lake = tmp.path().join("lake");
    let (staged, catalog) = (fx.join("staged"), fx.join("catalog"));
    let mut args = compact_args(&staged, &lake, Some(&catalog));
    args.retain(|a| *a != "--json");
    args.push("--fail-on-error".into());
    let stdout = fineo_ok(&args, 3);
    assert!(
        stdout.contains("16 in = 9 written + 0 duplicates"),
        "{stdout}"
    );
    assert_eq!(lake_dump(&lake)["totals"]["typed_rows"], 6);
}

fn corrections_win_latest_and_keep_first(backend: Backend) {
    let fx = testdata("fixtures/dedup");
    let site = Site::new(backend);
    let staged = site.put_tree(&fx.join("staged"), "staged");
    for (keep, exp) in [
        ("latest", "expected_latest.json"),
        ("first", "expected_first.json"),
    ] {
        let lake = format!("lake-{keep}");
        let report = compact(
            &staged,
            site.url(&lake),
            Some(&fx.join("catalog")),
            &["--keep", keep],
        );
        let exp = expected(&format!("fixtures/dedup/{exp}"));
        check(&site.local(&lake), &report, &exp);
    }
}
crate::both_backends! { fn corrections_win_latest_and_keep_first; }

fn late_object_with_earlier_key_loses_to_the_lake(backend: Backend) {
    // Run 1 sees objects A and B; object C (key time before both) is delivered afterwards.
    let site = Site::new(backend);
    let fx = testdata("fixtures/dedup");
    let (first, late) = (site.scratch().join("first"), site.scratch().join("late"));
    for f in walk(&fx.join("staged")) {
        let dir = match f.to_str().unwrap().contains("cccccccc") {
            true => &late,
            false => &first,
        };
        let dest = dir.join(f.strip_prefix(fx.join("staged")).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
    let staged = site.put_tree(&first, "staged");
    let lake = site.url("lake");
    let r1 = compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    assert_eq!(r1["records"]["written"], 3);
    site.put_tree(&late, "staged");
    let r2 = compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    assert_eq!(r2["objects"]["read"], 1);
    assert_eq!(r2["records"]["records_in"], 2);
    assert_eq!(r2["records"]["written"], 1);
    assert_eq!(
        r2["records"]["duplicates"]["conflicting"], 1,
        "C's record loses to B's already in the lake"
    );
    let exp = expected("fixtures/dedup/expected_latest.json");
    let typed = typed_rows(&lake_dump(&site.local("lake")));
    assert_eq!(
        Value::Array(typed["t1/boiler"].clone()),
        exp["typed"]["t1/boiler"]
    );
}
crate::both_backends! { fn late_object_with_earlier_key_loses_to_the_lake; }

fn odd_names_and_keys_stay_inside_their_tenant(backend: Backend) {
    let site = Site::new(backend);
    let (staged_dir, catalog) = (
        site.scratch().join("staged"),
        site.scratch().join("catalog"),
    );
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(
        catalog.join("t1.json"),
        r#"{"tenant":"t1","metrics":{"boiler_room":{"aliases":["boiler room/2"],"fields":{"temp":{"type":"double"}}}}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(staged_dir.join("odd dir")).unwrap();
    let lines = [
        r#"{"tenant":"t1","metric":"boiler room/2","timestamp":1767225600000,"temp":1.5}"#,
        r#"{"tenant":"t1","metric":"../../escape","timestamp":1767225600000,"x":"1"}"#,
        r#"{"tenant":"t1","metric":"a/b=c%d","timestamp":1767225600000,"y":"2"}"#,
    ];
    // Object keys with characters object stores treat specially.
    std::fs::write(
        staged_dir.join("odd dir/exp~1 [x]%41.json"),
        lines.join("\n"),
    )
    .unwrap();
    let staged = site.put_tree(&staged_dir, "staged-s");
    let report = compact(&staged, site.url("lake"), Some(&catalog), &[]);
    assert_eq!(report["records"]["written"], 3);
    let lake = site.local("lake");
    for f in walk(site.scratch()) {
        let rel = f.strip_prefix(site.scratch()).unwrap().to_str().unwrap();
        assert!(
            rel.starts_with("staged/")
                || rel.starts_with("catalog/")
                || !rel.contains("escape")
                || rel.contains("tenant=t1/"),
            "{rel} left its tenant's prefix"
        );
    }
    assert!(lake
        .join("typed/tenant=t1/metric=boiler_room/_delta_log")
        .is_dir());
    assert!(!lake
        .join("untyped/tenant=t1/metric=..%2F..%2Fescape")
        .is_dir());
    assert!(lake
        .join("untyped/tenant=t1/metric=%2E.%2F..%2Fescape")
        .is_dir());
    let dump = lake_dump(&lake);
    let typed = typed_rows(&dump);
    assert_eq!(typed["t1/boiler_room"][0]["temp"], 1.5);
    let untyped = untyped_lines(&dump);
    assert_eq!(untyped["t1/a/b=c%d/2026-01-01"][0]["y"], "2");
    assert_eq!(untyped["t1/../../escape/2026-01-01"][0]["x"], "1");
    // A second run finds the odd key in the ledger.
    assert_eq!(
        compact(&staged, site.url("lake"), Some(&catalog), &[])["noop"],
        true
    );
}
crate::both_backends! { fn odd_names_and_keys_stay_inside_their_tenant; }
